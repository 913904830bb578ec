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
    /// The latest agreement version (calendar, titles; its currency is the
    /// money caps' unless `--currency` converted them).
    pub agreement: Agreement,
    /// With `--currency`: the rate policy's name (the money figures are then
    /// in `agreement.currency`, replaced by the reporting currency).
    pub policy: Option<&'static str>,
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
        policy: None,
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
    keep_overlapping(&mut r, filter)?;
    Ok(r)
}

/// Keep the rows whose cap period overlaps the filter's range.
fn keep_overlapping(r: &mut CeilingsResult, filter: &crate::filter::DateFilter) -> Result<(), AppError> {
    let range = filter.resolve(&r.agreement)?;
    let (start, end) = (r.agreement.start, r.agreement.end);
    r.rows
        .retain(|row| range.overlaps(row.period.first_day(start), row.period.last_day(end)));
    Ok(())
}

/// [`ceilings_filtered`] in a reporting currency (`--currency`): each money
/// row's cap, use and monthly steps converted at ONE rate, the policy's rate
/// for the row's last day or the as-of date, whichever is earlier (spot: the
/// latest rate on or before it; fiscal-year-average: its fiscal year's mean;
/// fixed: that rate), each figure rounded half to even (the rule of
/// [`costshare_core::convert::Converter::convert_parts`]); remaining is
/// then cap − use in the new currency. Head-count rows are unchanged.
pub fn ceilings_converted(
    source: &crate::input::Source,
    as_of: Date,
    filter: &crate::filter::DateFilter,
    req: &crate::currency::CurrencyRequest,
    observer: &mut dyn Observer,
) -> Result<CeilingsResult, AppError> {
    use costshare_core::ceilings::Measure;
    let (run, rates) = crate::currency::run_with_rates(source, as_of, observer)?;
    let mut r = of_run(&run);
    keep_overlapping(&mut r, filter)?;
    let end = r.agreement.end;
    let conv = costshare_core::convert::Converter::new(&r.agreement, &rates, &req.code, req.policy.clone())
        .map_err(AppError::Convert)?;
    for row in &mut r.rows {
        let Measure::Money { cap, used } = row.measure else {
            continue;
        };
        let at = row.period.last_day(end).min(as_of);
        let mut figures = vec![cap, used];
        figures.extend(row.steps.iter().map(|s| s.1));
        let (c, _) = conv.convert_parts(at, &figures).map_err(AppError::Convert)?;
        row.measure = Measure::Money { cap: c[0], used: c[1] };
        for (s, v) in row.steps.iter_mut().zip(&c[2..]) {
            s.1 = *v;
        }
    }
    r.agreement = r.agreement.with_currency(conv.to);
    r.policy = Some(conv.policy.name());
    Ok(r)
}
