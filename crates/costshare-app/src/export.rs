//! `export`: the allocation (every line's parts, as `allocate` computes them)
//! written for other tools: a Ledger 3 journal, a Beancount file, a tidy CSV,
//! JSON, or an Excel workbook. The formats themselves are written by
//! [`crate::render::export`]; this module holds the request, the rows every
//! format shares, and the two rules of the boundary:
//!
//! - [`account_component`]: the one mapping of a party or category id to a
//!   component of an account name that Beancount accepts (distinct ids stay
//!   distinct);
//! - [`neutralise`]: the one guard that keeps a text field of the CSV or the
//!   workbook from starting a spreadsheet formula.

use crate::error::AppError;
use crate::input::{Session, Source};
use crate::query;
use crate::run::{Provenance, Run, party_name};
use costshare_core::calendar::Date;
use std::borrow::Cow;
use std::path::Path;

/// An export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// A journal for Ledger 3 (`ledger -f FILE balance`).
    Ledger,
    /// A Beancount file (`bean-check`, `bean-query`).
    Beancount,
    /// Tidy CSV: `id,date,category,site,party,amount,currency`.
    Csv,
    /// The allocation as JSON (the shape of `allocate --format json`).
    Json,
    /// An Excel workbook: the tidy rows and a sheet per report.
    Xlsx,
}

impl ExportFormat {
    /// Whether the format is binary (a workbook), so it cannot go to a terminal.
    pub fn is_binary(self) -> bool {
        self == ExportFormat::Xlsx
    }
}

/// The exported bytes: text for the text formats, bytes for the workbook.
#[derive(Debug)]
pub enum Exported {
    Text(String),
    Binary(Vec<u8>),
}

impl Exported {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Exported::Text(t) => t.as_bytes(),
            Exported::Binary(b) => b,
        }
    }
}

/// An export: what was written, and where it came from.
pub struct ExportResult {
    pub format: ExportFormat,
    pub output: Exported,
    pub provenance: Provenance,
    /// Tidy rows (one per line and party with a non-zero part).
    pub rows: usize,
}

/// `export`: the allocation of `source` in `format`.
pub fn export(
    source: &Source,
    as_of: Date,
    format: ExportFormat,
    filter: &crate::filter::DateFilter,
    s: &mut Session<'_>,
) -> Result<ExportResult, AppError> {
    let run = query::allocate_filtered(source, as_of, filter, s)?;
    export_run(&run, format)
}

/// An allocation already computed, in `format`.
pub fn export_run(run: &Run, format: ExportFormat) -> Result<ExportResult, AppError> {
    let rows = tidy_rows(run);
    let output = crate::render::export::render(run, &rows, format)?;
    Ok(ExportResult {
        format,
        output,
        provenance: run.provenance(),
        rows: rows.len(),
    })
}

/// Write an export to `path` (whole, or not at all: a temporary file beside
/// it is renamed over it).
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), AppError> {
    let err = |error| AppError::Write {
        path: path.display().to_string(),
        error,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.costshare-tmp"));
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// One line's part for one party: a row of the tidy CSV and of the
/// workbook's `allocation` sheet, and a posting of the journals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TidyRow<'a> {
    pub id: &'a str,
    pub date: Date,
    pub category: &'a str,
    pub site: &'a str,
    pub party: &'a str,
    /// Minor units of the agreement currency.
    pub amount: i64,
}

/// Every non-zero part of every line, in the order of `allocate` (lines by
/// date then id, parties in agreement order, `UNALLOCATED` last).
pub fn tidy_rows(r: &Run) -> Vec<TidyRow<'_>> {
    let mut out = Vec::with_capacity(r.line_count() * 2);
    for part in &r.parts {
        let a = &part.la.agreement;
        for &i in &part.alloc.order {
            let l = &part.costs.lines[i as usize];
            for (p, &v) in part.alloc.row(i as usize).iter().enumerate() {
                if v != 0 {
                    out.push(TidyRow {
                        id: &l.id,
                        date: l.date,
                        category: &a.categories[l.category].id,
                        site: &l.site,
                        party: party_name(a, p),
                        amount: v,
                    });
                }
            }
        }
    }
    out
}

/// A text field made safe for a spreadsheet: a field that starts with `=`,
/// `+`, `-`, `@`, a tab or a carriage return would be read as a formula (CSV
/// injection), so it gets a leading `'` (the mark spreadsheets use for
/// "text"). Every text field of the CSV export and of the workbook passes
/// through here; amounts and dates do not (they are numbers and ISO dates).
/// Other fields are returned as they are.
pub fn neutralise(s: &str) -> Cow<'_, str> {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

/// A party or category id as one component of an account name, valid for
/// Beancount (a component starts with a capital letter or a digit and holds
/// only letters, digits and `-`) and for Ledger. The rule:
///
/// 1. every byte other than an ASCII letter or digit is written `-XX`, its
///    two upper-case hex digits (`_` → `-5F`, `-` → `-2D`);
/// 2. an id that starts with a capital letter or a digit is then complete
///    (`JP`, `UNALLOCATED`, `US-5FFORCES` for `US_FORCES`);
/// 3. any other id (a lower-case first letter, or a first byte that is not a
///    letter or digit) is prefixed with `X-` (`labor` → `X-labor`).
///
/// Distinct ids give distinct components: step 1 is reversible (a `-` is
/// always followed by exactly two hex digits), and a prefixed result cannot
/// equal an unprefixed one: it would need an id starting with `X` followed by
/// an escaped byte whose two hex digits begin the other id's encoding, which
/// starts with a lower-case letter or `-`, never an upper-case hex digit.
pub fn account_component(id: &str) -> String {
    let mut out = String::with_capacity(id.len() + 2);
    let plain = matches!(id.as_bytes().first(), Some(b) if b.is_ascii_uppercase() || b.is_ascii_digit());
    if !plain {
        out.push_str("X-");
    }
    for &b in id.as_bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("-{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutralise_prefixes_exactly_the_formula_starts() {
        for s in ["=1+1", "+A1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(s), format!("'{s}"), "{s:?}");
        }
        for s in ["", "L-1", "a=b", " =x", "'=x", "Okinawa", "1-2"] {
            assert_eq!(neutralise(s), s, "{s:?}");
        }
    }

    fn beancount_valid(c: &str) -> bool {
        let mut b = c.bytes();
        matches!(b.next(), Some(x) if x.is_ascii_uppercase() || x.is_ascii_digit())
            && b.all(|x| x.is_ascii_alphanumeric() || x == b'-')
    }

    #[test]
    fn account_components_are_valid_and_readable() {
        assert_eq!(account_component("JP"), "JP");
        assert_eq!(account_component("UNALLOCATED"), "UNALLOCATED");
        assert_eq!(account_component("labor"), "X-labor");
        assert_eq!(account_component("US_FORCES"), "US-5FFORCES");
        assert_eq!(account_component("a-b"), "X-a-2Db");
        assert_eq!(account_component("é"), "X--C3-A9");
        for id in ["", "x", "_", "-", "Z", "9a", "a b", "ü", "X-a", "X_a"] {
            let c = account_component(id);
            assert!(id.is_empty() || beancount_valid(&c), "{id:?} -> {c:?}");
        }
    }

    /// Distinct ids stay distinct: every id over a small alphabet up to
    /// length 3, including the shapes that look like each other's encodings.
    #[test]
    fn account_component_is_injective() {
        let alphabet = ["a", "l", "X", "x", "5", "F", "_", "-", "C", "2", "D"];
        let mut ids = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..3 {
            let mut next = Vec::new();
            for s in &frontier {
                for c in alphabet {
                    next.push(format!("{s}{c}"));
                }
            }
            ids.extend(next.iter().cloned());
            frontier = next;
        }
        let mut seen = std::collections::HashMap::new();
        for id in &ids {
            if let Some(other) = seen.insert(account_component(id), id.clone()) {
                panic!("{id:?} and {other:?} both map to {:?}", account_component(id));
            }
        }
        assert!(seen.len() > 1000);
    }
}
