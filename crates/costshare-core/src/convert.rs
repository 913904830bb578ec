//! The reporting currency: allocated parts in the agreement currency turned
//! into another currency (`--currency CODE --rate-policy …`).
//!
//! **The rule, in one function ([`Converter::convert_parts`]).** Rates are
//! agreement currency per one major unit of CODE (SPEC section 6), so a part
//! of `a` agreement minor units becomes `a / 10^da / rate · 10^dc` minor
//! units of CODE, rounded half to even, each part on its own. A line's
//! converted parts are then summed like any amounts, so the sum of converted
//! rows is the converted grand total computed the same way (the conversion
//! of a *sum* may differ by the roundings; that is why parts are converted,
//! never totals).
//!
//! Which rate a line takes ([`RatePolicy`]):
//! - `spot`: the latest CODE rate dated on or before the line's date
//!   ([`Rates::lookup`], the rule of SPEC section 6's conversion);
//! - `fiscal-year-average`: the exact rational mean of the CODE rates dated
//!   within the line's fiscal year (by the agreement's calendar): their sum
//!   divided by their count, not rounded; no such rate is an error naming the
//!   year;
//! - `fixed:RATE`: that rate for every line.
//!
//! CODE being the agreement currency converts at 1 and needs no rates.

use crate::agreement::Agreement;
use crate::calendar::{Date, FiscalYear};
use crate::costs::Rates;
use crate::money::Currency;
use crate::num::{self, BigRational};
use std::collections::BTreeMap;

/// Which rate a line converts at.
#[derive(Clone, Debug, PartialEq)]
pub enum RatePolicy {
    Spot,
    FiscalYearAverage,
    Fixed(BigRational),
}

/// Why a `--rate-policy` text was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// Not `spot`, `fiscal-year-average` or `fixed:RATE`.
    Unknown(String),
    /// `fixed:RATE` with a RATE that is not a positive decimal.
    BadRate(String),
}

impl RatePolicy {
    /// `spot`, `fiscal-year-average` or `fixed:RATE` (RATE a positive decimal,
    /// at most 18 decimals).
    pub fn parse(s: &str) -> Result<RatePolicy, PolicyError> {
        match s {
            "spot" => Ok(RatePolicy::Spot),
            "fiscal-year-average" => Ok(RatePolicy::FiscalYearAverage),
            _ => match s.strip_prefix("fixed:") {
                Some(r) => match num::parse_rational(r, 18) {
                    Ok(q) if !q.is_zero() && !q.is_negative() => Ok(RatePolicy::Fixed(q)),
                    _ => Err(PolicyError::BadRate(r.to_string())),
                },
                None => Err(PolicyError::Unknown(s.to_string())),
            },
        }
    }

    /// The policy's name: `spot`, `fiscal-year-average`, `fixed`.
    pub fn name(&self) -> &'static str {
        match self {
            RatePolicy::Spot => "spot",
            RatePolicy::FiscalYearAverage => "fiscal-year-average",
            RatePolicy::Fixed(_) => "fixed",
        }
    }
}

/// Why a converter cannot be built, or a line cannot be converted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConvertError {
    /// CODE is neither a built-in currency nor declared in the agreement.
    UnknownCurrency(String),
    /// No rate of CODE at all (and the policy needs one).
    NoRates { currency: String },
    /// `spot`: no CODE rate dated on or before `date`.
    NoRateBefore { currency: String, date: Date },
    /// `fiscal-year-average`: no CODE rate dated within the fiscal year.
    NoRateInYear { currency: String, fiscal_year: FiscalYear },
    /// A converted part does not fit a signed 64-bit count of minor units.
    TooLarge { currency: String },
}

/// The rate a line was converted at.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RateBasis {
    /// CODE is the agreement currency.
    Same,
    /// `spot`: the rate dated `date`.
    Dated(Date),
    /// `fiscal-year-average`: the mean over the year's rates (`count` of them).
    YearAverage { fiscal_year: FiscalYear, count: usize },
    /// `fixed:RATE`.
    Fixed,
}

/// A rate used: its value (agreement currency per major unit of CODE) and
/// where it comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RateUsed {
    pub basis: RateBasis,
    pub rate: BigRational,
}

/// Converts allocated parts from an agreement's currency into CODE.
#[derive(Clone, Debug)]
pub struct Converter {
    pub from: Currency,
    pub to: Currency,
    pub policy: RatePolicy,
    rates: Rates,
    calendar: crate::calendar::FiscalCalendar,
    /// fiscal-year-average: per fiscal year, (mean, count).
    averages: BTreeMap<i32, (BigRational, usize)>,
}

impl Converter {
    /// A converter from `agreement`'s currency into `code` under `policy`,
    /// with `rates` (agreement currency per major unit; only CODE's are read).
    pub fn new(
        agreement: &Agreement,
        rates: &Rates,
        code: &str,
        policy: RatePolicy,
    ) -> Result<Converter, ConvertError> {
        let to = agreement
            .currency(code)
            .ok_or_else(|| ConvertError::UnknownCurrency(code.to_string()))?;
        let same = to.same_code(&agreement.currency);
        let mut averages: BTreeMap<i32, (BigRational, usize)> = BTreeMap::new();
        let mine: Vec<(Date, BigRational)> = rates
            .rows()
            .into_iter()
            .filter(|(c, _, _)| c == code)
            .map(|(_, d, r)| (d, r))
            .collect();
        if !same && mine.is_empty() && !matches!(policy, RatePolicy::Fixed(_)) {
            return Err(ConvertError::NoRates {
                currency: code.to_string(),
            });
        }
        if policy == RatePolicy::FiscalYearAverage {
            let mut sums: BTreeMap<i32, (BigRational, usize)> = BTreeMap::new();
            for (d, r) in &mine {
                let e = sums
                    .entry(agreement.calendar.fy_of(*d))
                    .or_insert_with(|| (BigRational::zero(), 0));
                e.0 = e.0.add(r);
                e.1 += 1;
            }
            for (fy, (sum, n)) in sums {
                // the exact mean: sum / count, no rounding
                averages.insert(fy, (sum.div(&BigRational::from_int(n as i64)), n));
            }
        }
        Ok(Converter {
            from: agreement.currency,
            to,
            policy,
            rates: rates.clone(),
            calendar: agreement.calendar,
            averages,
        })
    }

    /// The rate a line dated `date` converts at.
    pub fn rate_for(&self, date: Date) -> Result<RateUsed, ConvertError> {
        if self.to.same_code(&self.from) {
            return Ok(RateUsed {
                basis: RateBasis::Same,
                rate: BigRational::one(),
            });
        }
        let code = self.to.code().to_string();
        match &self.policy {
            RatePolicy::Fixed(r) => Ok(RateUsed {
                basis: RateBasis::Fixed,
                rate: r.clone(),
            }),
            RatePolicy::Spot => match self.rates.lookup(&code, date) {
                Some((d, r)) => Ok(RateUsed {
                    basis: RateBasis::Dated(*d),
                    rate: r.clone(),
                }),
                None => Err(ConvertError::NoRateBefore { currency: code, date }),
            },
            RatePolicy::FiscalYearAverage => {
                let fy = self.calendar.fy_of(date);
                match self.averages.get(&fy) {
                    Some((mean, n)) => Ok(RateUsed {
                        basis: RateBasis::YearAverage {
                            fiscal_year: FiscalYear(fy),
                            count: *n,
                        },
                        rate: mean.clone(),
                    }),
                    None => Err(ConvertError::NoRateInYear {
                        currency: code,
                        fiscal_year: FiscalYear(fy),
                    }),
                }
            }
        }
    }

    /// **The conversion rule.** The parts of a line dated `date` (minor units
    /// of the agreement currency, any number of them: parties, UNALLOCATED,
    /// categories — the rule does not care) in minor units of CODE, each
    /// `part / 10^da / rate · 10^dc` rounded half to even, and the rate used.
    pub fn convert_parts(&self, date: Date, parts: &[i64]) -> Result<(Vec<i64>, RateUsed), ConvertError> {
        let used = self.rate_for(date)?;
        if used.basis == RateBasis::Same {
            return Ok((parts.to_vec(), used));
        }
        // factor = 10^dc / (10^da · rate): one exact rational per line
        let factor = BigRational::from_int(num::pow10(self.to.decimals()))
            .div(&BigRational::from_int(num::pow10(self.from.decimals())).mul(&used.rate));
        let mut out = Vec::with_capacity(parts.len());
        for &p in parts {
            if p == 0 {
                out.push(0);
                continue;
            }
            // a division by the rate: round half to even
            let v = BigRational::from_int(p).mul(&factor).round_half_even();
            out.push(i64::try_from(v).map_err(|_| ConvertError::TooLarge {
                currency: self.to.code().to_string(),
            })?);
        }
        Ok((out, used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ag() -> Agreement {
        let t = r#"
[agreement]
id = "a"
title = "A"
currency = "JPY"
start = "2022-04-01"
end = "2024-03-31"
fiscal_year_start = "04-01"
fiscal_year_label = "start"
[parties.P]
name = "P"
[categories.x]
name = "X"
  [[categories.x.layers]]
  split = { P = "100%" }
"#;
        crate::load::load(t).agreement.unwrap_or_else(|| panic!("agreement"))
    }

    fn rates() -> Rates {
        crate::costs::parse_rates(
            b"date,currency,rate\n2022-04-01,USD,130\n2022-10-01,USD,150\n2023-04-01,USD,141.5\n",
            "JPY",
        )
        .unwrap()
    }

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    #[test]
    fn policies() {
        let a = ag();
        let spot = Converter::new(&a, &rates(), "USD", RatePolicy::Spot).unwrap();
        // ¥1,000,001 / 130 = 7692.31538… USD = 769231.538… cents → 769232; ¥65 / 130 = 0.50 USD
        let (p, u) = spot.convert_parts(d("2022-05-01"), &[1_000_001, 65, 0]).unwrap();
        assert_eq!(p, vec![769_232, 50, 0]);
        assert_eq!(u.basis, RateBasis::Dated(d("2022-04-01")));
        assert!(spot.convert_parts(d("2022-03-31"), &[1]).is_err());
        // FY2022 average (130 + 150) / 2 = 140: ¥7 / 140 = 0.05 USD
        let avg = Converter::new(&a, &rates(), "USD", RatePolicy::FiscalYearAverage).unwrap();
        assert_eq!(avg.convert_parts(d("2023-03-31"), &[7]).unwrap().0, vec![5]);
        // ¥21 / 140 = 0.15 USD exactly; ¥1 / 140 = 0.714… cents → 1 cent
        assert_eq!(avg.convert_parts(d("2022-04-01"), &[21, 1]).unwrap().0, vec![15, 1]);
        let fixed = Converter::new(&a, &rates(), "USD", RatePolicy::parse("fixed:200").unwrap()).unwrap();
        // ¥1 / 200 = 0.005 USD → half to even 0 cents; ¥3 / 200 = 0.015 → 2 cents
        assert_eq!(fixed.convert_parts(d("2022-04-01"), &[1, 3]).unwrap().0, vec![0, 2]);
        assert!(RatePolicy::parse("fixed:0").is_err());
        assert!(RatePolicy::parse("fixed:-1").is_err());
        assert!(RatePolicy::parse("daily").is_err());
        let none = Converter::new(&a, &Rates::empty(), "USD", RatePolicy::Spot);
        assert!(matches!(none, Err(ConvertError::NoRates { .. })));
        assert!(matches!(
            Converter::new(&a, &rates(), "XYZ", RatePolicy::Spot),
            Err(ConvertError::UnknownCurrency(_))
        ));
    }
}
