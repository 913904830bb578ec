//! A forecast as CSV (the dims, then `actual,forecast,amount`), JSON
//! (`{agreement…, currency, as_of, until, by, projection:{basis, window,
//! months, lines, beyond_term}, rows:[{<dim>…, actual, forecast, amount}],
//! totals:{actual, forecast, amount}}`, amounts as decimal strings) or a
//! table whose projected column and note say what is projected.

use super::text::{Align, Table, csv_record};
use super::{Format, footer, pretty, provenance_json};
use crate::forecast::ForecastResult;
use costshare_core::forecast::month_label;
use costshare_core::money::{format_grouped, format_minor};
use serde_json::{Value, json};

fn months(r: &ForecastResult) -> Option<(String, String)> {
    let (a, b) = r.projection.months;
    (a <= b).then(|| (month_label(a), month_label(b)))
}

/// What was projected, in words for people.
fn note(r: &ForecastResult) -> String {
    let p = &r.projection;
    let mut s = format!(
        "* forecast: {} projected lines (each category and site at its mean month of {} to {}), dated the last day of each month",
        p.lines.len(),
        month_label(p.window.0),
        month_label(p.window.1)
    );
    if let Some((a, b)) = months(r) {
        s.push_str(&format!(" ({a} to {b})"));
    }
    if p.budget_lines > 0 {
        s.push_str(&format!(
            "; {} of them from the budget, which replaces the run rate for the months and categories it covers",
            p.budget_lines
        ));
    }
    s.push('\n');
    if !p.beyond_term.is_empty() {
        s.push_str(&format!(
            "warning: {} month(s) up to {} end after the agreement's term and are not projected\n",
            p.beyond_term.len(),
            r.until
        ));
    }
    s
}

/// A forecast in a format.
pub fn forecast(r: &ForecastResult, format: Format) -> String {
    let a = &r.agreement;
    let dec = a.currency.decimals();
    let (ta, tf, tt) = r.rows.iter().fold((0i128, 0i128, 0i128), |(x, y, z), row| {
        (x + row.actual as i128, y + row.forecast as i128, z + row.amount as i128)
    });
    match format {
        Format::Csv => {
            let mut out = String::new();
            let mut hdr: Vec<&str> = r.dims.iter().map(|d| d.name()).collect();
            hdr.extend(["actual", "forecast", "amount"]);
            csv_record(&mut out, &hdr);
            for row in &r.rows {
                let mut f = row.values.clone();
                for v in [row.actual, row.forecast, row.amount] {
                    f.push(format_minor(v as i128, dec));
                }
                csv_record(&mut out, &f);
            }
            out
        }
        Format::Json => {
            let rows: Vec<Value> = r
                .rows
                .iter()
                .map(|row| {
                    let mut m = serde_json::Map::new();
                    for (d, v) in r.dims.iter().zip(&row.values) {
                        m.insert(d.name().to_string(), json!(v));
                    }
                    m.insert("actual".into(), json!(format_minor(row.actual as i128, dec)));
                    m.insert("forecast".into(), json!(format_minor(row.forecast as i128, dec)));
                    m.insert("amount".into(), json!(format_minor(row.amount as i128, dec)));
                    Value::Object(m)
                })
                .collect();
            let p = &r.projection;
            let mut v = provenance_json(&r.provenance);
            v["currency"] = json!(a.currency.code());
            v["as_of"] = json!(r.provenance.as_of.to_string());
            v["until"] = json!(r.until.to_string());
            v["by"] = json!(r.dims.iter().map(|d| d.name()).collect::<Vec<_>>());
            v["projection"] = json!({
                "basis": if p.budget_lines > 0 { "run_rate_and_budget" } else { "run_rate" },
                "budget_lines": p.budget_lines,
                "window": {"from": month_label(p.window.0), "to": month_label(p.window.1)},
                "months": months(r).map(|(f, t)| json!({"from": f, "to": t})),
                "lines": p.lines.len(),
                "beyond_term": p.beyond_term.iter().map(|m| month_label(*m)).collect::<Vec<_>>(),
            });
            v["rows"] = json!(rows);
            v["totals"] = json!({
                "actual": format_minor(ta, dec), "forecast": format_minor(tf, dec), "amount": format_minor(tt, dec),
            });
            v["provisional_lines"] = json!(r.provenance.provisional);
            pretty(&v)
        }
        Format::Table => {
            let mut hdr: Vec<&str> = r.dims.iter().map(|d| d.name()).collect();
            hdr.extend(["actual", "forecast*", "amount"]);
            let mut align = vec![Align::Left; r.dims.len()];
            align.extend([Align::Right; 3]);
            let mut t = Table::new(&hdr, &align);
            for row in &r.rows {
                let mut cells = row.values.clone();
                for v in [row.actual, row.forecast, row.amount] {
                    cells.push(format_grouped(v as i128, dec));
                }
                t.push(cells);
            }
            t.rule();
            let mut cells = vec![String::new(); r.dims.len()];
            cells[0] = "total".into();
            for v in [ta, tf, tt] {
                cells.push(format_grouped(v, dec));
            }
            t.push(cells);
            let mut out = format!(
                "{} — actual and forecast to {}, in {}, as of {}\n\n",
                a.title,
                r.until,
                a.currency.code(),
                r.provenance.as_of
            );
            out.push_str(&t.render());
            out.push('\n');
            out.push_str(&note(r));
            out.push_str(&footer(&r.provenance));
            out
        }
    }
}
