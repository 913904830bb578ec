//! Civil dates, fiscal years and allocation periods.
//!
//! A [`Date`] is a proleptic Gregorian day. A [`FiscalCalendar`] names fiscal
//! years by the year they start in (`start`, Japan) or end in (`end`, U.S.).
//! Periods (`month`, `quarter`, `fiscal_year`, `term`) are contiguous date
//! ranges, so lines sorted by date fall into each period as one run.

use std::fmt;

/// A civil date. Ordered chronologically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

pub fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub fn days_in_month(y: i32, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

impl Date {
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date { year, month, day })
    }

    /// Strict `YYYY-MM-DD` (surrounding spaces trimmed).
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.trim_matches(' ').as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: &[u8]| -> Option<u32> {
            if r.iter().all(|c| c.is_ascii_digit()) {
                Some(r.iter().fold(0u32, |acc, c| acc * 10 + (c - b'0') as u32))
            } else {
                None
            }
        };
        Date::new(num(&b[0..4])? as i32, num(&b[5..7])? as u8, num(&b[8..10])? as u8)
    }

    /// Days since 1970-01-01 (Howard Hinnant's algorithm).
    pub fn to_days(self) -> i64 {
        let y = self.year as i64 - if self.month <= 2 { 1 } else { 0 };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = self.month as i64;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + self.day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146097 + doe - 719468
    }

    pub fn from_days(z: i64) -> Date {
        let z = z + 719468;
        let era = z.div_euclid(146097);
        let doe = z - era * 146097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        Date {
            year: (y + if m <= 2 { 1 } else { 0 }) as i32,
            month: m,
            day: d,
        }
    }

    /// A month index: `year·12 + month − 1`.
    pub fn month_index(self) -> i32 {
        self.year * 12 + self.month as i32 - 1
    }

    pub fn first_of_month_index(mi: i32) -> Date {
        Date {
            year: mi.div_euclid(12),
            month: (mi.rem_euclid(12) + 1) as u8,
            day: 1,
        }
    }

    pub fn last_of_month_index(mi: i32) -> Date {
        let f = Date::first_of_month_index(mi);
        Date {
            day: days_in_month(f.year, f.month),
            ..f
        }
    }

    /// Packed `yyyymmdd`, handy as a compact sort key.
    pub fn packed(self) -> u32 {
        self.year as u32 * 10000 + self.month as u32 * 100 + self.day as u32
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A fiscal year, by the number of its label: `FY2022` is `FiscalYear(2022)`
/// (which calendar dates that is depends on the [`FiscalCalendar`]).
/// `Display` prints the label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FiscalYear(pub i32);

impl FiscalYear {
    /// A label as agreements and commands write it: `FY` and 1–4 digits,
    /// with no leading zero (`FY2022`; not `FY02022`, `FY0`, `FY20220`).
    pub fn parse(s: &str) -> Option<FiscalYear> {
        let d = s.strip_prefix("FY")?;
        if d.is_empty() || d.len() > 4 || d.starts_with('0') || !d.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        d.parse().ok().map(FiscalYear)
    }

    /// Whether `s` has the shape of a label: `FY` and digits, any number of
    /// them (leading zeros too). Such ids are reserved, and a table whose
    /// keys all look like this (or `default`) is read as a schedule, whose
    /// labels [`FiscalYear::parse`] then checks.
    pub fn is_label_like(s: &str) -> bool {
        s.strip_prefix("FY")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The label number (2022 for FY2022).
    pub fn number(self) -> i32 {
        self.0
    }
}

impl fmt::Display for FiscalYear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FY{}", self.0)
    }
}

/// How fiscal years are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FyLabel {
    /// FY2022 begins in 2022.
    Start,
    /// FY2022 ends in 2022.
    End,
}

/// Fiscal years starting on the first day of `start_month`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FiscalCalendar {
    pub start_month: u8,
    pub label: FyLabel,
}

impl FiscalCalendar {
    /// The calendar year in which the fiscal year holding `d` starts.
    pub fn start_year_of(&self, d: Date) -> i32 {
        if d.month >= self.start_month {
            d.year
        } else {
            d.year - 1
        }
    }

    /// The label number of the fiscal year holding `d` (2022 for FY2022).
    pub fn fy_of(&self, d: Date) -> i32 {
        self.fy_of_start_year(self.start_year_of(d))
    }

    pub fn fy_of_start_year(&self, sy: i32) -> i32 {
        match self.label {
            FyLabel::End if self.start_month != 1 => sy + 1,
            _ => sy,
        }
    }

    pub fn start_year_of_fy(&self, fy: i32) -> i32 {
        match self.label {
            FyLabel::End if self.start_month != 1 => fy - 1,
            _ => fy,
        }
    }

    /// First and last day of a fiscal year.
    pub fn fy_bounds(&self, fy: i32) -> (Date, Date) {
        let sy = self.start_year_of_fy(fy);
        let first = Date {
            year: sy,
            month: self.start_month,
            day: 1,
        };
        let last_mi = first.month_index() + 11;
        (first, Date::last_of_month_index(last_mi))
    }

    /// Month index of the first month of the fiscal year holding `d`.
    pub fn fy_first_month_index(&self, d: Date) -> i32 {
        self.start_year_of(d) * 12 + self.start_month as i32 - 1
    }
}

/// The period over which a cap resets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeriodKind {
    Month,
    Quarter,
    FiscalYear,
    Term,
}

impl PeriodKind {
    pub fn parse(s: &str) -> Option<PeriodKind> {
        match s {
            "month" => Some(PeriodKind::Month),
            "quarter" => Some(PeriodKind::Quarter),
            "fiscal_year" => Some(PeriodKind::FiscalYear),
            "term" => Some(PeriodKind::Term),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodKind::Month => "month",
            PeriodKind::Quarter => "quarter",
            PeriodKind::FiscalYear => "fiscal_year",
            PeriodKind::Term => "term",
        }
    }
}

/// One concrete period: identified by its first month index (or the term).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    /// First month index and number of months (1, 3 or 12).
    Months {
        first: i32,
        len: u8,
    },
    Term,
}

impl Period {
    pub fn of(kind: PeriodKind, cal: &FiscalCalendar, d: Date) -> Period {
        match kind {
            PeriodKind::Month => Period::Months {
                first: d.month_index(),
                len: 1,
            },
            PeriodKind::Quarter => {
                let f = cal.fy_first_month_index(d);
                let q = (d.month_index() - f) / 3;
                Period::Months {
                    first: f + q * 3,
                    len: 3,
                }
            }
            PeriodKind::FiscalYear => Period::Months {
                first: cal.fy_first_month_index(d),
                len: 12,
            },
            PeriodKind::Term => Period::Term,
        }
    }

    /// The fiscal year (label number) a non-term period lies in.
    pub fn fy(&self, cal: &FiscalCalendar) -> Option<i32> {
        match self {
            Period::Months { first, .. } => Some(cal.fy_of(Date::first_of_month_index(*first))),
            Period::Term => None,
        }
    }

    /// First day of the period within the term (no line is dated before it).
    pub fn first_day(&self, term_start: Date) -> Date {
        match self {
            Period::Months { first, .. } => Date::first_of_month_index(*first).max(term_start),
            Period::Term => term_start,
        }
    }

    /// Last day of the period within the term: no line can be dated after the
    /// term ends, so a period that runs past it is complete at the term's end.
    pub fn last_day(&self, term_end: Date) -> Date {
        match self {
            Period::Months { first, len } => Date::last_of_month_index(first + *len as i32 - 1).min(term_end),
            Period::Term => term_end,
        }
    }

    /// Human label: `2022-04`, `FY2022 Q1`, `FY2022`, `term`.
    pub fn label(&self, cal: &FiscalCalendar) -> String {
        match self {
            Period::Months { first, len: 1 } => {
                let d = Date::first_of_month_index(*first);
                format!("{:04}-{:02}", d.year, d.month)
            }
            Period::Months { first, len: 3 } => {
                let d = Date::first_of_month_index(*first);
                let q = (first - cal.fy_first_month_index(d)) / 3 + 1;
                format!("{} Q{}", FiscalYear(cal.fy_of(d)), q)
            }
            Period::Months { first, .. } => FiscalYear(cal.fy_of(Date::first_of_month_index(*first))).to_string(),
            Period::Term => "term".to_string(),
        }
    }
}

impl Period {
    /// Machine label, one token with no space: `2022-04`, `FY2022-Q1`,
    /// `FY2022`, `term` ([`Period::label`] with its space as a hyphen).
    pub fn code(&self, cal: &FiscalCalendar) -> String {
        self.label(cal).replace(' ', "-")
    }
}

/// Today's date in UTC from seconds since the Unix epoch (the caller reads the clock).
pub fn date_from_unix_seconds(secs: i64) -> Date {
    Date::from_days(secs.div_euclid(86400))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    #[test]
    fn parse_and_days() {
        assert_eq!(d("2022-04-01").to_days(), 19083);
        assert_eq!(Date::from_days(19083), d("2022-04-01"));
        assert_eq!(Date::parse("2023-02-29"), None);
        assert_eq!(Date::parse("2024-02-29"), Some(d("2024-02-29")));
        assert_eq!(Date::parse("2024-2-29"), None);
        assert_eq!(Date::parse("2024-13-01"), None);
        for z in -800_000..800_000i64 {
            if z % 997 == 0 {
                assert_eq!(Date::from_days(z).to_days(), z);
            }
        }
    }

    #[test]
    fn fiscal_years() {
        let jp = FiscalCalendar {
            start_month: 4,
            label: FyLabel::Start,
        };
        assert_eq!(jp.fy_of(d("2022-04-01")), 2022);
        assert_eq!(jp.fy_of(d("2023-03-31")), 2022);
        let us = FiscalCalendar {
            start_month: 10,
            label: FyLabel::End,
        };
        assert_eq!(us.fy_of(d("2021-10-01")), 2022);
        assert_eq!(us.fy_of(d("2022-09-30")), 2022);
        assert_eq!(us.fy_bounds(2022), (d("2021-10-01"), d("2022-09-30")));
        let cal = FiscalCalendar {
            start_month: 1,
            label: FyLabel::End,
        };
        assert_eq!(cal.fy_of(d("2022-12-31")), 2022);
        assert_eq!(cal.fy_bounds(2022), (d("2022-01-01"), d("2022-12-31")));
    }

    #[test]
    fn fiscal_year_labels() {
        assert_eq!(FiscalYear::parse("FY2022"), Some(FiscalYear(2022)));
        assert_eq!(FiscalYear::parse("FY1"), Some(FiscalYear(1)));
        assert_eq!(FiscalYear::parse("FY9999"), Some(FiscalYear(9999)));
        for bad in [
            "FY",
            "FY0",
            "FY02022",
            "FY20220",
            "fy2022",
            "FY-1",
            "FY+202",
            "FY2022 ",
            " FY2022",
            "2022",
            "FY２０２２",
        ] {
            assert_eq!(FiscalYear::parse(bad), None, "{bad:?}");
        }
        assert_eq!(FiscalYear(2022).to_string(), "FY2022");
        for y in 1..=9999 {
            assert_eq!(FiscalYear::parse(&FiscalYear(y).to_string()), Some(FiscalYear(y)));
        }
        assert!(FiscalYear::is_label_like("FY02022") && FiscalYear::is_label_like("FY123456789012345678901"));
        assert!(
            !FiscalYear::is_label_like("FY") && !FiscalYear::is_label_like("FYx") && !FiscalYear::is_label_like("XFY1")
        );
    }

    #[test]
    fn quarters() {
        let jp = FiscalCalendar {
            start_month: 4,
            label: FyLabel::Start,
        };
        let q = Period::of(PeriodKind::Quarter, &jp, d("2022-06-30"));
        assert_eq!(q.label(&jp), "FY2022 Q1");
        let q4 = Period::of(PeriodKind::Quarter, &jp, d("2023-03-01"));
        assert_eq!(q4.label(&jp), "FY2022 Q4");
        assert_eq!(q4.last_day(d("2027-03-31")), d("2023-03-31"));
    }
}

/// A range of cost dates, both ends inclusive; a missing end is open. The one
/// home of the rule that says whether a date is in a `--from`/`--to`/`--period`
/// filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateRange {
    pub from: Option<Date>,
    pub to: Option<Date>,
}

impl DateRange {
    /// Every date.
    pub const ALL: DateRange = DateRange { from: None, to: None };

    /// Whether `d` is in the range (both ends inclusive).
    #[inline]
    pub fn contains(&self, d: Date) -> bool {
        self.from.is_none_or(|f| d >= f) && self.to.is_none_or(|t| d <= t)
    }

    /// Whether the days `first..=last` (a cap period) share a day with the
    /// range.
    pub fn overlaps(&self, first: Date, last: Date) -> bool {
        self.from.is_none_or(|f| last >= f) && self.to.is_none_or(|t| first <= t)
    }

    /// Whether the range holds every date.
    pub fn is_all(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }

    /// The days of fiscal year `fy` (its label number) under `cal`.
    pub fn fiscal_year(cal: &FiscalCalendar, fy: FiscalYear) -> DateRange {
        let (first, last) = cal.fy_bounds(fy.number());
        DateRange {
            from: Some(first),
            to: Some(last),
        }
    }
}

#[cfg(test)]
mod date_range_tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    #[test]
    fn both_ends_inclusive_and_open_ends() {
        let r = DateRange {
            from: Some(d("2023-06-15")),
            to: Some(d("2024-02-10")),
        };
        assert!(!r.contains(d("2023-06-14")));
        assert!(r.contains(d("2023-06-15")) && r.contains(d("2024-02-10")));
        assert!(!r.contains(d("2024-02-11")));
        let from = DateRange {
            from: Some(d("2026-01-01")),
            to: None,
        };
        assert!(from.contains(d("9999-12-31")) && !from.contains(d("2025-12-31")));
        assert!(DateRange::ALL.contains(d("0001-01-01")) && DateRange::ALL.is_all());
    }

    #[test]
    fn a_fiscal_year_is_its_calendar_days() {
        let april = FiscalCalendar {
            start_month: 4,
            label: FyLabel::Start,
        };
        let r = DateRange::fiscal_year(&april, FiscalYear(2023));
        assert_eq!((r.from, r.to), (Some(d("2023-04-01")), Some(d("2024-03-31"))));
        // FY2024 ending in 2024 (October start, labelled by its end)
        let us = FiscalCalendar {
            start_month: 10,
            label: FyLabel::End,
        };
        let r = DateRange::fiscal_year(&us, FiscalYear(2024));
        assert_eq!((r.from, r.to), (Some(d("2023-10-01")), Some(d("2024-09-30"))));
    }
}
