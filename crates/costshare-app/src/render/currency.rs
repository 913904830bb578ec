//! A report in a reporting currency (`report --currency CODE`), and the
//! conversion's description shared with `compare`.
//!
//! JSON: the report's shape (`{agreement, …, currency, as_of, by, rows,
//! total, provisional_lines}`, `currency` being CODE) plus
//! `conversion: {from, to, policy, rates:[RATE + {lines, first_line_date,
//! last_line_date}]}`, and on every row `rates: [RATE…]`, the rates its lines
//! used (one when they do not vary). A RATE is `{rate, basis}` and, by
//! basis: `spot` → `rate_date`; `fiscal-year-average` → `fiscal_year`,
//! `rates_averaged`; `fixed`; `same` (CODE is the agreement currency, rate
//! 1). `rate` is agreement currency per one major unit of CODE, exact: a
//! decimal when it terminates, else `n/d`.

use super::text::{Align, Table, csv_record};
use super::{Format, footer, percent_of, pretty, provenance_json};
use crate::currency::{Conversion, ConvertedReport};
use costshare_core::convert::{RateBasis, RateUsed};
use costshare_core::money::{format_grouped, format_minor};
use costshare_core::num::{BigRational, fmt_ratio, pow10};
use costshare_core::report::Dim;
use serde_json::{Value, json};

/// A rate as JSON (see the module's documentation).
pub fn rate_json(r: &RateUsed) -> Value {
    let mut v = json!({"rate": fmt_ratio(&r.rate, 40)});
    match &r.basis {
        RateBasis::Same => v["basis"] = json!("same"),
        RateBasis::Dated(d) => {
            v["basis"] = json!("spot");
            v["rate_date"] = json!(d.to_string());
        }
        RateBasis::YearAverage { fiscal_year, count } => {
            v["basis"] = json!("fiscal-year-average");
            v["fiscal_year"] = json!(fiscal_year.to_string());
            v["rates_averaged"] = json!(count);
        }
        RateBasis::Fixed => v["basis"] = json!("fixed"),
    }
    v
}

/// A rate for people: `149.5 (2022-04-01)`, `140 (FY2022 average of 12)`, `200 (fixed)`;
/// a rate with no short exact decimal as `≈130.298583`.
pub fn rate_text(r: &RateUsed) -> String {
    let mut x = fmt_ratio(&r.rate, 6);
    if x.contains('/') {
        // display only: six decimals, half to even
        let six = r.rate.mul(&BigRational::from_int(pow10(6))).round_half_even();
        if let Ok(v) = i128::try_from(six) {
            x = format!("≈{}", format_minor(v, 6));
        }
    }
    match &r.basis {
        RateBasis::Same => "1".into(),
        RateBasis::Dated(d) => format!("{x} ({d})"),
        RateBasis::YearAverage { fiscal_year, count } => format!("{x} ({fiscal_year} average of {count})"),
        RateBasis::Fixed => format!("{x} (fixed)"),
    }
}

/// `conversion` of the JSON forms.
pub fn conversion_json(c: &Conversion) -> Value {
    json!({
        "from": c.from.code(),
        "to": c.to.code(),
        "policy": c.policy.name(),
        "rates": c.rates.iter().map(|u| {
            let mut v = rate_json(&u.rate);
            v["lines"] = json!(u.lines);
            v["first_line_date"] = json!(u.first.to_string());
            v["last_line_date"] = json!(u.last.to_string());
            v
        }).collect::<Vec<_>>(),
    })
}

/// The rates of row `i`, as JSON.
pub fn row_rates_json(c: &Conversion, i: usize) -> Value {
    json!(
        c.row_rates
            .get(i)
            .map(|v| v.iter().map(|&k| rate_json(&c.rates[k].rate)).collect::<Vec<_>>())
            .unwrap_or_default()
    )
}

/// The lines under a table that say how amounts were converted.
pub fn conversion_footer(c: &Conversion) -> String {
    let mut s = format!(
        "converted from {} to {} ({} rate, {} per {}; each line's parts rounded half to even, then summed)\n",
        c.from.code(),
        c.to.code(),
        c.policy.name(),
        c.from.code(),
        c.to.code()
    );
    const SHOWN: usize = 12;
    for u in c.rates.iter().take(SHOWN) {
        s.push_str(&format!(
            "  rate {} for {} line{} dated {} to {}\n",
            rate_text(&u.rate),
            u.lines,
            if u.lines == 1 { "" } else { "s" },
            u.first,
            u.last
        ));
    }
    if c.rates.len() > SHOWN {
        s.push_str(&format!(
            "  … and {} more rates (--format json lists them all)\n",
            c.rates.len() - SHOWN
        ));
    }
    s
}

/// `report --currency CODE`.
pub fn report(r: &ConvertedReport, format: Format) -> String {
    let rep = &r.report;
    let c = &r.conversion;
    let dec = c.to.decimals();
    let dims = &rep.dims;
    let total: i128 = rep.rows.iter().map(|r| r.amount as i128).sum();
    match format {
        Format::Csv => {
            let mut out = String::new();
            let mut hdr: Vec<&str> = dims.iter().map(|d| d.name()).collect();
            hdr.push("amount");
            csv_record(&mut out, &hdr);
            for row in &rep.rows {
                let mut f: Vec<String> = row.values.clone();
                f.push(format_minor(row.amount as i128, dec));
                csv_record(&mut out, &f);
            }
            out
        }
        Format::Json => {
            let items: Vec<Value> = rep
                .rows
                .iter()
                .enumerate()
                .map(|(i, row)| {
                    let mut m = serde_json::Map::new();
                    for (d, v) in dims.iter().zip(&row.values) {
                        m.insert(d.name().to_string(), json!(v));
                    }
                    m.insert("amount".into(), json!(format_minor(row.amount as i128, dec)));
                    m.insert("rates".into(), row_rates_json(c, i));
                    Value::Object(m)
                })
                .collect();
            let p = &rep.provenance;
            let mut v = provenance_json(p);
            v["currency"] = json!(c.to.code());
            v["as_of"] = json!(p.as_of.to_string());
            v["by"] = json!(dims.iter().map(|d| d.name()).collect::<Vec<_>>());
            v["rows"] = json!(items);
            v["total"] = json!(format_minor(total, dec));
            v["provisional_lines"] = json!(p.provisional);
            v["conversion"] = conversion_json(c);
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
            for row in &rep.rows {
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
            let p = &rep.provenance;
            let mut out = format!(
                "{} — {} lines, in {}, by {}, as of {}\n\n",
                rep.agreement.title,
                p.lines,
                c.to.code(),
                dims.iter().map(|d| d.name()).collect::<Vec<_>>().join(", "),
                p.as_of
            );
            out.push_str(&t.render());
            out.push('\n');
            out.push_str(&conversion_footer(c));
            out.push_str(&footer(p));
            out
        }
    }
}
