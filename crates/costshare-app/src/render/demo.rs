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

fn yen_bn(v: i128) -> String {
    // billions of yen with one decimal, half to even (display only)
    let tenths = costshare_core::num::rhe_u128(v.unsigned_abs(), 100_000_000) as i128;
    let s = format_grouped(tenths, 1);
    if v < 0 { format!("-{s}") } else { s }
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
    let jp_total: i128 = by_fy.iter().map(|row| row[0]).sum();
    o.push_str(&format!(
        "\nJapan's five-year total: ¥{} billion (the agreement's headline figure is about ¥1,055.1 billion, which counts only about ¥5 billion of training relocation).\n",
        yen_bn(jp_total)
    ));
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
