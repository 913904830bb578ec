//! The ledger commands: init, record, void, amend, close, adjustments,
//! history, verify; and reading a ledger for allocate, report and explain.

use crate::commands::{
    JournalInfo, LoadedAgreement, Meta, Run, RunPart, load_agreement, parse_as_of, read, render_report, render_rows,
};
use crate::output::{Align, Table, csv_record};
use crate::{CliError, Format};
use costshare_core::calendar::Date;
use costshare_core::costs::Costs;
use costshare_core::money::{format_grouped, format_minor};
use costshare_core::report::Dim;
use costshare_store::derived;
use costshare_store::ledger::{self, DerivedStatus, Input, Ledger, LedgerError, Verified, now_utc};
use costshare_store::state::{self, State};
use serde_json::json;
use std::io::IsTerminal;
use std::path::Path;

fn err(e: LedgerError) -> CliError {
    match e {
        LedgerError::Rows { .. } => CliError::Input(format!("{e}\n").replace('\n', "\n").trim_end().to_string() + "\n"),
        other => CliError::Input(format!("costshare: error: {other}")),
    }
}

fn open(target: &str) -> Result<(Ledger, State), CliError> {
    let mut l = Ledger::open(target).map_err(err)?;
    let st = l.state().map_err(err)?;
    Ok((l, st))
}

fn tail(st: &State) -> String {
    format!("journal: {} entries, head {}\n", st.entries, st.head)
}

fn tail_of(l: &mut Ledger) -> Result<String, CliError> {
    let (n, h) = l.last_head().map_err(err)?;
    Ok(format!("journal: {n} entries, head {h}\n"))
}

/// Allocate everything recorded in a ledger, for allocate/report/explain.
pub fn run_ledger(target: &str, as_of: Date) -> Result<Run, CliError> {
    let (_, st) = open(target)?;
    run_state(&st, as_of)
}

/// A report from a ledger: from its derived state when that reflects the
/// journal's head (no replay), else by replaying the journal, after which the
/// derived state is written for the next command.
pub fn report(target: &str, dims: &[Dim], as_of: Date, format: Format) -> Result<String, CliError> {
    let mut l = Ledger::open(target).map_err(err)?;
    if let Some((meta, agreement, sha256)) = l.derived().map_err(err)? {
        let rows = derived::report(&agreement, &meta, dims).map_err(|e| crate::commands::too_large(&e.group))?;
        let la = LoadedAgreement {
            agreement,
            sha256,
            warnings: String::new(),
        };
        let journal = JournalInfo {
            entries: meta.seq,
            head: meta.head.clone(),
        };
        let info = Meta {
            agreements: vec![&la],
            journal: Some(&journal),
            as_of,
            lines: meta.lines as usize,
            provisional: meta.provisional(as_of) as usize,
        };
        return Ok(render_rows(&info, &rows, dims, format));
    }
    let st = l.state().map_err(err)?;
    let r = run_state(&st, as_of)?;
    let out = render_report(&r, dims, format)?;
    // a cache: a ledger this process may not write to is still read
    if let [part] = r.parts.as_slice() {
        let _ = l.write_derived_with(&st, &part.costs.lines, &part.alloc);
    }
    Ok(out)
}

fn run_state(st: &State, as_of: Date) -> Result<Run, CliError> {
    let parts = state::allocate(st, as_of).map_err(|e| err(e.into()))?;
    let parts = parts
        .into_iter()
        .map(|p| {
            let v = &st.versions[p.version];
            RunPart {
                la: LoadedAgreement {
                    agreement: v.agreement.clone(),
                    sha256: v.sha256.clone(),
                    warnings: String::new(),
                },
                costs: Costs {
                    lines: p.lines,
                    duplicates: 0,
                    replaced: 0,
                },
                alloc: p.alloc,
            }
        })
        .collect();
    Ok(Run {
        parts,
        as_of,
        journal: Some(JournalInfo {
            entries: st.entries,
            head: st.head.clone(),
        }),
    })
}

fn progress(msg: &str) {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K{msg}");
    }
}

fn progress_done() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
}

pub fn init(target: &str, agreement: &Path, rates: Option<&Path>) -> Result<String, CliError> {
    // check the agreement with full diagnostics first
    let la = load_agreement(agreement)?;
    let bytes = read(agreement, "agreement")?;
    let rate_bytes = match rates {
        Some(p) => Some(read(p, "rates file")?),
        None => None,
    };
    let name = agreement.display().to_string();
    let rname = rates.map(|p| p.display().to_string()).unwrap_or_default();
    let rin = rate_bytes.as_ref().map(|b| Input { name: &rname, bytes: b });
    let (_, st) = Ledger::init(
        target,
        Input {
            name: &name,
            bytes: &bytes,
        },
        rin,
        &now_utc(),
    )
    .map_err(err)?;
    Ok(format!(
        "created ledger {target}: agreement `{}` (sha256 {}), {} rates\n{}",
        la.agreement.id,
        la.sha256,
        st.rates.len(),
        tail(&st)
    ))
}

pub fn record(target: &str, costs: &Path, rates: Option<&Path>, impact: bool) -> Result<String, CliError> {
    let bytes = read(costs, "costs file")?;
    let rate_bytes = match rates {
        Some(p) => Some(read(p, "rates file")?),
        None => None,
    };
    let name = costs.display().to_string();
    let rname = rates.map(|p| p.display().to_string()).unwrap_or_default();
    let rin = rate_bytes.as_ref().map(|b| Input { name: &rname, bytes: b });
    let mut l = Ledger::open(target).map_err(err)?;
    if rin.is_none() {
        let t = std::time::Instant::now();
        let fast = l
            .record_fast(
                Input {
                    name: &name,
                    bytes: &bytes,
                },
                &now_utc(),
            )
            .map_err(err)?;
        if let Some((out, imp)) = fast {
            let mut s = recorded_text(&name, &out);
            if impact && out.recorded > 0 {
                s.push_str(&format!(
                    "impact: {} new line{} taken in from the derived state: {} line{} re-allocated in {:.2} ms (the whole command so far)\n",
                    out.recorded,
                    if out.recorded == 1 { "" } else { "s" },
                    imp.reallocated,
                    if imp.reallocated == 1 { "" } else { "s" },
                    t.elapsed().as_secs_f64() * 1000.0
                ));
                s.push_str(&changed_text(&imp.changed, &imp.parties, imp.decimals));
            }
            s.push_str(&tail_of(&mut l)?);
            return Ok(s);
        }
    }
    let tty = std::io::stderr().is_terminal();
    let mut bar = |stage: &str, done: u64, total: u64| {
        if !tty {
            return;
        }
        if total > 0 {
            let width = 30u64;
            let filled = (done * width / total.max(1)) as usize;
            progress(&format!(
                "{name}: {stage} [{}{}] {done}/{total}",
                "#".repeat(filled),
                "-".repeat(width as usize - filled)
            ));
        } else {
            progress(&format!("{name}: {stage}…"));
        }
    };
    let out = l.record_with_progress(
        Input {
            name: &name,
            bytes: &bytes,
        },
        rin,
        &now_utc(),
        &mut bar,
    );
    progress_done();
    let out = out.map_err(err)?;
    let mut s = recorded_text(&name, &out);
    if impact && (out.recorded > 0 || out.voided > 0) {
        s.push_str(&impact_text(&mut l)?);
    }
    s.push_str(&tail_of(&mut l)?);
    Ok(s)
}

/// What `record` says it did.
fn recorded_text(name: &str, out: &costshare_store::RecordOutcome) -> String {
    let mut s = format!(
        "recorded {} line{} from {name}; {} already there",
        out.recorded,
        if out.recorded == 1 { "" } else { "s" },
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
    s
}

pub fn void(target: &str, id: &str, reason: &str) -> Result<String, CliError> {
    let mut l = Ledger::open(target).map_err(err)?;
    l.void(id, reason, &now_utc()).map_err(err)?;
    Ok(format!("voided {id}: {reason}\n{}", tail_of(&mut l)?))
}

pub fn amend(target: &str, agreement: &Path, effective: &str) -> Result<String, CliError> {
    let eff = Date::parse(effective)
        .ok_or_else(|| CliError::Usage(format!("--effective `{effective}` is not a date (YYYY-MM-DD)")))?;
    let la = load_agreement(agreement)?;
    let bytes = read(agreement, "agreement")?;
    let name = agreement.display().to_string();
    let mut l = Ledger::open(target).map_err(err)?;
    let v = l
        .amend(
            Input {
                name: &name,
                bytes: &bytes,
            },
            eff,
            &now_utc(),
        )
        .map_err(err)?;
    let st = l.state().map_err(err)?;
    Ok(format!(
        "agreement version {v} `{}` (sha256 {}) in force for lines dated on or after {eff}\n{}",
        la.agreement.id,
        la.sha256,
        tail(&st)
    ))
}

pub fn close(target: &str, period: &str, as_of: Option<&str>, format: Format) -> Result<String, CliError> {
    let as_of = parse_as_of(as_of)?;
    let mut l = Ledger::open(target).map_err(err)?;
    let rows = l.close(period, as_of, &now_utc()).map_err(err)?;
    let st = l.state().map_err(err)?;
    let ag = &st.latest().agreement;
    let dec = ag.currency.decimals();
    let seq = st.statements.last().map(|s| s.seq).unwrap_or(0);
    match format {
        Format::Csv => {
            let mut out = String::new();
            csv_record(&mut out, &["period", "party", "category", "amount"]);
            for r in &rows {
                csv_record(
                    &mut out,
                    &[
                        period,
                        &r.party,
                        &r.category,
                        &format_minor(r.amount_minor as i128, dec),
                    ],
                );
            }
            Ok(out)
        }
        Format::Json => {
            let v = json!({
                "period": period, "as_of": as_of.to_string(), "journal_entry": seq,
                "rows": rows.iter().map(|r| json!({"party": r.party, "category": r.category, "amount": format_minor(r.amount_minor as i128, dec)})).collect::<Vec<_>>(),
                "journal": {"entries": st.entries, "head": st.head},
                "agreement": {"id": ag.id, "sha256": st.latest().sha256},
            });
            Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
        }
        Format::Table => {
            let mut t = Table::new(
                &["party", "category", "amount"],
                &[Align::Left, Align::Left, Align::Right],
            );
            for r in &rows {
                t.push(vec![
                    r.party.clone(),
                    r.category.clone(),
                    format_grouped(r.amount_minor as i128, dec),
                ]);
            }
            Ok(format!(
                "Statement for {period} as of {as_of} (journal entry {seq}), in {}\n\n{}\nlater corrections show in `costshare adjustments`\nagreement: {} sha256 {}\n{}",
                ag.currency.code(),
                t.render(),
                ag.id,
                st.latest().sha256,
                tail(&st)
            ))
        }
    }
}

pub fn adjustments(target: &str, as_of: Option<&str>, format: Format) -> Result<String, CliError> {
    let as_of = parse_as_of(as_of)?;
    let (_, st) = open(target)?;
    let adj = ledger::adjustments(&st, as_of).map_err(err)?;
    let ag = &st.latest().agreement;
    let dec = ag.currency.decimals();
    let m = |v: i64| format_minor(v as i128, dec);
    match format {
        Format::Csv => {
            let mut out = String::new();
            csv_record(
                &mut out,
                &["period", "party", "category", "statement", "now", "adjustment"],
            );
            for a in &adj {
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
            Ok(out)
        }
        Format::Json => {
            let v = json!({
                "adjustments": adj.iter().map(|a| json!({"period": a.period, "party": a.party, "category": a.category,
                    "statement": m(a.statement), "now": m(a.now), "adjustment": m(a.now - a.statement)})).collect::<Vec<_>>(),
                "journal": {"entries": st.entries, "head": st.head},
                "agreement": {"id": ag.id, "sha256": st.latest().sha256},
            });
            Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
        }
        Format::Table => {
            let mut out = String::new();
            if st.statements.is_empty() {
                out.push_str("no fiscal year has been closed: nothing to adjust\n");
            } else if adj.is_empty() {
                out.push_str(&format!(
                    "no adjustments: the closed statements ({}) match the allocation now\n",
                    st.statements
                        .iter()
                        .map(|s| s.period.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
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
                for a in &adj {
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
                ag.id,
                st.latest().sha256,
                tail(&st)
            ));
            Ok(out)
        }
    }
}

pub fn history(target: &str, id: Option<&str>, format: Format) -> Result<String, CliError> {
    let (_, st) = open(target)?;
    // the batch each line came from, for "from which file"
    let batch_of = |seq: u64| -> Option<&state::Batch> { st.batches.iter().rev().find(|b| b.seq < seq) };
    let all = st.history();
    let entries: Vec<&state::LogEntry> = all
        .iter()
        .filter(|e| match id {
            None => true,
            Some(want) => e.id.as_deref() == Some(want),
        })
        .collect();
    if let Some(want) = id
        && entries.is_empty()
    {
        return Err(CliError::Input(format!(
            "costshare: error: no entry about line `{want}` in the ledger `{target}`"
        )));
    }
    let source = |e: &state::LogEntry| -> String {
        match (e.kind, batch_of(e.seq)) {
            ("line", Some(b)) => format!("{} (sha256 {})", b.file, b.sha256),
            _ => String::new(),
        }
    };
    match format {
        Format::Csv => {
            let mut out = String::new();
            csv_record(&mut out, &["seq", "at", "kind", "id", "summary", "source"]);
            for e in &entries {
                csv_record(
                    &mut out,
                    &[
                        &e.seq.to_string(),
                        e.at.as_ref(),
                        e.kind,
                        e.id.as_deref().unwrap_or(""),
                        &e.summary,
                        &source(e),
                    ],
                );
            }
            Ok(out)
        }
        Format::Json => {
            let v = json!({
                "entries": entries.iter().map(|e| json!({"seq": e.seq, "at": e.at.to_string(), "kind": e.kind, "id": e.id, "summary": state::summary(&st, e), "source": source(e)})).collect::<Vec<_>>(),
                "journal": {"entries": st.entries, "head": st.head},
                "agreement": {"id": st.latest().agreement.id, "sha256": st.latest().sha256},
            });
            Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
        }
        Format::Table => {
            let mut t = Table::new(
                &["seq", "at", "kind", "what"],
                &[Align::Right, Align::Left, Align::Left, Align::Left],
            );
            for e in &entries {
                let mut what = state::summary(&st, e);
                let src = source(e);
                if !src.is_empty() && id.is_some() {
                    what.push_str(&format!(" — from {src}"));
                }
                t.push(vec![e.seq.to_string(), e.at.to_string(), e.kind.to_string(), what]);
            }
            Ok(format!(
                "{}\nagreement: {} sha256 {}\n{}",
                t.render(),
                st.latest().agreement.id,
                st.latest().sha256,
                tail(&st)
            ))
        }
    }
}

pub fn verify(target: &str) -> Result<String, CliError> {
    let mut l = Ledger::open(target).map_err(err)?;
    match l.verify().map_err(err)? {
        Verified::Ok { entries, head, derived } => Ok(format!(
            "ok: {entries} journal entries verified; every closed statement re-derived\nhead {head}\nderived state: {}\n",
            match derived {
                DerivedStatus::Consistent => "matches the journal",
                DerivedStatus::Refreshed => "rebuilt from the journal (it was missing or older than the head)",
                DerivedStatus::Repaired => "REPAIRED: it differed from the journal and was rebuilt from it",
                DerivedStatus::NotKept => "not kept (the agreement was amended; commands replay the journal)",
                DerivedStatus::NotChecked => "not checked (a write landed while verify ran; run verify again)",
            }
        )),
        Verified::Bad { seq, message } => Err(CliError::Input(format!(
            "costshare: verify failed at journal entry {seq}: {message}"
        ))),
    }
}

/// Why a recorded line is not allocated: it was voided (and when, why).
pub fn voided_note(target: &str, id: &str) -> Option<String> {
    let (_, st) = open(target).ok()?;
    let l = &st.lines[*st.by_id.get(id)?];
    let (seq, why) = l.voided.as_ref()?;
    Some(format!(
        "line `{id}` was voided (journal entry {seq}: {why}); `costshare history {target} --id {id}` shows its story"
    ))
}

/// What the last batch changed in earlier lines' allocation.
fn impact_text(l: &mut Ledger) -> Result<String, CliError> {
    let st = l.state().map_err(err)?;
    let Some(batch) = st.batches.last() else {
        return Ok(String::new());
    };
    let as_of = parse_as_of(None)?;
    let imp = state::impact_of_batch(&st, batch.seq, as_of).map_err(|e| err(e.into()))?;
    let dec = st.latest().agreement.currency.decimals();
    let mut s = String::new();
    match &imp.incremental {
        Some((stats, t)) => s.push_str(&format!(
            "impact: {} new line{} taken in incrementally: {} period group{} re-allocated ({} line-layers) in {:.2} ms\n",
            imp.new_lines,
            if imp.new_lines == 1 { "" } else { "s" },
            stats.groups,
            if stats.groups == 1 { "" } else { "s" },
            stats.line_layers,
            t.as_secs_f64() * 1000.0
        )),
        None => s.push_str(&format!(
            "impact: {} new and {} voided line{} (fully re-allocated)\n",
            imp.new_lines,
            imp.voided_lines,
            if imp.voided_lines == 1 { "" } else { "s" }
        )),
    }
    s.push_str(&changed_text(&imp.changed, &imp.parties, dec));
    Ok(s)
}

/// Earlier lines whose allocation changed: the net move per party, then the
/// five largest changes.
fn changed_text(changed: &[(String, Vec<i64>)], parties: &[String], dec: u32) -> String {
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
        if changed.len() == 1 { "" } else { "s" },
        moves.join(", ")
    ));
    let mut biggest: Vec<&(String, Vec<i64>)> = changed.iter().collect();
    biggest.sort_by_key(|(id, d)| {
        (
            std::cmp::Reverse(d.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0)),
            id.clone(),
        )
    });
    for (id, d) in biggest.into_iter().take(5) {
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
