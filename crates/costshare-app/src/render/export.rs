//! The export formats (`costshare export`): a Ledger 3 journal, a Beancount
//! file, the tidy CSV, JSON and an Excel workbook, all from one [`Run`] and
//! its tidy rows ([`crate::export::tidy_rows`]).
//!
//! Journals: one transaction per cost line with a non-zero amount, dated the
//! line's date, payee the line id, flagged `!` when provisional (else `*`).
//! A posting per party with a non-zero part goes to `Expenses:<party>:<category>`;
//! one posting of minus the line's amount goes to `Liabilities:Costs:<category>`,
//! so each transaction balances and each `Expenses` account's total is that
//! party-category total of `report --by party,category`. Ledger account names
//! use the ids as they are (ids are letters, digits, `_` and `-`); Beancount's use
//! [`account_component`] (`Expenses:JP:X-labor`). Amounts carry the agreement
//! currency's code as the commodity and exactly its decimals.

use super::{Format, allocation};
use crate::error::AppError;
use crate::export::{ExportFormat, Exported, TidyRow, account_component, neutralise};
use crate::run::{Provenance, Run, party_name};
use costshare_core::money::{Currency, format_minor, write_minor};
use costshare_core::report::Dim;
use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::text::csv_record;

/// The tidy CSV header.
pub const CSV_HEADER: [&str; 7] = ["id", "date", "category", "site", "party", "amount", "currency"];

/// The workbook's report sheets: name and the dimensions of its report.
pub const REPORT_SHEETS: [(&str, &[Dim]); 4] = [
    ("by_party", &[Dim::Party]),
    ("by_party_fiscal_year", &[Dim::Party, Dim::FiscalYear]),
    ("by_category", &[Dim::Category]),
    ("by_party_category", &[Dim::Party, Dim::Category]),
];

/// Render `run` (whose tidy rows are `rows`) in `format`.
pub fn render(run: &Run, rows: &[TidyRow<'_>], format: ExportFormat) -> Result<Exported, AppError> {
    Ok(match format {
        ExportFormat::Ledger => Exported::Text(journal(run, Dialect::Ledger)),
        ExportFormat::Beancount => Exported::Text(journal(run, Dialect::Beancount)),
        ExportFormat::Csv => Exported::Text(csv(run, rows)),
        // the allocation's JSON, one home for its shape (provenance included)
        ExportFormat::Json => Exported::Text(allocation(run, Format::Json)),
        ExportFormat::Xlsx => Exported::Binary(xlsx(run, rows)?),
    })
}

/// The tidy CSV: `id,date,category,site,party,amount,currency`, text fields
/// through [`neutralise`].
pub fn csv(run: &Run, rows: &[TidyRow<'_>]) -> String {
    let ccy = &run.main().la.agreement.currency;
    let mut out = String::with_capacity(rows.len() * 48 + 64);
    csv_record(&mut out, &CSV_HEADER);
    let mut amt = String::new();
    for r in rows {
        amt.clear();
        write_minor(&mut amt, r.amount as i128, ccy.decimals());
        let date = r.date.to_string();
        csv_record(
            &mut out,
            &[
                neutralise(r.id).as_ref(),
                date.as_str(),
                neutralise(r.category).as_ref(),
                neutralise(r.site).as_ref(),
                neutralise(r.party).as_ref(),
                amt.as_str(),
                ccy.code(),
            ],
        );
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Ledger,
    Beancount,
}

/// A free-text field on one line: control characters (line breaks, tabs)
/// become spaces.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// A Beancount string literal.
fn bean_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in one_line(s).chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A Ledger payee: the line id on one line. A payee that Ledger would read
/// as a code `(…)`, a state mark or a note, or an empty one, gets `line `
/// before it.
fn ledger_payee(id: &str) -> String {
    let p = one_line(id);
    match p.chars().next() {
        None | Some('(' | '*' | '!' | ';' | ' ') => format!("line {p}"),
        _ => p,
    }
}

fn account(d: Dialect, top: &str, a: &str, b: &str) -> String {
    match d {
        Dialect::Ledger => format!("{top}:{a}:{b}"),
        Dialect::Beancount => format!("{top}:{}:{}", account_component(a), account_component(b)),
    }
}

fn header_comment(out: &mut String, p: &Provenance) {
    let comment = ";";
    if let Some(a) = p.agreements.last() {
        let _ = writeln!(
            out,
            "{comment} costshare export: agreement {} (sha256 {})",
            a.id, a.sha256
        );
    }
    for a in p.agreements.iter().rev().skip(1) {
        let _ = writeln!(out, "{comment} earlier version: {} (sha256 {})", a.id, a.sha256);
    }
    if let Some(j) = &p.journal {
        let _ = writeln!(out, "{comment} journal: {} entries, head {}", j.entries, j.head);
    }
    let _ = writeln!(
        out,
        "{comment} as of {}; {} lines, {} provisional",
        p.as_of, p.lines, p.provisional
    );
    let _ = writeln!(
        out,
        "{comment} accounts: Expenses:<party>:<category> (a party's part), Liabilities:Costs:<category> (the cost)"
    );
}

fn amount(out: &mut String, v: i128, ccy: &Currency) {
    write_minor(out, v, ccy.decimals());
    out.push(' ');
    out.push_str(ccy.code());
}

/// A Ledger 3 journal or a Beancount file.
fn journal(run: &Run, d: Dialect) -> String {
    let main = &run.main().la.agreement;
    let ccy = &main.currency;
    let mut out = String::with_capacity(run.line_count() * 200 + 512);
    let p = run.provenance();
    header_comment(&mut out, &p);
    out.push('\n');
    if d == Dialect::Beancount {
        let _ = writeln!(out, "option \"title\" {}", bean_string(&main.title));
        let _ = writeln!(out, "option \"operating_currency\" \"{}\"\n", ccy.code());
        // every account used, opened on the first day of the earliest version
        let mut accounts = BTreeSet::new();
        for part in &run.parts {
            let a = &part.la.agreement;
            for &i in &part.alloc.order {
                let l = &part.costs.lines[i as usize];
                if l.amount == 0 {
                    continue;
                }
                let cat = &a.categories[l.category].id;
                accounts.insert(account(d, "Liabilities", "Costs", cat));
                for (k, &v) in part.alloc.row(i as usize).iter().enumerate() {
                    if v != 0 {
                        accounts.insert(account(d, "Expenses", party_name(a, k), cat));
                    }
                }
            }
        }
        if let Some(start) = run.parts.iter().map(|p| p.la.agreement.start).min() {
            for acc in &accounts {
                let _ = writeln!(out, "{start} open {acc} {}", ccy.code());
            }
        }
        out.push('\n');
    }
    let indent = if d == Dialect::Ledger { "    " } else { "  " };
    for part in &run.parts {
        let a = &part.la.agreement;
        for &i in &part.alloc.order {
            let l = &part.costs.lines[i as usize];
            if l.amount == 0 {
                continue;
            }
            let cat = &a.categories[l.category].id;
            let flag = if part.alloc.provisional[i as usize] { '!' } else { '*' };
            match d {
                Dialect::Ledger => {
                    let _ = writeln!(out, "{} {flag} {}", l.date, ledger_payee(&l.id));
                    let _ = writeln!(out, "{indent}; id: {}", one_line(&l.id));
                    if !l.site.is_empty() {
                        let _ = writeln!(out, "{indent}; site: {}", one_line(&l.site));
                    }
                    if !l.description.is_empty() {
                        let _ = writeln!(out, "{indent}; description: {}", one_line(&l.description));
                    }
                }
                Dialect::Beancount => {
                    let _ = writeln!(
                        out,
                        "{} {flag} {} {}",
                        l.date,
                        bean_string(&l.id),
                        bean_string(&l.description)
                    );
                    if !l.site.is_empty() {
                        let _ = writeln!(out, "{indent}site: {}", bean_string(&l.site));
                    }
                }
            }
            let mut total: i128 = 0;
            for (k, &v) in part.alloc.row(i as usize).iter().enumerate() {
                if v != 0 {
                    total += v as i128;
                    let _ = write!(out, "{indent}{}  ", account(d, "Expenses", party_name(a, k), cat));
                    amount(&mut out, v as i128, ccy);
                    out.push('\n');
                }
            }
            let _ = write!(out, "{indent}{}  ", account(d, "Liabilities", "Costs", cat));
            amount(&mut out, -total, ccy);
            out.push_str("\n\n");
        }
    }
    out
}

/// An amount as the `f64` a workbook stores, only when that is exact: at
/// most 2^53 minor units, at most 15 significant digits (Excel shows no
/// more), and the double nearest the decimal prints back as exactly that
/// decimal with the currency's decimals. The one place an amount becomes a
/// float (xlsx has no other number type).
pub fn exact_f64(minor: i64, decimals: u32) -> Option<f64> {
    if minor.unsigned_abs() > 1u64 << 53 || minor.unsigned_abs() > 999_999_999_999_999 {
        return None;
    }
    let text = format_minor(minor as i128, decimals);
    let f: f64 = text.parse().ok()?;
    (format!("{:.*}", decimals as usize, f) == text).then_some(f)
}

/// Excel's number format for a currency: thousands separators and exactly
/// its decimals (`#,##0`, `#,##0.00`).
pub fn number_format(decimals: u32) -> String {
    if decimals == 0 {
        "#,##0".to_string()
    } else {
        format!("#,##0.{}", "0".repeat(decimals as usize))
    }
}

fn xlsx_err(e: rust_xlsxwriter::XlsxError) -> AppError {
    AppError::Xlsx { detail: e.to_string() }
}

/// The workbook: `allocation` (the tidy rows), a sheet per report
/// ([`REPORT_SHEETS`]) and `about` (provenance). Text cells are strings
/// (never formulas) through [`neutralise`]; amounts are numbers in the
/// currency's number format, refused with [`AppError::ExportInexact`] when a
/// double cannot hold one exactly.
pub fn xlsx(run: &Run, rows: &[TidyRow<'_>]) -> Result<Vec<u8>, AppError> {
    use rust_xlsxwriter::{Format as XFormat, Workbook};
    const MAX_ROWS: usize = 1_048_576;
    let main = &run.main().la.agreement;
    let ccy = &main.currency;
    let dec = ccy.decimals();
    let money = XFormat::new().set_num_format(number_format(dec));
    let bold = XFormat::new().set_bold();
    let num = |sheet: &'static str, v: i64| {
        exact_f64(v, dec).ok_or_else(|| AppError::ExportInexact {
            sheet,
            amount: format_minor(v as i128, dec),
            currency: ccy.code().to_string(),
        })
    };
    let mut wb = Workbook::new();

    if rows.len() >= MAX_ROWS {
        return Err(AppError::ExportTooManyRows {
            sheet: "allocation",
            rows: rows.len(),
            max: MAX_ROWS - 1,
        });
    }
    let ws = wb.add_worksheet();
    ws.set_name("allocation").map_err(xlsx_err)?;
    for (c, h) in CSV_HEADER.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *h, &bold).map_err(xlsx_err)?;
    }
    for (k, r) in rows.iter().enumerate() {
        let row = k as u32 + 1;
        ws.write_string(row, 0, neutralise(r.id)).map_err(xlsx_err)?;
        ws.write_string(row, 1, r.date.to_string()).map_err(xlsx_err)?;
        ws.write_string(row, 2, neutralise(r.category)).map_err(xlsx_err)?;
        ws.write_string(row, 3, neutralise(r.site)).map_err(xlsx_err)?;
        ws.write_string(row, 4, neutralise(r.party)).map_err(xlsx_err)?;
        ws.write_number_with_format(row, 5, num("allocation", r.amount)?, &money)
            .map_err(xlsx_err)?;
        ws.write_string(row, 6, ccy.code()).map_err(xlsx_err)?;
    }
    ws.set_column_width(0, 24).map_err(xlsx_err)?;
    ws.set_column_width(1, 11).map_err(xlsx_err)?;
    ws.set_column_width(5, 20).map_err(xlsx_err)?;
    ws.set_freeze_panes(1, 0).map_err(xlsx_err)?;

    for (name, dims) in REPORT_SHEETS {
        let report = run.report_rows(dims)?;
        let ws = wb.add_worksheet();
        ws.set_name(name).map_err(xlsx_err)?;
        for (c, d) in dims.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, d.name(), &bold)
                .map_err(xlsx_err)?;
        }
        let ac = dims.len() as u16;
        ws.write_string_with_format(0, ac, "amount", &bold).map_err(xlsx_err)?;
        for (k, r) in report.iter().enumerate() {
            let row = k as u32 + 1;
            for (c, v) in r.values.iter().enumerate() {
                ws.write_string(row, c as u16, neutralise(v)).map_err(xlsx_err)?;
            }
            ws.write_number_with_format(row, ac, num(name, r.amount)?, &money)
                .map_err(xlsx_err)?;
        }
        ws.set_column_width(ac, 20).map_err(xlsx_err)?;
        ws.set_freeze_panes(1, 0).map_err(xlsx_err)?;
    }

    let p = run.provenance();
    let ws = wb.add_worksheet();
    ws.set_name("about").map_err(xlsx_err)?;
    let mut facts: Vec<(String, String)> = Vec::new();
    if let Some(a) = p.agreements.last() {
        facts.push(("agreement".into(), a.id.clone()));
        facts.push(("agreement_sha256".into(), a.sha256.clone()));
    }
    for a in p.agreements.iter().rev().skip(1) {
        facts.push(("earlier_version".into(), format!("{} sha256 {}", a.id, a.sha256)));
    }
    if let Some(j) = &p.journal {
        facts.push(("journal_entries".into(), j.entries.to_string()));
        facts.push(("journal_head".into(), j.head.clone()));
    }
    facts.push(("as_of".into(), p.as_of.to_string()));
    facts.push(("currency".into(), ccy.code().to_string()));
    facts.push(("lines".into(), p.lines.to_string()));
    facts.push(("provisional_lines".into(), p.provisional.to_string()));
    for (k, (key, v)) in facts.iter().enumerate() {
        ws.write_string_with_format(k as u32, 0, key, &bold).map_err(xlsx_err)?;
        ws.write_string(k as u32, 1, neutralise(v)).map_err(xlsx_err)?;
    }
    ws.set_column_width(0, 20).map_err(xlsx_err)?;
    ws.set_column_width(1, 70).map_err(xlsx_err)?;

    wb.save_to_buffer().map_err(xlsx_err)
}

/// The line printed after an export written to a file.
pub fn summary(path: &str, r: &crate::export::ExportResult) -> String {
    let p = &r.provenance;
    let what = match r.format {
        ExportFormat::Ledger => "ledger journal",
        ExportFormat::Beancount => "beancount file",
        ExportFormat::Csv => "csv",
        ExportFormat::Json => "json",
        ExportFormat::Xlsx => "xlsx workbook",
    };
    let agreement = p.agreements.last().map(|a| a.id.as_str()).unwrap_or("");
    let mut s = format!(
        "wrote {path}: {what}, {} lines, {} rows, agreement {agreement}, as of {}\n",
        p.lines, r.rows, p.as_of
    );
    if let Some(j) = &p.journal {
        s.push_str(&format!("journal: {} entries, head {}\n", j.entries, j.head));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_f64_refuses_what_a_double_cannot_hold() {
        assert_eq!(exact_f64(123450, 2), Some(1234.5));
        assert_eq!(exact_f64(1, 2), Some(0.01));
        assert_eq!(exact_f64(999_999_999_999_999, 0), Some(999_999_999_999_999.0));
        assert_eq!(exact_f64(-999_999_999_999_999, 2), Some(-9_999_999_999_999.99));
        // 16 significant digits: Excel would show them rounded
        assert_eq!(exact_f64(1_000_000_000_000_000, 0), None);
        assert_eq!(exact_f64(1 << 53, 0), None);
        assert_eq!(exact_f64(i64::MAX, 0), None);
        assert_eq!(exact_f64(i64::MIN, 2), None);
        // tiny amounts with many decimals print back exactly
        assert_eq!(exact_f64(1, 18), Some(1e-18));
        // every 2-decimal amount near the limit prints back
        for k in 0..1000 {
            let v = 999_999_999_999_999 - k * 7_777;
            let f = exact_f64(v, 2).expect("15 digits fit");
            assert_eq!(format!("{f:.2}"), format_minor(v as i128, 2));
        }
    }

    #[test]
    fn number_formats_show_the_currency_decimals() {
        assert_eq!(number_format(0), "#,##0");
        assert_eq!(number_format(2), "#,##0.00");
        assert_eq!(number_format(3), "#,##0.000");
    }

    #[test]
    fn beancount_strings_are_escaped_on_one_line() {
        assert_eq!(bean_string("a\"b\\c\nd"), "\"a\\\"b\\\\c d\"");
    }

    #[test]
    fn ledger_payees_never_start_a_code_or_note() {
        assert_eq!(ledger_payee("L-1"), "L-1");
        assert_eq!(ledger_payee("(x) y"), "line (x) y");
        assert_eq!(ledger_payee(""), "line ");
        assert_eq!(ledger_payee("a\nb"), "a b");
    }
}
