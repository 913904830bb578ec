//! The allocation engine (SPEC section 4), the fast path.
//!
//! Per category, lines are ordered by (date, id bytes) and pushed through the
//! layers one layer at a time (layer-major). Periods are contiguous date
//! ranges, so each period group is a run of consecutive lines: no maps on the
//! hot path. Amounts are `i64` minor units with `u128` intermediates;
//! quantities are [`Q`] rationals that only leave `u128` when a value needs
//! it. Scratch buffers are reused across lines, so a line costs no heap
//! allocation unless its numbers overflow `u128`.
//!
//! [`crate::reference`] holds a slow, literal implementation with the same
//! contract; the tests compare the two on random agreements.

// Lines live in parallel arrays (remaining, offered, take, quantity) indexed
// by position in the category; index loops read clearer than zips of four.
#![allow(clippy::needless_range_loop)]

use crate::agreement::{Agreement, Cap, CapPolicy, Shares};
use crate::calendar::{Date, Period};
use crate::costs::CostLine;
use crate::num::{BigOrSmall, BigRational, FloorRem, Q};
use num_bigint::BigInt;
use num_traits::ToPrimitive;
use std::cmp::Ordering;

/// The result: for each input line, an amount per party plus `UNALLOCATED`.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    /// Number of parties; column `parties` is `UNALLOCATED`.
    pub parties: usize,
    /// Input line indices in output order: (date, id bytes).
    pub order: Vec<u32>,
    /// Row-major: `amounts[line * (parties + 1) + party]`.
    pub amounts: Vec<i64>,
    /// Per input line: it took part in a pro-rata period that had not ended
    /// by the as-of date, so its figures may still change.
    pub provisional: Vec<bool>,
    /// How much of each capped layer's capacity each period used.
    pub usage: Vec<CapUse>,
}

/// Use of one capped layer in one period.
#[derive(Clone, Debug, PartialEq)]
pub struct CapUse {
    pub category: usize,
    pub layer: usize,
    pub period: Period,
    /// The capacity: money (minor units) or units.
    pub cap: CapAmount,
    /// Money taken by the layer in the period.
    pub used_money: i64,
    /// Units counted against a unit cap (at most the cap).
    pub used_units: Option<Q>,
    /// What the period's lines offered: money, and units for unit caps.
    pub demand_money: i64,
    pub demand_units: Option<Q>,
    /// Lines that took part.
    pub lines: usize,
    /// The period had not ended by the as-of date (pro rata only matters).
    pub open: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CapAmount {
    Money(i64),
    Units(Q),
}

impl Allocation {
    pub fn width(&self) -> usize {
        self.parties + 1
    }
    /// Amounts of one input line, parties in agreement order then UNALLOCATED.
    pub fn row(&self, line: usize) -> &[i64] {
        let w = self.width();
        &self.amounts[line * w..(line + 1) * w]
    }
}

/// Sort key of a line: (date, id bytes).
pub fn line_order(lines: &[CostLine]) -> Vec<u32> {
    // Sort compact keys (date, first 16 id bytes) held inline, so most
    // comparisons touch no line; only equal prefixes compare the full ids.
    let mut keys: Vec<(u32, u128, u32)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut prefix = [0u8; 16];
            let b = l.id.as_bytes();
            let n = b.len().min(16);
            prefix[..n].copy_from_slice(&b[..n]);
            (l.date.packed(), u128::from_be_bytes(prefix), i as u32)
        })
        .collect();
    keys.sort_unstable_by(|x, y| {
        x.0.cmp(&y.0).then(x.1.cmp(&y.1)).then_with(|| {
            let (a, b) = (lines[x.2 as usize].id.as_bytes(), lines[y.2 as usize].id.as_bytes());
            a.cmp(b)
        })
    });
    keys.into_iter().map(|k| k.2).collect()
}

/// Allocate every line. Lines must have been validated against `ag`
/// (known category, date in the term, positive quantity where a unit is
/// declared), as [`crate::costs::parse_costs`] does.
pub fn allocate(ag: &Agreement, lines: &[CostLine], as_of: Date) -> Allocation {
    let order = line_order(lines);
    let parties = ag.parties.len();
    let w = parties + 1;
    let mut out = Allocation {
        parties,
        order,
        amounts: vec![0; lines.len() * w],
        provisional: vec![false; lines.len()],
        usage: Vec::new(),
    };
    // lines per category, each in (date, id) order
    let mut per_cat: Vec<Vec<u32>> = vec![Vec::new(); ag.categories.len()];
    for &i in &out.order {
        per_cat[lines[i as usize].category].push(i);
    }
    let mut eng = Engine::new(parties);
    for (c, idx) in per_cat.iter().enumerate() {
        if !idx.is_empty() {
            eng.category(ag, c, idx, lines, as_of, &mut out);
        }
    }
    out
}

struct Engine {
    splitter: Splitter,
    rem: Vec<i64>,
    offered: Vec<i64>,
    take: Vec<i64>,
    qty: Vec<Q>,
    qty_before: Vec<Q>,
    fy: Vec<u32>,
    order_buf: Vec<(FloorRem, usize)>,
}

impl Engine {
    fn new(parties: usize) -> Engine {
        Engine {
            splitter: Splitter::new(parties),
            rem: Vec::new(),
            offered: Vec::new(),
            take: Vec::new(),
            qty: Vec::new(),
            qty_before: Vec::new(),
            fy: Vec::new(),
            order_buf: Vec::new(),
        }
    }

    fn category(
        &mut self,
        ag: &Agreement,
        c: usize,
        idx: &[u32],
        lines: &[CostLine],
        as_of: Date,
        out: &mut Allocation,
    ) {
        let cat = &ag.categories[c];
        let n = idx.len();
        let w = out.width();
        self.rem.clear();
        self.rem.extend(idx.iter().map(|&i| lines[i as usize].amount));
        self.fy.clear();
        self.fy
            .extend(idx.iter().map(|&i| ag.fy_index(lines[i as usize].date) as u32));
        self.qty.clear();
        if cat.unit.is_some() {
            self.qty.extend(
                idx.iter()
                    .map(|&i| lines[i as usize].quantity.clone().unwrap_or(Q::ZERO)),
            );
        }
        for (li, layer) in cat.layers.iter().enumerate() {
            // what each line is offered
            self.offered.clear();
            match &layer.portion {
                None => self.offered.extend_from_slice(&self.rem),
                Some(p) => {
                    for k in 0..n {
                        let a = self.rem[k];
                        let o = if a == 0 {
                            0
                        } else {
                            p.get(self.fy[k] as usize).mul_int_rhe(a as u128).to_u128() as i64
                        };
                        self.offered.push(o);
                    }
                }
            }
            self.take.clear();
            self.take.resize(n, 0);
            match &layer.cap {
                None => self.take.copy_from_slice(&self.offered),
                Some(cap) => {
                    let mut s = 0;
                    while s < n {
                        let d0 = lines[idx[s] as usize].date;
                        let period = Period::of(layer.period, &ag.calendar, d0);
                        let mut e = s + 1;
                        while e < n && Period::of(layer.period, &ag.calendar, lines[idx[e] as usize].date) == period {
                            e += 1;
                        }
                        let fy_i = match period.fy(&ag.calendar) {
                            Some(fy) => (fy - ag.first_fy).clamp(0, ag.fy_count as i32 - 1) as usize,
                            None => 0,
                        };
                        if let Cap::Units(_) = cap {
                            self.qty_before.clear();
                            self.qty_before.extend_from_slice(&self.qty[s..e]);
                        }
                        match (cap, layer.policy) {
                            (Cap::Money(m), CapPolicy::Running) => self.running_money(s, e, *m.get(fy_i)),
                            (Cap::Units(u), CapPolicy::Running) => self.running_units(s, e, u.get(fy_i)),
                            (Cap::Money(m), CapPolicy::ProRata) => {
                                if self.pro_rata_money(s, e, *m.get(fy_i)) && period.last_day(ag.end) > as_of {
                                    self.mark_provisional(idx, s, e, out);
                                }
                            }
                            (Cap::Units(u), CapPolicy::ProRata) => {
                                let later_units = cat.layers[li + 1..]
                                    .iter()
                                    .any(|l| matches!(l.cap, Some(Cap::Units(_))));
                                if self.pro_rata_units(s, e, u.get(fy_i), later_units)
                                    && period.last_day(ag.end) > as_of
                                {
                                    self.mark_provisional(idx, s, e, out);
                                }
                            }
                        }
                        // record the period's use of the cap
                        let mut used_money = 0i64;
                        let mut demand_money = 0i64;
                        let mut parts = 0usize;
                        let mut demand_q = Q::ZERO;
                        for k in s..e {
                            if self.offered[k] > 0 {
                                used_money += self.take[k];
                                demand_money = demand_money.saturating_add(self.offered[k]);
                                parts += 1;
                                if let Cap::Units(_) = cap {
                                    demand_q = demand_q.add(&self.qty_before[k - s]);
                                }
                            }
                        }
                        let (cap_amt, used_units, demand_units) = match cap {
                            Cap::Money(m) => (CapAmount::Money(*m.get(fy_i)), None, None),
                            Cap::Units(u) => {
                                let c = u.get(fy_i).clone();
                                (
                                    CapAmount::Units(c.clone()),
                                    Some(demand_q.clone().min(c)),
                                    Some(demand_q),
                                )
                            }
                        };
                        out.usage.push(CapUse {
                            category: c,
                            layer: li,
                            period,
                            cap: cap_amt,
                            used_money,
                            used_units,
                            demand_money,
                            demand_units,
                            lines: parts,
                            open: period.last_day(ag.end) > as_of,
                        });
                        s = e;
                    }
                }
            }
            for k in 0..n {
                let t = self.take[k];
                if t == 0 {
                    continue;
                }
                debug_assert!(t <= self.rem[k]);
                self.rem[k] -= t;
                let row = idx[k] as usize * w;
                self.splitter.split(
                    t,
                    layer.split.get(self.fy[k] as usize),
                    &mut out.amounts[row..row + w - 1],
                );
            }
        }
        for k in 0..n {
            out.amounts[idx[k] as usize * w + w - 1] += self.rem[k];
        }
    }

    fn mark_provisional(&self, idx: &[u32], s: usize, e: usize, out: &mut Allocation) {
        for k in s..e {
            if self.offered[k] > 0 {
                out.provisional[idx[k] as usize] = true;
            }
        }
    }

    fn running_money(&mut self, s: usize, e: usize, cap: i64) {
        let mut left = cap;
        for k in s..e {
            let o = self.offered[k];
            if o == 0 {
                continue;
            }
            let t = o.min(left);
            self.take[k] = t;
            left -= t;
        }
    }

    fn running_units(&mut self, s: usize, e: usize, cap: &Q) {
        let mut left = cap.clone();
        for k in s..e {
            let a = self.offered[k];
            if a == 0 {
                continue;
            }
            let q = &self.qty[k];
            if left.cmp(q) != Ordering::Less {
                // the whole quantity fits
                self.take[k] = a;
                left = left.sub(q);
                self.qty[k] = Q::ZERO;
            } else {
                // u = left < q: t = round_half_even(a · u / q)
                let u = left;
                let f = u.div(q);
                self.take[k] = f.mul_int_rhe(a as u128).to_u128() as i64;
                self.qty[k] = q.sub(&u);
                left = Q::ZERO;
            }
        }
    }

    /// Returns whether any line took part.
    fn pro_rata_money(&mut self, s: usize, e: usize, cap: i64) -> bool {
        let total: u128 = self.offered[s..e].iter().map(|&o| o as u128).sum();
        if total == 0 {
            return false;
        }
        if total <= cap as u128 {
            self.take[s..e].copy_from_slice(&self.offered[s..e]);
            return true;
        }
        // f = C / S; X = C; floors plus largest remainders, ties to the earlier line
        let f = Q::S(cap as u128, total);
        let mut floors: i128 = 0;
        self.order_buf.clear();
        for k in s..e {
            let o = self.offered[k];
            if o == 0 {
                continue;
            }
            let fr = mul_floor_rem_exact(o as u128, cap as u128, total, &f);
            let fl = fr.floor_u128() as i64;
            self.take[k] = fl;
            floors += fl as i128;
            self.order_buf.push((fr, k));
        }
        let left = cap as i128 - floors;
        self.give_leftovers(left);
        true
    }

    /// `track_qty`: a later layer counts units, so quantities must move on.
    fn pro_rata_units(&mut self, s: usize, e: usize, cap: &Q, track_qty: bool) -> bool {
        let mut total_q = Q::ZERO;
        let mut total_a: u128 = 0;
        let mut any = false;
        for k in s..e {
            if self.offered[k] > 0 {
                total_q = total_q.add(&self.qty[k]);
                total_a += self.offered[k] as u128;
                any = true;
            }
        }
        if !any {
            return false;
        }
        if total_q.cmp(cap) != Ordering::Greater {
            for k in s..e {
                if self.offered[k] > 0 {
                    self.take[k] = self.offered[k];
                    self.qty[k] = Q::ZERO;
                }
            }
            return true;
        }
        let f = cap.div(&total_q);
        let one_minus_f = Q::ONE.sub(&f);
        let x = f.mul_int_rhe(total_a).to_u128() as i128;
        let mut floors: i128 = 0;
        self.order_buf.clear();
        for k in s..e {
            let a = self.offered[k];
            if a == 0 {
                continue;
            }
            let fr = f.mul_int_floor_rem(a as u128);
            let fl = fr.floor_u128() as i64;
            self.take[k] = fl;
            floors += fl as i128;
            self.order_buf.push((fr, k));
            if track_qty {
                self.qty[k] = self.qty[k].mul(&one_minus_f);
            }
        }
        self.give_leftovers(x - floors);
        true
    }

    /// Give `left` units, one each, to the largest remainders; ties to the
    /// earlier line. All remainders in `order_buf` share one denominator.
    fn give_leftovers(&mut self, left: i128) {
        if left <= 0 {
            return;
        }
        self.order_buf
            .sort_by(|(ra, ka), (rb, kb)| cmp_rem(rb, ra).then(ka.cmp(kb)));
        for (_, k) in self.order_buf.iter().take(left as usize) {
            self.take[*k] += 1;
        }
    }
}

fn cmp_rem(a: &FloorRem, b: &FloorRem) -> Ordering {
    match (a, b) {
        (FloorRem::S(_, x), FloorRem::S(_, y)) => x.cmp(y),
        _ => a.rem_big().cmp(&b.rem_big()),
    }
}

/// `o · c / s` as floor and remainder over `s` (not reduced, so remainders of
/// one group compare directly).
fn mul_floor_rem_exact(o: u128, c: u128, s: u128, _f: &Q) -> FloorRem {
    // o, c < 2^63, so o·c < 2^126 always fits
    let p = o * c;
    FloorRem::S(p / s, p % s)
}

/// Splits an amount among parties by exact shares: floors, then one unit each
/// to the largest fractional remainders, ties to the party declared first.
pub struct Splitter {
    rems: Vec<(u128, usize)>,
    big_rems: Vec<(BigInt, usize)>,
}

impl Splitter {
    pub fn new(parties: usize) -> Splitter {
        Splitter {
            rems: Vec::with_capacity(parties),
            big_rems: Vec::new(),
        }
    }

    /// Add the parts of `t` to `acc` (one slot per party).
    pub fn split(&mut self, t: i64, shares: &Shares, acc: &mut [i64]) {
        let t = t as u128;
        if let Some(j) = shares.whole {
            // one party holds 100%
            acc[j] += t as i64;
            return;
        }
        if let Some((nums, den)) = &shares.fast {
            if t * den <= u64::MAX as u128 {
                // t·k ≤ t·den fits in u64: cheaper divisions
                let (t, den) = (t as u64, *den as u64);
                self.rems.clear();
                let mut given: u64 = 0;
                for (j, &k) in nums.iter().enumerate() {
                    if k == 0 {
                        continue;
                    }
                    let p = t * k as u64;
                    let fl = p / den;
                    acc[j] += fl as i64;
                    given += fl;
                    let r = p % den;
                    if r > 0 {
                        self.rems.push((r as u128, j));
                    }
                }
                let left = (t - given) as usize;
                if left > 0 {
                    self.rems.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                    for &(_, j) in self.rems.iter().take(left) {
                        acc[j] += 1;
                    }
                }
                return;
            }
            self.rems.clear();
            let mut given: u128 = 0;
            for (j, &k) in nums.iter().enumerate() {
                if k == 0 {
                    continue;
                }
                // t < 2^63 and k ≤ den ≤ 2^64: the product fits in u128
                let p = t * k;
                let fl = p / den;
                acc[j] += fl as i64;
                given += fl;
                let r = p % den;
                if r > 0 {
                    self.rems.push((r, j));
                }
            }
            let left = (t - given) as usize;
            if left > 0 {
                self.rems.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                for &(_, j) in self.rems.iter().take(left) {
                    acc[j] += 1;
                }
            }
            return;
        }
        self.split_big(t, &shares.shares, acc);
    }

    fn split_big(&mut self, t: u128, shares: &[BigRational], acc: &mut [i64]) {
        self.big_rems.clear();
        let mut given: u128 = 0;
        // bring every share to the common denominator so remainders compare
        let mut lcm = BigInt::from(1u32);
        for s in shares {
            lcm = num_integer::Integer::lcm(&lcm, s.denom());
        }
        let tb = BigInt::from(t);
        for (j, s) in shares.iter().enumerate() {
            if s.is_zero() {
                continue;
            }
            let k = s.numer() * (&lcm / s.denom());
            let p = &tb * k;
            let (fl, r) = num_integer::Integer::div_mod_floor(&p, &lcm);
            let fl = fl.to_u128().unwrap_or(0);
            acc[j] += fl as i64;
            given += fl;
            if r > BigInt::from(0u32) {
                self.big_rems.push((r, j));
            }
        }
        let left = (t - given) as usize;
        self.big_rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, j) in self.big_rems.iter().take(left) {
            acc[*j] += 1;
        }
    }
}

/// Shorthand used by explanations: the integer of a [`BigOrSmall`].
pub fn small(v: &BigOrSmall) -> u128 {
    v.to_u128()
}
