//! `compare` as CSV, JSON or a table.
//!
//! CSV: the dimensions, then with one against `amount,amount_against,delta`,
//! with several `amount` then `amount_<id>,delta_<id>` for each in order
//! (`<id>` its `[agreement] id`); delta = amount − the against's amount.
//!
//! JSON: `{agreement:{id,sha256}, agreement_versions?, journal?,
//! against:[{id,sha256,file}], currency, as_of, by:[dim], rows:[{<dim>:value…,
//! amount, against:{<id>:{amount,delta}}, rates?}], totals:{amount,
//! against:{<id>:{amount,delta}}}, unallocated:[{against,reason,category,
//! lines,amount}], provisional_lines, conversion?}`; amounts are decimal
//! strings; `rates` and `conversion` only with `--currency` (as in
//! [`super::currency`]). `unallocated` amounts are in the agreement currency.

use super::currency::{conversion_footer, conversion_json, row_rates_json};
use super::text::{Align, Table, csv_record};
use super::{Format, footer, pretty, provenance_json};
use crate::compare::CompareResult;
use costshare_core::compare::Reason;
use costshare_core::money::{format_grouped, format_minor};
use costshare_core::report::Dim;
use serde_json::{Value, json};

/// The reason's name in JSON.
pub fn reason_name(r: Reason) -> &'static str {
    match r {
        Reason::NoCategory => "no_category",
        Reason::OutsideTerm => "outside_term",
        Reason::NoQuantity => "no_quantity",
    }
}

/// The CSV header's amount columns.
pub fn amount_columns(r: &CompareResult) -> Vec<String> {
    let mut h = vec!["amount".to_string()];
    if r.against.len() == 1 {
        h.push("amount_against".into());
        h.push("delta".into());
    } else {
        for a in &r.against {
            h.push(format!("amount_{}", a.id));
            h.push(format!("delta_{}", a.id));
        }
    }
    h
}

/// `compare`.
pub fn compare(r: &CompareResult, format: Format) -> String {
    let dec = r.currency.decimals();
    let m = |v: i128| format_minor(v, dec);
    match format {
        Format::Csv => {
            let mut out = String::new();
            let mut hdr: Vec<String> = r.dims.iter().map(|d| d.name().to_string()).collect();
            hdr.extend(amount_columns(r));
            csv_record(&mut out, &hdr);
            for row in &r.rows {
                let mut f = row.values.clone();
                f.push(m(row.amounts[0] as i128));
                for k in 0..r.against.len() {
                    f.push(m(row.amounts[k + 1] as i128));
                    f.push(m(row.delta(k)));
                }
                csv_record(&mut out, &f);
            }
            out
        }
        Format::Json => {
            let against_of = |amounts: &[i128]| -> Value {
                let mut o = serde_json::Map::new();
                for (k, a) in r.against.iter().enumerate() {
                    o.insert(
                        a.id.clone(),
                        json!({"amount": m(amounts[k + 1]), "delta": m(amounts[0] - amounts[k + 1])}),
                    );
                }
                Value::Object(o)
            };
            let rows: Vec<Value> = r
                .rows
                .iter()
                .enumerate()
                .map(|(i, row)| {
                    let mut o = serde_json::Map::new();
                    for (d, v) in r.dims.iter().zip(&row.values) {
                        o.insert(d.name().to_string(), json!(v));
                    }
                    let amounts: Vec<i128> = row.amounts.iter().map(|&a| a as i128).collect();
                    o.insert("amount".into(), json!(m(amounts[0])));
                    o.insert("against".into(), against_of(&amounts));
                    if let Some(c) = &r.conversion {
                        o.insert("rates".into(), row_rates_json(c, i));
                    }
                    Value::Object(o)
                })
                .collect();
            let p = &r.provenance;
            let mut v = provenance_json(p);
            v["against"] = json!(
                r.against
                    .iter()
                    .map(|a| json!({"id": a.id, "sha256": a.sha256, "file": a.path}))
                    .collect::<Vec<_>>()
            );
            v["currency"] = json!(r.currency.code());
            v["as_of"] = json!(p.as_of.to_string());
            v["by"] = json!(r.dims.iter().map(|d| d.name()).collect::<Vec<_>>());
            v["rows"] = json!(rows);
            v["totals"] = json!({"amount": m(r.totals[0]), "against": against_of(&r.totals)});
            let adec = r.agreement.currency.decimals();
            v["unallocated"] = json!(
                r.unallocated
                    .iter()
                    .map(|u| json!({
                        "against": r.against[u.against].id,
                        "reason": reason_name(u.what.reason),
                        "category": u.what.category,
                        "lines": u.what.lines,
                        "amount": format_minor(u.what.amount, adec),
                    }))
                    .collect::<Vec<_>>()
            );
            v["provisional_lines"] = json!(p.provisional);
            if let Some(c) = &r.conversion {
                v["conversion"] = conversion_json(c);
            }
            pretty(&v)
        }
        Format::Table => {
            let base_id = r
                .provenance
                .agreements
                .last()
                .map(|a| a.id.clone())
                .unwrap_or_else(|| r.agreement.id.clone());
            let mut hdr: Vec<String> = r.dims.iter().map(|d| d.name().to_string()).collect();
            hdr.push(base_id.clone());
            for a in &r.against {
                hdr.push(a.id.clone());
                hdr.push(if r.against.len() == 1 {
                    "delta".into()
                } else {
                    format!("delta vs {}", a.id)
                });
            }
            let mut align = vec![Align::Left; r.dims.len()];
            align.resize(hdr.len(), Align::Right);
            let hdr_ref: Vec<&str> = hdr.iter().map(String::as_str).collect();
            let mut t = Table::new(&hdr_ref, &align);
            let g = |v: i128| format_grouped(v, dec);
            for row in &r.rows {
                let mut cells = row.values.clone();
                if let Some(i) = r.dims.iter().position(|d| *d == Dim::Site)
                    && cells[i].is_empty()
                {
                    cells[i] = "(no site)".into();
                }
                cells.push(g(row.amounts[0] as i128));
                for k in 0..r.against.len() {
                    cells.push(g(row.amounts[k + 1] as i128));
                    cells.push(signed(row.delta(k), dec));
                }
                t.push(cells);
            }
            t.rule();
            let mut cells = vec![String::new(); r.dims.len()];
            cells[0] = "total".into();
            cells.push(g(r.totals[0]));
            for k in 0..r.against.len() {
                cells.push(g(r.totals[k + 1]));
                cells.push(signed(r.totals[0] - r.totals[k + 1], dec));
            }
            t.push(cells);
            let p = &r.provenance;
            let mut out = format!(
                "{} against {} — {} lines, in {}, by {}, as of {}\ndelta = {} − the other agreement\n\n",
                base_id,
                r.against.iter().map(|a| a.id.as_str()).collect::<Vec<_>>().join(", "),
                p.lines,
                r.currency.code(),
                r.dims.iter().map(|d| d.name()).collect::<Vec<_>>().join(", "),
                p.as_of,
                base_id,
            );
            out.push_str(&t.render());
            out.push('\n');
            let adec = r.agreement.currency.decimals();
            for u in &r.unallocated {
                out.push_str(&format!(
                    "UNALLOCATED under {}: {} line{} of `{}` ({} {}): {}\n",
                    r.against[u.against].id,
                    u.what.lines,
                    if u.what.lines == 1 { "" } else { "s" },
                    u.what.category,
                    format_grouped(u.what.amount, adec),
                    r.agreement.currency.code(),
                    match u.what.reason {
                        Reason::NoCategory => "it has no such category",
                        Reason::OutsideTerm => "dated outside its term",
                        Reason::NoQuantity => "no quantity for its unit cap",
                    }
                ));
            }
            if let Some(c) = &r.conversion {
                out.push_str(&conversion_footer(c));
            }
            out.push_str(&footer(p));
            for a in &r.against {
                out.push_str(&format!("against: {} sha256 {} ({})\n", a.id, a.sha256, a.path));
            }
            out
        }
    }
}

/// A delta for people: thousands separators, `+` on a positive one.
fn signed(v: i128, dec: u32) -> String {
    if v > 0 {
        format!("+{}", format_grouped(v, dec))
    } else {
        format_grouped(v, dec)
    }
}
