//! One rendering module for every result: `table` for people, `csv` as pure
//! data (SPEC section 7), `json` with amounts as exact decimal strings. Used
//! by the command line and by the server alike; each function returns the
//! whole text.
//!
//! JSON shapes (every amount a decimal string in the agreement currency):
//! - report: `{agreement:{id,sha256}, agreement_versions?:[{id,sha256}],
//!   journal?:{entries,head}, currency, as_of, by:[dim], rows:[{<dim>:value…,
//!   amount}], total, provisional_lines}`.
//! - allocation: `{agreement, agreement_versions?, journal?, currency, as_of,
//!   lines:[{id,date,category,site,amount,allocation:{party:amount},
//!   provisional}], totals:{party:amount}}`.
//! - explanation: `{id,date,fiscal_year,category,site,description,row,amount,
//!   source:{amount,currency,rate?:{date,rate}},quantity,layers:[{layer,rule,
//!   period,remaining_before,portion,offered,cap,take,split,rounding_units,
//!   remaining_after,took_part}],result,provisional,agreement,journal?,
//!   journal_entry?,as_of}`.
//! - statement: `{period,as_of,journal_entry,rows:[{party,category,amount}],
//!   journal,agreement}`; adjustments: `{adjustments:[{period,party,category,
//!   statement,now,adjustment}],journal,agreement}`; history: `{entries:[{seq,
//!   at,kind,id,summary,source}],journal,agreement}`.
//! - compare: see [`compare`]; a report in a reporting currency: see [`currency`].

pub mod ceilings;
pub mod chart;
pub mod compare;
pub mod currency;
#[cfg(feature = "demo")]
pub mod demo;
pub mod explain;
pub mod export;
pub mod forecast;
pub mod report_view;
pub mod settle;
pub mod text;

use crate::ledger::{
    AdjustmentsResult, AmendResult, Changes, HistoryResult, Impact, InitResult, RecordResult, StatementResult,
    VerifyResult, VoidResult,
};
use crate::query::{ExplainResult, ReportResult};
use crate::run::{JournalInfo, Provenance, Run, party_name};
use costshare_core::agreement::Agreement;
use costshare_core::money::{format_grouped, format_minor, write_minor};
use costshare_core::report::{Dim, Row};
use costshare_store::ledger::DerivedStatus;
use explain::RowOrigin;
use serde_json::{Value, json};
use text::{Align, Table, csv_record};

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// Pure data as SPEC section 7 says: a header and rows, no footer.
    Csv,
    /// JSON, amounts as exact decimal strings.
    Json,
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `part / whole` as a percentage with one decimal, half to even (display only).
pub fn percent_of(part: i128, whole: i128) -> String {
    if whole == 0 {
        return String::new();
    }
    let n = part * 1000;
    let q = costshare_core::num::rhe_u128(n.unsigned_abs(), whole.unsigned_abs()) as i128;
    let q = if (n < 0) != (whole < 0) { -q } else { q };
    format!("{}{}.{}%", if q < 0 { "-" } else { "" }, q.abs() / 10, q.abs() % 10)
}

/// The agreement and journal, for JSON.
fn provenance_json(p: &Provenance) -> Value {
    let mut v = match p.agreements.last() {
        Some(m) => json!({"agreement": {"id": m.id, "sha256": m.sha256}}),
        None => json!({}),
    };
    if p.agreements.len() > 1 {
        v["agreement_versions"] = json!(
            p.agreements
                .iter()
                .map(|a| json!({"id": a.id, "sha256": a.sha256}))
                .collect::<Vec<_>>()
        );
    }
    if let Some(j) = &p.journal {
        v["journal"] = journal_json(j);
    }
    v
}

fn journal_json(j: &JournalInfo) -> Value {
    json!({"entries": j.entries, "head": j.head})
}

fn journal_line(j: &JournalInfo) -> String {
    format!("journal: {} entries, head {}\n", j.entries, j.head)
}

/// The lines that end a table: provisional lines, agreements, journal.
fn footer(p: &Provenance) -> String {
    let prov = p.provisional;
    let mut s = String::new();
    if prov > 0 {
        s.push_str(&format!(
            "provisional: {prov} line{} in pro-rata periods not ended by {} may still change\n",
            plural(prov),
            p.as_of
        ));
    }
    for a in &p.agreements {
        s.push_str(&format!("agreement: {} sha256 {}\n", a.id, a.sha256));
    }
    if let Some(j) = &p.journal {
        s.push_str(&journal_line(j));
    }
    s
}

/// A report (see [`report_view`]).
pub fn report(r: &ReportResult, format: Format) -> String {
    report_view::report(r, format)
}

/// Report rows as CSV, JSON or a table.
pub fn rows(a: &Agreement, p: &Provenance, rows: &[Row], dims: &[Dim], format: Format) -> String {
    let dec = a.currency.decimals();
    let total: i128 = rows.iter().map(|r| r.amount as i128).sum();
    match format {
        Format::Csv => {
            let mut out = String::new();
            let mut hdr: Vec<&str> = dims.iter().map(|d| d.name()).collect();
            hdr.push("amount");
            csv_record(&mut out, &hdr);
            for row in rows {
                let mut f: Vec<&str> = row.values.iter().map(String::as_str).collect();
                let amt = format_minor(row.amount as i128, dec);
                f.push(&amt);
                csv_record(&mut out, &f);
            }
            out
        }
        Format::Json => {
            let items: Vec<Value> = rows
                .iter()
                .map(|row| {
                    let mut m = serde_json::Map::new();
                    for (d, v) in dims.iter().zip(&row.values) {
                        m.insert(d.name().to_string(), json!(v));
                    }
                    m.insert("amount".into(), json!(format_minor(row.amount as i128, dec)));
                    Value::Object(m)
                })
                .collect();
            let mut v = provenance_json(p);
            v["currency"] = json!(a.currency.code());
            v["as_of"] = json!(p.as_of.to_string());
            v["by"] = json!(dims.iter().map(|d| d.name()).collect::<Vec<_>>());
            v["rows"] = json!(items);
            v["total"] = json!(format_minor(total, dec));
            v["provisional_lines"] = json!(p.provisional);
            pretty(&v)
        }
        Format::Table => {
            let mut hdr: Vec<&str> = dims.iter().map(|d| d.name()).collect();
            hdr.push("amount");
            hdr.push("share");
            let mut align = vec![Align::Left; dims.len()];
            align.push(Align::Right);
            align.push(Align::Right);
            let mut t = Table::new(&hdr, &align);
            for row in rows {
                let mut cells = row.values.clone();
                if let Some(i) = dims.iter().position(|d| *d == Dim::Site)
                    && cells[i].is_empty()
                {
                    cells[i] = "(no site)".into();
                }
                cells.push(format_grouped(row.amount as i128, dec));
                cells.push(percent_of(row.amount as i128, total));
                t.push(cells);
            }
            t.rule();
            let mut cells = vec![String::new(); dims.len()];
            cells[0] = "total".into();
            cells.push(format_grouped(total, dec));
            cells.push(if total == 0 { String::new() } else { "100.0%".into() });
            t.push(cells);
            let mut out = format!(
                "{} — {} lines, in {}, by {}, as of {}\n\n",
                a.title,
                p.lines,
                a.currency.code(),
                dims.iter().map(|d| d.name()).collect::<Vec<_>>().join(", "),
                p.as_of
            );
            out.push_str(&t.render());
            out.push('\n');
            out.push_str(&footer(p));
            out
        }
    }
}

/// Every line's parts.
pub fn allocation(r: &Run, format: Format) -> String {
    let a = &r.main().la.agreement;
    let dec = a.currency.decimals();
    let w = r.main().alloc.width();
    match format {
        Format::Csv => {
            let mut out = String::with_capacity(r.line_count() * 32 + 16);
            out.push_str("id,party,amount\n");
            let mut amt = String::new();
            for part in &r.parts {
                let pa = &part.la.agreement;
                for &i in &part.alloc.order {
                    let row = part.alloc.row(i as usize);
                    for (p, &v) in row.iter().enumerate() {
                        if v != 0 {
                            amt.clear();
                            write_minor(&mut amt, v as i128, dec);
                            csv_record(
                                &mut out,
                                &[
                                    part.costs.lines[i as usize].id.as_str(),
                                    party_name(pa, p),
                                    amt.as_str(),
                                ],
                            );
                        }
                    }
                }
            }
            out
        }
        Format::Json => {
            let mut items = Vec::with_capacity(r.line_count());
            for part in &r.parts {
                let pa = &part.la.agreement;
                for &i in &part.alloc.order {
                    let l = &part.costs.lines[i as usize];
                    let row = part.alloc.row(i as usize);
                    let mut parts = serde_json::Map::new();
                    for (p, &v) in row.iter().enumerate() {
                        if v != 0 {
                            parts.insert(party_name(pa, p).to_string(), json!(format_minor(v as i128, dec)));
                        }
                    }
                    items.push(json!({
                        "id": l.id,
                        "date": l.date.to_string(),
                        "category": pa.categories[l.category].id,
                        "site": l.site,
                        "amount": format_minor(l.amount as i128, dec),
                        "allocation": parts,
                        "provisional": part.alloc.provisional[i as usize],
                    }));
                }
            }
            let totals = r.party_totals();
            let mut v = provenance_json(&r.provenance());
            v["currency"] = json!(a.currency.code());
            v["as_of"] = json!(r.as_of.to_string());
            v["lines"] = json!(items);
            v["totals"] = Value::Object(
                totals
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v != 0)
                    .map(|(p, v)| (party_name(a, p).to_string(), Value::String(format_minor(*v, dec))))
                    .collect(),
            );
            pretty(&v)
        }
        Format::Table => {
            let mut headers: Vec<String> = vec!["id".into(), "date".into(), "category".into(), "amount".into()];
            let mut align = vec![Align::Left, Align::Left, Align::Left, Align::Right];
            let totals = r.party_totals();
            let show_unalloc = totals[w - 1] != 0;
            for p in 0..w {
                if p < a.parties.len() || show_unalloc {
                    headers.push(party_name(a, p).to_string());
                    align.push(Align::Right);
                }
            }
            let hdr: Vec<&str> = headers.iter().map(String::as_str).collect();
            let mut t = Table::new(&hdr, &align);
            let mut grand: i128 = 0;
            for part in &r.parts {
                for &i in &part.alloc.order {
                    let l = &part.costs.lines[i as usize];
                    let row = part.alloc.row(i as usize);
                    let mut cells = vec![
                        format!("{}{}", l.id, if part.alloc.provisional[i as usize] { " *" } else { "" }),
                        l.date.to_string(),
                        part.la.agreement.categories[l.category].id.clone(),
                        format_grouped(l.amount as i128, dec),
                    ];
                    grand += l.amount as i128;
                    for (p, &v) in row.iter().enumerate() {
                        if p < a.parties.len() || show_unalloc {
                            cells.push(format_grouped(v as i128, dec));
                        }
                    }
                    t.push(cells);
                }
            }
            t.rule();
            let mut cells = vec![
                format!("total ({} lines)", r.line_count()),
                String::new(),
                String::new(),
                format_grouped(grand, dec),
            ];
            for (p, v) in totals.iter().enumerate() {
                if p < a.parties.len() || show_unalloc {
                    cells.push(format_grouped(*v, dec));
                }
            }
            t.push(cells);
            let mut out = format!(
                "{} — allocation in {}, as of {}\n\n",
                a.title,
                a.currency.code(),
                r.as_of
            );
            out.push_str(&t.render());
            out.push('\n');
            if r.provisional_count() > 0 {
                out.push_str("* provisional: in a pro-rata period not yet ended\n");
            }
            out.push_str(&footer(&r.provenance()));
            out
        }
    }
}

/// One line, layer by layer. Explanations have no CSV form: callers refuse
/// it (`UsageError::ExplainCsv`); given `Csv`, this renders JSON.
pub fn explanation(r: &ExplainResult, format: Format) -> String {
    let a = &r.agreement.agreement;
    let ex = &r.explanation;
    match format {
        Format::Json | Format::Csv => {
            let mut v = explain::json(a, ex);
            if let Value::Object(m) = &mut v {
                m.insert("agreement".into(), json!({"id": a.id, "sha256": r.agreement.sha256}));
                if let Some(j) = &r.journal {
                    m.insert("journal".into(), journal_json(j));
                    m.insert("journal_entry".into(), json!(ex.line.row));
                }
                m.insert("as_of".into(), json!(r.as_of.to_string()));
            }
            pretty(&v)
        }
        Format::Table => {
            let origin = if r.journal.is_some() {
                RowOrigin::Journal
            } else {
                RowOrigin::File
            };
            let mut out = explain::render_text(a, ex, origin);
            out.push('\n');
            out.push_str(&format!("agreement: {} sha256 {}\n", a.id, r.agreement.sha256));
            if let Some(j) = &r.journal {
                out.push_str(&journal_line(j));
            }
            out
        }
    }
}

/// `check`'s one line about an agreement file.
pub fn check(path: &str, la: &crate::input::LoadedAgreement) -> String {
    let a = &la.agreement;
    let layers: usize = a.categories.iter().map(|c| c.layers.len()).sum();
    format!(
        "ok: {} `{}`: {} parties, {} categories, {} layers, {} keys; {} {} to {} ({}–{}){}\n",
        path,
        a.id,
        a.parties.len(),
        a.categories.len(),
        layers,
        a.keys.len(),
        a.currency.code(),
        a.start,
        a.end,
        a.fy_label(0),
        a.fy_label(a.fy_count - 1),
        if la.warnings.is_empty() { "" } else { "; with warnings" }
    )
}

/// `check --agreement`'s one line about a costs file.
pub fn costs_check(c: &crate::query::CostsCheck) -> String {
    format!(
        "ok: {}: {} line{} valid against `{}` (sha256 {}); {} repeated row{} dropped, {} replaced\n",
        c.file,
        c.lines,
        plural(c.lines),
        c.agreement.agreement.id,
        c.agreement.sha256,
        c.duplicates,
        plural(c.duplicates),
        c.replaced
    )
}

/// What `init` says.
pub fn init(r: &InitResult) -> String {
    format!(
        "created ledger {}: agreement `{}` (sha256 {}), {} rates\n{}",
        r.ledger,
        r.agreement.id,
        r.agreement.sha256,
        r.rates,
        journal_line(&r.journal)
    )
}

/// What `record` says: the outcome, the impact when asked for, the journal.
pub fn record(r: &RecordResult) -> String {
    let out = &r.outcome;
    let mut s = format!(
        "recorded {} line{} from {}; {} already there",
        out.recorded,
        if out.recorded == 1 { "" } else { "s" },
        r.file,
        out.already
    );
    if out.voided > 0 {
        s.push_str(&format!("; {} voided by `replaces`", out.voided));
    }
    if out.dropped > 0 {
        s.push_str(&format!("; {} superseded within the file", out.dropped));
    }
    if out.rates_added > 0 {
        s.push_str(&format!("; {} rates added", out.rates_added));
    }
    s.push('\n');
    match &r.impact {
        None => {}
        Some(Impact::Derived {
            new_lines,
            reallocated,
            elapsed,
            changes,
        }) => {
            s.push_str(&format!(
                "impact: {} new line{} taken in from the derived state: {} line{} re-allocated in {:.2} ms (the whole command so far)\n",
                new_lines,
                if *new_lines == 1 { "" } else { "s" },
                reallocated,
                plural(*reallocated),
                elapsed.as_secs_f64() * 1000.0
            ));
            s.push_str(&changed_text(changes));
        }
        Some(Impact::Incremental {
            new_lines,
            groups,
            line_layers,
            elapsed,
            changes,
        }) => {
            s.push_str(&format!(
                "impact: {} new line{} taken in incrementally: {} period group{} re-allocated ({} line-layers) in {:.2} ms\n",
                new_lines,
                plural(*new_lines),
                groups,
                plural(*groups),
                line_layers,
                elapsed.as_secs_f64() * 1000.0
            ));
            s.push_str(&changed_text(changes));
        }
        Some(Impact::Full {
            new_lines,
            voided_lines,
            changes,
        }) => {
            s.push_str(&format!(
                "impact: {} new and {} voided line{} (fully re-allocated)\n",
                new_lines,
                voided_lines,
                plural(*voided_lines)
            ));
            s.push_str(&changed_text(changes));
        }
    }
    s.push_str(&journal_line(&r.journal));
    s
}

/// Earlier lines whose allocation changed: the net move per party, then the
/// five largest changes.
fn changed_text(c: &Changes) -> String {
    let (changed, parties, dec) = (&c.changed, &c.parties, c.decimals);
    let mut s = String::new();
    if changed.is_empty() {
        s.push_str("impact: no earlier line's allocation changed\n");
        return s;
    }
    let mut total = vec![0i128; parties.len()];
    for (_, d) in changed {
        for (t, v) in total.iter_mut().zip(d) {
            *t += *v as i128;
        }
    }
    let moves: Vec<String> = parties
        .iter()
        .zip(&total)
        .filter(|(_, v)| **v != 0)
        .map(|(p, v)| format!("{p} {}{}", if *v > 0 { "+" } else { "" }, format_grouped(*v, dec)))
        .collect();
    s.push_str(&format!(
        "impact: {} earlier line{} changed: {}\n",
        changed.len(),
        plural(changed.len()),
        moves.join(", ")
    ));
    // the five largest moves, ties by id: a pro-rata month moves thousands
    // of lines, so pick them out and sort those five (no string per compare)
    let largest = |d: &[i64]| d.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
    let order = |a: &&(String, Vec<i64>), b: &&(String, Vec<i64>)| {
        largest(&b.1).cmp(&largest(&a.1)).then_with(|| a.0.cmp(&b.0))
    };
    let mut biggest: Vec<&(String, Vec<i64>)> = changed.iter().collect();
    if biggest.len() > 5 {
        biggest.select_nth_unstable_by(4, order);
        biggest.truncate(5);
    }
    biggest.sort_unstable_by(order);
    for (id, d) in biggest {
        let parts: Vec<String> = parties
            .iter()
            .zip(d)
            .filter(|(_, v)| **v != 0)
            .map(|(p, v)| {
                format!(
                    "{p} {}{}",
                    if *v > 0 { "+" } else { "" },
                    format_grouped(*v as i128, dec)
                )
            })
            .collect();
        s.push_str(&format!("  {id}: {}\n", parts.join(", ")));
    }
    s
}

/// What `void` says.
pub fn void(r: &VoidResult) -> String {
    format!(
        "voided {}: {}\n{}",
        r.id,
        costshare_core::costs::shown_text(&r.reason),
        journal_line(&r.journal)
    )
}

/// What `amend` says.
pub fn amend(r: &AmendResult) -> String {
    format!(
        "agreement version {} `{}` (sha256 {}) in force for lines dated on or after {}\n{}",
        r.version,
        r.agreement.id,
        r.agreement.sha256,
        r.effective,
        journal_line(&r.journal)
    )
}

/// A closed year's statement.
pub fn statement(r: &StatementResult, format: Format) -> String {
    let ag = &r.agreement;
    let dec = ag.currency.decimals();
    let period = r.period.as_str();
    match format {
        Format::Csv => {
            let mut out = String::new();
            csv_record(&mut out, &["period", "party", "category", "amount"]);
            for row in &r.rows {
                csv_record(
                    &mut out,
                    &[
                        period,
                        &row.party,
                        &row.category,
                        &format_minor(row.amount_minor as i128, dec),
                    ],
                );
            }
            out
        }
        Format::Json => pretty(&json!({
            "period": period, "as_of": r.as_of.to_string(), "journal_entry": r.seq,
            "head_before": r.head_before,
            "forced": r.forced.is_some(),
            "forced_because": r.forced.as_ref().map(|w| w.to_string()),
            "rows": r.rows.iter().map(|row| json!({"party": row.party, "category": row.category, "amount": format_minor(row.amount_minor as i128, dec)})).collect::<Vec<_>>(),
            "journal": journal_json(&r.journal),
            "agreement": {"id": r.agreement_ref.id, "sha256": r.agreement_ref.sha256},
        })),
        Format::Table => {
            let mut t = Table::new(
                &["party", "category", "amount"],
                &[Align::Left, Align::Left, Align::Right],
            );
            for row in &r.rows {
                t.push(vec![
                    row.party.clone(),
                    row.category.clone(),
                    format_grouped(row.amount_minor as i128, dec),
                ]);
            }
            format!(
                "Statement for {period} as of {} (journal entry {}), in {}\nissued after journal head {}\n{}\n{}\nlater corrections show in `costshare adjustments`\nagreement: {} sha256 {}\n{}",
                r.as_of,
                r.seq,
                ag.currency.code(),
                r.head_before,
                match &r.forced {
                    Some(why) => format!("FORCED with --force: as of {}, {why}\n", r.as_of),
                    None => String::new(),
                },
                t.render(),
                r.agreement_ref.id,
                r.agreement_ref.sha256,
                journal_line(&r.journal)
            )
        }
    }
}

/// Differences between closed statements and the allocation now.
pub fn adjustments(r: &AdjustmentsResult, format: Format) -> String {
    let ag = &r.agreement;
    let dec = ag.currency.decimals();
    let m = |v: i64| format_minor(v as i128, dec);
    let adj = &r.adjustments;
    match format {
        Format::Csv => {
            let mut out = String::new();
            csv_record(
                &mut out,
                &["period", "party", "category", "statement", "now", "adjustment"],
            );
            for a in adj {
                csv_record(
                    &mut out,
                    &[
                        &a.period,
                        &a.party,
                        &a.category,
                        &m(a.statement),
                        &m(a.now),
                        &m(a.now - a.statement),
                    ],
                );
            }
            out
        }
        Format::Json => pretty(&json!({
            "adjustments": adj.iter().map(|a| json!({"period": a.period, "party": a.party, "category": a.category,
                "statement": m(a.statement), "now": m(a.now), "adjustment": m(a.now - a.statement)})).collect::<Vec<_>>(),
            "journal": journal_json(&r.journal),
            "agreement": {"id": r.agreement_ref.id, "sha256": r.agreement_ref.sha256},
        })),
        Format::Table => {
            let mut out = String::new();
            if r.closed.is_empty() {
                out.push_str("no fiscal year has been closed: nothing to adjust\n");
            } else if adj.is_empty() {
                out.push_str(&format!(
                    "no adjustments: the closed statements ({}) match the allocation now\n",
                    r.closed.join(", ")
                ));
            } else {
                let mut t = Table::new(
                    &["period", "party", "category", "statement", "now", "adjustment"],
                    &[
                        Align::Left,
                        Align::Left,
                        Align::Left,
                        Align::Right,
                        Align::Right,
                        Align::Right,
                    ],
                );
                for a in adj {
                    let d = a.now as i128 - a.statement as i128;
                    t.push(vec![
                        a.period.clone(),
                        a.party.clone(),
                        a.category.clone(),
                        format_grouped(a.statement as i128, dec),
                        format_grouped(a.now as i128, dec),
                        format!("{}{}", if d > 0 { "+" } else { "" }, format_grouped(d, dec)),
                    ]);
                }
                out.push_str(&format!(
                    "Adjustments to settle in the current period, in {}\n\n",
                    ag.currency.code()
                ));
                out.push_str(&t.render());
                out.push('\n');
            }
            out.push_str(&format!(
                "agreement: {} sha256 {}\n{}",
                r.agreement_ref.id,
                r.agreement_ref.sha256,
                journal_line(&r.journal)
            ));
            out
        }
    }
}

/// The journal's story.
pub fn history(r: &HistoryResult, format: Format) -> String {
    match format {
        Format::Csv => {
            let mut out = String::new();
            // `who` last: scripts that read the columns by position keep working
            csv_record(&mut out, &["seq", "at", "kind", "id", "summary", "source", "who"]);
            for e in &r.entries {
                csv_record(
                    &mut out,
                    &[
                        &e.seq.to_string(),
                        e.at.as_str(),
                        e.kind,
                        e.id.as_deref().unwrap_or(""),
                        &e.summary,
                        &e.source,
                        e.who.as_str(),
                    ],
                );
            }
            out
        }
        Format::Json => pretty(&json!({
            "entries": r.entries.iter().map(|e| json!({"seq": e.seq, "at": e.at, "who": e.who, "kind": e.kind, "id": e.id, "summary": e.summary, "source": e.source})).collect::<Vec<_>>(),
            "journal": journal_json(&r.journal),
            "agreement": {"id": r.agreement_ref.id, "sha256": r.agreement_ref.sha256},
        })),
        Format::Table => {
            let mut t = Table::new(
                &["seq", "at", "who", "kind", "what"],
                &[Align::Right, Align::Left, Align::Left, Align::Left, Align::Left],
            );
            for e in &r.entries {
                let mut what = e.summary.clone();
                if !e.source.is_empty() && r.id.is_some() {
                    what.push_str(&format!(" — from {}", e.source));
                }
                t.push(vec![
                    e.seq.to_string(),
                    e.at.clone(),
                    e.who.clone(),
                    e.kind.to_string(),
                    what,
                ]);
            }
            format!(
                "{}\nagreement: {} sha256 {}\n{}",
                t.render(),
                r.agreement_ref.id,
                r.agreement_ref.sha256,
                journal_line(&r.journal)
            )
        }
    }
}

/// What `verify` says of a journal that verified.
pub fn verify(r: &VerifyResult) -> String {
    format!(
        "ok: {} journal entries verified; {}\nhead {}\nderived state: {}\n",
        r.entries,
        if r.deep {
            "every closed statement re-derived"
        } else {
            "statements not re-derived (verify --deep re-derives them)"
        },
        r.head,
        match &r.derived {
            DerivedStatus::Consistent => "matches the journal".to_string(),
            DerivedStatus::Sealed => "sealed under the head, every blob the one its meta names (not compared with a rebuild: verify --deep compares it)".to_string(),
            DerivedStatus::Refreshed => "rebuilt from the journal (it was missing, or older than the journal's head)".to_string(),
            DerivedStatus::Repaired { key } =>
                format!("REPAIRED: blob `{key}` was damaged; the derived state was rebuilt from the journal"),
            DerivedStatus::Damaged { key } => format!("DAMAGED: blob `{key}` (run verify --repair)"),
            DerivedStatus::NotKept => "not kept (the agreement was amended; commands replay the journal)".to_string(),
            DerivedStatus::NotChecked => "not checked (a write landed while verify ran; run verify again)".to_string(),
        }
    )
}
