//! Projected cost lines for `forecast` (no I/O): each category's costs and
//! quantities, per site, carried forward month by month at the run rate of
//! the last twelve complete months.
//!
//! - **Last complete month:** the as-of date's month when the as-of date is
//!   its last day, else the month before. The window is the twelve months
//!   ending with it; projection starts with the month after it.
//! - **Run rate:** per (category, site), the window's total amount and total
//!   quantity divided by twelve (months without lines count as zero). The
//!   mean amount is an exact rational rounded half to even to minor units
//!   once per projected line; the mean quantity stays exact.
//! - **Projected lines:** one per (category, site) with a non-zero mean, per
//!   month whose last day is on or before `until`, dated that last day, id
//!   `FORECAST-YYYY-MM-<category>-<site>` (`FORECAST-YYYY-MM-<category>`
//!   without a site). A category that declares a unit needs a positive mean
//!   quantity. Months ending after the agreement's term are not projected:
//!   they are listed in [`Projection::beyond_term`].
//! - **Budget:** where a budget ([`crate::costs::parse_budget`]) has rows
//!   for a category in a projected month, those rows replace the run rate of
//!   that category in that month (every site of it); one projected line per
//!   budget row with a non-zero amount, same date and id form. Budget rows
//!   for months outside the projection are not used.
//! - **Recorded costs count; the projection tops them up:** in every
//!   projected month, a (category, site) cell's projected line is its run
//!   rate (or budget row) less what is already recorded in that cell that
//!   month, amount and quantity each, never below zero; a cell recorded at
//!   or above its rate is not projected. So a month whose bill is recorded
//!   is not counted twice (the as-of month included: a history recorded
//!   ahead of the as-of date), and a month half recorded is filled up to
//!   its rate, not left at its half.

use crate::agreement::Agreement;
use crate::calendar::Date;
use crate::costs::{BudgetRow, CostLine};
use crate::num::{Q, rhe_u128};
use std::collections::BTreeMap;

/// What `forecast` adds to the actual lines.
#[derive(Clone, Debug, PartialEq)]
pub struct Projection {
    /// Projected lines, in month then (category, site) order.
    pub lines: Vec<CostLine>,
    /// First and last month index of the run-rate window.
    pub window: (i32, i32),
    /// Month indices of the first and last projected month (first > last
    /// when none).
    pub months: (i32, i32),
    /// Months up to `until` not projected because they end after the term.
    pub beyond_term: Vec<i32>,
    /// How many of `lines` come from the budget.
    pub budget_lines: usize,
}

/// The index of the last month complete by `as_of`.
pub fn last_complete_month(as_of: Date) -> i32 {
    if Date::last_of_month_index(as_of.month_index()) == as_of {
        as_of.month_index()
    } else {
        as_of.month_index() - 1
    }
}

/// `YYYY-MM` of a month index.
pub fn month_label(mi: i32) -> String {
    let d = Date::first_of_month_index(mi);
    format!("{:04}-{:02}", d.year, d.month)
}

/// Project `actual` (lines of `ag`, categories as `ag` indexes them) from
/// the month after the last complete month by `as_of` to `until`.
pub fn run_rate(ag: &Agreement, actual: &[CostLine], as_of: Date, until: Date) -> Projection {
    project(ag, actual, as_of, until, &[])
}

/// [`run_rate`], with `budget` replacing the run rate where it has rows.
pub fn project(ag: &Agreement, actual: &[CostLine], as_of: Date, until: Date, budget: &[BudgetRow]) -> Projection {
    let last = last_complete_month(as_of);
    let window = (last - 11, last);
    // (category, site) → (amount total, quantity total)
    let mut sums: BTreeMap<(usize, String), (i128, Q)> = BTreeMap::new();
    for l in actual {
        let mi = l.date.month_index();
        if mi < window.0 || mi > window.1 {
            continue;
        }
        let e = sums.entry((l.category, l.site.clone())).or_insert((0, Q::ZERO));
        e.0 += l.amount as i128;
        if let Some(q) = &l.quantity {
            e.1 = e.1.add(q);
        }
    }
    // what is recorded in each projected month, by (month, category, site):
    // the projection tops it up (see the module's rule)
    let mut recorded: BTreeMap<(i32, usize, &str), (i128, Q)> = BTreeMap::new();
    for l in actual.iter().filter(|l| l.date.month_index() > last) {
        let e = recorded
            .entry((l.date.month_index(), l.category, l.site.as_str()))
            .or_insert((0, Q::ZERO));
        e.0 += l.amount as i128;
        if let Some(q) = &l.quantity {
            e.1 = e.1.add(q);
        }
    }
    // the rate of a cell less what is recorded in it, never below zero
    let top_up = |mi: i32, c: usize, site: &str, amount: i128, quantity: Option<Q>| -> (i128, Option<Q>, bool) {
        match recorded.get(&(mi, c, site)) {
            None => (amount, quantity, false),
            Some((a, q)) => {
                let amount = (amount - a).max(0);
                let quantity = quantity.map(|m| if m > *q { m.sub(q) } else { Q::ZERO });
                (amount, quantity, true)
            }
        }
    };
    let twelve = Q::int(12);
    let mut lines = Vec::new();
    let mut beyond_term = Vec::new();
    let mut budget_lines = 0;
    let first = last + 1;
    let mut end = until.month_index();
    if Date::last_of_month_index(end) > until {
        end -= 1;
    }
    for mi in first..=end {
        let date = Date::last_of_month_index(mi);
        if date > ag.end {
            beyond_term.push(mi);
            continue;
        }
        if date < ag.start {
            continue;
        }
        let covered: Vec<usize> = budget.iter().filter(|b| b.month == mi).map(|b| b.category).collect();
        for b in budget.iter().filter(|b| b.month == mi && b.amount > 0) {
            let cat = &ag.categories[b.category];
            let quantity = cat.unit.as_ref().and(b.quantity.clone());
            let (amount, quantity, less) = top_up(mi, b.category, &b.site, b.amount as i128, quantity);
            let Ok(amount) = i64::try_from(amount) else { continue };
            // topped up to nothing, or to an amount with no quantity left
            if amount == 0 || (less && quantity.as_ref().is_some_and(Q::is_zero)) {
                continue;
            }
            let why = if less {
                "forecast: budget, less what is recorded".to_string()
            } else {
                "forecast: budget".to_string()
            };
            lines.push(line(ag, mi, b.category, &b.site, amount, quantity, why));
            budget_lines += 1;
        }
        for ((c, site), (amount, qty)) in &sums {
            if covered.contains(c) {
                continue;
            }
            let cat = &ag.categories[*c];
            // the mean month: total / 12, half to even (amounts are non-negative)
            let mean = rhe_u128(amount.unsigned_abs(), 12);
            let Ok(mean) = i128::try_from(mean) else { continue };
            let quantity = cat.unit.as_ref().map(|_| qty.div(&twelve));
            let (mean, quantity, less) = top_up(mi, *c, site, mean, quantity);
            let Ok(mean) = i64::try_from(mean) else { continue };
            if mean == 0 || quantity.as_ref().is_some_and(Q::is_zero) {
                continue;
            }
            let mut why = format!(
                "forecast: mean month of {} to {}",
                month_label(window.0),
                month_label(window.1)
            );
            if less {
                why.push_str(", less what is recorded");
            }
            lines.push(line(ag, mi, *c, site, mean, quantity, why));
        }
    }
    Projection {
        lines,
        window,
        months: (first, end),
        beyond_term,
        budget_lines,
    }
}

/// A projected line of month `mi`, dated its last day.
fn line(
    ag: &Agreement,
    mi: i32,
    c: usize,
    site: &str,
    amount: i64,
    quantity: Option<Q>,
    description: String,
) -> CostLine {
    let mut id = format!("FORECAST-{}-{}", month_label(mi), ag.categories[c].id);
    if !site.is_empty() {
        id.push('-');
        id.push_str(site);
    }
    CostLine {
        id,
        date: Date::last_of_month_index(mi),
        category: c,
        amount,
        source_amount: amount,
        currency: ag.currency.code().to_string(),
        rate: None,
        quantity,
        site: site.to_string(),
        description,
        row: 0,
        replaces: None,
        paid_by: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AG: &str = r#"
[agreement]
id = "t"
title = "t"
currency = "JPY"
start = "2024-04-01"
end = "2027-03-31"
fiscal_year_start = "04-01"

[parties.a]
name = "A"
[parties.b]
name = "B"

[categories.welfare]
name = "Welfare"
  [[categories.welfare.layers]]
  split = { a = "50%", b = "50%" }
"#;

    fn cost(ag: &Agreement, id: &str, date: &str, amount: i64) -> CostLine {
        let mut l = line(ag, 0, 0, "", amount, None, String::new());
        l.id = id.to_string();
        l.date = Date::parse(date).unwrap();
        l
    }

    /// The trial's case: 100 a month through July, as of 15 June: June and
    /// July are recorded in full (not projected again), August is projected.
    /// A half-recorded month is topped up to the rate.
    #[test]
    fn recorded_months_are_topped_up_not_counted_twice() {
        let ag = crate::load(AG).agreement.expect("loads");
        let mut actual: Vec<CostLine> = (0..16)
            .map(|k| {
                let mi = Date::parse("2024-04-01").unwrap().month_index() + k;
                let d = Date::last_of_month_index(mi);
                cost(&ag, &format!("w{k}"), &d.to_string(), 100)
            })
            .collect();
        // through 2025-07; add 40 in September
        actual.push(cost(&ag, "sep", "2025-09-10", 40));
        let as_of = Date::parse("2025-06-15").unwrap();
        let until = Date::parse("2025-10-31").unwrap();
        let p = run_rate(&ag, &actual, as_of, until);
        let by_month: Vec<(String, i64)> = p
            .lines
            .iter()
            .map(|l| (month_label(l.date.month_index()), l.amount))
            .collect();
        assert_eq!(
            by_month,
            vec![
                ("2025-08".to_string(), 100),
                ("2025-09".to_string(), 60),
                ("2025-10".to_string(), 100)
            ]
        );
        assert!(
            p.lines[1].description.ends_with("less what is recorded"),
            "{:?}",
            p.lines[1]
        );
        // a month recorded above its rate is not projected, and never below zero
        actual.push(cost(&ag, "aug", "2025-08-20", 250));
        let p = run_rate(&ag, &actual, as_of, until);
        assert!(
            p.lines
                .iter()
                .all(|l| l.date.month_index() != Date::parse("2025-08-31").unwrap().month_index())
        );
        assert!(p.lines.iter().all(|l| l.amount > 0));
    }
}
