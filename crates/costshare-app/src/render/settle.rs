//! `settle` and `pay` rendered. CSV: `party,obligation,paid,balance`, or with
//! `--transfers` `from,to,amount`. JSON: `{agreement…, journal?, currency,
//! as_of, period, rows:[{party,obligation,paid,balance}], total:{obligation,
//! paid,balance}, transfers:[{from,to,amount}], payments}`.

use super::text::{Align, Table, csv_record};
use super::{Format, footer, journal_line, pretty, provenance_json};
use crate::settle::{PayResult, SettleResult};
use costshare_core::money::{format_grouped, format_minor};
use serde_json::json;

/// The settlement, or with `transfers` the transfers that settle it.
pub fn settle(r: &SettleResult, transfers: bool, format: Format) -> String {
    let dec = r.currency.decimals();
    let m = |v: i128| format_minor(v, dec);
    let period = r.period.clone();
    match format {
        Format::Csv if transfers => {
            let mut out = String::new();
            csv_record(&mut out, &["from", "to", "amount"]);
            for t in &r.transfers {
                csv_record(&mut out, &[r.name(t.from), r.name(t.to), &m(t.amount)]);
            }
            out
        }
        Format::Csv => {
            let mut out = String::new();
            csv_record(&mut out, &["party", "obligation", "paid", "balance"]);
            for (i, row) in r.rows.iter().enumerate() {
                csv_record(
                    &mut out,
                    &[r.name(i), &m(row.obligation), &m(row.paid), &m(row.balance())],
                );
            }
            out
        }
        Format::Json => {
            let mut v = provenance_json(&r.provenance);
            v["currency"] = json!(r.currency.code());
            v["rate_policy"] = json!(r.policy);
            v["as_of"] = json!(r.provenance.as_of.to_string());
            v["period"] = json!(period);
            v["rows"] = json!(
                r.rows
                    .iter()
                    .enumerate()
                    .map(|(i, row)| json!({"party": r.name(i), "obligation": m(row.obligation), "paid": m(row.paid), "balance": m(row.balance())}))
                    .collect::<Vec<_>>()
            );
            v["total"] = json!({
                "obligation": m(r.rows.iter().map(|x| x.obligation).sum()),
                "paid": m(r.rows.iter().map(|x| x.paid).sum()),
                "balance": m(r.rows.iter().map(|x| x.balance()).sum()),
            });
            v["transfers"] = json!(
                r.transfers
                    .iter()
                    .map(|t| json!({"from": r.name(t.from), "to": r.name(t.to), "amount": m(t.amount)}))
                    .collect::<Vec<_>>()
            );
            v["payments"] = json!(r.payments);
            pretty(&v)
        }
        Format::Table => {
            let g = |v: i128| format_grouped(v, dec);
            let title = format!(
                "Settlement{} as of {}, in {} ({} payment{} counted)\n",
                period.map(|p| format!(" for {p}")).unwrap_or_default(),
                r.provenance.as_of,
                r.currency.code(),
                r.payments,
                if r.payments == 1 { "" } else { "s" }
            );
            let body = if transfers {
                let mut t = Table::new(&["from", "to", "amount"], &[Align::Left, Align::Left, Align::Right]);
                for x in &r.transfers {
                    t.push(vec![r.name(x.from).into(), r.name(x.to).into(), g(x.amount)]);
                }
                if r.transfers.is_empty() {
                    "every balance is zero: nothing to transfer\n".to_string()
                } else {
                    t.render()
                }
            } else {
                let mut t = Table::new(
                    &["party", "obligation", "paid", "balance"],
                    &[Align::Left, Align::Right, Align::Right, Align::Right],
                );
                for (i, row) in r.rows.iter().enumerate() {
                    t.push(vec![r.name(i).into(), g(row.obligation), g(row.paid), g(row.balance())]);
                }
                t.rule();
                t.push(vec![
                    "total".into(),
                    g(r.rows.iter().map(|x| x.obligation).sum()),
                    g(r.rows.iter().map(|x| x.paid).sum()),
                    g(r.rows.iter().map(|x| x.balance()).sum()),
                ]);
                t.render()
            };
            format!(
                "{title}{body}balance = paid - obligation: negative owes, positive is owed\n{}",
                footer(&r.provenance)
            )
        }
    }
}

/// What `pay` did.
pub fn pay(r: &PayResult) -> String {
    format!(
        "{}: {} payment{} recorded, {} already there\n{}",
        r.file,
        r.outcome.recorded,
        if r.outcome.recorded == 1 { "" } else { "s" },
        r.outcome.already,
        journal_line(&r.journal)
    )
}
