//! A slow, literal implementation of SPEC section 4, with a trace.
//!
//! Everything is a `BigRational` and every step is written the way the SPEC
//! words it, with maps for period groups. It serves as the test oracle for
//! [`crate::alloc`] and as the source of [`crate::explain`]'s layer-by-layer
//! story (the trace records what each layer did to each line).

use crate::agreement::{Agreement, Cap, CapPolicy};
use crate::alloc::{Allocation, Carried, Carry, Lines, line_order};
use crate::calendar::{Date, Period};
use crate::costs::CostLine;
use crate::num::BigRational;
use num_bigint::BigInt;
use num_traits::ToPrimitive;
use std::collections::BTreeMap;

/// What a cap-bearing layer did in a line's period.
#[derive(Clone, Debug, PartialEq)]
pub enum CapTrace {
    /// Running money cap: capacity left before and after this line.
    RunningMoney {
        cap: i64,
        left_before: i64,
        left_after: i64,
    },
    /// Running unit cap: units left before and after; the line's quantity.
    RunningUnits {
        cap: BigRational,
        left_before: BigRational,
        left_after: BigRational,
        quantity: BigRational,
        units_taken: BigRational,
    },
    /// Pro-rata: the period group's total and the fraction every line kept.
    ProRataMoney {
        cap: i64,
        group_total: i64,
        group_lines: usize,
        fraction: BigRational,
        leftover_unit: bool,
        provisional: bool,
    },
    ProRataUnits {
        cap: BigRational,
        group_quantity: BigRational,
        group_lines: usize,
        fraction: BigRational,
        quantity: BigRational,
        leftover_unit: bool,
        provisional: bool,
    },
}

/// One layer's effect on one line.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTrace {
    pub layer: usize,
    /// The period the cap was counted in (none when the layer has no cap).
    pub period: Option<Period>,
    pub remaining_before: i64,
    pub portion: Option<BigRational>,
    pub offered: i64,
    pub cap: Option<CapTrace>,
    /// Use of this period's cap carried over from earlier agreement versions
    /// (the cap in `cap` is the full cap; what was left is that less this).
    pub carried: Option<Carried>,
    pub take: i64,
    /// The take split per party (agreement order).
    pub parts: Vec<i64>,
    /// Exact (unrounded) shares of the take per party.
    pub exact_parts: Vec<BigRational>,
    /// Parties that got one extra minor unit from the largest-remainder rule.
    pub rounding_units: Vec<usize>,
    /// The line took no part (nothing left, or offered nothing).
    pub skipped: bool,
}

fn r(v: i64) -> BigRational {
    BigRational::from_int(v)
}

fn to_i64(b: &BigInt) -> i64 {
    b.to_i64().expect("allocation amounts never exceed the line amount")
}

/// Values per line, by the line's index: a map whose keys are the dense
/// indices `0..n` (a vector of slots; the literal steps read as with a map).
struct LineMap<T>(Vec<Option<T>>);

impl<T> LineMap<T> {
    fn new(n: usize) -> LineMap<T> {
        LineMap((0..n).map(|_| None).collect())
    }
    fn of(n: usize, items: impl Iterator<Item = (usize, T)>) -> LineMap<T> {
        let mut m = LineMap::new(n);
        for (i, v) in items {
            m.insert(i, v);
        }
        m
    }
    fn insert(&mut self, i: usize, v: T) {
        self.0[i] = Some(v);
    }
    fn get(&self, i: &usize) -> Option<&T> {
        self.0.get(*i).and_then(Option::as_ref)
    }
    fn get_mut(&mut self, i: &usize) -> Option<&mut T> {
        self.0.get_mut(*i).and_then(Option::as_mut)
    }
}

impl<T> std::ops::Index<&usize> for LineMap<T> {
    type Output = T;
    fn index(&self, i: &usize) -> &T {
        self.get(i).expect("a value for every line of the category")
    }
}

/// Split `t` by exact shares: floors, leftovers to largest remainders, ties to
/// the earlier party. Returns (parts, exact, parties given a unit).
pub fn split_exact(t: i64, shares: &[BigRational]) -> (Vec<i64>, Vec<BigRational>, Vec<usize>) {
    let exact: Vec<BigRational> = shares.iter().map(|s| r(t).mul(s)).collect();
    let mut parts: Vec<i64> = exact.iter().map(|x| to_i64(&x.floor())).collect();
    let left = t - parts.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    let frac = |j: usize| exact[j].sub(&r(parts[j]));
    let fracs: Vec<BigRational> = order.iter().map(|&j| frac(j)).collect();
    order.sort_by(|&a, &b| fracs[b].cmp(&fracs[a]).then(a.cmp(&b)));
    let mut given = Vec::new();
    for &j in order.iter().take(left.max(0) as usize) {
        parts[j] += 1;
        given.push(j);
    }
    given.sort();
    (parts, exact, given)
}

/// Allocate with the literal algorithm; also returns each line's trace.
pub fn allocate(ag: &Agreement, lines: &[CostLine], as_of: Date) -> (Allocation, Vec<Vec<LayerTrace>>) {
    allocate_carried(ag, lines, as_of, &Carry::NONE)
}

/// [`allocate`] for a version that continues earlier ones (SPEC section 8):
/// a capped layer's period that `carry` names starts with that use already
/// made, so its cap is the cap less that use, never below zero.
pub fn allocate_carried(
    ag: &Agreement,
    lines: &[CostLine],
    as_of: Date,
    carry: &Carry,
) -> (Allocation, Vec<Vec<LayerTrace>>) {
    allocate_focused(ag, lines, as_of, carry, None)
}

/// One line's trace, parts and provisional flag, by the same literal steps
/// as [`allocate_carried`]: every line still goes through every step that
/// decides a take (offers, cap use, period groups), but only line `focus`
/// has its takes split and traced (no line's split changes another's take).
pub fn trace_line<L: Lines + ?Sized>(
    ag: &Agreement,
    lines: &L,
    focus: usize,
    as_of: Date,
    carry: &Carry,
) -> (Vec<LayerTrace>, Vec<i64>, bool) {
    let (alloc, mut traces) = allocate_focused(ag, lines, as_of, carry, Some(focus));
    let parts = alloc.row(focus).to_vec();
    (std::mem::take(&mut traces[focus]), parts, alloc.provisional[focus])
}

/// [`allocate_carried`]; with `focus`, only that line's splits and trace
/// are made (the other lines' rows and traces stay empty).
fn allocate_focused<L: Lines + ?Sized>(
    ag: &Agreement,
    lines: &L,
    as_of: Date,
    carry: &Carry,
    focus: Option<usize>,
) -> (Allocation, Vec<Vec<LayerTrace>>) {
    let traced = |i: usize| focus.is_none_or(|f| f == i);
    let order = line_order(lines);
    let parties = ag.parties.len();
    let w = parties + 1;
    let mut amounts = vec![0i64; lines.count() * w];
    let mut provisional = vec![false; lines.count()];
    let mut open_until: Vec<Option<Date>> = vec![None; lines.count()];
    let mut traces: Vec<Vec<LayerTrace>> = vec![Vec::new(); lines.count()];
    for (c, cat) in ag.categories.iter().enumerate() {
        let idx: Vec<usize> = order
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| lines.category(i) == c)
            .collect();
        // a category without lines takes nothing and traces nothing: its
        // per-line maps (sized by every line) are not made (explain's tied
        // lines are all of one category; the others' maps were megabytes of
        // fresh memory for a fiscal year's lines)
        if idx.is_empty() {
            continue;
        }
        let n = lines.count();
        let mut a: LineMap<i64> = LineMap::of(n, idx.iter().map(|&i| (i, lines.amount(i))));
        // quantities left, read only by unit caps
        let units = cat.layers.iter().any(|l| matches!(l.cap, Some(Cap::Units(_))));
        let mut q: LineMap<BigRational> = LineMap::of(
            if units { n } else { 0 },
            idx.iter().filter(|_| units).map(|&i| {
                (
                    i,
                    lines.quantity(i).map(|x| x.to_big()).unwrap_or_else(BigRational::zero),
                )
            }),
        );
        for (li, layer) in cat.layers.iter().enumerate() {
            // offered amounts
            let mut offered: LineMap<i64> = LineMap::new(n);
            let mut portion_of: BTreeMap<usize, BigRational> = BTreeMap::new();
            for &i in &idx {
                let fy = ag.fy_index(lines.date(i));
                let o = match &layer.portion {
                    Some(p) => {
                        let p = p.get(fy).to_big();
                        if traced(i) {
                            portion_of.insert(i, p.clone());
                        }
                        to_i64(&r(a[&i]).mul(&p).round_half_even())
                    }
                    None => a[&i],
                };
                offered.insert(i, o);
            }
            let participants: Vec<usize> = idx.iter().copied().filter(|i| a[i] > 0 && offered[i] > 0).collect();
            let mut take: LineMap<i64> = LineMap::new(n);
            let mut cap_trace: BTreeMap<usize, CapTrace> = BTreeMap::new();
            let mut period_of: BTreeMap<usize, Period> = BTreeMap::new();
            let mut carried_of: BTreeMap<usize, Carried> = BTreeMap::new();
            match &layer.cap {
                None => {
                    for &i in &participants {
                        take.insert(i, offered[&i]);
                    }
                }
                Some(cap) => {
                    // group by period, keeping line order within each group
                    let mut groups: BTreeMap<Period, Vec<usize>> = BTreeMap::new();
                    for &i in &participants {
                        let p = Period::of(layer.period, &ag.calendar, lines.date(i));
                        if traced(i) {
                            period_of.insert(i, p);
                        }
                        groups.entry(p).or_default().push(i);
                    }
                    for (p, g) in &groups {
                        let fy = p.fy(&ag.calendar).map(|f| (f - ag.first_fy) as usize).unwrap_or(0);
                        let prov = p.last_day(ag.end) > as_of;
                        // use carried over from earlier versions: already used
                        let carried = carry.get(c, li, *p);
                        if let Some(k) = carried {
                            for &i in g.iter().filter(|&&i| traced(i)) {
                                carried_of.insert(i, k.clone());
                            }
                        }
                        let used_money = carried.map_or(0, |k| k.money);
                        let used_units = carried.map_or_else(BigRational::zero, |k| k.units.to_big());
                        match (cap, layer.policy) {
                            (Cap::Money(m), CapPolicy::Running) => {
                                let c = *m.get(fy);
                                // a running cap has the carried use less left (never below zero)
                                let mut used = used_money.min(c);
                                for &i in g {
                                    let t = offered[&i].min(c - used);
                                    if traced(i) {
                                        cap_trace.insert(
                                            i,
                                            CapTrace::RunningMoney {
                                                cap: c,
                                                left_before: c - used,
                                                left_after: c - used - t,
                                            },
                                        );
                                    }
                                    used += t;
                                    take.insert(i, t);
                                }
                            }
                            (Cap::Units(u), CapPolicy::Running) => {
                                let cu = u.get(fy).to_big();
                                let mut used = used_units.clone().min(cu.clone());
                                for &i in g {
                                    let qi = q[&i].clone();
                                    let left = cu.sub(&used);
                                    let ui = qi.clone().min(left.clone());
                                    let t = if ui == qi {
                                        a[&i]
                                    } else {
                                        to_i64(&r(a[&i]).mul(&ui).div(&qi).round_half_even())
                                    };
                                    used = used.add(&ui);
                                    if traced(i) {
                                        cap_trace.insert(
                                            i,
                                            CapTrace::RunningUnits {
                                                cap: cu.clone(),
                                                left_before: left.clone(),
                                                left_after: left.sub(&ui),
                                                quantity: qi.clone(),
                                                units_taken: ui.clone(),
                                            },
                                        );
                                    }
                                    q.insert(i, qi.sub(&ui));
                                    take.insert(i, t);
                                }
                            }
                            (Cap::Money(m), CapPolicy::ProRata) => {
                                let full = *m.get(fy);
                                // the capacity: the cap less the carried use, never below zero
                                let c = (full - used_money).max(0);
                                let sum: i64 = g.iter().map(|i| offered[i]).sum();
                                let f = r(c).div(&r(sum)).min(BigRational::one());
                                let x = if r(c) < r(sum) {
                                    c
                                } else {
                                    to_i64(&f.mul(&r(sum)).round_half_even())
                                };
                                let got = pro_rata_take(g, &offered, &f, x, &mut take);
                                for &i in g {
                                    if traced(i) {
                                        cap_trace.insert(
                                            i,
                                            CapTrace::ProRataMoney {
                                                cap: full,
                                                group_total: sum,
                                                group_lines: g.len(),
                                                fraction: f.clone(),
                                                leftover_unit: got.contains(&i),
                                                provisional: prov,
                                            },
                                        );
                                    }
                                }
                                for &i in g {
                                    open_until[i] = open_until[i].max(Some(p.last_day(ag.end)));
                                    provisional[i] |= prov;
                                }
                            }
                            (Cap::Units(u), CapPolicy::ProRata) => {
                                let full = u.get(fy).to_big();
                                let cu = full.sub(&used_units).max(BigRational::zero());
                                let sum_q = g.iter().fold(BigRational::zero(), |s, i| s.add(&q[i]));
                                let sum_a: i64 = g.iter().map(|i| offered[i]).sum();
                                let f = cu.div(&sum_q).min(BigRational::one());
                                let x = to_i64(&f.mul(&r(sum_a)).round_half_even());
                                let got = pro_rata_take(g, &offered, &f, x, &mut take);
                                for &i in g {
                                    if traced(i) {
                                        cap_trace.insert(
                                            i,
                                            CapTrace::ProRataUnits {
                                                cap: full.clone(),
                                                group_quantity: sum_q.clone(),
                                                group_lines: g.len(),
                                                fraction: f.clone(),
                                                quantity: q[&i].clone(),
                                                leftover_unit: got.contains(&i),
                                                provisional: prov,
                                            },
                                        );
                                    }
                                    let nq = q[&i].mul(&BigRational::one().sub(&f));
                                    q.insert(i, nq);
                                }
                                for &i in g {
                                    open_until[i] = open_until[i].max(Some(p.last_day(ag.end)));
                                    provisional[i] |= prov;
                                }
                            }
                        }
                    }
                }
            }
            for &i in &idx {
                let fy = ag.fy_index(lines.date(i));
                let t = take.get(&i).copied().unwrap_or(0);
                let before = a[&i];
                if !traced(i) {
                    a.insert(i, before - t);
                    continue;
                }
                let shares = &layer.split.get(fy).shares;
                let (parts, exact, given) = split_exact(t, shares);
                for (j, p) in parts.iter().enumerate() {
                    amounts[i * w + j] += p;
                }
                a.insert(i, before - t);
                traces[i].push(LayerTrace {
                    layer: li,
                    period: period_of.get(&i).copied(),
                    remaining_before: before,
                    portion: portion_of.get(&i).cloned(),
                    offered: offered[&i],
                    cap: cap_trace.remove(&i),
                    carried: carried_of.remove(&i),
                    take: t,
                    parts,
                    exact_parts: exact,
                    rounding_units: given,
                    skipped: !participants.contains(&i),
                });
            }
        }
        for &i in &idx {
            amounts[i * w + parties] += a[&i];
        }
    }
    (
        Allocation {
            parties,
            order,
            amounts,
            provisional,
            open_until,
            usage: Vec::new(),
        },
        traces,
    )
}

/// Pro-rata takes for one group: floor(o·f) each, then `x − Σfloor` units to
/// the largest fractional remainders, ties to the earlier line. Returns the
/// lines that got a unit.
fn pro_rata_take(g: &[usize], offered: &LineMap<i64>, f: &BigRational, x: i64, take: &mut LineMap<i64>) -> Vec<usize> {
    let exact: Vec<BigRational> = g.iter().map(|i| r(offered[i]).mul(f)).collect();
    let floors: Vec<i64> = exact.iter().map(|e| to_i64(&e.floor())).collect();
    let left = x - floors.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..g.len()).collect();
    let fr: Vec<BigRational> = (0..g.len()).map(|k| exact[k].sub(&r(floors[k]))).collect();
    order.sort_by(|&a, &b| fr[b].cmp(&fr[a]).then(a.cmp(&b)));
    let mut got = Vec::new();
    for (k, &i) in g.iter().enumerate() {
        take.insert(i, floors[k]);
    }
    for &k in order.iter().take(left.max(0) as usize) {
        *take.get_mut(&g[k]).expect("present") += 1;
        got.push(g[k]);
    }
    got
}
