//! The ledger's state, derived by replaying the journal from the start.
//!
//! Nothing here touches a database: `State::replay` takes stored entries and
//! returns agreements in force, rates, lines (with their voids), statements.

use crate::backend::StoreError;
use crate::journal::{self, Body, Entry, LineBody, PaymentBody, StatementRow, Stored};
use crate::packed::{LineSource, Packed, view_of};
use costshare_core::agreement::Agreement;
use costshare_core::alloc::{self, Allocation};
use costshare_core::calendar::{Date, FiscalYear};
use costshare_core::costs::{CostLine, Rates, RawRow, RowRef, validate_ref};
use costshare_core::num::{self, BigRational};
use costshare_core::report::{self, Dim, KeyRule, TotalTooLarge};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use costshare_core::fxhash::{BuildFx, Fx};

/// One version of the agreement.
#[derive(Clone, Debug)]
pub struct Version {
    pub seq: u64,
    pub version: u32,
    /// Lines dated on or after this date (and before the next version's) fall
    /// under this version.
    pub effective: Date,
    pub file: String,
    pub sha256: String,
    pub content: String,
    pub agreement: Agreement,
}

/// One recorded line and what became of it.
#[derive(Clone, Debug)]
pub struct LedgerLine {
    pub seq: u64,
    pub body: LineBody,
    /// The entry that voided it, and why.
    pub voided: Option<(u64, String)>,
    /// The line that replaced it, when a `replaces` voided it.
    pub replaced_by: Option<String>,
}

/// A closed fiscal year's statement.
#[derive(Clone, Debug)]
pub struct Statement {
    pub seq: u64,
    pub at: String,
    pub period: String,
    pub fy: i32,
    pub as_of: String,
    /// The journal's head before the statement (empty in early entries).
    pub head: String,
    /// Closed with `--force`.
    pub forced: bool,
    pub rows: Vec<StatementRow>,
}

/// A recorded file.
#[derive(Clone, Debug)]
pub struct Batch {
    pub seq: u64,
    pub at: String,
    pub file: String,
    pub sha256: String,
    pub rows: u64,
}

#[derive(Clone, Debug, Default)]
pub struct State {
    pub entries: u64,
    pub head: String,
    pub versions: Vec<Version>,
    /// (currency, date) → (rate text, exact rate).
    pub rates: BTreeMap<(String, Date), (String, BigRational)>,
    pub lines: Vec<LedgerLine>,
    pub by_id: HashMap<String, usize, BuildFx>,
    pub statements: Vec<Statement>,
    pub batches: Vec<Batch>,
    /// Entries other than lines, for `history`.
    pub log: Vec<LogEntry>,
    /// When and by whom lines were recorded: (first seq, time, who) for
    /// each run of lines written together.
    pub line_at: Vec<(u64, Arc<str>, Arc<str>)>,
    /// Transfers between parties (`pay`), in journal order, with their entries.
    pub payments: Vec<(u64, PaymentBody)>,
    /// Payment id → index into `payments`.
    pub payment_ids: HashMap<String, usize, BuildFx>,
}

/// The version of `versions` (in order) in force at `date`: the last one
/// effective on or before it (the first version for earlier dates, or no
/// date). The one rule for a replay ([`State::version_at`]) and for the
/// derived state's reads.
pub fn version_in_force(versions: &[Version], date: Option<Date>) -> usize {
    match date {
        None => 0,
        Some(d) => versions.iter().rposition(|v| v.effective <= d).unwrap_or(0),
    }
}

/// What `history` shows of an entry.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub seq: u64,
    /// Shared by the entries of one write.
    pub at: Arc<str>,
    /// Who wrote it (empty: not recorded).
    pub who: Arc<str>,
    pub kind: &'static str,
    /// The line id the entry concerns (lines and voids), if any.
    pub id: Option<String>,
    pub summary: String,
}

fn corrupt(seq: u64, m: impl Into<String>) -> StoreError {
    StoreError::Corrupt { seq, message: m.into() }
}

impl State {
    /// Load by streaming every entry from the database (no hashes kept but
    /// the head's).
    pub fn load(backend: &mut dyn crate::backend::Backend) -> Result<State, StoreError> {
        let mut st = State {
            head: journal::GENESIS.to_string(),
            ..State::default()
        };
        // every entry's link is checked as it is read (`verify`'s rule, one
        // home: `ledger::check_link`), so a journal edited behind the
        // program's back is never replayed into figures: a replay (which a
        // missing or stale derived state falls back to, and every write
        // does) refuses it and names the entry
        let mut chain = crate::ledger::Chain {
            entries: 0,
            head: journal::GENESIS.to_string(),
            at: None,
        };
        backend.for_each_stored(&mut |s| {
            let seq = s.seq;
            let e = crate::ledger::check_link(&chain, s).map_err(|m| {
                corrupt(
                    seq,
                    format!("{m}: the journal was changed outside costshare (`costshare verify` checks it all)"),
                )
            })?;
            chain.entries = seq;
            s.hash.clone_into(&mut chain.head);
            st.apply(e)
        })?;
        st.head = chain.head;
        Ok(st)
    }

    /// A ledger always starts with `init` and an agreement.
    pub fn check_complete(&self) -> Result<(), StoreError> {
        if self.versions.is_empty() {
            return Err(corrupt(
                self.entries,
                "the ledger holds no agreement (its init did not complete); create it again with `costshare init`",
            ));
        }
        Ok(())
    }

    /// Replay stored entries (in seq order).
    pub fn replay(stored: &[Stored]) -> Result<State, StoreError> {
        let mut st = State {
            head: journal::GENESIS.to_string(),
            ..State::default()
        };
        for s in stored {
            let e = journal::decode(&s.body).map_err(|e| corrupt(s.seq, e.0))?;
            if e.seq != s.seq {
                return Err(corrupt(s.seq, format!("its bytes say seq {}", e.seq)));
            }
            st.apply(e)?;
            st.head = s.hash.clone();
        }
        st.check_complete()?;
        Ok(st)
    }

    /// Apply one entry.
    pub fn apply(&mut self, e: Entry) -> Result<(), StoreError> {
        self.entries = e.seq;
        let seq = e.seq;
        let kind = e.body.kind();
        let (id, summary) = match e.body {
            Body::Init { format } => (None, format!("ledger created ({format})")),
            Body::Agreement {
                version,
                effective,
                file,
                sha256,
                content,
            } => {
                let loaded = costshare_core::load(&content);
                let agreement = loaded
                    .agreement
                    .ok_or_else(|| corrupt(seq, "the stored agreement does not load"))?;
                let effective = Date::parse(&effective).ok_or_else(|| corrupt(seq, "bad effective date"))?;
                let summary = format!(
                    "agreement version {version} `{}` from {file} (sha256 {sha256}), in force from {effective}",
                    agreement.id
                );
                self.versions.push(Version {
                    seq,
                    version,
                    effective,
                    file,
                    sha256,
                    content,
                    agreement,
                });
                (None, summary)
            }
            Body::Rate { date, currency, rate } => {
                let d = Date::parse(&date).ok_or_else(|| corrupt(seq, "bad rate date"))?;
                let r = num::parse_rational(&rate, 18).map_err(|_| corrupt(seq, "bad rate"))?;
                let summary = format!("rate {currency} {rate} from {date}");
                self.rates.insert((currency, d), (rate, r));
                (None, summary)
            }
            Body::Batch { file, sha256, rows } => {
                let summary = format!(
                    "recorded {file} (sha256 {sha256}, {rows} row{})",
                    if rows == 1 { "" } else { "s" }
                );
                self.batches.push(Batch {
                    seq,
                    at: e.at.clone(),
                    file,
                    sha256,
                    rows,
                });
                (None, summary)
            }
            Body::Line(body) => {
                // the summary of a line is written when history asks (see `summary`)
                let summary = String::new();
                // one lookup, one copy of the id (lines are not in the log: see below)
                match self.by_id.entry(body.id.clone()) {
                    std::collections::hash_map::Entry::Occupied(_) => {
                        return Err(corrupt(seq, format!("line id {} recorded twice", body.id)));
                    }
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(self.lines.len());
                    }
                }
                self.lines.push(LedgerLine {
                    seq,
                    body,
                    voided: None,
                    replaced_by: None,
                });
                (None, summary)
            }
            Body::Void { id, reason, by } => {
                let i = *self
                    .by_id
                    .get(&id)
                    .ok_or_else(|| corrupt(seq, format!("voids unknown line {id}")))?;
                self.lines[i].voided = Some((seq, reason.clone()));
                if !by.is_empty() {
                    self.lines[i].replaced_by = Some(by);
                }
                (Some(id.clone()), void_summary(&id, &reason))
            }
            Body::Close {
                period,
                as_of,
                head,
                forced,
                rows,
            } => {
                let FiscalYear(fy) = FiscalYear::parse(&period).ok_or_else(|| corrupt(seq, "bad period"))?;
                let summary = format!(
                    "closed {period} as of {as_of} ({} statement rows){}",
                    rows.len(),
                    if forced { ", forced" } else { "" }
                );
                self.statements.push(Statement {
                    seq,
                    at: e.at.clone(),
                    period,
                    fy,
                    as_of,
                    head,
                    forced,
                    rows,
                });
                (None, summary)
            }
            Body::Payment(p) => {
                if self.payment_ids.contains_key(&p.id) {
                    return Err(corrupt(seq, format!("payment id {} recorded twice", p.id)));
                }
                let summary = payment_summary(&p);
                let id = p.id.clone();
                self.payment_ids.insert(id.clone(), self.payments.len());
                self.payments.push((seq, p));
                (Some(id), summary)
            }
        };
        // lines are listed from `lines` (see `history`), not kept twice
        if kind == "line" {
            if self
                .line_at
                .last()
                .map(|(_, a, w)| **a != *e.at || **w != *e.who)
                .unwrap_or(true)
            {
                self.line_at
                    .push((seq, Arc::from(e.at.as_str()), Arc::from(e.who.as_str())));
            }
            return Ok(());
        }
        let at = Arc::from(e.at.as_str());
        self.log.push(LogEntry {
            seq,
            at,
            who: Arc::from(e.who.as_str()),
            kind,
            id,
            summary,
        });
        Ok(())
    }

    /// The exchange rates recorded so far.
    pub fn rates(&self) -> Rates {
        Rates::from_rows(self.rates.iter().map(|((c, d), (_, r))| (c.clone(), *d, r.clone()))).unwrap_or_default()
    }

    /// The version in force at `date`: the last one effective on or before it
    /// (the first version for earlier dates, so its term check reports them).
    pub fn version_at(&self, date: Option<Date>) -> usize {
        version_in_force(&self.versions, date)
    }

    /// The current agreement (latest version).
    pub fn latest(&self) -> &Version {
        &self.versions[self.versions.len() - 1]
    }

    /// The batch (recorded file) a line came from: the one its body names.
    pub fn batch_of(&self, l: &LedgerLine) -> Option<&Batch> {
        let k = self.batches.binary_search_by_key(&l.body.batch, |b| b.seq).ok()?;
        self.batches.get(k)
    }

    /// Lines that count: not voided.
    pub fn active(&self) -> impl Iterator<Item = &LedgerLine> {
        self.lines.iter().filter(|l| l.voided.is_none())
    }
}

impl State {
    /// Every entry for `history`, in seq order: the log merged with the lines.
    pub fn history(&self) -> Vec<LogEntry> {
        let mut out: Vec<LogEntry> = Vec::with_capacity(self.log.len() + self.lines.len());
        out.extend(self.log.iter().cloned());
        for l in &self.lines {
            let k = self.line_at.partition_point(|(s, _, _)| *s <= l.seq);
            let (at, who) = if k == 0 {
                (Arc::from(""), Arc::from(""))
            } else {
                (self.line_at[k - 1].1.clone(), self.line_at[k - 1].2.clone())
            };
            out.push(LogEntry {
                seq: l.seq,
                at,
                who,
                kind: "line",
                id: Some(l.body.id.clone()),
                summary: String::new(),
            });
        }
        out.sort_by_key(|e| e.seq);
        out
    }
}

/// What `history` says of an entry: lines are described from their body.
pub fn summary(st: &State, e: &LogEntry) -> String {
    if e.kind == "line"
        && let Some(l) = e.id.as_ref().and_then(|id| st.by_id.get(id)).map(|&i| &st.lines[i])
    {
        return line_summary(&l.body);
    }
    e.summary.clone()
}

/// What `history` says of a line entry.
pub fn line_summary(b: &LineBody) -> String {
    format!(
        "line {} {} {} {} {}{}",
        b.id,
        b.date,
        b.category,
        b.amount,
        b.currency,
        if b.site.is_empty() {
            String::new()
        } else {
            format!(" at {}", b.site)
        }
    )
}

/// What `history` says of a void entry.
pub fn void_summary(id: &str, reason: &str) -> String {
    format!("voided {id}: {reason}")
}

/// What `history` says of a payment entry.
pub fn payment_summary(p: &PaymentBody) -> String {
    format!(
        "payment {} {} {} to {} {} {}",
        p.id, p.date, p.from, p.to, p.amount, p.currency
    )
}

/// The costs file a line entry came from, as `history` names it: the batch
/// entry its body names (`LineBody::batch`, the entry written just before
/// the file's lines), as `file (sha256 …)`.
pub fn line_source(file: &str, sha256: &str) -> String {
    format!("{file} (sha256 {sha256})")
}

/// A recorded line as a costs row (its journal entry number as its "line").
pub fn raw_row(l: &LedgerLine) -> RawRow {
    RawRow {
        line: l.seq as usize,
        id: l.body.id.clone(),
        date: l.body.date.clone(),
        category: l.body.category.clone(),
        amount: l.body.amount.clone(),
        currency: l.body.currency.clone(),
        quantity: l.body.quantity.clone(),
        site: l.body.site.clone(),
        description: l.body.description.clone(),
        replaces: String::new(),
        paid_by: l.body.paid_by.clone(),
    }
}

/// A recorded line as a costs row, borrowed (its journal entry number as its
/// "line"; `replaces` was resolved when it was recorded).
pub fn row_ref(l: &LedgerLine) -> RowRef<'_> {
    RowRef {
        line: l.seq as usize,
        id: &l.body.id,
        date: &l.body.date,
        category: &l.body.category,
        amount: &l.body.amount,
        currency: &l.body.currency,
        quantity: &l.body.quantity,
        site: &l.body.site,
        description: &l.body.description,
        replaces: "",
        paid_by: &l.body.paid_by,
        recorded: true,
    }
}

/// A recorded line as a cost line under `ag`: the same rule as any row of a
/// file ([`costshare_core::costs::accept`]).
pub fn cost_line(ag: &Agreement, rates: &Rates, l: &LedgerLine) -> Result<CostLine, String> {
    validate_ref(ag, rates, &row_ref(l))
}

/// A recorded line's amount in the agreement currency, for totals.
pub fn line_amount(ag: &Agreement, rates: &Rates, b: &LineBody) -> Option<i64> {
    let ccy = ag.currency(&b.currency)?;
    let a = num::parse_minor_units(&b.amount, ccy.decimals()).ok()?;
    if ccy.code() == ag.currency.code() {
        return Some(a);
    }
    let date = Date::parse(&b.date)?;
    costshare_core::costs::convert(ag, rates, &ccy, a, date)
        .ok()
        .map(|(v, _)| v)
}

/// Fiscal year `fy` lies in the term of one of the agreement versions.
pub fn year_in_term(versions: &[Version], fy: i32) -> bool {
    versions.iter().any(|v| {
        let a = &v.agreement;
        fy >= a.first_fy && fy < a.first_fy + a.fy_count as i32
    })
}

/// The allocation of the lines under one agreement version.
pub struct Part {
    pub version: usize,
    pub lines: Vec<CostLine>,
    pub alloc: Allocation,
    /// The use of its caps this version inherited from earlier versions
    /// (SPEC section 8); empty for the first version.
    pub carry: alloc::Carry,
}

/// Allocate each version's lines (`per_version[v]`), versions in order: each
/// version's capped layers continue the previous version's (same category
/// and layer id), so a period that began before it took effect starts with
/// the use earlier versions made of it.
pub fn allocate_versions(versions: &[Version], per_version: Vec<Vec<CostLine>>, as_of: Date) -> Vec<Part> {
    let slices: Vec<&[CostLine]> = per_version.iter().map(Vec::as_slice).collect();
    let allocated = allocate_slices(versions, &slices, as_of);
    drop(slices);
    per_version
        .into_iter()
        .zip(allocated)
        .enumerate()
        .map(|(version, (lines, (alloc, carry)))| Part {
            version,
            lines,
            alloc,
            carry,
        })
        .collect()
}

/// [`allocate_versions`] over borrowed lines: each version's allocation and
/// the use of its caps carried from the earlier versions, in version order
/// (a bulk `record` allocates the lines it also writes to the journal).
pub fn allocate_slices<L: alloc::Lines + ?Sized>(
    versions: &[Version],
    per_version: &[&L],
    as_of: Date,
) -> Vec<(Allocation, alloc::Carry)> {
    let mut out: Vec<(Allocation, alloc::Carry)> = Vec::with_capacity(per_version.len());
    for (v, lines) in per_version.iter().enumerate() {
        let ver = &versions[v];
        let carry = if v == 0 {
            alloc::Carry::NONE
        } else {
            let earlier: Vec<alloc::Earlier<'_>> = out
                .iter()
                .enumerate()
                .map(|(p, (a, _))| alloc::Earlier {
                    version: versions[p].version,
                    agreement: &versions[p].agreement,
                    usage: &a.usage,
                })
                .collect();
            alloc::carry_into(&ver.agreement, ver.effective, &earlier)
        };
        let alloc = alloc::allocate_carried(&ver.agreement, *lines, as_of, &carry);
        out.push((alloc, carry));
    }
    out
}

/// Allocate every active line under the version in force at its date.
pub fn allocate(st: &State, as_of: Date) -> Result<Vec<Part>, StoreError> {
    allocate_with(st, Vec::new(), as_of)
}

/// [`allocate`] of `st`'s active lines followed by `more`: lines a write is
/// about to append (entries after `st`'s last), each under its version
/// (`State::version_at` of its date) and as the replay will see it (its
/// `row` the entry's seq, no `replaces`). A bulk `record` gives the cost lines
/// its rows were just accepted as, so they are not validated a second time.
pub fn allocate_with(st: &State, more: Vec<(usize, CostLine)>, as_of: Date) -> Result<Vec<Part>, StoreError> {
    let (versions, lines): (Vec<usize>, Vec<CostLine>) = more.into_iter().unzip();
    Ok(allocate_versions(
        &st.versions,
        lines_with(st, lines, &versions)?,
        as_of,
    ))
}

/// The cost lines [`allocate_with`] allocates, one list per agreement
/// version: `st`'s active lines, then `more` (new lines, `versions[i]` the
/// version of `more[i]`), each list in entry order. When every new line
/// falls under one version that has no active line yet (a bulk load), that
/// list is `more` itself, not a copy.
pub fn lines_with(st: &State, more: Vec<CostLine>, versions: &[usize]) -> Result<Vec<Vec<CostLine>>, StoreError> {
    st.check_complete()?;
    let rates = st.rates();
    let mut per_version: Vec<Vec<CostLine>> = vec![Vec::new(); st.versions.len()];
    // each version's lines counted first: a million cost lines are not
    // copied to grow their vector
    let mut count = vec![0usize; st.versions.len()];
    for l in st.active() {
        if let Some(c) = count.get_mut(st.version_at(Date::parse(&l.body.date))) {
            *c += 1;
        }
    }
    let one = versions
        .first()
        .copied()
        .filter(|v| versions.iter().all(|w| w == v) && count.get(*v) == Some(&0) && versions.len() == more.len());
    if one.is_none() {
        for v in versions {
            if let Some(c) = count.get_mut(*v) {
                *c += 1;
            }
        }
    }
    for (p, n) in per_version.iter_mut().zip(count) {
        p.reserve_exact(n);
    }
    for l in st.active() {
        let d = Date::parse(&l.body.date);
        let v = st.version_at(d);
        let cl = cost_line(&st.versions[v].agreement, &rates, l)
            .map_err(|m| corrupt(l.seq, format!("line {} no longer validates: {m}", l.body.id)))?;
        per_version[v].push(cl);
    }
    match one {
        Some(v) => match per_version.get_mut(v) {
            Some(p) => *p = more,
            None => return Err(corrupt(st.entries + 1, "a new line under no agreement version")),
        },
        None => {
            for (cl, &v) in more.into_iter().zip(versions) {
                match per_version.get_mut(v) {
                    Some(p) => p.push(cl),
                    None => return Err(corrupt(cl.row as u64, "a new line under no agreement version")),
                }
            }
        }
    }
    Ok(per_version)
}

/// [`lines_with`] for a bulk `record`'s new lines, packed (`ledger::NewLines`):
/// `st`'s active lines (packed as their cost lines), then `more`, one list
/// per version; `more` itself when every new line falls under one version
/// with no active line yet.
pub fn packed_with(st: &State, more: Packed, versions: &[usize]) -> Result<Vec<Packed>, StoreError> {
    let earlier = lines_with(st, Vec::new(), &[])?;
    let one = versions.first().copied().filter(|v| {
        versions.iter().all(|w| w == v) && earlier.get(*v).is_some_and(Vec::is_empty) && versions.len() == more.len()
    });
    let mut per_version: Vec<Packed> = earlier
        .iter()
        .map(|lines| {
            let mut p = Packed::with_capacity(lines.len());
            for l in lines {
                p.push_view(&view_of(l));
            }
            p
        })
        .collect();
    drop(earlier);
    if let Some(v) = one {
        per_version[v] = more;
        return Ok(per_version);
    }
    for (k, &v) in versions.iter().enumerate() {
        let Some(p) = per_version.get_mut(v) else {
            return Err(corrupt(more.row(k), "a new line under no agreement version"));
        };
        p.push_view(&more.view(k));
    }
    Ok(per_version)
}

/// Totals of one fiscal year per (party, category), parties in agreement
/// order then UNALLOCATED, categories in byte order; non-zero only. Grouped
/// by the report's one rule (`KeyRule`) per agreement version, then merged
/// as the report merges versions.
pub fn year_totals(st: &State, parts: &[Part], fy: i32) -> Result<Vec<StatementRow>, TotalTooLarge> {
    let dims = [Dim::Party, Dim::Category];
    let mut per = Vec::with_capacity(parts.len());
    for p in parts {
        let ag = &st.versions[p.version].agreement;
        let rule = KeyRule::new(ag, &dims);
        let mut groups: HashMap<[i64; 5], i128, BuildFx> = HashMap::default();
        for (i, l) in p.lines.iter().enumerate() {
            if ag.calendar.fy_of(l.date) == fy {
                let key = rule.key_without_party(l.date, l.category, 0);
                rule.add_parts(&mut groups, &key, p.alloc.row(i));
            }
        }
        per.push(rule.rows(&[], groups)?);
    }
    Ok(statement_rows(report::merge(&st.latest().agreement, &dims, per)?))
}

/// Report rows by [`Dim::Party`], [`Dim::Category`] as a statement's rows
/// (the one mapping both `close` paths use).
pub fn statement_rows(rows: Vec<report::Row>) -> Vec<StatementRow> {
    rows.into_iter()
        .map(|r| {
            let mut v = r.values.into_iter();
            StatementRow {
                party: v.next().unwrap_or_default(),
                category: v.next().unwrap_or_default(),
                amount_minor: r.amount,
            }
        })
        .collect()
}

/// What a recorded batch changed in the allocation of the lines before it.
#[derive(Clone, Debug)]
pub struct Impact {
    /// Lines the batch added.
    pub new_lines: usize,
    /// Lines the batch voided (through `replaces`).
    pub voided_lines: usize,
    /// When the batch only added lines: what the incremental allocator
    /// recomputed to take them in, and how long that took.
    pub incremental: Option<(costshare_core::alloc::UpdateStats, std::time::Duration)>,
    /// Earlier lines whose allocation changed: id and change per party
    /// (then UNALLOCATED).
    pub changed: Vec<(String, Vec<i64>)>,
    /// Party names in order (then UNALLOCATED).
    pub parties: Vec<String>,
}

/// The impact of batch `batch_seq` on the lines recorded before it.
pub fn impact_of_batch(st: &State, batch_seq: u64, as_of: Date) -> Result<Impact, StoreError> {
    st.check_complete()?;
    let rates = st.rates();
    let nv = st.versions.len();
    let mut base: Vec<Vec<CostLine>> = vec![Vec::new(); nv];
    let mut new: Vec<Vec<CostLine>> = vec![Vec::new(); nv];
    let mut gone: Vec<Vec<CostLine>> = vec![Vec::new(); nv];
    for l in &st.lines {
        let v = st.version_at(Date::parse(&l.body.date));
        let cl = || cost_line(&st.versions[v].agreement, &rates, l).map_err(|m| corrupt(l.seq, m));
        let voided_by_batch = matches!(&l.voided, Some((s, _)) if *s > batch_seq);
        if l.body.batch == batch_seq {
            if l.voided.is_none() {
                new[v].push(cl()?);
            }
        } else if l.seq < batch_seq && (l.voided.is_none() || voided_by_batch) {
            if voided_by_batch {
                gone[v].push(cl()?);
            } else {
                base[v].push(cl()?);
            }
        }
    }
    let ag0 = &st.latest().agreement;
    let mut parties: Vec<String> = ag0.parties.iter().map(|p| p.id.clone()).collect();
    parties.push("UNALLOCATED".into());
    let w = parties.len();
    let new_lines = new.iter().map(Vec::len).sum();
    let voided_lines = gone.iter().map(Vec::len).sum();
    let mut changed = Vec::new();
    let mut incremental = None;
    // one version, lines only added: the incremental allocator; several
    // versions carry use from one to the next, so allocate them all twice
    if voided_lines == 0 && nv == 1 {
        let mut stats = costshare_core::alloc::UpdateStats::default();
        let mut spent = std::time::Duration::ZERO;
        for v in 0..nv {
            let ag = &st.versions[v].agreement;
            let n = base[v].len();
            let mut inc = alloc::Incremental::new(ag, std::mem::take(&mut base[v]), as_of);
            let before = inc.allocation().amounts;
            let t = std::time::Instant::now();
            for l in std::mem::take(&mut new[v]) {
                let s = inc.add_line(l);
                stats.groups += s.groups;
                stats.line_layers += s.line_layers;
            }
            spent += t.elapsed();
            let after = inc.allocation().amounts;
            for i in 0..n {
                let (b, a) = (&before[i * w..(i + 1) * w], &after[i * w..(i + 1) * w]);
                if a != b {
                    changed.push((inc.lines()[i].id.clone(), a.iter().zip(b).map(|(x, y)| x - y).collect()));
                }
            }
        }
        incremental = Some((stats, spent));
    } else {
        let mut before_lines: Vec<Vec<CostLine>> = Vec::with_capacity(nv);
        let mut after_lines: Vec<Vec<CostLine>> = Vec::with_capacity(nv);
        let mut kept = Vec::with_capacity(nv);
        for v in 0..nv {
            let mut b = base[v].clone();
            b.extend(gone[v].iter().cloned());
            before_lines.push(b);
            let mut a = std::mem::take(&mut base[v]);
            kept.push(a.len());
            a.extend(std::mem::take(&mut new[v]));
            after_lines.push(a);
        }
        let before = allocate_versions(&st.versions, before_lines, as_of);
        let after = allocate_versions(&st.versions, after_lines, as_of);
        for ((b, a), n) in before.iter().zip(&after).zip(kept) {
            for (i, line) in a.lines.iter().enumerate().take(n) {
                let (rb, ra) = (b.alloc.row(i), a.alloc.row(i));
                if ra != rb {
                    changed.push((line.id.clone(), ra.iter().zip(rb).map(|(x, y)| x - y).collect()));
                }
            }
        }
    }
    Ok(Impact {
        new_lines,
        voided_lines,
        incremental,
        changed,
        parties,
    })
}
