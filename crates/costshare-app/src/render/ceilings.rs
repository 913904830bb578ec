//! Ceiling use as CSV, JSON or a table.
//!
//! CSV columns: `category,layer,period,unit,cap,used,remaining,percent_used,
//! bound_on,forecast_bound_on`; money in the currency's decimals, units as
//! exact decimals, `percent_used` with one decimal (half to even), dates
//! empty when none. JSON: `{agreement, agreement_versions?, journal?,
//! currency, as_of, ceilings:[{category,layer,period,unit,cap,used,
//! remaining,percent_used,bound_on,forecast_bound_on,lines,open}]}` with
//! the same strings (`null` for none). The table groups a monthly cap's
//! periods by fiscal year.

use super::explain::quantity;
use super::text::{Align, Table, csv_record};
use super::{Format, footer, pretty, provenance_json};
use crate::ceilings::CeilingsResult;
use costshare_core::Agreement;
use costshare_core::calendar::{FiscalYear, Period};
use costshare_core::ceilings::{CeilingRow, Measure};
use costshare_core::money::{format_grouped, format_minor};
use costshare_core::num::{BigRational, Q, fmt_ratio};
use serde_json::{Value, json};

/// Quantities here are sums and differences of inputs with at most 18
/// decimals, so they terminate; 40 digits is a bound, not a rounding.
fn units(q: &Q) -> String {
    fmt_ratio(&q.to_big(), 40)
}

fn percent(tenths: Option<u128>) -> String {
    tenths.map_or(String::new(), |t| format!("{}.{}", t / 10, t % 10))
}

/// The row's cap, used and remaining as data text, and its unit.
fn figures(a: &Agreement, r: &CeilingRow) -> [String; 4] {
    let dec = a.currency.decimals();
    let left = r.measure.remaining();
    match (&r.measure, &left) {
        (Measure::Money { cap, used }, Measure::Money { used: rem, .. }) => [
            a.currency.code().to_string(),
            format_minor(*cap as i128, dec),
            format_minor(*used as i128, dec),
            format_minor(*rem as i128, dec),
        ],
        (Measure::Units { cap, used }, Measure::Units { used: rem, .. }) => {
            [r.unit.clone().unwrap_or_default(), units(cap), units(used), units(rem)]
        }
        _ => Default::default(),
    }
}

fn date(d: Option<costshare_core::Date>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

/// Ceiling use in a format.
pub fn ceilings(r: &CeilingsResult, format: Format) -> String {
    let a = &r.agreement;
    match format {
        Format::Csv => {
            let mut out = String::new();
            csv_record(
                &mut out,
                &[
                    "category",
                    "layer",
                    "period",
                    "unit",
                    "cap",
                    "used",
                    "remaining",
                    "percent_used",
                    "bound_on",
                    "forecast_bound_on",
                ],
            );
            for row in &r.rows {
                let [unit, cap, used, rem] = figures(a, row);
                csv_record(
                    &mut out,
                    &[
                        row.category.clone(),
                        row.layer.clone(),
                        row.period.code(&a.calendar),
                        unit,
                        cap,
                        used,
                        rem,
                        percent(row.measure.percent_tenths()),
                        date(row.bound_on),
                        date(row.forecast_bound_on),
                    ],
                );
            }
            out
        }
        Format::Json => {
            let opt = |s: String| if s.is_empty() { Value::Null } else { json!(s) };
            let items: Vec<Value> = r
                .rows
                .iter()
                .map(|row| {
                    let [unit, cap, used, rem] = figures(a, row);
                    json!({
                        "category": row.category, "layer": row.layer,
                        "period": row.period.code(&a.calendar), "unit": unit,
                        "cap": cap, "used": used, "remaining": rem,
                        "percent_used": opt(percent(row.measure.percent_tenths())),
                        "bound_on": opt(date(row.bound_on)),
                        "forecast_bound_on": opt(date(row.forecast_bound_on)),
                        "lines": row.lines, "open": row.open,
                    })
                })
                .collect();
            let mut v = provenance_json(&r.provenance);
            v["currency"] = json!(a.currency.code());
            v["rate_policy"] = json!(r.policy);
            v["as_of"] = json!(r.provenance.as_of.to_string());
            v["ceilings"] = json!(items);
            pretty(&v)
        }
        Format::Table => {
            let mut out = format!("{} — ceiling use as of {}", a.title, r.provenance.as_of);
            if let Some(p) = r.policy {
                out.push_str(&format!(
                    ", money in {} ({p} rate of each period's last day or the as-of date, whichever is earlier)",
                    a.currency.code()
                ));
            }
            out.push_str("\n\n");
            out.push_str(&table(a, &r.rows));
            out.push_str(
                "forecast: the date use so far, projected at its daily rate since the period began, reaches the cap\n",
            );
            out.push('\n');
            out.push_str(&footer(&r.provenance));
            out
        }
    }
}

/// The ceiling-use table for people (the demo prints it too): one row per
/// period, a monthly cap's months grouped by fiscal year.
pub fn table(a: &Agreement, rows: &[CeilingRow]) -> String {
    let dec = a.currency.decimals();
    let mut t = Table::new(
        &["ceiling", "period", "capacity", "used", "use", "bound on", "forecast"],
        &[
            Align::Left,
            Align::Left,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Left,
            Align::Left,
        ],
    );
    let mut k = 0;
    while k < rows.len() {
        // one ceiling: a layer's rows are consecutive
        let mut e = k + 1;
        while e < rows.len() && rows[e].category == rows[k].category && rows[e].layer == rows[k].layer {
            e += 1;
        }
        let name = format!("{} layer {}", rows[k].category, rows[k].layer);
        let mut g = k;
        while g < e {
            // a monthly cap's periods of one fiscal year together
            let monthly = matches!(rows[g].period, Period::Months { len: 1, .. });
            let fy = rows[g].period.fy(&a.calendar);
            let mut h = g + 1;
            while monthly && h < e && rows[h].period.fy(&a.calendar) == fy {
                h += 1;
            }
            let grp = &rows[g..h];
            if monthly {
                t.push(grouped(a, &name, fy.map(FiscalYear), grp));
            } else {
                let (cap, used) = match &grp[0].measure {
                    Measure::Money { cap, used } => {
                        (format_grouped(*cap as i128, dec), format_grouped(*used as i128, dec))
                    }
                    Measure::Units { cap, used } => {
                        let u = grp[0].unit.as_deref().unwrap_or("units");
                        (format!("{} {u}", quantity(&cap.to_big())), quantity(&used.to_big()))
                    }
                };
                t.push(vec![
                    name.clone(),
                    grp[0].period.label(&a.calendar),
                    cap,
                    used,
                    pct(grp[0].measure.percent_tenths()),
                    date(grp[0].bound_on),
                    date(grp[0].forecast_bound_on),
                ]);
            }
            g = h;
        }
        t.rule();
        k = e;
    }
    format!("Ceiling use\n{}", t.render())
}

fn pct(tenths: Option<u128>) -> String {
    let p = percent(tenths);
    if p.is_empty() { p } else { p + "%" }
}

/// A fiscal year of a monthly cap: money summed; units as the mean per
/// month (used floored for display); bound in k of n months.
fn grouped(a: &Agreement, name: &str, fy: Option<FiscalYear>, grp: &[CeilingRow]) -> Vec<String> {
    let dec = a.currency.decimals();
    let n = grp.len();
    let bound = grp.iter().filter(|r| r.bound_on.is_some()).count();
    let label = fy.map_or("term".to_string(), |f| format!("{f} (month)"));
    let (cap, used, tenths) = match &grp[0].measure {
        Measure::Money { .. } => {
            let (mut c, mut u) = (0i64, 0i64);
            for r in grp {
                if let Measure::Money { cap, used } = &r.measure {
                    c = c.saturating_add(*cap);
                    u = u.saturating_add(*used);
                }
            }
            let m = Measure::Money { cap: c, used: u };
            (
                format_grouped(c as i128, dec),
                format_grouped(u as i128, dec),
                m.percent_tenths(),
            )
        }
        Measure::Units { .. } => {
            let (mut c, mut u) = (Q::ZERO, Q::ZERO);
            for r in grp {
                if let Measure::Units { cap, used } = &r.measure {
                    c = c.add(cap);
                    u = u.add(used);
                }
            }
            let nn = Q::int(n as u128);
            let unit = grp[0].unit.as_deref().unwrap_or("units");
            let used_floor = BigRational::new(u.div(&nn).to_big().floor(), 1.into());
            let m = Measure::Units {
                cap: c.clone(),
                used: u,
            };
            (
                format!("{} {unit}/month", quantity(&c.div(&nn).to_big())),
                format!("{} avg", quantity(&used_floor)),
                m.percent_tenths(),
            )
        }
    };
    vec![
        name.to_string(),
        label,
        cap,
        used,
        pct(tenths),
        format!("{bound} of {n} months"),
        grp.iter()
            .rev()
            .find_map(|r| r.forecast_bound_on)
            .map(|d| d.to_string())
            .unwrap_or_default(),
    ]
}
