//! `ceilings`: how much of each ceiling (capped layer and cap period) is
//! used, when use reached the cap, and when the run rate says it will. The
//! rows come from the core ([`costshare_core::ceilings`]), over every agreement
//! version of the run.

use crate::error::AppError;
use crate::input::Observer;
use crate::run::{Provenance, Run, run};
use costshare_core::Agreement;
use costshare_core::calendar::Date;
use costshare_core::ceilings::{CeilingRow, Version, ceilings as rows_of};

/// Ceiling use as of a date.
pub struct CeilingsResult {
    /// The latest agreement version (currency, calendar, titles).
    pub agreement: Agreement,
    pub rows: Vec<CeilingRow>,
    pub provenance: Provenance,
}

/// The ceiling rows of a run (every version; see the core's module for the
/// rules of which periods appear and how versions merge).
pub fn of_run(r: &Run) -> CeilingsResult {
    let versions: Vec<Version<'_>> = r
        .parts
        .iter()
        .map(|p| Version {
            agreement: &p.la.agreement,
            usage: &p.alloc.usage,
        })
        .collect();
    CeilingsResult {
        agreement: r.main().la.agreement.clone(),
        rows: rows_of(&versions, r.as_of),
        provenance: r.provenance(),
    }
}

/// `ceilings` from files or a ledger.
pub fn ceilings(
    source: &crate::input::Source,
    as_of: Date,
    observer: &mut dyn Observer,
) -> Result<CeilingsResult, AppError> {
    Ok(of_run(&run(source, as_of, observer)?))
}

/// [`ceilings`] with a date filter: the rows of the cap periods that overlap
/// the filter's range (a period's use is always the whole period's).
pub fn ceilings_filtered(
    source: &crate::input::Source,
    as_of: Date,
    filter: &crate::filter::DateFilter,
    observer: &mut dyn Observer,
) -> Result<CeilingsResult, AppError> {
    let mut r = ceilings(source, as_of, observer)?;
    let range = filter.resolve(&r.agreement)?;
    let (start, end) = (r.agreement.start, r.agreement.end);
    r.rows.retain(|row| {
        let (first, last) = (row.period.first_day(start), row.period.last_day(end));
        range.from.is_none_or(|f| last >= f) && range.to.is_none_or(|t| first <= t)
    });
    Ok(r)
}
