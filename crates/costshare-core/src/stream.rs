//! The streaming report: a costs CSV read once, in blocks, by independent
//! workers (the CLI runs two, one per core), without a `String` per line.
//!
//! Uncapped agreements are totalled as the lines go by — each line's
//! allocation depends on that line alone — so memory does not grow with the
//! number of lines beyond the id set (to refuse repeated ids) and the
//! report's groups. Capped agreements need the lines of a period together:
//! their lines are kept in compact columns (ids in one arena) and allocated
//! at the end by the same engine as every other path
//! ([`crate::alloc::allocate_lines`]).
//!
//! It takes the common case and says when it cannot: rows without quotes
//! it cannot read on one line or lone carriage returns, valid UTF-8, no
//! repeated id. Every row is checked by [`crate::costs::accept`] (the one
//! rule for a row, which every path calls); a refused row is named by
//! [`RowError::refused`] and, with the file's replacements checked by
//! [`crate::costs::check_replacements`] (the general parser's own rule),
//! [`Plan::settle`] gives [`Settled::BadRows`]: the errors `parse_costs`
//! gives, in its order. Rows that replace others are applied: a capped
//! agreement drops the replaced lines from its columns; an uncapped one
//! (totalled already) asks for a second reading ([`Settled::ReadAgain`]) in
//! which undo workers take the replaced lines' parts back out. On anything
//! else a call returns [`Fallback`] and the caller runs the general path
//! (`parse_costs`, `allocate`, `report`), which gives the exact diagnostics.
//! So the report equals the general path's row for row, and the errors its
//! errors word for word (the tests compare the two on random agreements and
//! files, capped and uncapped, clean and mutated).

use crate::agreement::Agreement;
use crate::alloc::{self, Lines, Splitter};
use crate::calendar::Date;
use crate::costs::{self, Accepted, COST_COLUMNS, Rates, Replacing, RowError, RowRef};
use crate::fxhash::{BuildFx, Fx};
use crate::num::Q;
use crate::report::{Dim, KeyRule, Row, TotalTooLarge};
use std::collections::{HashMap, HashSet};
use std::hash::Hasher;

/// The streaming path cannot take this input; run the general path. The
/// reason is for logs and tests, not for users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fallback(pub &'static str);

/// What a streaming run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamReport {
    /// The report rows, as [`crate::report::report`] gives them.
    pub rows: Result<Vec<Row>, TotalTooLarge>,
    /// Cost lines counted.
    pub lines: usize,
    /// Lines in pro-rata periods not ended by the as-of date.
    pub provisional: usize,
    /// The report of those provisional lines alone (same dimensions), so
    /// that [`crate::report::provisional_flags`] marks the rows counting one.
    pub provisional_rows: Vec<Row>,
}

/// What the workers' lines come to ([`Plan::settle`]).
#[derive(Debug)]
pub enum Settled {
    /// The report: every row accepted, replacements applied.
    Report(StreamReport),
    /// Rows the general path refuses, named as [`crate::costs::parse_costs`]
    /// names them: the same errors in the same order.
    BadRows(Vec<RowError>),
    /// An uncapped agreement (totalled as the lines went by) with lines that
    /// a replacement drops: read the body again through
    /// [`Plan::undo_worker`]s, which take those lines back out, and call
    /// [`Plan::finish_again`].
    ReadAgain(Again),
}

/// The workers of a first pass, waiting for the replaced lines to be taken out.
pub struct Again {
    workers: Vec<Worker>,
    /// The ids replaced (each on exactly one accepted line).
    gone: Vec<String>,
}

impl std::fmt::Debug for Again {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Again")
            .field("gone", &self.gone)
            .finish_non_exhaustive()
    }
}

/// A row that replaces another, as a worker met it.
struct Replacement {
    /// Line number (relative to the piece until [`Worker::place`]d).
    line: usize,
    id: String,
    replaces: String,
}

/// Column kinds, in [`COST_COLUMNS`] order.
const ID: usize = 0;
const DATE: usize = 1;
const CATEGORY: usize = 2;
const AMOUNT: usize = 3;
const CURRENCY: usize = 4;
const QUANTITY: usize = 5;
const SITE: usize = 6;
const DESCRIPTION: usize = 7;
const REPLACES: usize = 8;
const PAID_BY: usize = 9;
const NONE: u8 = u8::MAX;

/// Checked once: the agreement, the header and the dimensions.
pub struct Plan<'a> {
    ag: &'a Agreement,
    rates: &'a Rates,
    as_of: Date,
    /// Some layer has a cap: lines are kept and allocated at the end.
    capped: bool,
    /// How lines are grouped into report rows (the report's one rule).
    rule: KeyRule<'a>,
    /// For each CSV column, the kind it holds (`NONE` for ignored columns).
    col_kind: Vec<u8>,
    want_site: bool,
}

impl<'a> Plan<'a> {
    /// `header` is the first line of the file (BOM and line break removed).
    pub fn new(
        ag: &'a Agreement,
        rates: &'a Rates,
        as_of: Date,
        dims: &[Dim],
        header: &[u8],
    ) -> Result<Plan<'a>, Fallback> {
        if dims.is_empty() || dims.len() > 5 {
            return Err(Fallback("dimensions"));
        }
        let header = header.strip_suffix(b"\r").unwrap_or(header);
        if header.contains(&b'"') || header.contains(&b'\r') {
            return Err(Fallback("header needs the full CSV reader"));
        }
        let header = std::str::from_utf8(header).map_err(|_| Fallback("header not UTF-8"))?;
        let mut col_kind = Vec::new();
        let mut seen = [false; COST_COLUMNS.len()];
        for name in header.split(',') {
            let name = name.trim_matches(' ');
            let kind = COST_COLUMNS.iter().position(|c| *c == name);
            match kind {
                Some(k) if seen[k] => return Err(Fallback("a column appears twice")),
                Some(k) => {
                    seen[k] = true;
                    col_kind.push(k as u8);
                }
                None => col_kind.push(NONE),
            }
        }
        if !(seen[ID] && seen[DATE] && seen[CATEGORY] && seen[AMOUNT]) {
            return Err(Fallback("a required column is missing"));
        }
        Ok(Plan {
            ag,
            rates,
            as_of,
            capped: ag.categories.iter().any(|c| c.layers.iter().any(|l| l.cap.is_some())),
            rule: KeyRule::new(ag, dims),
            col_kind,
            want_site: dims.contains(&Dim::Site),
        })
    }

    /// A worker with room for about `lines_hint` ids before it grows.
    pub fn worker(&self, lines_hint: usize) -> Worker {
        let w = self.ag.parties.len() + 1;
        Worker {
            ids: IdSet::with_capacity(lines_hint),
            splitter: Splitter::new(w - 1),
            row: vec![0; w],
            groups: Groups::new(w),
            kept: Kept::default(),
            sites: HashMap::default(),
            site_names: Vec::new(),
            lines: 0,
            total: 0,
            fed: 0,
            errors: Vec::new(),
            replacing: Vec::new(),
            placed: (0, 0),
            undo: None,
            undone: 0,
        }
    }

    /// A worker for the second reading of [`Settled::ReadAgain`]: it takes
    /// only the lines `again` drops, and subtracts what they added.
    pub fn undo_worker(&self, again: &Again) -> Worker {
        let mut w = self.worker(0);
        w.undo = Some(again.gone.iter().map(|g| g.as_bytes().to_vec()).collect());
        w
    }

    /// Put a row's trimmed fields where their columns go; returns how many
    /// fields there were and whether any was not empty.
    fn fill<'s>(&self, fields: impl Iterator<Item = &'s str>, f: &mut [&'s str; COST_COLUMNS.len()]) -> (usize, bool) {
        let (mut n, mut any) = (0, false);
        for (i, field) in fields.enumerate() {
            let t = field.trim_matches(' ');
            any |= !t.is_empty();
            if let Some(&k) = self.col_kind.get(i)
                && k != NONE
            {
                f[k as usize] = t;
            }
            n = i + 1;
        }
        (n, any)
    }

    /// Add a set of groups to the report's totals, through the report's key
    /// rule; `remap` turns a worker's site numbers into the merged ones.
    fn add_groups(&self, g: &Groups, remap: Option<&[u32]>, out: &mut HashMap<[i64; 5], i128, BuildFx>) {
        // where the site sits in a key without the party
        let site_pos = self
            .rule
            .dims()
            .iter()
            .filter(|d| **d != Dim::Party)
            .position(|d| *d == Dim::Site);
        let w = g.width;
        for (key, &slot) in &g.slots {
            let mut k = *key;
            if let (Some(sp), Some(remap)) = (site_pos, remap) {
                k[sp] = remap.get(k[sp] as usize).copied().unwrap_or(0) as i64;
            }
            self.rule
                .add_parts(out, &k, &g.sums[slot as usize * w..(slot as usize + 1) * w]);
        }
    }

    /// The values of a line's non-party dimensions, in `dims` order.
    #[inline]
    fn key(&self, date: Date, cat: usize, site: u32) -> [i64; 4] {
        self.rule.key_without_party(date, cat, site as i64)
    }

    /// [`Plan::finish_with`] on two threads.
    pub fn finish(&self, workers: Vec<Worker>) -> Result<StreamReport, Fallback> {
        self.finish_with(workers, 2)
    }

    /// [`Plan::settle`] when only a report will do: bad rows, and an
    /// uncapped agreement's replaced lines, are a [`Fallback`].
    pub fn finish_with(&self, workers: Vec<Worker>, threads: usize) -> Result<StreamReport, Fallback> {
        match self.settle(workers, threads)? {
            Settled::Report(r) => Ok(r),
            Settled::BadRows(_) => Err(Fallback("a refused row")),
            Settled::ReadAgain(_) => Err(Fallback("replaced lines to read again")),
        }
    }

    /// Merge the workers, on up to `threads` threads (`1`: on this one):
    /// the check that no id was seen twice, the rows refused and the
    /// replacements (by the general parser's own rules, so the errors are
    /// its errors), then the report (a capped agreement's allocation).
    /// Fails when two workers saw the same id, or the total leaves 64 bits
    /// (the general path then names the rows). Every worker must have been
    /// [`Worker::place`]d after its last feed for the errors' line numbers.
    pub fn settle(&self, mut workers: Vec<Worker>, threads: usize) -> Result<Settled, Fallback> {
        // the largest id set is probed by the others
        workers.sort_by_key(|w| std::cmp::Reverse(w.ids.len));
        let mut total: i128 = 0;
        for (i, w) in workers.iter().enumerate() {
            for other in &workers[..i] {
                if w.ids.any_in(&other.ids, threads) {
                    return Err(Fallback("an id repeated across blocks"));
                }
            }
            total += w.total;
        }
        if total > i64::MAX as i128 {
            return Err(Fallback("total beyond 64 bits"));
        }
        // what `parse_costs` would say: the refused rows in line order, then
        // the replacements' problems by the one rule for them, then sorted
        // by line (stably, as there)
        let mut errors: Vec<RowError> = workers.iter_mut().flat_map(|w| std::mem::take(&mut w.errors)).collect();
        errors.sort_by_key(|e| e.line);
        let gone: Vec<String> = {
            let mut reps: Vec<&Replacement> = workers.iter().flat_map(|w| &w.replacing).collect();
            reps.sort_by_key(|r| r.line);
            let with: Vec<Replacing<'_>> = reps
                .iter()
                .map(|r| Replacing {
                    line: r.line,
                    id: &r.id,
                    replaces: &r.replaces,
                })
                .collect();
            let in_file = |id: &str| workers.iter().any(|w| w.ids.contains(id.as_bytes()));
            costs::check_replacements(&with, in_file, &mut errors)
                .into_iter()
                .map(str::to_string)
                .collect()
        };
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.line);
            return Ok(Settled::BadRows(errors));
        }
        // ids are checked: their tables can go (the arenas stay for ordering)
        for w in &mut workers {
            w.ids.slots = Vec::new();
            w.replacing = Vec::new();
        }
        if !self.capped && !gone.is_empty() {
            return Ok(Settled::ReadAgain(Again { workers, gone }));
        }
        Ok(Settled::Report(self.report(workers, &gone, threads)))
    }

    /// The report of [`Settled::ReadAgain`]: `undo` are the
    /// [`Plan::undo_worker`]s that read the body again.
    pub fn finish_again(&self, again: Again, undo: Vec<Worker>, threads: usize) -> Result<StreamReport, Fallback> {
        // each replaced line was accepted once: found again exactly once
        let found: usize = undo.iter().map(|w| w.undone).sum();
        if found != again.gone.len() || undo.iter().any(|w| w.undo.is_none()) {
            return Err(Fallback("the replaced lines were not found again"));
        }
        let mut workers = again.workers;
        workers.extend(undo);
        Ok(self.report(workers, &again.gone, threads))
    }

    /// The report rows of checked workers; `gone`: the ids replaced.
    fn report(&self, mut workers: Vec<Worker>, gone: &[String], threads: usize) -> StreamReport {
        // one site numbering for all workers
        let mut site_ids: HashMap<String, u32, BuildFx> = HashMap::default();
        let mut site_names: Vec<String> = Vec::new();
        let remap: Vec<Vec<u32>> = workers
            .iter()
            .map(|wk| {
                wk.site_names
                    .iter()
                    .map(|name| {
                        let next = site_names.len() as u32;
                        *site_ids.entry(name.clone()).or_insert_with(|| {
                            site_names.push(name.clone());
                            next
                        })
                    })
                    .collect()
            })
            .collect();
        let sites: Vec<&str> = site_names.iter().map(String::as_str).collect();
        // a replaced line was counted when read
        let lines: usize = workers.iter().map(|w| w.lines).sum::<usize>() - gone.len();
        let mut provisional = 0;
        let mut provisional_rows = Vec::new();
        let mut out: HashMap<[i64; 5], i128, BuildFx> = HashMap::default();
        if self.capped {
            let mut kept = KeptLines::merge(&mut workers, &remap);
            if !gone.is_empty() {
                kept.drop_ids(gone);
            }
            let a = alloc::allocate_lines_par(self.ag, &kept, self.as_of, threads);
            provisional = a.provisional.iter().filter(|&&p| p).count();
            let mut groups = Groups::new(self.ag.parties.len() + 1);
            let mut prov_groups = Groups::new(self.ag.parties.len() + 1);
            for i in 0..kept.count() {
                let key = self.key(kept.cols.date[i], kept.cols.cat[i] as usize, kept.cols.site[i]);
                groups.add(key, a.row(i), self.rule.by_party());
                if a.provisional[i] {
                    prov_groups.add(key, a.row(i), self.rule.by_party());
                }
            }
            // sites were renumbered when the columns were merged
            self.add_groups(&groups, None, &mut out);
            if provisional > 0 {
                let mut prov_out: HashMap<[i64; 5], i128, BuildFx> = HashMap::default();
                self.add_groups(&prov_groups, None, &mut prov_out);
                // a subset of the rows above: within their limits when they are
                provisional_rows = self.rule.rows(&sites, prov_out).unwrap_or_default();
            }
        } else {
            // undo workers' groups hold the replaced lines' parts negated: a
            // group left at zero gives no row, as if never read
            for (w, r) in workers.iter().zip(&remap) {
                self.add_groups(&w.groups, Some(r), &mut out);
            }
        }
        StreamReport {
            rows: self.rule.rows(&sites, out),
            lines,
            provisional,
            provisional_rows,
        }
    }
}

/// Totals by the non-party dimensions: a slot per key, a sum per party.
struct Groups {
    width: usize,
    /// Non-party dimension values → slot in `sums`.
    slots: HashMap<[i64; 4], u32, BuildFx>,
    /// `sums[slot · width + party]`.
    sums: Vec<i128>,
    last: Option<([i64; 4], u32)>,
}

impl Groups {
    fn new(width: usize) -> Groups {
        Groups {
            width,
            slots: HashMap::default(),
            sums: Vec::new(),
            last: None,
        }
    }

    /// Add one line's parts to its group (all to the first slot when the
    /// report is not by party).
    fn add(&mut self, key: [i64; 4], row: &[i64], by_party: bool) {
        let w = self.width;
        let slot = match self.last {
            Some((k, s)) if k == key => s,
            _ => {
                let next = self.slots.len() as u32;
                let s = *self.slots.entry(key).or_insert(next);
                if s == next {
                    self.sums.resize(self.sums.len() + w, 0);
                }
                self.last = Some((key, s));
                s
            }
        };
        let sums = &mut self.sums[slot as usize * w..(slot as usize + 1) * w];
        if by_party {
            for (s, &v) in sums.iter_mut().zip(row) {
                *s += v as i128;
            }
        } else {
            sums[0] += row.iter().map(|&v| v as i128).sum::<i128>();
        }
    }
}

/// A capped agreement's lines as one worker read them: columns.
#[derive(Default)]
struct Kept {
    date: Vec<Date>,
    cat: Vec<u16>,
    amount: Vec<i64>,
    /// Worker-local site number.
    site: Vec<u32>,
    /// Offset of the id in the worker's id arena.
    id: Vec<u64>,
    /// Index into `qtys`, or `u32::MAX` for none.
    qty: Vec<u32>,
    qtys: Vec<Q>,
}

impl Kept {
    fn push(&mut self, date: Date, cat: usize, amount: i64, site: u32, id: u64, q: Option<Q>) {
        self.date.push(date);
        self.cat.push(cat as u16);
        self.amount.push(amount);
        self.site.push(site);
        self.id.push(id);
        match q {
            Some(q) => {
                self.qty.push(self.qtys.len() as u32);
                self.qtys.push(q);
            }
            None => self.qty.push(u32::MAX),
        }
    }
}

/// Every worker's kept lines in one set of columns (sites renumbered, id
/// offsets into the joined arenas), for the allocator.
struct KeptLines {
    cols: Kept,
    arena: Vec<u8>,
}

impl KeptLines {
    /// Take the workers' columns (and id arenas, their sets checked).
    fn merge(workers: &mut [Worker], remap: &[Vec<u32>]) -> KeptLines {
        let mut k = KeptLines {
            cols: Kept::default(),
            arena: Vec::new(),
        };
        for (w, r) in workers.iter_mut().zip(remap) {
            let mut kept = std::mem::take(&mut w.kept);
            for s in &mut kept.site {
                *s = r.get(*s as usize).copied().unwrap_or(0);
            }
            if k.cols.date.is_empty() {
                // the first worker's columns are taken as they are
                k.arena = std::mem::take(&mut w.ids.arena);
                k.cols = kept;
                continue;
            }
            let base = k.arena.len() as u64;
            let qbase = k.cols.qtys.len() as u32;
            k.arena.extend_from_slice(&w.ids.arena);
            w.ids.arena = Vec::new();
            let c = &mut k.cols;
            c.site.extend_from_slice(&kept.site);
            c.date.extend_from_slice(&kept.date);
            c.cat.extend_from_slice(&kept.cat);
            c.amount.extend_from_slice(&kept.amount);
            c.id.extend(kept.id.iter().map(|&o| o + base));
            c.qty
                .extend(kept.qty.iter().map(|&q| if q == u32::MAX { q } else { q + qbase }));
            c.qtys.extend(kept.qtys);
        }
        k
    }
}

impl KeptLines {
    /// Drop the lines whose id is in `gone` (the replaced ones).
    fn drop_ids(&mut self, gone: &[String]) {
        let gone: HashSet<&[u8], BuildFx> = gone.iter().map(|g| g.as_bytes()).collect();
        let keep: Vec<bool> = (0..self.count()).map(|i| !gone.contains(self.id(i))).collect();
        fn retain<T>(v: &mut Vec<T>, keep: &[bool]) {
            let mut k = keep.iter();
            v.retain(|_| k.next().copied().unwrap_or(true));
        }
        let c = &mut self.cols;
        retain(&mut c.date, &keep);
        retain(&mut c.cat, &keep);
        retain(&mut c.amount, &keep);
        retain(&mut c.site, &keep);
        retain(&mut c.id, &keep);
        retain(&mut c.qty, &keep);
    }
}

impl Lines for KeptLines {
    fn count(&self) -> usize {
        self.cols.date.len()
    }
    fn date(&self, i: usize) -> Date {
        self.cols.date[i]
    }
    fn category(&self, i: usize) -> usize {
        self.cols.cat[i] as usize
    }
    fn amount(&self, i: usize) -> i64 {
        self.cols.amount[i]
    }
    fn quantity(&self, i: usize) -> Option<&Q> {
        self.cols.qtys.get(self.cols.qty[i] as usize)
    }
    fn id(&self, i: usize) -> &[u8] {
        let off = self.cols.id[i] as usize;
        let n = u16::from_le_bytes([self.arena[off], self.arena[off + 1]]) as usize;
        &self.arena[off + 2..off + 2 + n]
    }
}

/// One worker's state: its ids, and its totals (uncapped) or lines (capped).
pub struct Worker {
    ids: IdSet,
    splitter: Splitter,
    /// One line's parts (parties, then UNALLOCATED).
    row: Vec<i64>,
    /// Uncapped: the totals so far.
    groups: Groups,
    /// Capped: the lines, to allocate at the end.
    kept: Kept,
    sites: HashMap<String, u32, BuildFx>,
    site_names: Vec<String>,
    lines: usize,
    total: i128,
    /// Line breaks fed since the last [`Worker::place`].
    fed: usize,
    /// Rows the one rule refused, named.
    errors: Vec<RowError>,
    /// Accepted rows that replace another.
    replacing: Vec<Replacement>,
    /// How many of `errors` and `replacing` have their line numbers placed.
    placed: (usize, usize),
    /// An undo worker ([`Plan::undo_worker`]): the replaced ids it takes back out.
    undo: Option<HashSet<Vec<u8>, BuildFx>>,
    /// Lines an undo worker took back out.
    undone: usize,
}

impl Worker {
    /// Take whole lines: `data` ends at a line break or at the end of the
    /// file. It must not contain the header.
    pub fn feed(&mut self, plan: &Plan<'_>, data: &[u8]) -> Result<(), Fallback> {
        let text = std::str::from_utf8(data).map_err(|_| Fallback("not UTF-8"))?;
        let mut start = 0usize;
        let bytes = text.as_bytes();
        // one scan of the block each for quotes and carriage returns, not one per line
        let odd = Odd {
            quote: memchr::memchr(b'"', bytes).is_some(),
            cr: memchr::memchr(b'\r', bytes).is_some(),
        };
        for nl in memchr::memchr_iter(b'\n', bytes) {
            self.line(plan, &text[start..nl], self.fed, odd)?;
            self.fed += 1;
            start = nl + 1;
        }
        if start < bytes.len() {
            self.line(plan, &text[start..], self.fed, odd)?;
            self.fed += 1;
        }
        Ok(())
    }

    /// Number the lines fed since the last call: the first of them is line
    /// `first_line` of the file (the header is line 1). Returns how many
    /// lines that was, so the driver can number the next piece. The errors
    /// and replacements a feed records carry their numbers only once placed.
    pub fn place(&mut self, first_line: usize) -> usize {
        for e in &mut self.errors[self.placed.0..] {
            e.line += first_line;
        }
        for r in &mut self.replacing[self.placed.1..] {
            r.line += first_line;
        }
        self.placed = (self.errors.len(), self.replacing.len());
        std::mem::take(&mut self.fed)
    }

    /// One line; `at`: its number within the lines fed since the last
    /// [`Worker::place`].
    fn line(&mut self, plan: &Plan<'_>, line: &str, at: usize, odd: Odd) -> Result<(), Fallback> {
        let line = if odd.cr {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.as_bytes().contains(&b'\r') {
                return Err(Fallback("a lone carriage return"));
            }
            line
        } else {
            line
        };
        let mut f: [&str; COST_COLUMNS.len()] = [""; COST_COLUMNS.len()];
        // quoted fields, unescaped (a line with quotes is rare: this allocates)
        let quoted: Vec<std::borrow::Cow<'_, str>>;
        let (n, any) = if odd.quote && line.as_bytes().contains(&b'"') {
            quoted = split_quoted(line).ok_or(Fallback("a quoted field the line reader cannot take"))?;
            plan.fill(quoted.iter().map(|c| c.as_ref()), &mut f)
        } else {
            plan.fill(split_commas(line), &mut f)
        };
        if !any && n <= 1 {
            return Ok(()); // a blank line
        }
        if let Some(gone) = &self.undo {
            if !gone.contains(f[ID].as_bytes()) {
                return Ok(());
            }
            return self.undo_line(plan, &f);
        }
        let ag = plan.ag;
        // the id's slot is a likely cache miss: ask for it now and check the
        // rest of the row while it arrives
        let id_hash = hash_id(f[ID].as_bytes());
        self.ids.prefetch(id_hash);
        // what a valid row is, is decided by the one rule every path calls;
        // a row it refuses is named as the general parser names it
        let row = RowRef {
            line: at,
            id: f[ID],
            date: f[DATE],
            category: f[CATEGORY],
            amount: f[AMOUNT],
            currency: f[CURRENCY],
            quantity: f[QUANTITY],
            site: f[SITE],
            description: f[DESCRIPTION],
            replaces: f[REPLACES],
            paid_by: f[PAID_BY],
            recorded: false,
        };
        let Accepted {
            date,
            category: cat,
            amount,
            quantity,
            ..
        } = match costs::accept(ag, plan.rates, &row) {
            Ok(a) => a,
            Err(problems) => {
                self.errors.push(RowError::refused(&row, &problems));
                return Ok(());
            }
        };
        // a repeat names the first line and compares values: the general path
        let Some(id_at) = self.ids.insert_hashed(f[ID].as_bytes(), id_hash) else {
            return Err(Fallback("a repeated id"));
        };
        if !f[REPLACES].is_empty() {
            self.replacing.push(Replacement {
                line: at,
                id: f[ID].to_string(),
                replaces: f[REPLACES].to_string(),
            });
        }
        self.total += amount as i128;
        if self.total > i64::MAX as i128 {
            return Err(Fallback("total beyond 64 bits"));
        }
        self.lines += 1;
        let site = if plan.want_site { self.site(f[SITE]) } else { 0 };
        if plan.capped {
            self.kept.push(date, cat, amount, site, id_at, quantity);
            return Ok(());
        }
        self.add_uncapped(plan, date, cat, amount, site, false);
        Ok(())
    }

    /// An uncapped line's parts added to its group (taken out: `negate`):
    /// the layers have no cap, so the line alone decides its parts.
    fn add_uncapped(&mut self, plan: &Plan<'_>, date: Date, cat: usize, amount: i64, site: u32, negate: bool) {
        let ag = plan.ag;
        self.row.fill(0);
        alloc::uncapped_line(
            &ag.categories[cat],
            ag.fy_index(date),
            amount,
            &mut self.splitter,
            &mut self.row,
        );
        if negate {
            for v in &mut self.row {
                *v = -*v;
            }
        }
        let key = plan.key(date, cat, site);
        self.groups.add(key, &self.row, plan.rule.by_party());
    }

    /// A replaced line met again by an undo worker: its parts taken out.
    fn undo_line(&mut self, plan: &Plan<'_>, f: &[&str; COST_COLUMNS.len()]) -> Result<(), Fallback> {
        let row = RowRef {
            line: 0,
            id: f[ID],
            date: f[DATE],
            category: f[CATEGORY],
            amount: f[AMOUNT],
            currency: f[CURRENCY],
            quantity: f[QUANTITY],
            site: f[SITE],
            description: f[DESCRIPTION],
            replaces: f[REPLACES],
            paid_by: f[PAID_BY],
            recorded: false,
        };
        let Ok(a) = costs::accept(plan.ag, plan.rates, &row) else {
            return Err(Fallback("a replaced line changed"));
        };
        let site = if plan.want_site { self.site(f[SITE]) } else { 0 };
        self.add_uncapped(plan, a.date, a.category, a.amount, site, true);
        self.undone += 1;
        Ok(())
    }

    fn site(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.sites.get(s) {
            return i;
        }
        let i = self.site_names.len() as u32;
        self.sites.insert(s.to_string(), i);
        self.site_names.push(s.to_string());
        i
    }

    /// Lines taken so far.
    pub fn lines(&self) -> usize {
        self.lines
    }
}

/// A set of ids: their bytes in one arena, open addressing (linear probing)
/// over 64-bit slots holding a 16-bit hash tag and the arena offset. No
/// allocation per id.
struct IdSet {
    /// 0 = empty; else `tag << 48 | (offset + 1)`.
    slots: Vec<u64>,
    /// Each id as a 2-byte little-endian length and its bytes.
    arena: Vec<u8>,
    len: usize,
    /// Where every 4096th id starts in the arena (to split the ids for two threads).
    marks: Vec<u64>,
}

const OFFSET_BITS: u32 = 48;

fn hash_id(id: &[u8]) -> u64 {
    let mut h = Fx::default();
    h.write(id);
    h.finish()
}

impl IdSet {
    fn with_capacity(n: usize) -> IdSet {
        // at most three quarters full: probes stay short (a run of slots
        // shares a cache line) and the table stays near 11 bytes an id
        let slots = (n.max(8) * 4 / 3).next_power_of_two();
        IdSet {
            slots: alloc::written(slots, 0),
            arena: Vec::with_capacity(n.saturating_mul(12).min(1 << 30)),
            len: 0,
            marks: Vec::new(),
        }
    }

    fn id_at(&self, slot: u64) -> &[u8] {
        let off = ((slot & ((1 << OFFSET_BITS) - 1)) - 1) as usize;
        let n = u16::from_le_bytes([self.arena[off], self.arena[off + 1]]) as usize;
        &self.arena[off + 2..off + 2 + n]
    }

    /// Where `id` is or would go.
    fn find(&self, id: &[u8], h: u64) -> (usize, bool) {
        let mask = self.slots.len() - 1;
        let tag = h >> OFFSET_BITS;
        let mut i = h as usize & mask;
        loop {
            let s = self.slots[i];
            if s == 0 {
                return (i, false);
            }
            if s >> OFFSET_BITS == tag && self.id_at(s) == id {
                return (i, true);
            }
            i = (i + 1) & mask;
        }
    }

    fn contains(&self, id: &[u8]) -> bool {
        self.find(id, hash_id(id)).1
    }

    /// Whether any of `ids` is here: probes in batches, each batch's slots
    /// prefetched first so their cache misses overlap.
    fn contains_any<'i>(&self, ids: impl Iterator<Item = &'i [u8]>) -> bool {
        let mut batch: Vec<(&[u8], u64)> = Vec::with_capacity(16);
        let mut ids = ids.peekable();
        while ids.peek().is_some() {
            batch.clear();
            for id in ids.by_ref().take(16) {
                let h = hash_id(id);
                self.prefetch(h);
                batch.push((id, h));
            }
            if batch.iter().any(|&(id, h)| self.find(id, h).1) {
                return true;
            }
        }
        false
    }

    /// Start loading the slot where a hash's probe begins.
    fn prefetch(&self, h: u64) {
        let mask = self.slots.len() - 1;
        let p = self.slots[h as usize & mask..].as_ptr();
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint with no effect on memory or on the
        // program's state, and `p` points into `slots` (checked by the slice
        // index above); SSE, which it needs, is part of every x86_64 CPU.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }

    /// Add `id` and return where its entry starts in the arena; `None` when
    /// it was already there.
    #[cfg(test)]
    fn insert(&mut self, id: &[u8]) -> Option<u64> {
        self.insert_hashed(id, hash_id(id))
    }

    /// [`IdSet::insert`] with the id's hash computed already.
    fn insert_hashed(&mut self, id: &[u8], h: u64) -> Option<u64> {
        // an id over 64 KiB counts as seen, so the general path decides
        let n = u16::try_from(id.len()).ok()?;
        let (i, found) = self.find(id, h);
        if found {
            return None;
        }
        let off = self.arena.len() as u64;
        if off + 1 >= 1 << OFFSET_BITS {
            return None;
        }
        if self.len.is_multiple_of(4096) {
            self.marks.push(off);
        }
        self.arena.extend_from_slice(&n.to_le_bytes());
        self.arena.extend_from_slice(id);
        self.slots[i] = (h >> OFFSET_BITS) << OFFSET_BITS | (off + 1);
        self.len += 1;
        if self.len * 4 > self.slots.len() * 3 {
            self.grow();
        }
        Some(off)
    }

    fn grow(&mut self) {
        let bigger = alloc::written(self.slots.len() * 2, 0);
        let old = std::mem::replace(&mut self.slots, bigger);
        let mask = self.slots.len() - 1;
        for s in old.into_iter().filter(|&s| s != 0) {
            let h = hash_id(self.id_at(s));
            let mut i = h as usize & mask;
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }

    /// Whether any id of this set is in `other`: the ids in up to `threads`
    /// parts, one per thread (the probes are cache misses, and this runs
    /// after the workers are done, with the cores free).
    fn any_in(&self, other: &IdSet, threads: usize) -> bool {
        // parts start at marks (where an entry starts), about evenly spread
        let k = threads.clamp(1, self.marks.len().max(1));
        let mut cuts: Vec<usize> = (1..k).map(|j| self.marks[self.marks.len() * j / k] as usize).collect();
        cuts.insert(0, 0);
        cuts.push(self.arena.len());
        cuts.dedup();
        let parts: Vec<&[u8]> = cuts.windows(2).map(|c| &self.arena[c[0]..c[1]]).collect();
        let Some((first, rest)) = parts.split_first() else {
            return false;
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = rest
                .iter()
                .map(|&part| s.spawn(move || other.contains_any(Self::ids_from(part))))
                .collect();
            let found = other.contains_any(Self::ids_from(first));
            // a panicking probe would be a bug: count it as a repeat, so the
            // general path decides
            handles.into_iter().fold(found, |f, h| h.join().unwrap_or(true) || f)
        })
    }

    /// The ids stored in a stretch of the arena that starts at an entry.
    fn ids_from(arena: &[u8]) -> impl Iterator<Item = &[u8]> + Send + '_ {
        let mut off = 0usize;
        std::iter::from_fn(move || {
            let n = u16::from_le_bytes([*arena.get(off)?, *arena.get(off + 1)?]) as usize;
            let id = arena.get(off + 2..off + 2 + n)?;
            off += 2 + n;
            Some(id)
        })
    }

    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut off = 0usize;
        std::iter::from_fn(move || {
            if off >= self.arena.len() {
                return None;
            }
            let n = u16::from_le_bytes([self.arena[off], self.arena[off + 1]]) as usize;
            let id = &self.arena[off + 2..off + 2 + n];
            off += 2 + n;
            Some(id)
        })
    }
}

/// Whether a block holds any quote or carriage return at all.
#[derive(Clone, Copy)]
struct Odd {
    quote: bool,
    cr: bool,
}

/// The fields of a line without quotes: a byte loop (fields are short).
fn split_commas(line: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == b',') {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// The fields of one line with quotes, as the CSV reader of the general
/// path reads them: a field that starts with `"` runs to the next lone `"`,
/// `""` inside it is one `"`. Anything else — a quote inside an unquoted
/// field, text after a closing quote, a quoted field that runs past the end
/// of the line — is `None`, and the general path reads the file.
fn split_quoted(line: &str) -> Option<Vec<std::borrow::Cow<'_, str>>> {
    use std::borrow::Cow;
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        if b.get(i) == Some(&b'"') {
            let mut val: Option<String> = None;
            let (mut j, mut start) = (i + 1, i + 1);
            loop {
                let q = j + memchr::memchr(b'"', &b[j..])?;
                if b.get(q + 1) == Some(&b'"') {
                    val.get_or_insert_with(String::new).push_str(&line[start..=q]);
                    j = q + 2;
                    start = j;
                    continue;
                }
                out.push(match val.take() {
                    Some(mut v) => {
                        v.push_str(&line[start..q]);
                        Cow::Owned(v)
                    }
                    None => Cow::Borrowed(&line[start..q]),
                });
                i = q + 1;
                break;
            }
            match b.get(i) {
                None => return Some(out),
                Some(b',') => i += 1,
                Some(_) => return None,
            }
            continue;
        }
        let end = memchr::memchr(b',', &b[i..]).map_or(b.len(), |k| i + k);
        let field = &line[i..end];
        if field.contains('"') {
            return None;
        }
        out.push(Cow::Borrowed(field));
        if end == b.len() {
            return Some(out);
        }
        i = end + 1;
    }
}

/// Where to cut `data` near its middle so both parts hold whole lines: just
/// after a line break, or `None` when there is none to cut at.
pub fn split_point(data: &[u8]) -> Option<usize> {
    let mid = data.len() / 2;
    memchr::memchr(b'\n', &data[mid..]).map(|i| mid + i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_set() {
        let mut s = IdSet::with_capacity(1);
        for i in 0..10_000 {
            assert!(s.insert(format!("L{i:07}").as_bytes()).is_some());
        }
        assert!(s.insert(b"L0000042").is_none());
        assert!(s.contains(b"L0009999"));
        assert!(!s.contains(b"L0010000"));
        assert_eq!(s.len, 10_000);
        assert_eq!(s.iter().count(), 10_000);
        let mut t = IdSet::with_capacity(1);
        for i in 10_000..30_000 {
            t.insert(format!("L{i:07}").as_bytes());
        }
        for threads in [1, 2, 3, 8] {
            assert!(!t.any_in(&s, threads) && !s.any_in(&t, threads));
        }
        t.insert(b"L0000017");
        for threads in [1, 2, 3, 8] {
            assert!(t.any_in(&s, threads) && s.any_in(&t, threads));
        }
        assert!(s.insert(b"").is_some());
        assert!(s.insert(b"").is_none());
    }

    #[test]
    fn quoted_fields() {
        let f = |s: &str| split_quoted(s).map(|v| v.iter().map(|c| c.to_string()).collect::<Vec<_>>());
        assert_eq!(f("\"a,1\",x,\"b\"\"2\",\"\"").unwrap(), ["a,1", "x", "b\"2", ""]);
        assert_eq!(f(r#"a,"",b,"#).unwrap(), ["a", "", "b", ""]);
        assert_eq!(f(r#"" q ",z"#).unwrap(), [" q ", "z"]);
        assert_eq!(f(r#""open"#), None);
        assert_eq!(f(r#"a"b,c"#), None);
        assert_eq!(f(r#""a"b,c"#), None);
        assert_eq!(f(r#" "a",c"#), None);
    }

    #[test]
    fn split_points() {
        assert_eq!(split_point(b"a\nb\nc\n"), Some(4));
        assert_eq!(split_point(b"abc"), None);
    }
}
