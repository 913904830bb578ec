//! `--chart FILE.svg`: the chart of a result, computed by the same request
//! functions as the result itself, and written to a file. The drawing is
//! [`crate::render::chart`] (pure); this module only chooses the figures and
//! writes the file.

use crate::error::AppError;
use crate::input::{Session, Source};
use crate::query::{self, ReportResult};
use crate::render::chart;
use costshare_core::calendar::Date;
use costshare_core::report::Dim;
use std::path::Path;

/// The dimensions a report chart always shows.
pub const REPORT_DIMS: [Dim; 2] = [Dim::Party, Dim::FiscalYear];

/// Whether a report already holds the chart's figures (by party and fiscal
/// year, in either order).
fn by_party_and_year(r: &ReportResult) -> bool {
    r.dims.len() == 2 && REPORT_DIMS.iter().all(|d| r.dims.contains(d))
}

/// The SVG of a report's stacked bars per party per fiscal year. `done` is
/// the report just computed: used as it is when it is by party and fiscal
/// year, else the same report function runs again with those dimensions, so
/// the chart's figures equal `report --by party,fiscal_year`.
pub fn report_svg(source: &Source, as_of: Date, done: &ReportResult, s: &mut Session<'_>) -> Result<String, AppError> {
    if by_party_and_year(done) {
        return Ok(chart::stacked_bars(&chart::report_bars(done)));
    }
    // the same date filter as the report it goes with
    let filter = crate::filter::DateFilter {
        from: done.range.from,
        to: done.range.to,
        period: None,
    };
    let r = query::report_filtered(source, &REPORT_DIMS, as_of, &filter, s)?;
    Ok(chart::stacked_bars(&chart::report_bars(&r)))
}

/// Write a chart (or any rendered text) to `path`; `AppError::Write` naming
/// the file if it cannot be written.
pub fn save(path: &Path, svg: &str) -> Result<(), AppError> {
    std::fs::write(path, svg).map_err(|error| AppError::Write {
        path: path.display().to_string(),
        error,
    })
}

/// The SVG of a comparison's delta per party (amount − amount under each
/// against agreement). `done` is the comparison just computed: used as it is
/// when it is by party alone, else the same comparison runs again by party,
/// so the chart's figures equal `compare --by party`.
pub fn compare_svg(
    source: &Source,
    against: &[std::path::PathBuf],
    as_of: Date,
    currency: Option<&crate::currency::CurrencyRequest>,
    filter: &crate::filter::DateFilter,
    done: &crate::compare::CompareResult,
    s: &mut Session<'_>,
) -> Result<String, AppError> {
    if done.dims == [Dim::Party] {
        return Ok(chart::delta_bars(&compare_bars(done)));
    }
    let mut others = Vec::with_capacity(against.len());
    for p in against {
        others.push((p.display().to_string(), crate::input::load_agreement(p, s.observer)?));
    }
    compare_svg_loaded(source, &others, as_of, currency, filter, done, s)
}

/// [`compare_svg`] with the other agreements already loaded (named as in
/// [`crate::compare::compare_loaded`]).
pub fn compare_svg_loaded(
    source: &Source,
    others: &[(String, crate::input::LoadedAgreement)],
    as_of: Date,
    currency: Option<&crate::currency::CurrencyRequest>,
    filter: &crate::filter::DateFilter,
    done: &crate::compare::CompareResult,
    s: &mut Session<'_>,
) -> Result<String, AppError> {
    if done.dims == [Dim::Party] {
        return Ok(chart::delta_bars(&compare_bars(done)));
    }
    let r = crate::compare::compare_loaded(source, others, &[Dim::Party], as_of, currency, filter, s)?;
    Ok(chart::delta_bars(&compare_bars(&r)))
}

/// The delta bars of a comparison by party: parties in agreement order, then
/// UNALLOCATED when any column has some.
pub fn compare_bars(r: &crate::compare::CompareResult) -> chart::DeltaBars {
    let a = &r.agreement;
    let mut parties: Vec<String> = a.parties.iter().map(|p| p.id.clone()).collect();
    let unalloc = crate::run::party_name(a, a.parties.len()).to_string();
    if r.rows.iter().any(|row| row.values.first() == Some(&unalloc)) {
        parties.push(unalloc);
    }
    let against = r
        .against
        .iter()
        .enumerate()
        .map(|(k, ag)| {
            let deltas = parties
                .iter()
                .map(|p| {
                    r.rows
                        .iter()
                        .filter(|row| row.values.first() == Some(p))
                        .map(|row| row.delta(k))
                        .sum()
                })
                .collect();
            (ag.id.clone(), deltas)
        })
        .collect();
    chart::DeltaBars {
        title: format!("{} minus each other agreement, by party", a.id),
        note: chart::provenance_note(&r.provenance),
        unit_label: r.currency.code().to_string(),
        currency_decimals: r.currency.decimals(),
        parties,
        against,
    }
}

/// The SVG of every ceiling's use over time (one panel per capped layer).
pub fn ceilings_svg(r: &crate::ceilings::CeilingsResult) -> String {
    chart::ceiling_use(&ceiling_panels(r))
}

/// The ceiling chart's figures from `ceilings`' rows: one panel per capped
/// layer, one period per row. Money: the cap and the monthly cumulative use
/// the allocator recorded ([`costshare_core::alloc::CapUse::steps`]), exact in
/// minor units. Head counts: the cap and the use in whole units, rounded
/// down (a chart cannot draw a fraction of a worker's bar usefully), as one
/// step at the period's end or the as-of date.
pub fn ceiling_panels(r: &crate::ceilings::CeilingsResult) -> chart::CeilingUse {
    use costshare_core::ceilings::Measure;
    let a = &r.agreement;
    let as_of = r.provenance.as_of;
    let mut ceilings: Vec<chart::Ceiling> = Vec::new();
    for row in &r.rows {
        let label = format!("{} · layer {}", row.category, row.layer);
        let start = row.period.first_day(a.start);
        let end = row.period.last_day(a.end);
        // an open period's use is drawn up to the as-of date (for a period
        // recorded ahead of it, from its first day)
        let known_until = row.open.then_some(as_of.max(start));
        let (unit_label, decimals, cap, steps) = match &row.measure {
            Measure::Money { cap, .. } => (
                a.currency.code().to_string(),
                a.currency.decimals(),
                *cap as i128,
                row.steps.iter().map(|&(d, m)| (d, m as i128)).collect(),
            ),
            Measure::Units { cap, used } => {
                let at = known_until.unwrap_or(end).min(end);
                let used = used.mul_int_floor_rem(1).floor_u128() as i128;
                (
                    row.unit.clone().unwrap_or_else(|| "units".into()),
                    0,
                    cap.mul_int_floor_rem(1).floor_u128() as i128,
                    if used > 0 { vec![(at, used)] } else { Vec::new() },
                )
            }
        };
        let period = chart::CapPeriod {
            label: row.period.code(&a.calendar),
            start,
            end,
            cap,
            steps,
            bound_on: row.bound_on,
            known_until,
            forecast_bound_on: row.forecast_bound_on,
        };
        match ceilings.last_mut() {
            Some(c) if c.label == label => c.periods.push(period),
            _ => ceilings.push(chart::Ceiling {
                label,
                unit_label,
                decimals,
                periods: vec![period],
            }),
        }
    }
    chart::CeilingUse {
        title: format!("Ceiling use · {}", a.id),
        note: chart::provenance_note(&r.provenance),
        ceilings,
    }
}
