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
    let r = query::report(source, &REPORT_DIMS, as_of, s)?;
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
