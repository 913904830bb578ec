//! Date filters on cost dates (`--from`, `--to`, `--period`): a typed
//! request, resolved against the loaded agreement into the core's
//! [`DateRange`], and [`Run::restrict`], which keeps only the lines in range.
//!
//! Costs are always allocated over the whole history (running caps depend on
//! earlier lines); a filter only chooses which allocated lines are reported.
//! Every command that reports lines calls [`Run::restrict`] after its run.

use crate::error::{AppError, UsageError};
use crate::run::Run;
use costshare_core::Agreement;
use costshare_core::alloc::Allocation;
use costshare_core::calendar::{Date, DateRange, FiscalYear};
use costshare_core::costs::Costs;

/// A filter on cost dates as asked: `from`/`to` (inclusive), or a fiscal
/// year label (`FY2023`), which only the agreement's calendar can turn into
/// dates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DateFilter {
    pub from: Option<Date>,
    pub to: Option<Date>,
    pub period: Option<String>,
}

impl DateFilter {
    /// No filter: every line.
    pub const NONE: DateFilter = DateFilter {
        from: None,
        to: None,
        period: None,
    };

    /// The filter of `--from`, `--to` and `--period` as typed: dates must be
    /// `YYYY-MM-DD`, `--period` is not given with `--from`/`--to`, `--from`
    /// is not after `--to`, and the period is a fiscal-year label.
    pub fn parse(from: Option<&str>, to: Option<&str>, period: Option<&str>) -> Result<DateFilter, UsageError> {
        let date = |flag: &'static str, t: Option<&str>| -> Result<Option<Date>, UsageError> {
            match t {
                None => Ok(None),
                Some(t) => Date::parse(t).map(Some).ok_or_else(|| UsageError::FilterDate {
                    flag,
                    text: t.to_string(),
                }),
            }
        };
        let f = DateFilter {
            from: date("--from", from)?,
            to: date("--to", to)?,
            period: period.map(str::to_string),
        };
        f.check()?;
        Ok(f)
    }

    /// Whether no filter was asked for.
    pub fn is_none(&self) -> bool {
        self.from.is_none() && self.to.is_none() && self.period.is_none()
    }

    fn check(&self) -> Result<Option<FiscalYear>, UsageError> {
        if let Some(p) = &self.period {
            if self.from.is_some() || self.to.is_some() {
                return Err(UsageError::PeriodWithRange);
            }
            return FiscalYear::parse(p)
                .map(Some)
                .ok_or_else(|| UsageError::Period(p.clone()));
        }
        if let (Some(f), Some(t)) = (self.from, self.to)
            && f > t
        {
            return Err(UsageError::FromAfterTo { from: f, to: t });
        }
        Ok(None)
    }

    /// The range of cost dates under `ag`: a fiscal year must be one of the
    /// agreement's term.
    pub fn resolve(&self, ag: &Agreement) -> Result<DateRange, AppError> {
        match self.check()? {
            Some(fy) => {
                let first = ag.first_fy;
                let last = ag.first_fy + ag.fy_count as i32 - 1;
                if fy.number() < first || fy.number() > last {
                    return Err(AppError::PeriodOutsideTerm {
                        period: fy.to_string(),
                        first: FiscalYear(first).to_string(),
                        last: FiscalYear(last).to_string(),
                    });
                }
                Ok(DateRange::fiscal_year(&ag.calendar, fy))
            }
            None => Ok(DateRange {
                from: self.from,
                to: self.to,
            }),
        }
    }
}

impl Run {
    /// The run with only the lines whose cost date is in `range`, each with
    /// its allocation row (computed over the whole history) and provisional
    /// flag; the use of caps (`usage`) and the carried use stay as they are.
    pub fn restrict(self, range: &DateRange) -> Run {
        if range.is_all() {
            return self;
        }
        self.retain(|_, l| range.contains(l.date))
    }

    /// The run with only the lines `keep(allocation row, line)` accepts,
    /// each with its allocation row, provisional flag and order; the use of
    /// caps and the carried use stay as they are. One home for narrowing a
    /// run: the date filter and the server's party scope both call it.
    pub fn retain(mut self, keep: impl Fn(&[i64], &costshare_core::costs::CostLine) -> bool) -> Run {
        for part in &mut self.parts {
            let (costs, alloc) = restrict_part(&part.costs, &part.alloc, &keep);
            part.costs = costs;
            part.alloc = alloc;
        }
        self
    }
}

fn restrict_part(
    costs: &Costs,
    a: &Allocation,
    keep: &impl Fn(&[i64], &costshare_core::costs::CostLine) -> bool,
) -> (Costs, Allocation) {
    let w = a.width();
    let mut new_index = vec![u32::MAX; costs.lines.len()];
    let mut lines = Vec::new();
    let mut amounts = Vec::new();
    let mut provisional = Vec::new();
    let mut open_until = Vec::new();
    for (i, l) in costs.lines.iter().enumerate() {
        if keep(&a.amounts[i * w..(i + 1) * w], l) {
            new_index[i] = lines.len() as u32;
            lines.push(l.clone());
            amounts.extend_from_slice(&a.amounts[i * w..(i + 1) * w]);
            provisional.push(a.provisional[i]);
            open_until.push(a.open_until[i]);
        }
    }
    let order = a
        .order
        .iter()
        .map(|&i| new_index[i as usize])
        .filter(|&n| n != u32::MAX)
        .collect();
    (
        Costs {
            lines,
            duplicates: costs.duplicates,
            replaced: costs.replaced,
        },
        Allocation {
            parties: a.parties,
            order,
            amounts,
            provisional,
            open_until,
            usage: a.usage.clone(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_with_dates_is_a_usage_error() {
        assert!(matches!(
            DateFilter::parse(Some("2023-01-01"), None, Some("FY2023")),
            Err(UsageError::PeriodWithRange)
        ));
        assert!(matches!(
            DateFilter::parse(None, None, Some("FY02023")),
            Err(UsageError::Period(_))
        ));
        assert!(matches!(
            DateFilter::parse(Some("2023-13-01"), None, None),
            Err(UsageError::FilterDate { flag: "--from", .. })
        ));
        assert!(matches!(
            DateFilter::parse(Some("2023-05-02"), Some("2023-05-01"), None),
            Err(UsageError::FromAfterTo { .. })
        ));
        assert!(DateFilter::parse(Some("2023-05-01"), Some("2023-05-01"), None).is_ok());
    }
}
