//! The demo's five-year report: who pays by fiscal year and by category,
//! ceiling use, Japan's total against the headline figure.

use super::percent_of;
use super::text::{Align, Table};
use super::{Format, rows};
use crate::demo::DemoResult;
use crate::run::Run;
use costshare_core::money::{format_grouped, format_minor};
use costshare_core::report::Dim;
use serde_json::json;

const DIMS: [Dim; 3] = [Dim::FiscalYear, Dim::Category, Dim::Party];

/// The demo in a format. The report rows cannot overflow (the demo's totals
/// are far below the limit); if they did, the error is returned.
pub fn demo(d: &DemoResult, format: Format) -> Result<String, crate::error::AppError> {
    let r = &d.run;
    match format {
        Format::Csv => {
            let rws = r.report_rows(&DIMS)?;
            Ok(rows(&r.main().la.agreement, &r.provenance(), &rws, &DIMS, Format::Csv))
        }
        Format::Json => {
            let a = &r.parts[0].la.agreement;
            let dec = a.currency.decimals();
            let rws = r.report_rows(&DIMS)?;
            let v = json!({
                "agreement": {"id": a.id, "sha256": r.parts[0].la.sha256},
                "costs": {"lines": r.parts[0].costs.lines.len(), "sha256": d.costs_sha256, "seed": d.seed},
                "as_of": r.as_of.to_string(),
                "rows": rws.iter().map(|row| json!({
                    "fiscal_year": row.values[0], "category": row.values[1], "party": row.values[2],
                    "amount": format_minor(row.amount as i128, dec),
                })).collect::<Vec<_>>(),
                "reconciliation": crate::demo::reconcile(r).map(|rc| json!({
                    "party": rc.party,
                    "generated_total": format_minor(rc.generated_total, dec),
                    "headline_total": format_minor(rc.headline_total, dec),
                    "rows": rc.rows.iter().map(|x| json!({
                        "category": x.category,
                        "generated": format_minor(x.generated, dec),
                        "headline": format_minor(x.headline, dec),
                        "headline_implied": x.implied,
                        "difference": format_minor(x.generated - x.headline, dec),
                        "why": x.why,
                    })).collect::<Vec<_>>(),
                })),
            });
            Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
        }
        Format::Table => {
            let mut prefix = String::new();
            if let Some((dir, lines)) = &d.written {
                prefix = format!(
                    "wrote {}/agreement.toml, costs.csv ({} lines) and rates.csv\n  try: costshare report --agreement {0}/agreement.toml --costs {0}/costs.csv --rates {0}/rates.csv --by party,category\n\n",
                    dir.display(),
                    lines
                );
            }
            Ok(prefix + &table(r, d.seed, &d.costs_sha256))
        }
    }
}

fn table(r: &Run, seed: u64, costs_sha: &str) -> String {
    let a = &r.parts[0].la.agreement;
    let dec = a.currency.decimals();
    let np = a.parties.len();
    let w = r.parts[0].alloc.width();
    let lines = &r.parts[0].costs.lines;
    let mut o = String::new();
    o.push_str(&format!("{}\n", a.title));
    o.push_str(&format!(
        "Term {} to {} ({}–{}); {} generated cost lines (seed {seed}), all amounts in {}.\n\n",
        a.start,
        a.end,
        a.fy_label(0),
        a.fy_label(a.fy_count - 1),
        lines.len(),
        a.currency.code()
    ));

    // by fiscal year and party
    let mut by_fy = vec![vec![0i128; w]; a.fy_count];
    let mut by_cat = vec![vec![0i128; w]; a.categories.len()];
    for (i, l) in lines.iter().enumerate() {
        let fy = a.fy_index(l.date);
        for (p, &v) in r.parts[0].alloc.row(i).iter().enumerate() {
            by_fy[fy][p] += v as i128;
            by_cat[l.category][p] += v as i128;
        }
    }
    let any_unalloc = by_fy.iter().any(|row| row[np] != 0);
    let pivot = |title: &str, labels: Vec<String>, rows: &[Vec<i128>]| -> String {
        let mut hdr: Vec<String> = vec![title.to_string()];
        for p in &a.parties {
            hdr.push(p.id.clone());
        }
        if any_unalloc {
            hdr.push("UNALLOCATED".into());
        }
        hdr.push("total".into());
        hdr.push(format!("{} share", a.parties[0].id));
        let h: Vec<&str> = hdr.iter().map(String::as_str).collect();
        let mut align = vec![Align::Right; h.len()];
        align[0] = Align::Left;
        let mut t = Table::new(&h, &align);
        let mut sum = vec![0i128; w];
        for (label, row) in labels.iter().zip(rows) {
            let total: i128 = row.iter().sum();
            let mut cells = vec![label.clone()];
            for (p, v) in row.iter().enumerate() {
                sum[p] += v;
                if p < np || any_unalloc {
                    cells.push(format_grouped(*v, dec));
                }
            }
            cells.push(format_grouped(total, dec));
            cells.push(percent_of(row[0], total));
            t.push(cells);
        }
        t.rule();
        let total: i128 = sum.iter().sum();
        let mut cells = vec!["total".to_string()];
        for (p, v) in sum.iter().enumerate() {
            if p < np || any_unalloc {
                cells.push(format_grouped(*v, dec));
            }
        }
        cells.push(format_grouped(total, dec));
        cells.push(percent_of(sum[0], total));
        t.push(cells);
        t.render()
    };
    o.push_str("Who pays, by fiscal year\n");
    o.push_str(&pivot(
        "fiscal year",
        (0..a.fy_count).map(|i| a.fy_label(i)).collect(),
        &by_fy,
    ));
    o.push('\n');
    o.push_str("Who pays, by category (five years)\n");
    o.push_str(&pivot(
        "category",
        a.categories.iter().map(|c| c.id.clone()).collect(),
        &by_cat,
    ));
    o.push('\n');
    o.push_str(&super::ceilings::table(a, &crate::ceilings::of_run(r).rows));
    if let Some(rc) = crate::demo::reconcile(r) {
        o.push('\n');
        o.push_str(&reconciliation(&rc));
    }
    o.push_str(&format!(
        "\nExplain any line: costshare demo --write demo && costshare explain --agreement demo/agreement.toml --costs demo/costs.csv --rates demo/rates.csv --id {}\n",
        lines.first().map(|l| l.id.as_str()).unwrap_or("ID")
    ));
    let prov = r.provisional_count();
    if prov > 0 {
        o.push_str(&format!(
            "provisional: {prov} lines in pro-rata periods not ended by {}\n",
            r.as_of
        ));
    }
    o.push_str(&format!(
        "agreement: {} sha256 {}\ncosts: sha256 {costs_sha}\n",
        a.id, r.parts[0].la.sha256
    ));
    o
}
/// Amounts in tenths of a billion yen that add up: the total rounded half
/// to even, each part floored and the tenths left over given to the largest
/// remainders (ties to the earlier part). Display only.
fn tenths_adding_up(parts: &[i128], total: i128) -> Vec<i128> {
    const TENTH: i128 = 100_000_000;
    let want = {
        let t = costshare_core::num::rhe_u128(total.unsigned_abs(), TENTH as u128) as i128;
        if total < 0 { -t } else { t }
    };
    let mut out: Vec<i128> = parts.iter().map(|v| v.div_euclid(TENTH)).collect();
    let mut left = want - out.iter().sum::<i128>();
    let mut by_rem: Vec<usize> = (0..parts.len()).collect();
    by_rem.sort_by_key(|&i| (std::cmp::Reverse(parts[i].rem_euclid(TENTH)), i));
    for &i in by_rem.iter().cycle().take(parts.len() * 2) {
        if left <= 0 {
            break;
        }
        out[i] += 1;
        left -= 1;
    }
    out
}

/// The closing note: the headline party's generated five-year total against
/// the sourced headline, category by category, in ¥ billion.
fn reconciliation(rc: &crate::demo::Reconciliation) -> String {
    let gen_v: Vec<i128> = rc.rows.iter().map(|x| x.generated).collect();
    let head_v: Vec<i128> = rc.rows.iter().map(|x| x.headline).collect();
    let g = tenths_adding_up(&gen_v, rc.generated_total);
    let h = tenths_adding_up(&head_v, rc.headline_total);
    let bn = |t: i128| format_grouped(t, 1);
    let signed = |t: i128| format!("{}{}", if t > 0 { "+" } else { "" }, bn(t));
    let mut t = Table::new(
        &["category", "this history", "headline", "difference", "why"],
        &[Align::Left, Align::Right, Align::Right, Align::Right, Align::Left],
    );
    for (k, row) in rc.rows.iter().enumerate() {
        t.push(vec![
            row.category.clone(),
            bn(g[k]),
            format!("{}{}", bn(h[k]), if row.implied { "*" } else { "" }),
            signed(g[k] - h[k]),
            row.why.to_string(),
        ]);
    }
    t.rule();
    let (gt, ht): (i128, i128) = (g.iter().sum(), h.iter().sum());
    t.push(vec!["total".into(), bn(gt), bn(ht), signed(gt - ht), String::new()]);
    format!(
        "Five-year total of {} against the headline ¥{} billion, in ¥ billion\n{}\
         * not published: the headline less the other categories' sourced figures (the generated payroll is synthetic)\n\
         training relocation: the rest sits in the SACO and realignment budgets\n",
        rc.party,
        bn(ht),
        t.render()
    )
}
