//! `forecast`: actual lines and lines projected at the run rate
//! ([`costshare_core::forecast`]) allocated together under the agreement,
//! caps included, and reported by dimensions with the actual and projected
//! parts apart.
//!
//! A ledger with several agreement versions: the run rate reads every
//! version's lines (categories matched by id to the latest version); the
//! projected lines are allocated with the latest version's lines, under it
//! and with the use it carries over; earlier versions' lines count as they
//! are.

use crate::error::{AppError, BadFile, FileKind};
use crate::input::{Observer, Source, read};
use crate::run::{Provenance, run};
use costshare_core::Agreement;
use costshare_core::alloc::{self, Allocation};
use costshare_core::calendar::Date;
use costshare_core::costs::CostLine;
use costshare_core::costs::parse_budget;
use costshare_core::forecast::{Projection, project};
use costshare_core::report::{self, Dim};
use std::collections::HashMap;

/// One group: the allocation of actual lines, of projected lines, and both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForecastRow {
    pub values: Vec<String>,
    pub actual: i64,
    pub forecast: i64,
    pub amount: i64,
}

pub struct ForecastResult {
    pub agreement: Agreement,
    pub dims: Vec<Dim>,
    pub rows: Vec<ForecastRow>,
    pub until: Date,
    /// The projection: window, months, lines, months beyond the term.
    pub projection: Projection,
    pub provenance: Provenance,
}

fn too_large(e: report::TotalTooLarge) -> AppError {
    AppError::TotalTooLarge { group: e.group }
}

/// `forecast` from files or a ledger, projected to `until`, with a budget
/// CSV replacing the run rate where it has rows.
pub fn forecast(
    source: &Source,
    until: Date,
    dims: &[Dim],
    budget: Option<&std::path::Path>,
    as_of: Date,
    observer: &mut dyn Observer,
) -> Result<ForecastResult, AppError> {
    forecast_filtered(
        source,
        until,
        dims,
        budget,
        as_of,
        &crate::filter::DateFilter::NONE,
        observer,
    )
}

/// [`forecast`] with a date filter: actual and projected lines are allocated
/// together over the whole history, then only the lines (actual or
/// projected) dated in the range are totalled.
pub fn forecast_filtered(
    source: &Source,
    until: Date,
    dims: &[Dim],
    budget: Option<&std::path::Path>,
    as_of: Date,
    filter: &crate::filter::DateFilter,
    observer: &mut dyn Observer,
) -> Result<ForecastResult, AppError> {
    let bytes = match budget {
        None => None,
        Some(p) => Some((p.display().to_string(), read(p, FileKind::Budget)?)),
    };
    let budget = bytes.as_ref().map(|(name, b)| (name.as_str(), b.as_slice()));
    forecast_budget_bytes(source, until, dims, budget, as_of, filter, observer)
}

/// [`forecast_filtered`] with the budget CSV already read: `(name, bytes)`,
/// the name being what errors call the file.
pub fn forecast_budget_bytes(
    source: &Source,
    until: Date,
    dims: &[Dim],
    budget: Option<(&str, &[u8])>,
    as_of: Date,
    filter: &crate::filter::DateFilter,
    observer: &mut dyn Observer,
) -> Result<ForecastResult, AppError> {
    let r = run(source, as_of, observer)?;
    let main = r.main();
    let ag = &main.la.agreement;
    let range = filter.resolve(ag)?;
    let budget = match budget {
        None => Vec::new(),
        Some((name, bytes)) => parse_budget(ag, bytes).map_err(|errors| {
            AppError::BadRows(vec![BadFile {
                path: name.to_string(),
                kind: FileKind::Budget,
                errors,
            }])
        })?,
    };
    // every version's lines, categories as the latest version indexes them
    let mut actual: Vec<CostLine> = Vec::new();
    for p in &r.parts {
        for l in &p.costs.lines {
            if let Some(c) = ag.category_index(&p.la.agreement.categories[l.category].id) {
                let mut l = l.clone();
                l.category = c;
                actual.push(l);
            }
        }
    }
    let projection = project(ag, &actual, as_of, until, &budget);
    drop(actual);
    // each version's lines and the projected lines dated while it is in
    // force (categories matched by id), allocated together under that
    // version, versions in order: each one's carry is recomputed from the
    // earlier versions' allocations, projected lines included (SPEC section 8)
    let n = r.parts.len();
    let mut joint: Vec<(Vec<CostLine>, usize, Allocation)> = Vec::with_capacity(n);
    for (k, p) in r.parts.iter().enumerate() {
        let pag = &p.la.agreement;
        let until_next = r.parts.get(k + 1).map(|q| q.effective);
        let mut lines = p.costs.lines.clone();
        let n_actual = lines.len();
        for l in &projection.lines {
            let in_force = (k == 0 || l.date >= p.effective) && until_next.is_none_or(|e| l.date < e);
            if !in_force {
                continue;
            }
            if let Some(c) = pag.category_index(&ag.categories[l.category].id) {
                let mut l = l.clone();
                l.category = c;
                lines.push(l);
            }
        }
        let carry = if k == 0 {
            p.carry.clone()
        } else {
            let earlier: Vec<alloc::Earlier<'_>> = r.parts[..k]
                .iter()
                .zip(&joint)
                .map(|(q, (_, _, a))| alloc::Earlier {
                    version: q.version,
                    agreement: &q.la.agreement,
                    usage: &a.usage,
                })
                .collect();
            alloc::carry_into(pag, p.effective, &earlier)
        };
        let a = alloc::allocate_carried(pag, lines.as_slice(), as_of, &carry);
        joint.push((lines, n_actual, a));
    }
    let mut per = Vec::with_capacity(n);
    let mut per_projected = Vec::with_capacity(n);
    for (p, (lines, n_actual, a)) in r.parts.iter().zip(&joint) {
        let pag = &p.la.agreement;
        per.push(report::report_where(pag, lines, a, dims, |i| range.contains(lines[i].date)).map_err(too_large)?);
        per_projected.push(
            report::report_where(pag, lines, a, dims, |i| i >= *n_actual && range.contains(lines[i].date))
                .map_err(too_large)?,
        );
    }
    let total = report::merge(ag, dims, per).map_err(too_large)?;
    let projected = report::merge(ag, dims, per_projected).map_err(too_large)?;
    let fc: HashMap<Vec<String>, i64> = projected.into_iter().map(|r| (r.values, r.amount)).collect();
    let rows = total
        .into_iter()
        .map(|t| {
            let f = fc.get(&t.values).copied().unwrap_or(0);
            ForecastRow {
                actual: t.amount - f,
                forecast: f,
                amount: t.amount,
                values: t.values,
            }
        })
        .collect();
    let mut provenance = r.provenance();
    provenance.provisional = joint
        .iter()
        .map(|(_, n_actual, a)| a.provisional[..*n_actual].iter().filter(|&&x| x).count())
        .sum();
    Ok(ForecastResult {
        agreement: ag.clone(),
        dims: dims.to_vec(),
        rows,
        until,
        projection,
        provenance,
    })
}
