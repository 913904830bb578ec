//! Ceiling use: one row per capped layer and cap period, from the
//! allocator's [`CapUse`] records (no I/O, no allocation rule of its own).
//!
//! - **Which periods.** Every period that has lines, and every period of a
//!   capped layer of the latest agreement version from the term's start up to
//!   and including the one holding the as-of date (an unused ceiling of an
//!   elapsed or current period is shown with zero use). Later periods appear
//!   only when they already have lines.
//! - **Versions.** Several agreement versions (a ledger after `amend`): rows
//!   are merged by (category id, layer id, period), as a layer continues the
//!   previous version's layer with the same ids (SPEC section 8). The use is
//!   the sum of each version's use in the period, so a `term` envelope
//!   spanning an amendment is one row whose use includes the carried use. The
//!   cap is the latest version's value for the period.
//! - **`bound_on`.** When use is at least the cap: the date the allocator
//!   recorded for the latest version in which use reached its capacity
//!   ([`CapUse::reached_on`]).
//! - **`forecast_bound_on`** (the run rate). For a period not reached and
//!   still open at the as-of date D (its first day F ≤ D < its last day L):
//!   with U the use so far and E = D − F + 1 the days elapsed (both ends
//!   counted), use is projected linearly as U·n/E after n days of the
//!   period. The forecast is the first day F + n − 1 with U·n/E ≥ C, that is
//!   n = ⌈C·E/U⌉ (exact integer or rational arithmetic, rounded up since the
//!   day must reach the cap), when that day is no later than L. No use yet
//!   (U = 0), a closed period, or a day past L: none.

use crate::agreement::{Agreement, Cap};
use crate::alloc::{CapUse, cap_year};
use crate::calendar::{Date, Period};
use crate::num::{BigRational, Q, rhe_u128};
use num_bigint::BigInt;
use num_traits::ToPrimitive;
use std::collections::BTreeMap;

/// How much of a ceiling: money in minor units of the agreement currency,
/// or units (the category's unit).
#[derive(Clone, Debug, PartialEq)]
pub enum Measure {
    Money { cap: i64, used: i64 },
    Units { cap: Q, used: Q },
}

impl Measure {
    /// What is left of the cap, never below zero.
    pub fn remaining(&self) -> Measure {
        match self {
            Measure::Money { cap, used } => Measure::Money {
                cap: *cap,
                used: cap.saturating_sub(*used).max(0),
            },
            Measure::Units { cap, used } => Measure::Units {
                cap: cap.clone(),
                used: if used >= cap { Q::ZERO } else { cap.sub(used) },
            },
        }
    }

    /// Use as tenths of a percent of the cap (`615` is 61.5%), rounded half
    /// to even from the exact ratio; `None` for a zero cap.
    pub fn percent_tenths(&self) -> Option<u128> {
        match self {
            Measure::Money { cap, used } => {
                if *cap <= 0 {
                    return None;
                }
                // used·1000 / cap, half to even (used, cap < 2^63: no overflow)
                Some(rhe_u128(
                    used.max(&0).unsigned_abs() as u128 * 1000,
                    cap.unsigned_abs() as u128,
                ))
            }
            Measure::Units { cap, used } => {
                if cap.is_zero() {
                    return None;
                }
                // (used / cap)·1000, half to even
                used.div(cap).mul_int_rhe(1000).to_u128().into()
            }
        }
    }

    fn reached(&self) -> bool {
        match self {
            Measure::Money { cap, used } => used >= cap,
            Measure::Units { cap, used } => used >= cap,
        }
    }
}

/// One capped layer in one cap period.
#[derive(Clone, Debug, PartialEq)]
pub struct CeilingRow {
    /// Category id.
    pub category: String,
    /// The layer's `id` (by default its 1-based position).
    pub layer: String,
    /// The layer's period kind is `period`'s; `unit` is the category's unit
    /// for a unit cap.
    pub period: Period,
    pub unit: Option<String>,
    pub measure: Measure,
    /// Lines that took part in the period (over every version).
    pub lines: usize,
    pub bound_on: Option<Date>,
    pub forecast_bound_on: Option<Date>,
    /// The period has not ended by the as-of date.
    pub open: bool,
    /// Money caps: cumulative use after each month with use (the date of
    /// its last line), over every version in date order (a later version's
    /// steps start from the earlier versions' use); empty for a unit cap.
    pub steps: Vec<(Date, i64)>,
}

/// One agreement version and the cap use of its lines (earliest first).
pub struct Version<'a> {
    pub agreement: &'a Agreement,
    pub usage: &'a [CapUse],
}

struct Acc {
    /// (version index, category index, layer index) of the latest version
    /// that has this period.
    latest: (usize, usize, usize),
    money: i64,
    units: Q,
    lines: usize,
    /// Per version that had lines in the period: where use reached capacity.
    reached: Vec<Option<Date>>,
    /// Per version, in step with `reached`: the period's use (money, units)
    /// over this and the earlier versions.
    through: Vec<(i64, Q)>,
    steps: Vec<(Date, i64)>,
}

/// The rows of every capped layer and period (see the module comment), in
/// the latest agreement's category and layer order, periods ascending.
pub fn ceilings(versions: &[Version<'_>], as_of: Date) -> Vec<CeilingRow> {
    let Some(main) = versions.last() else {
        return Vec::new();
    };
    let main_ag = main.agreement;
    let first_start = versions[0].agreement.start;
    // order: position in the latest agreement (layers it lacks go last)
    let order = |cat: &str, layer: &str| -> (usize, usize) {
        main_ag.layer_index(cat, layer).unwrap_or((usize::MAX, usize::MAX))
    };
    let mut accs: BTreeMap<((usize, usize), String, String, Period), Acc> = BTreeMap::new();
    for (v, ver) in versions.iter().enumerate() {
        let ag = ver.agreement;
        for u in ver.usage {
            let cat = &ag.categories[u.category];
            let lid = &cat.layers[u.layer].id;
            let key = (order(&cat.id, lid), cat.id.clone(), lid.clone(), u.period);
            let acc = accs.entry(key).or_insert_with(|| Acc {
                latest: (v, u.category, u.layer),
                money: 0,
                units: Q::ZERO,
                lines: 0,
                reached: Vec::new(),
                through: Vec::new(),
                steps: Vec::new(),
            });
            acc.latest = (v, u.category, u.layer);
            // versions come earliest first: a later one's steps continue
            // from the use before it
            let before = acc.money;
            acc.steps
                .extend(u.steps.iter().map(|&(d, m)| (d, before.saturating_add(m))));
            acc.money = acc.money.saturating_add(u.used_money);
            if let Some(q) = &u.used_units {
                acc.units = acc.units.add(q);
            }
            acc.lines += u.lines;
            acc.reached.push(u.reached_on);
            acc.through.push((acc.money, acc.units.clone()));
        }
    }
    // the elapsed and current periods of every capped layer, used or not
    let last_v = versions.len() - 1;
    let upto = as_of.min(main_ag.end);
    for (c, cat) in main_ag.categories.iter().enumerate() {
        for (l, layer) in cat.layers.iter().enumerate() {
            if layer.cap.is_none() {
                continue;
            }
            let mut d = main_ag.start;
            while d <= upto {
                let p = Period::of(layer.period, &main_ag.calendar, d);
                accs.entry(((c, l), cat.id.clone(), layer.id.clone(), p))
                    .or_insert_with(|| Acc {
                        latest: (last_v, c, l),
                        money: 0,
                        units: Q::ZERO,
                        lines: 0,
                        reached: Vec::new(),
                        through: Vec::new(),
                        steps: Vec::new(),
                    });
                let last = p.last_day(main_ag.end);
                if last >= main_ag.end {
                    break;
                }
                d = Date::from_days(last.to_days() + 1);
            }
        }
    }
    let mut out = Vec::with_capacity(accs.len());
    for ((_, category, layer_id, period), acc) in accs {
        let (v, c, l) = acc.latest;
        let ag = versions[v].agreement;
        let cat = &ag.categories[c];
        let Some(cap) = &cat.layers[l].cap else { continue };
        let fy = cap_year(ag, period);
        let measure = match cap {
            Cap::Money(m) => Measure::Money {
                cap: *m.get(fy),
                used: acc.money,
            },
            Cap::Units(u) => Measure::Units {
                cap: u.get(fy).clone(),
                used: acc.units,
            },
        };
        let first = period.first_day(first_start);
        let last = period.last_day(main_ag.end);
        let reached = measure.reached();
        let bound_on = if reached {
            // the first version whose own use reached its capacity and by
            // whose end the period's use had reached the row's cap: a later
            // version that found the cap used up (a carried use) does not
            // move the date; one whose cap was raised past the earlier use
            // does
            acc.reached
                .iter()
                .zip(&acc.through)
                .find_map(|(d, (m, q))| {
                    let enough = match &measure {
                        Measure::Money { cap, .. } => m >= cap,
                        Measure::Units { cap, .. } => q >= cap,
                    };
                    d.filter(|_| enough)
                })
                .or_else(|| acc.reached.iter().rev().find_map(|d| *d))
        } else {
            None
        };
        let forecast_bound_on = if !reached && first <= as_of && as_of < last {
            forecast_day(&measure, first, as_of).filter(|d| *d <= last)
        } else {
            None
        };
        out.push(CeilingRow {
            category,
            layer: layer_id,
            period,
            unit: match cap {
                Cap::Units(_) => cat.unit.clone(),
                Cap::Money(_) => None,
            },
            measure,
            lines: acc.lines,
            bound_on,
            forecast_bound_on,
            open: as_of < last,
            steps: acc.steps,
        });
    }
    out
}

/// The first day on which use projected linearly from the run rate so far
/// (use to date over the days from `first` to `as_of`, both counted) reaches
/// the cap: `first + ⌈C·E/U⌉ − 1`. `None` with no use yet.
fn forecast_day(m: &Measure, first: Date, as_of: Date) -> Option<Date> {
    let elapsed = as_of.to_days() - first.to_days() + 1;
    let n: i64 = match m {
        Measure::Money { cap, used } => {
            if *used <= 0 {
                return None;
            }
            // ⌈cap·E / used⌉ in i128 (cap < 2^63, E < 2^22): rounded up
            let num = *cap as i128 * elapsed as i128;
            let u = *used as i128;
            ((num + u - 1) / u).to_i64()?
        }
        Measure::Units { cap, used } => {
            if used.is_zero() {
                return None;
            }
            // ⌈cap·E / used⌉ exactly, rounded up
            let r: BigRational = cap.to_big().mul(&BigRational::from_int(elapsed)).div(&used.to_big());
            let (num, den) = (r.numer(), r.denom());
            ((num + den - BigInt::from(1)) / den).to_i64()?
        }
    };
    let day = first.to_days().checked_add(n.max(1) - 1)?;
    // beyond the calendar: not within any period
    if day > Date::new(9999, 12, 31)?.to_days() {
        return None;
    }
    Some(Date::from_days(day))
}
