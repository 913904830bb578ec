//! `compare`: the same costs allocated under the base agreement (files, or a
//! ledger's agreement versions) and under each `--against` agreement,
//! grouped by the same dimensions, row by row.
//!
//! The lines are parsed once, against the base. Each other agreement
//! allocates all of them together ([`costshare_core::compare::allocate_under`]:
//! categories and parties matched by id); a line it cannot take (its category
//! missing there, its date outside that term, no quantity for a unit
//! category) is UNALLOCATED under it, and the observer hears of it. Rows are
//! the union of the groups non-zero under any agreement, in `report`'s order.

use crate::currency::{Conversion, CurrencyRequest, LineRates, run_with_rates};
use crate::error::{AppError, UsageError};
use crate::input::{LoadedAgreement, Session, Source, load_agreement};
use crate::run::Provenance;
use costshare_core::Agreement;
use costshare_core::alloc::Allocation;
use costshare_core::calendar::Date;
use costshare_core::compare::{Group, ReallocError, Unallocated, allocate_under};
use costshare_core::costs::CostLine;
use costshare_core::money::Currency;
use costshare_core::report::{self, Dim, Row};
use std::collections::HashMap;
use std::path::PathBuf;

/// One `--against` agreement as loaded.
#[derive(Clone, Debug)]
pub struct AgainstRef {
    /// Its `[agreement] id` (names its CSV columns).
    pub id: String,
    pub sha256: String,
    /// The file as the user named it.
    pub path: String,
}

/// One row: the dimension values and one amount per agreement (the base's
/// first, then each against's in order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompareRow {
    pub values: Vec<String>,
    pub amounts: Vec<i64>,
}

impl CompareRow {
    /// `amount − amount_against` for against `k` (0-based).
    pub fn delta(&self, k: usize) -> i128 {
        self.amounts[0] as i128 - self.amounts[k + 1] as i128
    }
}

/// Lines an against agreement left UNALLOCATED, and why.
#[derive(Clone, Debug)]
pub struct AgainstUnallocated {
    /// Index into `CompareResult::against`.
    pub against: usize,
    pub what: Unallocated,
}

/// The result of `compare`.
pub struct CompareResult {
    /// The base agreement (the latest version of a ledger's).
    pub agreement: Agreement,
    pub against: Vec<AgainstRef>,
    pub dims: Vec<Dim>,
    pub rows: Vec<CompareRow>,
    /// Per column (base, then each against): the sum of its rows.
    pub totals: Vec<i128>,
    /// The currency of every amount (the agreement's, or the reporting currency).
    pub currency: Currency,
    /// Set with `--currency`.
    pub conversion: Option<Conversion>,
    pub unallocated: Vec<AgainstUnallocated>,
    /// Of the base run.
    pub provenance: Provenance,
}

/// `compare`: `source` (the base) against each agreement file of `against`.
/// Two against files with one `[agreement] id` are a usage error (their
/// columns would share a name).
pub fn compare(
    source: &Source,
    against: &[PathBuf],
    dims: &[Dim],
    as_of: Date,
    currency: Option<&CurrencyRequest>,
    s: &mut Session<'_>,
) -> Result<CompareResult, AppError> {
    compare_filtered(
        source,
        against,
        dims,
        as_of,
        currency,
        &crate::filter::DateFilter::NONE,
        s,
    )
}

/// [`compare`] with a date filter: every line is allocated under each
/// agreement over the whole history (caps run in date order), then only the
/// lines dated in the filter's range are grouped into rows.
pub fn compare_filtered(
    source: &Source,
    against: &[PathBuf],
    dims: &[Dim],
    as_of: Date,
    currency: Option<&CurrencyRequest>,
    filter: &crate::filter::DateFilter,
    s: &mut Session<'_>,
) -> Result<CompareResult, AppError> {
    let mut others: Vec<(String, LoadedAgreement)> = Vec::with_capacity(against.len());
    for p in against {
        others.push((p.display().to_string(), load_agreement(p, s.observer)?));
    }
    compare_loaded(source, &others, dims, as_of, currency, filter, s)
}

/// [`compare_filtered`] with the other agreements already loaded, each with
/// the name its output calls it by (a path as the user named it, or a file
/// name sent to the server). Warnings of loading are not said again here.
pub fn compare_loaded(
    source: &Source,
    others: &[(String, LoadedAgreement)],
    dims: &[Dim],
    as_of: Date,
    currency: Option<&CurrencyRequest>,
    filter: &crate::filter::DateFilter,
    s: &mut Session<'_>,
) -> Result<CompareResult, AppError> {
    if others.is_empty() {
        return Err(UsageError::NoAgainst.into());
    }
    for (k, (_, o)) in others.iter().enumerate() {
        if others[..k].iter().any(|(_, e)| e.agreement.id == o.agreement.id) {
            return Err(UsageError::DuplicateAgainst(o.agreement.id.clone()).into());
        }
    }
    let (r, rates) = run_with_rates(source, as_of, s.observer)?;
    let main = r.main().la.agreement.clone();
    let range = filter.resolve(&main)?;
    let groups: Vec<Group<'_>> = r
        .parts
        .iter()
        .map(|p| Group {
            agreement: &p.la.agreement,
            lines: &p.costs.lines,
        })
        .collect();
    // columns[k][part]: the allocation of column k (0 = base) for a part's lines
    let mut columns: Vec<Vec<Allocation>> = vec![r.parts.iter().map(|p| p.alloc.clone()).collect()];
    let mut unallocated = Vec::new();
    for (k, (path, o)) in others.iter().enumerate() {
        let re = allocate_under(&o.agreement, &groups, as_of).map_err(|e| against_error(path, e))?;
        for u in re.unallocated {
            s.observer.compare_unallocated(&o.agreement, path, &u);
            unallocated.push(AgainstUnallocated { against: k, what: u });
        }
        columns.push(re.parts);
    }
    let mut conversion = None;
    let mut out_ccy = main.currency;
    if let Some(req) = currency {
        let lines: Vec<&[CostLine]> = r.parts.iter().map(|p| p.costs.lines.as_slice()).collect();
        let lr = LineRates::of(&main, &lines, &rates, req)?;
        for col in &mut columns {
            for (pi, a) in col.iter_mut().enumerate() {
                *a = lr.convert(&r.parts[pi].costs.lines, a)?;
            }
        }
        out_ccy = lr.conv.to;
        conversion = Some(lr);
    }
    // each column grouped as `report` groups (versions merged)
    let mut col_rows: Vec<Vec<Row>> = Vec::with_capacity(columns.len());
    for col in &columns {
        let mut per = Vec::with_capacity(r.parts.len());
        for (pi, a) in col.iter().enumerate() {
            let p = &r.parts[pi];
            let lines = &p.costs.lines;
            per.push(
                report::report_where(&p.la.agreement, lines, a, dims, |i| range.contains(lines[i].date))
                    .map_err(too_large)?,
            );
        }
        col_rows.push(report::merge(&main, dims, per).map_err(too_large)?);
    }
    let rows = line_up(&main, dims, &col_rows)?;
    let mut totals = vec![0i128; columns.len()];
    for row in &rows {
        for (t, a) in totals.iter_mut().zip(&row.amounts) {
            *t += *a as i128;
        }
    }
    let conversion = match conversion {
        None => None,
        Some(lr) => {
            let parts: Vec<(&Agreement, &[CostLine], Vec<&Allocation>)> = r
                .parts
                .iter()
                .enumerate()
                .map(|(pi, p)| {
                    (
                        &p.la.agreement,
                        p.costs.lines.as_slice(),
                        columns.iter().map(|c| &c[pi]).collect(),
                    )
                })
                .collect();
            let values: Vec<Vec<String>> = rows.iter().map(|r| r.values.clone()).collect();
            let row_rates = lr.row_rates(&parts, dims, &values)?;
            Some(Conversion {
                from: lr.conv.from,
                to: lr.conv.to,
                policy: lr.conv.policy.clone(),
                rates: lr.rates.clone(),
                row_rates,
            })
        }
    };
    Ok(CompareResult {
        against: others
            .iter()
            .map(|(p, o)| AgainstRef {
                id: o.agreement.id.clone(),
                sha256: o.sha256.clone(),
                path: p.clone(),
            })
            .collect(),
        dims: dims.to_vec(),
        rows,
        totals,
        currency: out_ccy,
        conversion,
        unallocated,
        provenance: r.provenance(),
        agreement: main,
    })
}

fn too_large(e: report::TotalTooLarge) -> AppError {
    AppError::TotalTooLarge { group: e.group }
}

fn against_error(path: &str, e: ReallocError) -> AppError {
    let path = path.to_string();
    match e {
        ReallocError::Currency { base, other } => AppError::AgainstCurrency { path, base, other },
        ReallocError::Parties { base, other } => AppError::AgainstParties { path, base, other },
    }
}

/// Every group non-zero in any column, in `report`'s order (the order
/// [`report::merge`] gives: each column's groups counted once, so none sums
/// to zero), with each column's amount (zero where it has none).
fn line_up(main: &Agreement, dims: &[Dim], cols: &[Vec<Row>]) -> Result<Vec<CompareRow>, AppError> {
    let marks: Vec<Vec<Row>> = cols
        .iter()
        .map(|rows| {
            rows.iter()
                .map(|r| Row {
                    values: r.values.clone(),
                    amount: 1,
                })
                .collect()
        })
        .collect();
    let order = report::merge(main, dims, marks).map_err(too_large)?;
    let by_col: Vec<HashMap<&[String], i64>> = cols
        .iter()
        .map(|rows| rows.iter().map(|r| (r.values.as_slice(), r.amount)).collect())
        .collect();
    Ok(order
        .into_iter()
        .map(|o| {
            let amounts = by_col
                .iter()
                .map(|m| m.get(o.values.as_slice()).copied().unwrap_or(0))
                .collect();
            CompareRow {
                values: o.values,
                amounts,
            }
        })
        .collect())
}
