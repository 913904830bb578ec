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

use crate::agreement::{Agreement, Cap, CapPolicy, Category, Layer, Shares};
use crate::calendar::{Date, Period};
use crate::costs::CostLine;
use crate::num::{BigRational, FloorRem, Q};
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
    /// Per input line: the last day of the latest pro-rata period it took
    /// part in, whatever the as-of date; it is provisional while the as-of
    /// date is before that day.
    pub open_until: Vec<Option<Date>>,
    /// How much of each capped layer's capacity each period used.
    pub usage: Vec<CapUse>,
}

/// Use of one capped layer in one period.
#[derive(Clone, Debug, PartialEq)]
pub struct CapUse {
    pub category: usize,
    pub layer: usize,
    pub period: Period,
    /// The capacity these lines had: money (minor units) or units; the cap
    /// less any use carried over from earlier agreement versions ([`Carry`]).
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
    /// The date of the line with which the period's use reached the
    /// capacity (`cap`): in (date, id) order, the first line that took part
    /// after which the cumulative use (money, or units for a unit cap) is at
    /// least the capacity; for a pro-rata cap, whose lines share it, the
    /// group's last line when the group's use reaches it. `None` while use
    /// is below the capacity.
    pub reached_on: Option<Date>,
    /// Money caps: the cumulative money use at the last line of each
    /// calendar month with use, in date order (`(date of that line,
    /// cumulative use)`); the last step's use is `used_money`. Empty for a
    /// unit cap. At most one step a month, so it stays small on a million
    /// lines; the ceiling chart draws it.
    pub steps: Vec<(Date, i64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CapAmount {
    Money(i64),
    Units(Q),
}

/// Capacity of capped layers already used under earlier agreement versions,
/// per (category, layer, cap period) of the version being allocated (SPEC
/// section 8: a ceiling is not reopened by an amendment). Empty for an
/// agreement allocated on its own. Built by [`carry_into`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Carry {
    /// Sorted by (category, layer, period), at most one entry each.
    entries: Vec<Carried>,
}

/// What one capped layer's period starts with already used.
#[derive(Clone, Debug, PartialEq)]
pub struct Carried {
    pub category: usize,
    pub layer: usize,
    pub period: Period,
    /// Money taken in the period under earlier versions (minor units).
    pub money: i64,
    /// Units counted in the period under earlier versions (zero unless the
    /// layer counts units).
    pub units: Q,
    /// Per earlier version, earliest first: what was used under it.
    pub from: Vec<CarrySource>,
}

/// The use carried over from one earlier version.
#[derive(Clone, Debug, PartialEq)]
pub struct CarrySource {
    /// The version's number (1-based, as the ledger numbers them).
    pub version: u32,
    pub money: i64,
    pub units: Q,
}

impl Carried {
    /// A money cap less the use carried over, never below zero.
    #[inline]
    pub fn money_left(&self, cap: i64) -> i64 {
        cap.saturating_sub(self.money).max(0)
    }

    /// A unit cap less the units carried over, never below zero.
    pub fn units_left(&self, cap: &Q) -> Q {
        if self.units >= *cap {
            Q::ZERO
        } else {
            cap.sub(&self.units)
        }
    }
}

impl Carry {
    /// Nothing carried over.
    pub const NONE: Carry = Carry { entries: Vec::new() };

    pub fn new(mut entries: Vec<Carried>) -> Carry {
        entries.sort_by_key(|c| (c.category, c.layer, c.period));
        entries.dedup_by_key(|c| (c.category, c.layer, c.period));
        Carry { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Carried] {
        &self.entries
    }

    /// What layer `layer` of category `category` starts period `period` with.
    #[inline]
    pub fn get(&self, category: usize, layer: usize, period: Period) -> Option<&Carried> {
        if self.entries.is_empty() {
            return None;
        }
        self.entries
            .binary_search_by_key(&(category, layer, period), |c| (c.category, c.layer, c.period))
            .ok()
            .map(|k| &self.entries[k])
    }

    /// What the lines allocated after some others start with: this carry
    /// (what those others started with) plus `usage`, the use their
    /// allocation made of each capped layer's period. Only for a category
    /// that [`runs_in_order`]: there the parts of lines `k..` allocated with
    /// `carry.after(usage of lines ..k)` are their parts in the allocation
    /// of all the lines (started with `carry`). Entries made here name no
    /// earlier version (`from` is empty).
    pub fn after(&self, usage: &[CapUse]) -> Carry {
        let mut entries = self.entries.clone();
        for u in usage {
            let key = (u.category, u.layer, u.period);
            let at = match entries.binary_search_by_key(&key, |c| (c.category, c.layer, c.period)) {
                Ok(at) => at,
                Err(at) => {
                    entries.insert(
                        at,
                        Carried {
                            category: u.category,
                            layer: u.layer,
                            period: u.period,
                            money: 0,
                            units: Q::ZERO,
                            from: Vec::new(),
                        },
                    );
                    at
                }
            };
            let e = &mut entries[at];
            e.money = e.money.saturating_add(u.used_money);
            if let Some(q) = &u.used_units {
                e.units = e.units.add(q);
            }
        }
        Carry { entries }
    }

    /// Whether lines allocated after `self` and after `other` start every
    /// capped layer's period with the same use (money and units; an entry
    /// that used nothing is as none: `money_left` and `units_left` give the
    /// whole cap). For a category that [`runs_in_order`], the same lines
    /// then get the same parts whichever of the two they start with.
    pub fn same_use(&self, other: &Carry) -> bool {
        let used = |c: &&Carried| c.money != 0 || !c.units.is_zero();
        let key = |c: &Carried| (c.category, c.layer, c.period, c.money, c.units.clone());
        self.entries
            .iter()
            .filter(used)
            .map(key)
            .eq(other.entries.iter().filter(used).map(key))
    }
}

/// Whether each line of category `c` takes from every capped layer what the
/// lines before it in (date, id) order left of the period's cap: every
/// capped layer is `running` (a pro-rata period shares its cap among all its
/// lines at once, and marks them open). Then what ties a line to the lines
/// before it is only their use of each capped layer's period (offers,
/// portions, quantities carried down the layers and splits are the line's
/// own), and no line after it changes its parts: so the lines before a new
/// line keep theirs, and lines `k..` allocated starting with the use of
/// lines `..k` ([`Carry::after`]) get the parts a whole allocation gives
/// them (`running_money`, `running_units`: each take is the line's offer
/// against what is left, and what is left is the cap less that use).
pub fn runs_in_order(ag: &Agreement, c: usize) -> bool {
    ag.categories[c]
        .layers
        .iter()
        .all(|l| l.cap.is_none() || l.policy == CapPolicy::Running)
}

/// An earlier agreement version and the use its lines made of its caps.
pub struct Earlier<'a> {
    /// The version's number (1-based).
    pub version: u32,
    pub agreement: &'a Agreement,
    pub usage: &'a [CapUse],
}

/// The use that version `ag`, in force from `effective`, inherits from the
/// `earlier` versions (earliest first, each allocated with its own carry).
/// A capped layer of `ag` continues the previous version's layer with the same
/// category id and layer id, which continues its own predecessor's the same
/// way, back to the first version that lacks it. Only the period of each
/// layer holding `effective` can carry anything, and only when it also holds
/// days before `effective` (a `term` envelope): it starts with every use
/// made in its days under the versions it continues (money, or units when
/// the layer counts units). Periods wholly before or after are unaffected.
pub fn carry_into(ag: &Agreement, effective: Date, earlier: &[Earlier<'_>]) -> Carry {
    let mut entries = Vec::new();
    for (c, cat) in ag.categories.iter().enumerate() {
        for (li, layer) in cat.layers.iter().enumerate() {
            let Some(cap) = &layer.cap else { continue };
            let period = Period::of(layer.period, &ag.calendar, effective);
            let (lo, hi) = (period.first_day(ag.start), period.last_day(ag.end));
            if lo >= effective {
                continue;
            }
            let counts_units = matches!(cap, Cap::Units(_));
            let mut carried = Carried {
                category: c,
                layer: li,
                period,
                money: 0,
                units: Q::ZERO,
                from: Vec::new(),
            };
            // the chain of layers this one continues, latest version first
            for e in earlier.iter().rev() {
                let Some((oc, ol)) = e.agreement.layer_index(&cat.id, &layer.id) else {
                    break;
                };
                let old = e.agreement;
                let mut src = CarrySource {
                    version: e.version,
                    money: 0,
                    units: Q::ZERO,
                };
                for u in e.usage.iter().filter(|u| u.category == oc && u.layer == ol) {
                    // the old period's days that fall in this period
                    if u.period.first_day(old.start) > hi || u.period.last_day(old.end) < lo {
                        continue;
                    }
                    src.money = src.money.saturating_add(u.used_money);
                    if counts_units && let Some(q) = &u.used_units {
                        src.units = src.units.add(q);
                    }
                }
                if src.money != 0 || !src.units.is_zero() {
                    carried.money = carried.money.saturating_add(src.money);
                    carried.units = carried.units.add(&src.units);
                    carried.from.push(src);
                }
            }
            if !carried.from.is_empty() {
                carried.from.reverse();
                entries.push(carried);
            }
        }
    }
    Carry::new(entries)
}

impl Allocation {
    /// Nothing allocated yet for `n` lines (arrays written, see [`written`]).
    fn zeroed(parties: usize, order: Vec<u32>, n: usize) -> Allocation {
        Allocation {
            parties,
            order,
            amounts: written(n * (parties + 1), 0),
            provisional: written(n, false),
            open_until: written(n, None),
            usage: Vec::new(),
        }
    }

    pub fn width(&self) -> usize {
        self.parties + 1
    }
    /// Amounts of one input line, parties in agreement order then UNALLOCATED.
    pub fn row(&self, line: usize) -> &[i64] {
        let w = self.width();
        &self.amounts[line * w..(line + 1) * w]
    }
}

/// What the allocator reads of the lines: [`CostLine`]s, or any compact
/// form of them (the streaming path keeps no `CostLine`).
pub trait Lines {
    fn count(&self) -> usize;
    fn date(&self, i: usize) -> Date;
    /// Index into `Agreement::categories`.
    fn category(&self, i: usize) -> usize;
    /// Minor units of the agreement currency.
    fn amount(&self, i: usize) -> i64;
    fn quantity(&self, i: usize) -> Option<&Q>;
    fn id(&self, i: usize) -> &[u8];
}

impl Lines for [CostLine] {
    fn count(&self) -> usize {
        self.len()
    }
    fn date(&self, i: usize) -> Date {
        self[i].date
    }
    fn category(&self, i: usize) -> usize {
        self[i].category
    }
    fn amount(&self, i: usize) -> i64 {
        self[i].amount
    }
    fn quantity(&self, i: usize) -> Option<&Q> {
        self[i].quantity.as_ref()
    }
    fn id(&self, i: usize) -> &[u8] {
        self[i].id.as_bytes()
    }
}

/// Sort key of a line: (date, id bytes).
pub fn line_order<L: Lines + ?Sized>(lines: &L) -> Vec<u32> {
    // Lines read from the ledger's derived state come in this order already:
    // one pass that finds each key strictly above the one before is the order
    // the sort would give (keys are distinct), without the sort or its keys.
    let n = lines.count();
    if (1..n).all(|i| (lines.date(i - 1), lines.id(i - 1)) < (lines.date(i), lines.id(i))) {
        return (0..n as u32).collect();
    }
    // Sort compact keys (date, first 16 id bytes) held inline, so most
    // comparisons touch no line; only equal prefixes compare the full ids.
    let mut keys: Vec<(u32, u128, u32)> = (0..lines.count())
        .map(|i| {
            let mut prefix = [0u8; 16];
            let b = lines.id(i);
            let n = b.len().min(16);
            prefix[..n].copy_from_slice(&b[..n]);
            (lines.date(i).packed(), u128::from_be_bytes(prefix), i as u32)
        })
        .collect();
    keys.sort_unstable_by(|x, y| {
        x.0.cmp(&y.0)
            .then(x.1.cmp(&y.1))
            .then_with(|| lines.id(x.2 as usize).cmp(lines.id(y.2 as usize)))
    });
    keys.into_iter().map(|k| k.2).collect()
}

/// Allocate every line. Lines must have been validated against `ag`
/// (known category, date in the term, positive quantity where a unit is
/// declared), as [`crate::costs::parse_costs`] does.
pub fn allocate(ag: &Agreement, lines: &[CostLine], as_of: Date) -> Allocation {
    allocate_lines(ag, lines, as_of)
}

/// [`allocate`] over any form of lines.
pub fn allocate_lines<L: Lines + ?Sized>(ag: &Agreement, lines: &L, as_of: Date) -> Allocation {
    allocate_carried(ag, lines, as_of, &Carry::NONE)
}

/// [`allocate_lines`] for the lines of an agreement version that continues
/// earlier ones: each capped layer's periods start with what `carry` says
/// earlier versions already used (see [`carry_into`]).
pub fn allocate_carried<L: Lines + ?Sized>(ag: &Agreement, lines: &L, as_of: Date, carry: &Carry) -> Allocation {
    let parties = ag.parties.len();
    let mut out = Allocation::zeroed(parties, line_order(lines), lines.count());
    // lines per category, each in (date, id) order
    let mut per_cat: Vec<Vec<u32>> = vec![Vec::new(); ag.categories.len()];
    for &i in &out.order {
        per_cat[lines.category(i as usize)].push(i);
    }
    let mut eng = Engine::new(parties);
    for (c, idx) in per_cat.iter().enumerate() {
        if !idx.is_empty() {
            eng.category(ag, c, idx, lines, as_of, carry, &mut out);
        }
    }
    out
}

/// `n` copies of `v`, written now by this thread. `vec![0; n]` maps fresh
/// zero pages instead, and a page first read then written (as `+=` does)
/// takes a copy-on-write fault; in a process with several threads each such
/// fault also interrupts the other cores to flush their TLBs.
pub(crate) fn written<T: Clone>(n: usize, v: T) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    out.resize(n, v);
    out
}

/// [`allocate_lines`] on up to `threads` threads (`1`, or `0`: on this one):
/// categories are independent, so each thread takes whole categories, the
/// biggest first, each to the thread with the fewest lines so far. This
/// thread runs one share; each other thread fills an allocation of its own
/// (`n` rows) whose rows are then copied in. The result is the same
/// allocation, ceiling use in the same order.
pub fn allocate_lines_par<L: Lines + Sync + ?Sized>(
    ag: &Agreement,
    lines: &L,
    as_of: Date,
    threads: usize,
) -> Allocation {
    if threads <= 1 {
        return allocate_lines(ag, lines, as_of);
    }
    let n = lines.count();
    let order = line_order(lines);
    let parties = ag.parties.len();
    let w = parties + 1;
    let empty = |order: Vec<u32>| Allocation::zeroed(parties, order, n);
    let mut per_cat: Vec<Vec<u32>> = vec![Vec::new(); ag.categories.len()];
    for &i in &order {
        per_cat[lines.category(i as usize)].push(i);
    }
    // the biggest categories first, each to the thread with fewer lines
    let mut cats: Vec<usize> = (0..per_cat.len()).filter(|&c| !per_cat[c].is_empty()).collect();
    cats.sort_by_key(|&c| std::cmp::Reverse(per_cat[c].len()));
    let mut shares: Vec<Vec<usize>> = vec![Vec::new(); threads.min(cats.len())];
    let mut load = vec![0usize; shares.len()];
    for c in cats {
        let mut t = 0;
        for (k, &l) in load.iter().enumerate() {
            if l < load[t] {
                t = k;
            }
        }
        load[t] += per_cat[c].len();
        shares[t].push(c);
    }
    if shares.len() <= 1 {
        return allocate_lines(ag, lines, as_of);
    }
    let run = |cs: &[usize], out: &mut Allocation| {
        let mut eng = Engine::new(parties);
        for &c in cs {
            eng.category(ag, c, &per_cat[c], lines, as_of, &Carry::NONE, out);
        }
    };
    let (run, empty) = (&run, &empty);
    let mut out = empty(order);
    let others: Vec<Option<Allocation>> = std::thread::scope(|s| {
        let handles: Vec<_> = shares[1..]
            .iter()
            .map(|cs| {
                s.spawn(move || {
                    let mut o = empty(Vec::new());
                    run(cs, &mut o);
                    o
                })
            })
            .collect();
        run(&shares[0], &mut out);
        handles.into_iter().map(|h| h.join().ok()).collect()
    });
    // the engine does not panic on validated lines; if it did, do it here
    if others.iter().any(Option::is_none) {
        return allocate_lines(ag, lines, as_of);
    }
    for (cs, other) in shares[1..].iter().zip(others.into_iter().flatten()) {
        for &c in cs {
            for &i in &per_cat[c] {
                let i = i as usize;
                out.amounts[i * w..(i + 1) * w].copy_from_slice(&other.amounts[i * w..(i + 1) * w]);
                out.provisional[i] = other.provisional[i];
                out.open_until[i] = other.open_until[i];
            }
        }
        out.usage.extend(other.usage);
    }
    // one category's periods in order, categories in agreement order
    out.usage.sort_by_key(|u| u.category);
    out
}

// --- the per-layer step: offer, cap, split (one home for every path) ---

/// What `layer` offers a line that has `remaining` left, in fiscal year index
/// `fy` of the line's date: all of it, or its `portion` rounded half to even.
#[inline(always)]
pub fn offer(layer: &Layer, fy: usize, remaining: i64) -> i64 {
    let o = match &layer.portion {
        None => remaining,
        Some(_) if remaining == 0 => 0,
        Some(p) => p.get(fy).mul_int_rhe(remaining as u128).to_u128() as i64,
    };
    debug_assert!((0..=remaining).contains(&o), "offered {o} of {remaining} left");
    o
}

/// The fiscal-year index whose cap value a cap period uses: the period's own
/// fiscal year, or the first for a term-long period.
#[inline]
pub fn cap_year(ag: &Agreement, period: Period) -> usize {
    match period.fy(&ag.calendar) {
        Some(fy) => (fy - ag.first_fy).clamp(0, ag.fy_count as i32 - 1) as usize,
        None => 0,
    }
}

/// The dates a line of `category` dated `d` is tied to: no line outside can
/// change its allocation, nor it theirs. The union of its capped layers'
/// periods, widened until it is a union of whole periods of every capped
/// layer (an uncapped layer ties a line to nothing).
pub fn tied_range(ag: &Agreement, category: usize, d: Date) -> (Date, Date) {
    let (mut lo, mut hi) = (d, d);
    loop {
        let (mut nlo, mut nhi) = (lo, hi);
        for layer in ag.categories[category].layers.iter().filter(|l| l.cap.is_some()) {
            nlo = nlo.min(Period::of(layer.period, &ag.calendar, lo).first_day(ag.start));
            nhi = nhi.max(Period::of(layer.period, &ag.calendar, hi).last_day(ag.end));
        }
        if (nlo, nhi) == (lo, hi) {
            return (lo, hi);
        }
        (lo, hi) = (nlo, nhi);
    }
}

/// Add the parts of `take` (what `layer` took from a line in fiscal year
/// index `fy`) to `row` (one slot per party).
#[inline(always)]
pub fn split_take(splitter: &mut Splitter, layer: &Layer, fy: usize, take: i64, row: &mut [i64]) {
    if take != 0 {
        splitter.split(take, layer.split.get(fy), row);
    }
}

/// A line whose category has no cap, alone: each layer's offer is its take,
/// split into `row` (parties, then UNALLOCATED last). The path that needs no
/// period group (the streaming report of an uncapped agreement) calls this;
/// it is the engine's step with every take equal to its offer.
#[inline(always)]
pub fn uncapped_line(cat: &Category, fy: usize, amount: i64, splitter: &mut Splitter, row: &mut [i64]) {
    let w = row.len();
    let mut rem = amount;
    for layer in &cat.layers {
        debug_assert!(layer.cap.is_none(), "uncapped_line on a capped layer");
        let o = offer(layer, fy, rem);
        rem -= o;
        split_take(splitter, layer, fy, o, &mut row[..w - 1]);
    }
    row[w - 1] += rem;
    debug_assert_eq!(
        row.iter().map(|&v| v as i128).sum::<i128>(),
        amount as i128,
        "parts add up to the line"
    );
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

    // the category's lines, its inputs and the output: one call per category
    #[allow(clippy::too_many_arguments)]
    fn category<L: Lines + ?Sized>(
        &mut self,
        ag: &Agreement,
        c: usize,
        idx: &[u32],
        lines: &L,
        as_of: Date,
        carry: &Carry,
        out: &mut Allocation,
    ) {
        let cat = &ag.categories[c];
        let n = idx.len();
        let w = out.width();
        self.rem.clear();
        self.rem.extend(idx.iter().map(|&i| lines.amount(i as usize)));
        self.fy.clear();
        self.fy
            .extend(idx.iter().map(|&i| ag.fy_index(lines.date(i as usize)) as u32));
        self.qty.clear();
        if cat.unit.is_some() {
            self.qty.extend(
                idx.iter()
                    .map(|&i| lines.quantity(i as usize).cloned().unwrap_or(Q::ZERO)),
            );
        }
        for (li, layer) in cat.layers.iter().enumerate() {
            // what each line is offered
            self.offered.clear();
            match &layer.portion {
                None => self.offered.extend_from_slice(&self.rem),
                Some(_) => {
                    for k in 0..n {
                        let o = offer(layer, self.fy[k] as usize, self.rem[k]);
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
                        let d0 = lines.date(idx[s] as usize);
                        let period = Period::of(layer.period, &ag.calendar, d0);
                        let mut e = s + 1;
                        while e < n && Period::of(layer.period, &ag.calendar, lines.date(idx[e] as usize)) == period {
                            e += 1;
                        }
                        let fy_i = cap_year(ag, period);
                        if let Cap::Units(_) = cap {
                            self.qty_before.clear();
                            self.qty_before.extend_from_slice(&self.qty[s..e]);
                        }
                        let carried = carry.get(c, li, period);
                        if self.apply_cap(cat, li, s, e, fy_i, carried) {
                            self.mark_provisional(idx, s, e, out, period.last_day(ag.end), as_of);
                        }
                        // record the period's use of the cap
                        let mut used_money = 0i64;
                        let money_cap = |m: i64| carried.map_or(m, |k| k.money_left(m));
                        debug_assert!(
                            !matches!(cap, Cap::Money(m) if self.take[s..e].iter().sum::<i64>() > money_cap(*m.get(fy_i))),
                            "a money cap exceeded in {period:?}"
                        );
                        let mut demand_money = 0i64;
                        let mut parts = 0usize;
                        let mut demand_q = Q::ZERO;
                        let mut steps: Vec<(Date, i64)> = Vec::new();
                        let money = matches!(cap, Cap::Money(_));
                        for k in s..e {
                            if self.offered[k] > 0 {
                                used_money += self.take[k];
                                if money && self.take[k] > 0 {
                                    let d = lines.date(idx[k] as usize);
                                    match steps.last_mut() {
                                        Some((ld, v)) if ld.month_index() == d.month_index() => {
                                            *ld = d;
                                            *v = used_money;
                                        }
                                        _ => steps.push((d, used_money)),
                                    }
                                }
                                demand_money = demand_money.saturating_add(self.offered[k]);
                                parts += 1;
                                if let Cap::Units(_) = cap {
                                    demand_q = demand_q.add(&self.qty_before[k - s]);
                                }
                            }
                        }
                        let reached_on = self.reached_on(layer, cap, fy_i, carried, s, e, idx, lines);
                        let (cap_amt, used_units, demand_units) = match cap {
                            Cap::Money(m) => (CapAmount::Money(money_cap(*m.get(fy_i))), None, None),
                            Cap::Units(u) => {
                                let c = match carried {
                                    None => u.get(fy_i).clone(),
                                    Some(k) => k.units_left(u.get(fy_i)),
                                };
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
                            reached_on,
                            steps,
                        });
                        s = e;
                    }
                }
            }
            for k in 0..n {
                let t = self.take[k];
                // a layer takes no more than it is offered, out of what is left
                debug_assert!(
                    (0..=self.offered[k]).contains(&t) && self.offered[k] <= self.rem[k],
                    "line {}: take {t} of {} offered, {} left",
                    idx[k],
                    self.offered[k],
                    self.rem[k]
                );
                if t == 0 {
                    continue;
                }
                self.rem[k] -= t;
                let row = idx[k] as usize * w;
                split_take(
                    &mut self.splitter,
                    layer,
                    self.fy[k] as usize,
                    t,
                    &mut out.amounts[row..row + w - 1],
                );
            }
        }
        for k in 0..n {
            let row = idx[k] as usize * w;
            out.amounts[row + w - 1] += self.rem[k];
            debug_assert_eq!(
                out.amounts[row..row + w].iter().map(|&v| v as i128).sum::<i128>(),
                lines.amount(idx[k] as usize) as i128,
                "the parts of a line add up to the line"
            );
        }
    }

    /// Apply layer `li`'s cap (value of fiscal-year index `fy_i`) to the
    /// period group at positions `s..e`: `offered` becomes `take` (and, for a
    /// unit cap, `qty` the quantities moving on). True for a pro-rata group,
    /// whose lines then stay open until the period's last day. `carried`:
    /// the use earlier agreement versions made of this period's cap, which
    /// the cap has that much less of (never below zero). The one cap
    /// dispatch of the engine and of [`Incremental`].
    fn apply_cap(
        &mut self,
        cat: &Category,
        li: usize,
        s: usize,
        e: usize,
        fy_i: usize,
        carried: Option<&Carried>,
    ) -> bool {
        let layer = &cat.layers[li];
        let Some(cap) = &layer.cap else {
            self.take[s..e].copy_from_slice(&self.offered[s..e]);
            return false;
        };
        match (cap, layer.policy) {
            (Cap::Money(m), CapPolicy::Running) => {
                let c = *m.get(fy_i);
                self.running_money(s, e, carried.map_or(c, |k| k.money_left(c)));
                false
            }
            (Cap::Units(u), CapPolicy::Running) => {
                match carried {
                    None => self.running_units(s, e, u.get(fy_i)),
                    Some(k) => self.running_units(s, e, &k.units_left(u.get(fy_i))),
                }
                false
            }
            (Cap::Money(m), CapPolicy::ProRata) => {
                let c = *m.get(fy_i);
                self.pro_rata_money(s, e, carried.map_or(c, |k| k.money_left(c)))
            }
            (Cap::Units(u), CapPolicy::ProRata) => {
                let later_units = cat.layers[li + 1..]
                    .iter()
                    .any(|l| matches!(l.cap, Some(Cap::Units(_))));
                match carried {
                    None => self.pro_rata_units(s, e, u.get(fy_i), later_units),
                    Some(k) => self.pro_rata_units(s, e, &k.units_left(u.get(fy_i)), later_units),
                }
            }
        }
    }

    /// After [`Engine::apply_cap`] on the group `s..e`: the date of the line
    /// with which use reached the capacity (see [`CapUse::reached_on`]).
    /// Reads the takes (and, for a running unit cap, the quantities before
    /// and after) the cap step left; it decides nothing itself.
    #[allow(clippy::too_many_arguments)]
    fn reached_on<L: Lines + ?Sized>(
        &self,
        layer: &Layer,
        cap: &Cap,
        fy_i: usize,
        carried: Option<&Carried>,
        s: usize,
        e: usize,
        idx: &[u32],
        lines: &L,
    ) -> Option<Date> {
        let date = |k: usize| lines.date(idx[k] as usize);
        let parts = (s..e).filter(|&k| self.offered[k] > 0);
        match (cap, layer.policy) {
            (Cap::Money(m), CapPolicy::Running) => {
                let c = carried.map_or(*m.get(fy_i), |k| k.money_left(*m.get(fy_i)));
                let mut used = 0i64;
                for k in parts {
                    used = used.saturating_add(self.take[k]);
                    if used >= c {
                        return Some(date(k));
                    }
                }
                None
            }
            (Cap::Units(u), CapPolicy::Running) => {
                let c = carried.map_or_else(|| u.get(fy_i).clone(), |k| k.units_left(u.get(fy_i)));
                let mut used = Q::ZERO;
                for k in parts {
                    // the units this line counted: its quantity before less after
                    used = used.add(&self.qty_before[k - s].sub(&self.qty[k]));
                    if used >= c {
                        return Some(date(k));
                    }
                }
                None
            }
            (Cap::Money(m), CapPolicy::ProRata) => {
                let c = carried.map_or(*m.get(fy_i), |k| k.money_left(*m.get(fy_i)));
                let used: i64 = parts.clone().map(|k| self.take[k]).sum();
                parts.clone().next_back().filter(|_| used >= c).map(date)
            }
            (Cap::Units(u), CapPolicy::ProRata) => {
                let c = carried.map_or_else(|| u.get(fy_i).clone(), |k| k.units_left(u.get(fy_i)));
                let demand = parts.clone().fold(Q::ZERO, |d, k| d.add(&self.qty_before[k - s]));
                parts.clone().next_back().filter(|_| demand >= c).map(date)
            }
        }
    }

    /// The lines of a pro-rata group that took part stay open until its last day.
    fn mark_provisional(&self, idx: &[u32], s: usize, e: usize, out: &mut Allocation, last_day: Date, as_of: Date) {
        for k in s..e {
            if self.offered[k] > 0 {
                let i = idx[k] as usize;
                out.open_until[i] = out.open_until[i].max(Some(last_day));
                if last_day > as_of {
                    out.provisional[i] = true;
                }
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
        debug_assert!(self.take[s..e].iter().sum::<i64>() <= cap, "running money cap exceeded");
    }

    fn running_units(&mut self, s: usize, e: usize, cap: &Q) {
        #[cfg(debug_assertions)]
        let before: Vec<Q> = self.qty[s..e].to_vec();
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
        // the units taken (what each line's quantity went down by) are within the cap
        #[cfg(debug_assertions)]
        {
            let used = (s..e).fold(Q::ZERO, |u, k| u.add(&before[k - s].sub(&self.qty[k])));
            debug_assert!(used <= *cap, "running unit cap exceeded");
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
        let mut floors: i128 = 0;
        self.order_buf.clear();
        for k in s..e {
            let o = self.offered[k];
            if o == 0 {
                continue;
            }
            let fr = mul_floor_rem_exact(o as u128, cap as u128, total);
            let fl = fr.floor_u128() as i64;
            self.take[k] = fl;
            floors += fl as i128;
            self.order_buf.push((fr, k));
        }
        let left = cap as i128 - floors;
        self.give_leftovers(left);
        debug_assert_eq!(
            self.take[s..e].iter().sum::<i64>(),
            cap,
            "a pro-rata money cap over its demand is used exactly"
        );
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
        // over the cap: every line keeps the same fraction f < 1 of its
        // quantity, so the units kept add up to the cap exactly
        debug_assert!(f < Q::ONE, "pro-rata unit fraction not below one");
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
        debug_assert!(
            self.take[s..e].iter().map(|&t| t as i128).sum::<i128>() == x && x <= total_a as i128,
            "pro-rata unit takes add up to the rounded fraction of the offers"
        );
        true
    }

    /// Give `left` units, one each, to the largest remainders; ties to the
    /// earlier line. All remainders in `order_buf` share one denominator.
    fn give_leftovers(&mut self, left: i128) {
        if left <= 0 {
            return;
        }
        // only which lines get a unit matters, not their order: the `left`
        // first under (remainder descending, line ascending), a total order
        // (lines are distinct), are selected without sorting the rest
        // (linear, where a sort of a month's thousands of lines was most of
        // a pro-rata allocation)
        let n = (left as usize).min(self.order_buf.len());
        if n < self.order_buf.len() {
            self.order_buf
                .select_nth_unstable_by(n, |(ra, ka), (rb, kb)| cmp_rem(rb, ra).then(ka.cmp(kb)));
        }
        for (_, k) in &self.order_buf[..n] {
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
fn mul_floor_rem_exact(o: u128, c: u128, s: u128) -> FloorRem {
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
    #[inline]
    pub fn split(&mut self, t: i64, shares: &Shares, acc: &mut [i64]) {
        #[cfg(debug_assertions)]
        let before: i128 = acc.iter().map(|&v| v as i128).sum();
        self.split_parts(t, shares, acc);
        // the parts of a take add up to it
        #[cfg(debug_assertions)]
        debug_assert_eq!(acc.iter().map(|&v| v as i128).sum::<i128>() - before, t as i128);
    }

    fn split_parts(&mut self, t: i64, shares: &Shares, acc: &mut [i64]) {
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

/// What an incremental update recomputed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Period groups of capped layers recomputed, over all layers.
    pub groups: usize,
    /// Line positions recomputed, over all layers (a line counts once per layer).
    pub line_layers: usize,
}

/// Per category: lines in order and each layer's inputs and takes, so a late
/// line re-allocates only the period groups it touches.
struct IncCat {
    idx: Vec<u32>,
    /// `rem_in[k][pos]`: what is left of the line entering layer k (k = layers: the overrun).
    rem_in: Vec<Vec<i64>>,
    /// `qty_in[k][pos]`, for categories with a unit.
    qty_in: Vec<Vec<Q>>,
    take: Vec<Vec<i64>>,
    /// The last day of the pro-rata period each line took part in, per layer.
    prov: Vec<Vec<Option<Date>>>,
}

/// An allocation kept up to date as lines arrive.
///
/// Adding a line recomputes, layer by layer, only the period groups holding a
/// line whose input changed (the new line first, then every line whose take
/// or quantity changed). The result equals [`allocate`] over all lines; the
/// tests check it on random agreements.
pub struct Incremental<'a> {
    ag: &'a Agreement,
    as_of: Date,
    lines: Vec<CostLine>,
    cats: Vec<IncCat>,
    amounts: Vec<i64>,
    eng: Engine,
}

impl<'a> Incremental<'a> {
    pub fn new(ag: &'a Agreement, lines: Vec<CostLine>, as_of: Date) -> Incremental<'a> {
        let order = line_order(lines.as_slice());
        let w = ag.parties.len() + 1;
        let mut cats: Vec<IncCat> = ag
            .categories
            .iter()
            .map(|c| {
                let l = c.layers.len();
                IncCat {
                    idx: Vec::new(),
                    rem_in: vec![Vec::new(); l + 1],
                    qty_in: if c.unit.is_some() {
                        vec![Vec::new(); l + 1]
                    } else {
                        Vec::new()
                    },
                    take: vec![Vec::new(); l],
                    prov: vec![Vec::new(); l],
                }
            })
            .collect();
        for &i in &order {
            let l = &lines[i as usize];
            let c = &mut cats[l.category];
            c.idx.push(i);
            push_line(c, l);
        }
        let mut inc = Incremental {
            ag,
            as_of,
            amounts: vec![0; lines.len() * w],
            lines,
            cats,
            eng: Engine::new(ag.parties.len()),
        };
        for c in 0..inc.cats.len() {
            let all: Vec<usize> = (0..inc.cats[c].idx.len()).collect();
            inc.recompute(c, all);
        }
        inc
    }

    pub fn lines(&self) -> &[CostLine] {
        &self.lines
    }

    /// Add one validated line; returns what was recomputed.
    pub fn add_line(&mut self, line: CostLine) -> UpdateStats {
        let w = self.ag.parties.len() + 1;
        let li = self.lines.len() as u32;
        let c = line.category;
        let key = (line.date, line.id.clone());
        let cat = &self.cats[c];
        let pos = cat.idx.partition_point(|&j| {
            let o = &self.lines[j as usize];
            (o.date, o.id.as_bytes()) < (key.0, key.1.as_bytes())
        });
        let cat = &mut self.cats[c];
        cat.idx.insert(pos, li);
        cat.rem_in[0].insert(pos, line.amount);
        for k in 1..cat.rem_in.len() {
            cat.rem_in[k].insert(pos, 0);
        }
        if !cat.qty_in.is_empty() {
            cat.qty_in[0].insert(pos, line.quantity.clone().unwrap_or(Q::ZERO));
            for k in 1..cat.qty_in.len() {
                cat.qty_in[k].insert(pos, Q::ZERO);
            }
        }
        for k in 0..cat.take.len() {
            cat.take[k].insert(pos, 0);
            cat.prov[k].insert(pos, None);
        }
        self.lines.push(line);
        self.amounts.extend(std::iter::repeat_n(0, w));
        self.recompute(c, vec![pos])
    }

    /// The allocation of every line so far.
    pub fn allocation(&self) -> Allocation {
        let w = self.ag.parties.len() + 1;
        let mut open_until: Vec<Option<Date>> = vec![None; self.lines.len()];
        for c in &self.cats {
            for layer in &c.prov {
                for (pos, &p) in layer.iter().enumerate() {
                    let i = c.idx[pos] as usize;
                    open_until[i] = open_until[i].max(p);
                }
            }
        }
        Allocation {
            parties: w - 1,
            order: line_order(self.lines.as_slice()),
            amounts: self.amounts.clone(),
            provisional: open_until.iter().map(|u| u.is_some_and(|d| d > self.as_of)).collect(),
            open_until,
            usage: Vec::new(),
        }
    }

    fn period_of(&self, c: usize, layer: usize, pos: usize) -> Period {
        let l = &self.lines[self.cats[c].idx[pos] as usize];
        Period::of(self.ag.categories[c].layers[layer].period, &self.ag.calendar, l.date)
    }

    /// Recompute category `c` from layer 0 for the positions in `dirty`
    /// (sorted): each layer redoes the groups holding a dirty line, and the
    /// lines whose take or quantity changed are dirty for the next layer.
    fn recompute(&mut self, c: usize, mut dirty: Vec<usize>) -> UpdateStats {
        let ag = self.ag;
        let cat = &ag.categories[c];
        let w = ag.parties.len() + 1;
        let unit = cat.unit.is_some();
        let mut stats = UpdateStats::default();
        for (k, layer) in cat.layers.iter().enumerate() {
            if dirty.is_empty() {
                break;
            }
            // the ranges to recompute: single lines (no cap) or whole period groups
            let mut ranges: Vec<(usize, usize)> = Vec::new();
            let n = self.cats[c].idx.len();
            for &p in &dirty {
                if let Some(&(_, e)) = ranges.last()
                    && p < e
                {
                    continue;
                }
                if layer.cap.is_none() {
                    ranges.push((p, p + 1));
                    continue;
                }
                let per = self.period_of(c, k, p);
                let mut s = p;
                while s > 0 && self.period_of(c, k, s - 1) == per {
                    s -= 1;
                }
                let mut e = p + 1;
                while e < n && self.period_of(c, k, e) == per {
                    e += 1;
                }
                ranges.push((s, e));
            }
            let mut next: Vec<usize> = Vec::new();
            for &(s, e) in &ranges {
                if layer.cap.is_some() {
                    stats.groups += 1;
                }
                stats.line_layers += e - s;
                // load the group into the engine's buffers at 0..len
                let len = e - s;
                let eng = &mut self.eng;
                eng.offered.clear();
                eng.take.clear();
                eng.take.resize(len, 0);
                eng.qty.clear();
                let ic = &self.cats[c];
                for pos in s..e {
                    let fy = ag.fy_index(self.lines[ic.idx[pos] as usize].date);
                    eng.offered.push(offer(layer, fy, ic.rem_in[k][pos]));
                    if unit {
                        eng.qty.push(ic.qty_in[k][pos].clone());
                    }
                }
                let prov: Option<Date> = match &layer.cap {
                    None => {
                        eng.take.copy_from_slice(&eng.offered);
                        None
                    }
                    Some(_) => {
                        let per = self.period_of(c, k, s);
                        let fy_i = cap_year(ag, per);
                        self.eng
                            .apply_cap(cat, k, 0, len, fy_i, None)
                            .then_some(per.last_day(ag.end))
                    }
                };
                // write back; lines whose take or quantity changed move on as dirty
                let ic = &mut self.cats[c];
                for (j, pos) in (s..e).enumerate() {
                    let new_take = self.eng.take[j];
                    debug_assert!(
                        (0..=self.eng.offered[j]).contains(&new_take) && self.eng.offered[j] <= ic.rem_in[k][pos],
                        "take {new_take} of {} offered",
                        self.eng.offered[j]
                    );
                    let old_take = ic.take[k][pos];
                    ic.prov[k][pos] = prov.filter(|_| self.eng.offered[j] > 0);
                    let new_rem = ic.rem_in[k][pos] - new_take;
                    let mut changed = new_take != old_take || ic.rem_in[k + 1][pos] != new_rem;
                    if unit {
                        let q_out = if matches!(layer.cap, Some(Cap::Units(_))) {
                            self.eng.qty[j].clone()
                        } else {
                            ic.qty_in[k][pos].clone()
                        };
                        if ic.qty_in[k + 1][pos] != q_out {
                            changed = true;
                            ic.qty_in[k + 1][pos] = q_out;
                        }
                    }
                    if new_take != old_take {
                        let line = ic.idx[pos] as usize;
                        let fy = ag.fy_index(self.lines[line].date);
                        let row = &mut self.amounts[line * w..line * w + w - 1];
                        // remove the old parts, add the new: splits are deterministic
                        let mut old = vec![0i64; w - 1];
                        split_take(&mut self.eng.splitter, layer, fy, old_take, &mut old);
                        for (a, o) in row.iter_mut().zip(&old) {
                            *a -= o;
                        }
                        split_take(&mut self.eng.splitter, layer, fy, new_take, row);
                        ic.take[k][pos] = new_take;
                    }
                    ic.rem_in[k + 1][pos] = new_rem;
                    if changed || dirty.binary_search(&pos).is_ok() {
                        next.push(pos);
                    }
                }
            }
            next.sort_unstable();
            next.dedup();
            dirty = next;
        }
        // the overrun of every line that changed
        let last = cat.layers.len();
        let ic = &self.cats[c];
        for &pos in &dirty {
            let line = ic.idx[pos] as usize;
            self.amounts[line * w + w - 1] = ic.rem_in[last][pos];
            debug_assert_eq!(
                self.amounts[line * w..(line + 1) * w].iter().sum::<i64>(),
                self.lines[line].amount,
                "line {line}"
            );
        }
        stats
    }
}

fn push_line(c: &mut IncCat, l: &CostLine) {
    c.rem_in[0].push(l.amount);
    for k in 1..c.rem_in.len() {
        c.rem_in[k].push(0);
    }
    if !c.qty_in.is_empty() {
        c.qty_in[0].push(l.quantity.clone().unwrap_or(Q::ZERO));
        for k in 1..c.qty_in.len() {
            c.qty_in[k].push(Q::ZERO);
        }
    }
    for k in 0..c.take.len() {
        c.take[k].push(0);
        c.prov[k].push(None);
    }
}
