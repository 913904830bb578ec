//! Ledger operations: init, record, void, amend, close, verify.
//!
//! Every write runs in one database transaction under the ledger's write
//! lock: read the journal, replay it, decide what to append (or refuse with
//! every problem named), append, commit. A refused or interrupted write
//! leaves the journal as it was.

use crate::backend::{self, Backend, Row, StoreError};
use crate::derived::{self, LateImpact};
use crate::journal::{self, Body, Entry, LineBody, LineFields, StatementRow};
use crate::packed::{LineSource, LineView, Packed, view_of};
use crate::state::{self, State};
use costshare_core::agreement::Agreement;
use costshare_core::alloc::Lines;
use costshare_core::calendar::{Date, FiscalYear};
use costshare_core::costs::{self, CostLine, RowError, RowRef, for_each_row, parse_rates_partial, validate_ref};
use costshare_core::fxhash::BuildFx;
use costshare_core::money::write_minor;
use costshare_core::num::fmt_ratio;
use std::collections::HashMap;
use std::fmt;

/// Why a ledger operation refused.
#[derive(Debug)]
pub enum LedgerError {
    Store(StoreError),
    /// Bad rows of an input file (every one of them).
    Rows {
        file: String,
        errors: Vec<RowError>,
    },
    /// The request is refused for a reason the ledger names.
    Refused(Refusal),
}

/// Why a ledger refused a request (other than bad rows): each reason with
/// the values it names, worded by `Display`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The agreement file is not UTF-8.
    AgreementNotUtf8,
    /// The agreement file does not load (`costshare check` shows why).
    AgreementInvalid { file: String },
    /// `void` of an id the ledger does not hold.
    NoSuchLine { id: String },
    /// `void` of a line voided before.
    AlreadyVoided { id: String, seq: u64, reason: String },
    /// Every problem of an `amend`, in the order checked.
    Amend(Vec<AmendProblem>),
    /// `close` of a label that is not `FY` and a year.
    NotAFiscalYear { period: String },
    /// `close` of a year closed before.
    AlreadyClosed { period: String, seq: u64, as_of: String },
    /// `close` of a year outside every version's term.
    OutsideTerm { period: String },
    /// `close` of a year whose figures may still change at `as_of` (without `--force`).
    CloseEarly {
        period: String,
        as_of: Date,
        why: EarlyClose,
    },
    /// Rates that contradict recorded ones, one per conflict.
    RateConflicts(Vec<RateConflict>),
    /// With the new rates, a recorded line would convert past `i64`.
    LineBeyondLimit {
        id: String,
        seq: u64,
        amount: String,
        currency: String,
        date: String,
    },
    /// With the new rates, the recorded lines would total past `i64`.
    TotalBeyondLimit,
    /// A statement figure (a party's total in a category) past `i64`.
    TotalTooLarge { group: Vec<String> },
}

/// One reason an `amend` is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AmendProblem {
    NotFirstDayOfYear {
        effective: Date,
        fy: FiscalYear,
        fy_first: Date,
    },
    NotAfterCurrent {
        effective: Date,
        current: Date,
    },
    OutsideNewTerm {
        effective: Date,
        start: Date,
        end: Date,
    },
    Parties {
        now: Vec<String>,
        new: Vec<String>,
        file: String,
    },
    Currency {
        code: String,
    },
    Calendar,
}

/// Why a year's figures may still change at the as-of date of its `close`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EarlyClose {
    /// The year has not ended by the as-of date.
    NotEnded { last_day: Date },
    /// Lines of the year are in pro-rata periods still open at the as-of
    /// date (the latest ends on `until`).
    Provisional { lines: usize, until: Date },
}

impl fmt::Display for EarlyClose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EarlyClose::NotEnded { last_day } => write!(f, "the year has not ended (its last day is {last_day})"),
            EarlyClose::Provisional { lines, until } => write!(
                f,
                "{lines} of its line{} {} in pro-rata periods still open (until {until}), so {} figures may still change",
                if *lines == 1 { "" } else { "s" },
                if *lines == 1 { "is" } else { "are" },
                if *lines == 1 { "its" } else { "their" }
            ),
        }
    }
}

/// A statement issued by `close`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    pub rows: Vec<StatementRow>,
    /// Closed with `force` although the year's figures may still change.
    pub forced: Option<EarlyClose>,
}

/// A rate that contradicts a recorded one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateConflict {
    pub file: String,
    pub currency: String,
    pub date: Date,
    pub recorded: String,
    pub new: String,
}

impl fmt::Display for AmendProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AmendProblem::NotFirstDayOfYear {
                effective,
                fy,
                fy_first,
            } => write!(
                f,
                "--effective {effective} is not the first day of a fiscal year ({fy} starts {fy_first})"
            ),
            AmendProblem::NotAfterCurrent { effective, current } => write!(
                f,
                "--effective {effective} must come after the current version's ({current})"
            ),
            AmendProblem::OutsideNewTerm { effective, start, end } => write!(
                f,
                "--effective {effective} is outside the new agreement's term {start} to {end}"
            ),
            AmendProblem::Parties { now, new, file } => write!(
                f,
                "the new version must declare the same parties in the same order ({} now; {} in {file})",
                now.join(", "),
                new.join(", ")
            ),
            AmendProblem::Currency { code } => write!(f, "the new version must keep the currency {code}"),
            AmendProblem::Calendar => write!(f, "the new version must keep the fiscal-year start and label"),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::AgreementNotUtf8 => write!(f, "the agreement is not UTF-8"),
            Refusal::AgreementInvalid { file } => {
                write!(f, "{file} is not a valid agreement (run `costshare check`)")
            }
            Refusal::NoSuchLine { id } => write!(f, "no line with id `{id}` in the ledger"),
            Refusal::AlreadyVoided { id, seq, reason } => {
                write!(f, "line `{id}` was voided already (journal entry {seq}: {reason})")
            }
            Refusal::Amend(problems) => {
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
            Refusal::NotAFiscalYear { period } => write!(f, "`{period}` is not a fiscal year such as FY2022"),
            Refusal::AlreadyClosed { period, seq, as_of } => write!(
                f,
                "{period} was closed already (journal entry {seq}, as of {as_of}); later changes show as adjustments"
            ),
            Refusal::OutsideTerm { period } => write!(f, "{period} is outside the agreement's term"),
            Refusal::CloseEarly { period, as_of, why } => write!(
                f,
                "not closing {period} as of {as_of}: {why}; close it with a later --as-of, or give --force to close it anyway (the statement then says it was forced)"
            ),
            Refusal::RateConflicts(cs) => {
                for (i, c) in cs.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(
                        f,
                        "{}: the {} rate for {} is recorded as {} already; this file says {}",
                        c.file, c.currency, c.date, c.recorded, c.new
                    )?;
                }
                Ok(())
            }
            Refusal::LineBeyondLimit {
                id,
                seq,
                amount,
                currency,
                date,
            } => write!(
                f,
                "with the rates this file adds, recorded line {id} (journal entry {seq}: {amount} {currency} dated {date}) would convert beyond the limit of a signed 64-bit count of minor units; nothing was recorded"
            ),
            Refusal::TotalTooLarge { group } => write!(
                f,
                "the total of group {} exceeds the limit of a signed 64-bit count of minor units",
                group.join(",")
            ),
            Refusal::TotalBeyondLimit => write!(
                f,
                "with the rates this file adds, the recorded lines would total beyond the limit of a signed 64-bit count of minor units; nothing was recorded"
            ),
        }
    }
}

fn too_large(e: costshare_core::report::TotalTooLarge) -> LedgerError {
    Refusal::TotalTooLarge { group: e.group }.into()
}

impl From<Refusal> for LedgerError {
    fn from(r: Refusal) -> Self {
        LedgerError::Refused(r)
    }
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerError::Store(e) => write!(f, "{e}"),
            LedgerError::Rows { file, errors } => {
                for e in errors {
                    writeln!(f, "{}", e.located(file))?;
                }
                write!(
                    f,
                    "{} bad row{} in `{file}`; nothing was recorded",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                )
            }
            LedgerError::Refused(r) => write!(f, "{r}"),
        }
    }
}

impl From<StoreError> for LedgerError {
    fn from(e: StoreError) -> Self {
        LedgerError::Store(e)
    }
}

/// An agreement file's bytes loaded (the loader's text rule, `load::text_of`).
/// Also its text (BOM dropped), as the journal records it.
fn load_agreement<'a>(agreement: &Input<'a>) -> Result<(Agreement, &'a str), LedgerError> {
    let text = costshare_core::load::text_of(agreement.bytes).map_err(|_| Refusal::AgreementNotUtf8)?;
    let ag = costshare_core::load(text)
        .agreement
        .ok_or_else(|| Refusal::AgreementInvalid {
            file: agreement.name.to_string(),
        })?;
    Ok((ag, text))
}

/// An input file: its name (for messages and history) and bytes.
pub struct Input<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// Every active line of a ledger read from its derived state (see
/// [`Ledger::derived_lines`]).
pub struct DerivedLines {
    pub meta: derived::Meta,
    pub versions: Vec<state::Version>,
    pub rates: costshare_core::costs::Rates,
    /// Per version, in journal order.
    pub lines: Vec<Vec<costshare_core::CostLine>>,
    /// Every payment with its entry, in journal order (`State::payments`).
    pub payments: Vec<(u64, journal::PaymentBody)>,
}

/// What `record` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordOutcome {
    pub recorded: u64,
    pub already: u64,
    pub voided: u64,
    pub rates_added: u64,
    /// Rows of the file superseded by another row of the same file.
    pub dropped: u64,
}

/// A statement issued by [`Ledger::close_fast`], with what its answer names.
#[derive(Clone, Debug)]
pub struct ClosedAt {
    pub closed: Closed,
    /// The statement's journal entry.
    pub seq: u64,
    /// The journal's head before it.
    pub head_before: String,
    /// The agreement version in force now (the latest).
    pub latest: state::Version,
    /// The journal's entries and head after it.
    pub entries: u64,
    pub head: String,
}

/// [`adjustments`] read from the derived state ([`Ledger::adjustments_fast`]).
#[derive(Clone, Debug)]
pub struct AdjustmentsAt {
    pub adjustments: Vec<Adjustment>,
    /// The closed periods, in the order they were closed.
    pub closed: Vec<String>,
    /// The agreement version in force now (the latest).
    pub latest: state::Version,
    /// The journal's entries and head.
    pub entries: u64,
    pub head: String,
}

/// What `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    Ok {
        entries: u64,
        head: String,
        derived: DerivedStatus,
        /// The deep check ran (statements re-derived, the journal replayed,
        /// the derived state compared with a rebuild); otherwise the
        /// integrity check alone (see [`VerifyOptions::deep`]).
        deep: bool,
    },
    Bad {
        seq: u64,
        message: String,
    },
    /// The chain verified but does not end at the expected head: `at` is
    /// the entry with that hash, if any (then entries follow it).
    HeadMismatch {
        expected: String,
        entries: u64,
        head: String,
        at: Option<u64>,
    },
}

/// How `verify` runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Re-derive every closed statement, replay the journal and compare the
    /// derived state with a rebuild from it, blob for blob (seconds and a
    /// state in memory at a million lines). Without it, `verify` is the
    /// integrity check: the journal streamed once (every entry's link), and
    /// the derived state's seals (the meta under the head, every other blob
    /// the one the meta names), in memory that does not grow with the
    /// journal.
    pub deep: bool,
    /// Rebuild a damaged derived state (without it, damage is reported).
    /// The rebuild is the deep check's: `repair` implies `deep`.
    pub repair: bool,
    /// The chain must end at this hash (a journal cut off at the end is
    /// otherwise a shorter valid chain).
    pub expect_head: Option<String>,
}

/// What `verify` found of the derived state (a cache beside the journal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DerivedStatus {
    /// It matched a rebuild from the journal, blob for blob (`--deep`).
    Consistent,
    /// Its meta is sealed under the journal's head and every other blob is
    /// the one the meta names (the integrity check; not compared with a
    /// rebuild).
    Sealed,
    /// It was missing or older than the journal's head: rebuilt.
    Refreshed,
    /// A blob failed its seal or differed from a rebuild (damaged or
    /// edited); left as it is (`verify --repair` rebuilds it). Commands do
    /// not use it: they replay the journal.
    Damaged { key: String },
    /// A blob was damaged, and the derived state was rebuilt (`--repair`).
    Repaired { key: String },
    /// Not kept: the agreement was amended, so commands replay the journal.
    NotKept,
    /// A write landed while `verify` ran; the derived state follows it.
    NotChecked,
}

/// UTC now as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let d = costshare_core::calendar::date_from_unix_seconds(secs);
    let t = secs.rem_euclid(86400);
    format!("{d}T{:02}:{:02}:{:02}Z", t / 3600, (t / 60) % 60, t % 60)
}

pub struct Ledger {
    backend: Box<dyn Backend>,
    /// Entry count and head hash after this handle's last write.
    last: Option<(u64, String)>,
    /// A blob of the derived state found damaged (and not used) by this
    /// handle's last `derived` or `record_fast`.
    damaged: Option<String>,
    /// Who this handle's writes are recorded as (`who=` of each entry);
    /// empty: not recorded.
    author: String,
}

impl Ledger {
    pub fn open(target: &str) -> Result<Ledger, LedgerError> {
        Ok(Ledger {
            backend: backend::open(target)?,
            last: None,
            damaged: None,
            author: String::new(),
        })
    }

    /// Record this handle's writes as made by `who` (a user name, or a
    /// server token's name). Control characters are not kept.
    pub fn set_author(&mut self, who: &str) {
        self.author = who.chars().filter(|c| !c.is_control()).take(256).collect();
    }

    /// The journal's entry count and head hash now, read from the database
    /// without replaying anything (`None`: an empty journal).
    pub fn head(&mut self) -> Result<Option<(u64, String)>, LedgerError> {
        Ok(self.backend.head()?)
    }

    /// The database behind this ledger (tokens of the server live beside
    /// the journal; see [`crate::tokens`]).
    pub fn backend_mut(&mut self) -> &mut dyn Backend {
        self.backend.as_mut()
    }

    /// What `record` of this costs file would do, checked against the
    /// journal's state now, with nothing written: the same rules and the
    /// same errors as [`Ledger::record`].
    pub fn record_dry_run(&mut self, costs: Input<'_>) -> Result<RecordOutcome, LedgerError> {
        let st = self.state()?;
        let sha = journal::sha256_hex(costs.bytes);
        plan_record(&st, costs.name, &sha, costs.bytes, None, &mut |_, _, _| {}).map(|p| p.outcome)
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// Create a ledger holding the agreement (version 1, in force from its
    /// start) and optional rates.
    pub fn init(
        target: &str,
        agreement: Input<'_>,
        rates: Option<Input<'_>>,
        now: &str,
    ) -> Result<(Ledger, State), LedgerError> {
        Ledger::init_by(target, agreement, rates, now, "")
    }

    /// [`Ledger::init`], recording its entries as written by `who`.
    pub fn init_by(
        target: &str,
        agreement: Input<'_>,
        rates: Option<Input<'_>>,
        now: &str,
        who: &str,
    ) -> Result<(Ledger, State), LedgerError> {
        let (ag, text) = load_agreement(&agreement)?;
        // validate the rates before creating anything
        let rate_bodies = match &rates {
            Some(r) => new_rates(&State::default(), r, ag.currency.code())?,
            None => Vec::new(),
        };
        // the schema and the first entries commit together
        let backend = backend::create(target)?;
        let mut ledger = Ledger {
            backend,
            last: None,
            damaged: None,
            author: String::new(),
        };
        ledger.set_author(who);
        let name = agreement.name.to_string();
        let sha = journal::sha256_hex(agreement.bytes);
        let content = text.to_string();
        let start = ag.start.to_string();
        let mut bodies = vec![
            Body::Init {
                format: journal::FORMAT.into(),
            },
            Body::Agreement {
                version: 1,
                effective: start,
                file: name,
                sha256: sha,
                content,
            },
        ];
        bodies.extend(rate_bodies);
        let result = ledger.append_locked(true, now, move |_| Ok((bodies, None, ())));
        match result {
            Ok(()) => ledger.backend.commit()?,
            Err(e) => {
                ledger.backend.rollback();
                return Err(e);
            }
        }
        let st = ledger.state()?;
        Ok((ledger, st))
    }

    /// The state as of the last committed entry.
    pub fn state(&mut self) -> Result<State, LedgerError> {
        let st = State::load(self.backend.as_mut())?;
        st.check_complete()?;
        Ok(st)
    }

    /// Run `decide` under the write lock and append what it returns.
    pub(crate) fn transact<T>(
        &mut self,
        now: &str,
        decide: impl FnOnce(&State) -> Result<(Vec<Body>, T), LedgerError>,
    ) -> Result<T, LedgerError> {
        self.transact_lines(now, |st| decide(st).map(|(b, out)| (b, None, out)))
    }

    /// [`Ledger::transact`], `decide` also giving the new lines' cost lines
    /// when it has them ([`NewLines`]).
    fn transact_lines<T>(
        &mut self,
        now: &str,
        decide: impl FnOnce(&State) -> Result<(Vec<Body>, Option<NewLines>, T), LedgerError>,
    ) -> Result<T, LedgerError> {
        if let Err(e) = self.backend.begin_write() {
            self.backend.rollback();
            return Err(e.into());
        }
        let result = self.append_locked(false, now, decide);
        match result {
            Ok(v) => {
                self.backend.commit()?;
                Ok(v)
            }
            Err(e) => {
                self.backend.rollback();
                Err(e)
            }
        }
    }

    /// [`Ledger::transact`] under a write lock already taken; `decide` may
    /// also give the cost lines of the new lines it appends ([`NewLines`]).
    fn append_locked<T>(
        &mut self,
        starting: bool,
        now: &str,
        decide: impl FnOnce(&State) -> Result<(Vec<Body>, Option<NewLines>, T), LedgerError>,
    ) -> Result<T, LedgerError> {
        let mut st = State::load(self.backend.as_mut())?;
        if st.entries > 0 || !starting {
            st.check_complete()?;
        }
        let (bodies, new_lines, out) = decide(&st)?;
        if bodies.is_empty() {
            self.last = Some((st.entries, st.head.clone()));
            return Ok(out);
        }
        // every write keeps the derived state up to date, in the same
        // transaction. The state after the write is known before it lands:
        // the derived state is built from it on a second thread while the
        // entries are sealed and inserted, then sealed under the new head
        let base = st.entries + 1;
        let prev = st.head.clone();
        let new_lines = new_lines.filter(|n| n.fits(&bodies, base));
        for (i, body) in bodies.iter().enumerate() {
            st.apply(Entry {
                seq: base + i as u64,
                at: now.to_string(),
                who: self.author.clone(),
                body: body.clone(),
            })?;
        }
        // the new lines (see `NewLines`) are not applied to this state: it
        // is only the derived state's source and is dropped below. They are
        // held once, by version, and borrowed by both threads
        let (per_version, order, written) = match new_lines {
            Some(n) => {
                st.entries += n.lines.len() as u64;
                let order = n.versions.clone();
                (Some(state::packed_with(&st, n.lines, &n.versions)?), order, n.written)
            }
            None => (None, Vec::new(), Vec::new()),
        };
        let backend = self.backend.as_mut();
        let author = self.author.as_str();
        // the first new line's entry follows the batch, the last of `bodies`
        let first_new = base + bodies.len() as u64;
        // the building thread also encodes and seals the blobs, which this
        // one puts between chunks of entries (`derived::Feed`): only the
        // meta waits for the head
        let (to_feed, mut feed) = derived::Feed::channel();
        let (last, built) = std::thread::scope(|s| {
            let (st, per_version) = (&st, &per_version);
            let build = s.spawn(move || {
                derived::applicable(st).then(|| {
                    let built = match per_version {
                        Some(lines) => derived::build_lines::<Packed, _>(st, lines, first_new),
                        None => derived::Built::of(derived::build(st)?),
                    };
                    derived::send_sealed(built.into_blobs(), &to_feed)
                })
            });
            let batch = first_new - 1;
            let lines = per_version
                .as_deref()
                .map(|per_version| LineWriter::new(st, per_version, &order, &written, batch));
            let last = append(backend, bodies, lines, base, prev, now, author, Some(&mut feed));
            // the meta names the head it reflects, known now
            let wrote = match &last {
                Ok(Some((_, head))) => feed.finish(backend, head).map_err(LedgerError::from),
                // the builder stops when it finds no one to send to
                _ => {
                    drop(feed);
                    Ok(false)
                }
            };
            (last.and_then(|l| wrote.map(|w| (l, w))), build.join())
        });
        let (last, wrote) = last?;
        let built = built.map_err(|_| StoreError::Db("building the derived state failed".into()))?;
        if let (Some(_), Some(built)) = (&last, built) {
            built?;
            // it built and sent a meta, which the feed wrote
            if !wrote {
                return Err(StoreError::Cache("meta".into()).into());
            }
        }
        if let Some((seq, hash)) = &last {
            debug_assert_eq!(st.entries, *seq);
            st.head = hash.clone();
        }
        drop(per_version);
        if last.is_some() {
            self.last = last;
        }
        Ok(out)
    }

    /// Entry count and head hash after this handle's last write (or read).
    pub fn last_head(&mut self) -> Result<(u64, String), LedgerError> {
        match &self.last {
            Some(l) => Ok(l.clone()),
            None => {
                let st = self.state()?;
                Ok((st.entries, st.head))
            }
        }
    }

    /// Record a costs file (and optional rates): idempotent and atomic.
    pub fn record(
        &mut self,
        costs: Input<'_>,
        rates: Option<Input<'_>>,
        now: &str,
    ) -> Result<RecordOutcome, LedgerError> {
        self.record_with_progress(costs, rates, now, &mut |_, _, _| {})
    }

    /// `record`, reporting progress as (stage, done, total).
    pub fn record_with_progress(
        &mut self,
        costs: Input<'_>,
        rates: Option<Input<'_>>,
        now: &str,
        progress: &mut dyn FnMut(&str, u64, u64),
    ) -> Result<RecordOutcome, LedgerError> {
        progress("reading the file", 0, 0);
        let sha = file_sha256(costs.bytes);
        self.record_hashed(costs, rates, &sha, now, progress)
    }

    /// [`Ledger::record_with_progress`] of a file whose [`file_sha256`] the
    /// caller has (from [`Ledger::record_small_hashed`], which declined it):
    /// a million-line file is hashed once, not twice.
    pub fn record_hashed(
        &mut self,
        costs: Input<'_>,
        rates: Option<Input<'_>>,
        sha: &str,
        now: &str,
        progress: &mut dyn FnMut(&str, u64, u64),
    ) -> Result<RecordOutcome, LedgerError> {
        let file = costs.name.to_string();
        progress("reading the journal (waiting for other writers)", 0, 0);
        let out = self.transact_lines(now, |st| {
            plan_record(st, &file, sha, costs.bytes, rates.as_ref(), progress)
                .map(|p| (p.bodies, p.new_lines, p.outcome))
        });
        progress("done", 0, 0);
        out
    }

    /// Record a small file of new lines from the derived state, without
    /// replaying the journal: the new lines re-allocate only the dates their
    /// capped periods tie them to. `None` when the file needs the full path
    /// (no fresh derived state, rates, replacements, a bad or conflicting
    /// row: the full path then records it or names every problem).
    pub fn record_fast(
        &mut self,
        costs: Input<'_>,
        now: &str,
    ) -> Result<Option<(RecordOutcome, LateImpact)>, LedgerError> {
        if too_many_for_fast(costs.bytes) {
            return Ok(None);
        }
        self.with_fresh_meta(|l, meta| {
            Ok(l.record_fast_locked(costs, now, meta)?
                .map(|(out, imp, wrote)| ((out, imp), wrote)))
        })
    }

    /// [`Ledger::record_noop`], else [`Ledger::record_fast`], under one
    /// write lock and one read of the derived state's meta (each alone reads
    /// and decodes it: the meta is the largest blob a late line reads whole).
    /// `None` when neither takes the file: the full path records it.
    pub fn record_small(&mut self, costs: Input<'_>, now: &str) -> Result<Option<SmallRecord>, LedgerError> {
        let sha = file_sha256(costs.bytes);
        self.record_small_hashed(costs, &sha, now)
    }

    /// [`Ledger::record_small`] of a file whose [`file_sha256`] is `sha`.
    pub fn record_small_hashed(
        &mut self,
        costs: Input<'_>,
        sha: &str,
        now: &str,
    ) -> Result<Option<SmallRecord>, LedgerError> {
        self.with_fresh_meta(|l, meta| {
            if let Some(outcome) = l.record_noop_locked(sha, costs.bytes, &meta)? {
                return Ok(Some((SmallRecord::Noop(outcome), false)));
            }
            if too_many_for_fast(costs.bytes) {
                return Ok(None);
            }
            Ok(l.record_fast_locked(costs, now, meta)?
                .map(|(out, imp, wrote)| (SmallRecord::Fast(out, imp), wrote)))
        })
    }

    /// Run `f` under the write lock with the derived state's meta when it
    /// is fresh (`None` otherwise, or when `f` declines); commit when `f`
    /// says it wrote, else roll back. A damaged blob is not used: `None`,
    /// and [`Ledger::take_damaged`] names it.
    fn with_fresh_meta<T>(
        &mut self,
        f: impl FnOnce(&mut Self, derived::Meta) -> Result<Option<(T, bool)>, LedgerError>,
    ) -> Result<Option<T>, LedgerError> {
        if let Err(e) = self.backend.begin_write() {
            self.backend.rollback();
            return Err(e.into());
        }
        let out = match derived::fresh_meta(self.backend.as_mut()) {
            Ok(Some(meta)) => f(self, meta),
            Ok(None) => Ok(None),
            Err(e) => Err(e.into()),
        };
        match out {
            Ok(Some((out, wrote))) => {
                if wrote {
                    self.backend.commit()?;
                } else {
                    self.backend.rollback();
                }
                Ok(Some(out))
            }
            Ok(None) => {
                self.backend.rollback();
                Ok(None)
            }
            // a damaged cache is not used: the full path records the file
            // (the caller rebuilds the derived state)
            Err(LedgerError::Store(StoreError::Cache(key))) => {
                self.backend.rollback();
                self.damaged = Some(key);
                Ok(None)
            }
            Err(e) => {
                self.backend.rollback();
                Err(e)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn record_fast_locked(
        &mut self,
        costs: Input<'_>,
        now: &str,
        mut meta: derived::Meta,
    ) -> Result<Option<(RecordOutcome, LateImpact, bool)>, LedgerError> {
        let who = self.author.clone();
        let backend = self.backend.as_mut();
        // late lines are taken in while there is one agreement version (with
        // several, a line's use of a cap carries into later versions)
        if meta.versions.len() != 1 {
            return Ok(None);
        }
        let (ag, _) = derived::agreement(backend, &meta)?;
        let rates = derived::rates(backend, &meta)?;
        // every row valid, no replacement: otherwise the full path
        let mut pending: Vec<(LineBody, costshare_core::CostLine)> = Vec::new();
        let mut bad = false;
        let mut rows = 0u64;
        let csv_errors = for_each_row(costs.bytes, |raw| {
            rows += 1;
            if bad || !raw.replaces.is_empty() {
                bad = true;
                return;
            }
            match validate_ref(&ag, &rates, &raw) {
                Ok(cl) => {
                    let body = line_body_in(&ag, &raw, &cl);
                    pending.push((body, cl));
                }
                Err(_) => bad = true,
            }
        });
        if bad || !csv_errors.is_empty() {
            return Ok(None);
        }
        let mut outcome = RecordOutcome::default();
        let mut in_file: HashMap<&str, usize, BuildFx> = HashMap::default();
        let mut fresh: Vec<usize> = Vec::new();
        for (k, (body, _)) in pending.iter().enumerate() {
            if let Some(&first) = in_file.get(body.id.as_str()) {
                if !same_line(&pending[first].0, body) {
                    return Ok(None);
                }
                outcome.already += 1;
                continue;
            }
            in_file.insert(body.id.as_str(), k);
            match derived::recorded(backend, &meta, &body.id)? {
                Some((_, rec)) if same_line(&rec, body) => outcome.already += 1,
                Some(_) => return Ok(None),
                None => fresh.push(k),
            }
        }
        let added: i128 = fresh.iter().map(|&k| pending[k].1.amount as i128).sum();
        if meta.total + added > i64::MAX as i128 {
            return Ok(None);
        }
        if fresh.is_empty() {
            return Ok(Some((outcome, LateImpact::default(), false)));
        }
        // the entries: a batch, then its lines
        let batch_seq = meta.seq + 1;
        let sha256 = journal::sha256_hex(costs.bytes);
        if let Err(at) = meta.files.binary_search(&sha256) {
            meta.files.insert(at, sha256.clone());
        }
        let mut bodies = vec![Body::Batch {
            file: costs.name.to_string(),
            sha256,
            rows,
        }];
        let mut new_lines = Vec::with_capacity(fresh.len());
        for (n, &k) in fresh.iter().enumerate() {
            let (mut body, cl) = pending[k].clone();
            body.batch = batch_seq;
            bodies.push(Body::Line(body));
            new_lines.push((cl, batch_seq + 1 + n as u64));
        }
        outcome.recorded = fresh.len() as u64;
        let last = append(backend, bodies, None, batch_seq, meta.head.clone(), now, &who, None)?;
        let (impact, blobs) = derived::add_lines(backend, &ag, &mut meta, new_lines)?;
        if let Some((seq, hash)) = last {
            meta.seq = seq;
            meta.head = hash;
        }
        self.last = Some((meta.seq, meta.head.clone()));
        let head = meta.head.clone();
        derived::put_with_meta(backend, &head, &blobs, meta)?;
        Ok(Some((outcome, impact, true)))
    }

    /// The blob of the derived state that the last [`Ledger::derived`] or
    /// [`Ledger::record_fast`] found damaged and did not use, if any.
    pub fn take_damaged(&mut self) -> Option<String> {
        self.damaged.take()
    }

    /// The derived state when it reflects the journal's head, with the
    /// agreement versions it was built under (the last one in force now),
    /// read in one snapshot. A damaged blob is not used: `None`, and
    /// [`Ledger::take_damaged`] names it.
    pub fn derived(&mut self) -> Result<Option<(derived::Meta, Vec<state::Version>)>, LedgerError> {
        self.read_derived(|backend, meta| {
            let versions = derived::versions(backend, &meta)?;
            Ok((meta, versions))
        })
    }

    /// Every active line from a fresh derived state, per agreement version,
    /// as a replay has them (`state::allocate`'s input), with the versions,
    /// the rates and the meta, read in one snapshot; `None` as
    /// [`Ledger::derived`].
    pub fn derived_lines(&mut self) -> Result<Option<DerivedLines>, LedgerError> {
        self.read_derived(|backend, meta| {
            let versions = derived::versions(backend, &meta)?;
            let rates = derived::rates(backend, &meta)?;
            let lines = derived::lines(backend, &meta, &versions, &rates)?;
            let payments = derived::payments(backend, &meta)?;
            Ok(DerivedLines {
                meta,
                versions,
                rates,
                lines,
                payments,
            })
        })
    }

    /// Read something from a fresh derived state in one snapshot; a damaged
    /// blob is `None` (kept for [`Ledger::take_damaged`]).
    pub fn read_derived<T>(
        &mut self,
        read: impl FnOnce(&mut dyn Backend, derived::Meta) -> Result<T, StoreError>,
    ) -> Result<Option<T>, LedgerError> {
        self.backend.begin_read()?;
        let out = (|| -> Result<_, StoreError> {
            let Some(meta) = derived::fresh_meta(self.backend.as_mut())? else {
                return Ok(None);
            };
            Ok(Some(read(self.backend.as_mut(), meta)?))
        })();
        self.backend.end_read();
        match out {
            Err(StoreError::Cache(key)) => {
                self.damaged = Some(key);
                Ok(None)
            }
            out => Ok(out?),
        }
    }

    /// The agreement in force as recorded (its entry's version, effective
    /// date, file name, SHA-256 and text) and the count of active lines,
    /// read from a fresh derived state without replaying the journal; `None`
    /// when the derived state is not fresh.
    pub fn summary(&mut self) -> Result<Option<(Body, u64)>, LedgerError> {
        let Some((meta, mut versions)) = self.derived()? else {
            return Ok(None);
        };
        let Some(v) = versions.pop() else {
            return Ok(None);
        };
        Ok(Some((
            Body::Agreement {
                version: v.version,
                effective: v.effective.to_string(),
                file: v.file,
                sha256: v.sha256,
                content: v.content,
            },
            meta.lines,
        )))
    }

    /// Write the derived state of `st` if the journal's head is still `st`'s
    /// (a reader that replayed the journal leaves it for the next one).
    pub fn write_derived(&mut self, st: &State) -> Result<(), LedgerError> {
        if !derived::applicable(st) {
            return Ok(());
        }
        let blobs = derived::build(st)?;
        self.write_blobs(st, &blobs)
    }

    /// [`Ledger::write_derived`] from an allocation of `st`'s lines already
    /// made (one part per agreement version, in order).
    pub fn write_derived_with(&mut self, st: &State, parts: &[derived::PartView<'_>]) -> Result<(), LedgerError> {
        if !derived::applicable(st) {
            return Ok(());
        }
        let blobs = derived::build_with(st, parts);
        self.write_blobs(st, &blobs)
    }

    fn write_blobs(&mut self, st: &State, blobs: &[derived::Blob]) -> Result<(), LedgerError> {
        self.backend.begin_write()?;
        let out = (|| -> Result<bool, StoreError> {
            match self.backend.head()? {
                Some((seq, hash)) if seq == st.entries && hash == st.head => {
                    derived::put_all(self.backend.as_mut(), &st.head, blobs)?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })();
        match out {
            Ok(true) => self.backend.commit()?,
            Ok(false) => self.backend.rollback(),
            Err(e) => {
                self.backend.rollback();
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Void one line.
    pub fn void(&mut self, id: &str, reason: &str, now: &str) -> Result<(), LedgerError> {
        self.transact(now, |st| {
            let Some(&i) = st.by_id.get(id) else {
                return Err(Refusal::NoSuchLine { id: id.to_string() }.into());
            };
            if let Some((seq, why)) = &st.lines[i].voided {
                return Err(Refusal::AlreadyVoided {
                    id: id.to_string(),
                    seq: *seq,
                    reason: why.clone(),
                }
                .into());
            }
            Ok((
                vec![Body::Void {
                    id: id.to_string(),
                    reason: reason.to_string(),
                    by: String::new(),
                }],
                (),
            ))
        })
    }

    /// [`Ledger::void`] from the derived state, without replaying the
    /// journal: the void entry appended, and the derived state moved as a
    /// rebuild would have it ([`derived::remove_line`]: only the dates the
    /// line's capped periods tie it to are re-allocated). `None` when it
    /// needs the full path (no fresh derived state, several agreement
    /// versions, an id never recorded or already voided: the full path then
    /// voids it or refuses in its own words).
    pub fn void_fast(&mut self, id: &str, reason: &str, now: &str) -> Result<Option<()>, LedgerError> {
        let who = self.author.clone();
        self.with_fresh_meta(|l, mut meta| {
            let backend = l.backend.as_mut();
            if meta.versions.len() != 1 {
                return Ok(None);
            }
            let Some(rec) = derived::lookup(backend, &meta, id)? else {
                return Ok(None);
            };
            if rec.void != 0 {
                return Ok(None);
            }
            let (ag, _) = derived::agreement(backend, &meta)?;
            let void_seq = meta.seq + 1;
            let body = Body::Void {
                id: id.to_string(),
                reason: reason.to_string(),
                by: String::new(),
            };
            let blobs = derived::remove_line(backend, &ag, &mut meta, id, rec.seq, void_seq)?;
            let last = append(backend, vec![body], None, void_seq, meta.head.clone(), now, &who, None)?;
            if let Some((seq, hash)) = last {
                meta.seq = seq;
                meta.head = hash;
            }
            l.last = Some((meta.seq, meta.head.clone()));
            let head = meta.head.clone();
            derived::put_with_meta(l.backend.as_mut(), &head, &blobs, meta)?;
            Ok(Some(((), true)))
        })
    }

    /// A new version of the agreement for lines dated on or after `effective`.
    pub fn amend(&mut self, agreement: Input<'_>, effective: Date, now: &str) -> Result<u32, LedgerError> {
        let (b, text) = load_agreement(&agreement)?;
        let name = agreement.name.to_string();
        let sha = journal::sha256_hex(agreement.bytes);
        let content = text.to_string();
        self.transact(now, move |st| {
            let cur = &st.latest().agreement;
            let mut problems = Vec::new();
            let (fy_first, _) = b.calendar.fy_bounds(b.calendar.fy_of(effective));
            if fy_first != effective {
                problems.push(AmendProblem::NotFirstDayOfYear {
                    effective,
                    fy: FiscalYear(b.calendar.fy_of(effective)),
                    fy_first,
                });
            }
            if effective <= st.latest().effective {
                problems.push(AmendProblem::NotAfterCurrent {
                    effective,
                    current: st.latest().effective,
                });
            }
            if !b.in_term(effective) {
                problems.push(AmendProblem::OutsideNewTerm {
                    effective,
                    start: b.start,
                    end: b.end,
                });
            }
            let ids = |a: &costshare_core::Agreement| a.parties.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
            if ids(cur) != ids(&b) {
                problems.push(AmendProblem::Parties {
                    now: ids(cur),
                    new: ids(&b),
                    file: name.clone(),
                });
            }
            if cur.currency != b.currency {
                problems.push(AmendProblem::Currency {
                    code: cur.currency.code().to_string(),
                });
            }
            if cur.calendar != b.calendar {
                problems.push(AmendProblem::Calendar);
            }
            if !problems.is_empty() {
                return Err(Refusal::Amend(problems).into());
            }
            // lines already recorded on or after the date must fit the new version
            let rates = st.rates();
            let mut errors = Vec::new();
            for l in st.active() {
                let Some(d) = Date::parse(&l.body.date) else { continue };
                if d < effective {
                    continue;
                }
                if let Err(m) = validate_ref(&b, &rates, &state::row_ref(l)) {
                    errors.push(RowError {
                        line: l.seq as usize,
                        id: Some(l.body.id.clone()),
                        message: m,
                    });
                }
            }
            if !errors.is_empty() {
                return Err(LedgerError::Rows {
                    file: "the ledger (journal entry)".into(),
                    errors,
                });
            }
            let version = st.versions.len() as u32 + 1;
            Ok((
                vec![Body::Agreement {
                    version,
                    effective: effective.to_string(),
                    file: name,
                    sha256: sha,
                    content,
                }],
                version,
            ))
        })
    }

    /// Close a fiscal year (see [`Ledger::close_with`]), without force.
    pub fn close(&mut self, period: &str, as_of: Date, now: &str) -> Result<Vec<StatementRow>, LedgerError> {
        Ok(self.close_with(period, as_of, false, now)?.rows)
    }

    /// Close a fiscal year: its statement is the allocation as of `as_of`,
    /// frozen. A year not ended by `as_of`, or with lines in pro-rata periods
    /// still open then, is refused unless `force` (the entry then says so).
    pub fn close_with(&mut self, period: &str, as_of: Date, force: bool, now: &str) -> Result<Closed, LedgerError> {
        let FiscalYear(fy) = FiscalYear::parse(period).ok_or_else(|| Refusal::NotAFiscalYear {
            period: period.to_string(),
        })?;
        self.transact(now, |st| {
            if let Some(s) = st.statements.iter().find(|s| s.fy == fy) {
                return Err(Refusal::AlreadyClosed {
                    period: period.to_string(),
                    seq: s.seq,
                    as_of: s.as_of.clone(),
                }
                .into());
            }
            if !state::year_in_term(&st.versions, fy) {
                return Err(Refusal::OutsideTerm {
                    period: period.to_string(),
                }
                .into());
            }
            let parts = state::allocate(st, as_of)?;
            let why = early(st, &parts, fy, as_of);
            if let (Some(why), false) = (&why, force) {
                return Err(Refusal::CloseEarly {
                    period: FiscalYear(fy).to_string(),
                    as_of,
                    why: why.clone(),
                }
                .into());
            }
            let rows = state::year_totals(st, &parts, fy).map_err(too_large)?;
            Ok((
                vec![Body::Close {
                    period: FiscalYear(fy).to_string(),
                    as_of: as_of.to_string(),
                    head: st.head.clone(),
                    forced: why.is_some(),
                    rows: rows.clone(),
                }],
                Closed { rows, forced: why },
            ))
        })
    }

    /// [`Ledger::close_with`] from a fresh derived state, without replaying
    /// the journal: the same refusals, the same statement (figures from the
    /// totals, provisional lines from the meta) and the same entry; only the
    /// meta is rewritten (the statement's entry, the head). `None` when the
    /// derived state is not fresh or a blob of it is damaged
    /// ([`Ledger::take_damaged`]): the caller takes the full path.
    pub fn close_fast(
        &mut self,
        period: &str,
        as_of: Date,
        force: bool,
        now: &str,
    ) -> Result<Option<ClosedAt>, LedgerError> {
        let FiscalYear(fy) = FiscalYear::parse(period).ok_or_else(|| Refusal::NotAFiscalYear {
            period: period.to_string(),
        })?;
        if let Err(e) = self.backend.begin_write() {
            self.backend.rollback();
            return Err(e.into());
        }
        match self.close_fast_locked(period, fy, as_of, force, now) {
            Ok(Some(c)) => {
                self.backend.commit()?;
                Ok(Some(c))
            }
            Ok(None) => {
                self.backend.rollback();
                Ok(None)
            }
            Err(LedgerError::Store(StoreError::Cache(key))) => {
                self.backend.rollback();
                self.damaged = Some(key);
                Ok(None)
            }
            Err(e) => {
                self.backend.rollback();
                Err(e)
            }
        }
    }

    fn close_fast_locked(
        &mut self,
        period: &str,
        fy: i32,
        as_of: Date,
        force: bool,
        now: &str,
    ) -> Result<Option<ClosedAt>, LedgerError> {
        let who = self.author.clone();
        let backend = self.backend.as_mut();
        let Some(mut meta) = derived::fresh_meta(backend)? else {
            return Ok(None);
        };
        let statements = derived::statements(backend, &meta)?;
        if let Some(s) = statements.iter().find(|s| s.fy == fy) {
            return Err(Refusal::AlreadyClosed {
                period: period.to_string(),
                seq: s.seq,
                as_of: s.as_of.clone(),
            }
            .into());
        }
        let mut versions = derived::versions(backend, &meta)?;
        if !state::year_in_term(&versions, fy) {
            return Err(Refusal::OutsideTerm {
                period: period.to_string(),
            }
            .into());
        }
        let Some(latest) = versions.last() else {
            return Ok(None);
        };
        let cal = latest.agreement.calendar;
        let (m0, m1) = derived::year_months(&cal, fy);
        let why = early_close(&cal, fy, as_of, || meta.provisional_in(m0, m1, as_of));
        if let (Some(why), false) = (&why, force) {
            return Err(Refusal::CloseEarly {
                period: FiscalYear(fy).to_string(),
                as_of,
                why: why.clone(),
            }
            .into());
        }
        let ags: Vec<&Agreement> = versions.iter().map(|v| &v.agreement).collect();
        let rows = derived::year_totals(&ags, &meta, fy).map_err(too_large)?;
        drop(ags);
        let seq = meta.seq + 1;
        let head_before = meta.head.clone();
        let body = Body::Close {
            period: FiscalYear(fy).to_string(),
            as_of: as_of.to_string(),
            head: head_before.clone(),
            forced: why.is_some(),
            rows: rows.clone(),
        };
        let last = append(backend, vec![body], None, seq, meta.head.clone(), now, &who, None)?;
        let Some((entries, head)) = last else {
            return Ok(None);
        };
        meta.seq = entries;
        meta.head = head.clone();
        meta.close_seqs.push(seq);
        derived::put_with_meta(backend, &head, &[], meta)?;
        self.last = Some((entries, head.clone()));
        let Some(latest) = versions.pop() else {
            return Ok(None);
        };
        Ok(Some(ClosedAt {
            closed: Closed { rows, forced: why },
            seq,
            head_before,
            latest,
            entries,
            head,
        }))
    }

    /// [`adjustments`] from a fresh derived state, read in one snapshot,
    /// with what the answer names: the closed periods in order, the latest
    /// agreement version, the journal's entries and head. `None` as
    /// [`Ledger::derived`].
    pub fn adjustments_fast(&mut self) -> Result<Option<AdjustmentsAt>, LedgerError> {
        let read = self.read_derived(|backend, meta| {
            let versions = derived::versions(backend, &meta)?;
            let statements = derived::statements(backend, &meta)?;
            Ok((meta, versions, statements))
        })?;
        let Some((meta, mut versions, statements)) = read else {
            return Ok(None);
        };
        let adjustments = adjustments_derived(&meta, &versions, &statements)?;
        let Some(latest) = versions.pop() else {
            return Ok(None);
        };
        Ok(Some(AdjustmentsAt {
            adjustments,
            closed: statements.into_iter().map(|s| s.period).collect(),
            latest,
            entries: meta.seq,
            head: meta.head,
        }))
    }

    /// `record` of a costs file recorded before, without rates, answered
    /// from a fresh derived state with nothing written. Every row of a
    /// recorded file was recorded then (a file with a bad or conflicting row
    /// records nothing), with the values its bytes give, and a recorded id
    /// stays recorded (voided or not): the full path finds every row already
    /// there. Its rows are still checked against the agreement version in
    /// force at their dates now and the rates (an amendment may refuse a
    /// voided line; new rates may convert one past the limit), but for rows
    /// that, with no rates recorded, fall under the first version now as
    /// then (what they passed when recorded); a row that does not pass, or a file whose SHA-256 the derived state does
    /// not list, is `None` (the full path). Taken under the write lock, so a
    /// writer that lands first is seen.
    pub fn record_noop(&mut self, costs: Input<'_>) -> Result<Option<RecordOutcome>, LedgerError> {
        let sha = journal::sha256_hex(costs.bytes);
        // nothing is written either way
        self.with_fresh_meta(|l, meta| Ok(l.record_noop_locked(&sha, costs.bytes, &meta)?.map(|o| (o, false))))
    }

    fn record_noop_locked(
        &mut self,
        sha: &str,
        bytes: &[u8],
        meta: &derived::Meta,
    ) -> Result<Option<RecordOutcome>, LedgerError> {
        let backend = self.backend.as_mut();
        // the full path refuses a ledger whose total is past the limit
        if !meta.has_file(sha) || meta.total > i64::MAX as i128 {
            return Ok(None);
        }
        // Without rates, a row dated before the second version took effect
        // falls under the first version now as when the file was recorded
        // (versions only take effect later), so it passes what it passed
        // then: it is only counted. Every other row is checked again.
        let versions = derived::versions(backend, meta)?;
        let rates = derived::rates(backend, meta)?;
        let second = versions.get(1).map(|v| v.effective);
        let unchanged = |d: Option<Date>| {
            meta.rate_seqs.is_empty()
                && match (d, second) {
                    (_, None) => true,
                    (Some(d), Some(second)) => d < second,
                    (None, Some(_)) => false,
                }
        };
        let mut rows = 0u64;
        let mut bad = false;
        let csv_errors = for_each_row(bytes, |raw| {
            rows += 1;
            if bad {
                return;
            }
            let date = Date::parse(raw.date);
            if unchanged(date) {
                return;
            }
            let v = state::version_in_force(&versions, date);
            bad = validate_ref(&versions[v].agreement, &rates, &raw).is_err();
        });
        if bad || !csv_errors.is_empty() {
            return Ok(None);
        }
        self.last = Some((meta.seq, meta.head.clone()));
        // every row already there: the repeats within the file too
        Ok(Some(RecordOutcome {
            already: rows,
            ..RecordOutcome::default()
        }))
    }

    /// [`Ledger::verify_with`] the default options: the integrity check, no
    /// repair, no expected head.
    pub fn verify(&mut self) -> Result<Verified, LedgerError> {
        self.verify_with(&VerifyOptions::default())
    }

    /// Check the ledger: by default its integrity ([`Ledger::verify_sealed`]);
    /// with `deep` or `repair`, everything a replay can check
    /// ([`Ledger::verify_deep`]).
    pub fn verify_with(&mut self, opts: &VerifyOptions) -> Result<Verified, LedgerError> {
        let want = opts.expect_head.as_ref().map(|w| w.trim().to_ascii_lowercase());
        if opts.deep || opts.repair {
            self.verify_deep(want.as_deref(), opts.repair)
        } else {
            self.verify_sealed(want.as_deref())
        }
    }

    /// The integrity check, in one read snapshot, in memory that does not
    /// grow with the journal: the journal streamed once, each entry's link
    /// checked ([`check_link`]: seq, previous hash, recomputed hash, bytes
    /// that decode and say their seq, a statement's `head=`), the head
    /// expected if one is; then the derived state's seals
    /// ([`derived::check_blobs`]: the meta under the head, every bucket and
    /// shard the one the meta names), one blob at a time. Nothing is
    /// replayed, no statement re-derived. A derived state that is missing
    /// or older than the head needs a replay to be rebuilt: then the deep
    /// check runs instead (and says so).
    fn verify_sealed(&mut self, want: Option<&str>) -> Result<Verified, LedgerError> {
        self.backend.begin_read()?;
        let out = (|| -> Result<Result<(Chain, Option<DerivedStatus>), Verified>, LedgerError> {
            let backend = self.backend.as_mut();
            let chain = match read_chain_split(backend, want)? {
                Ok(chain) => chain,
                Err(bad) => return Ok(Err(bad)),
            };
            if let Some(bad) = chain.mismatch(want) {
                return Ok(Err(bad));
            }
            let meta = match derived::meta(backend) {
                Ok(Some(m)) if m.seq == chain.entries && m.head == chain.head => m,
                Ok(Some(m)) if let Some(cut) = derived::cut_off(&m, Some((chain.entries, &chain.head))) => {
                    return Ok(Err(cut_off_bad(cut)));
                }
                Ok(_) => return Ok(Ok((chain, None))),
                Err(StoreError::Cache(key)) => return Ok(Ok((chain, Some(DerivedStatus::Damaged { key })))),
                Err(e) => return Err(e.into()),
            };
            let status = match derived::check_blobs(backend, &meta) {
                Ok(()) => DerivedStatus::Sealed,
                Err(StoreError::Cache(key)) => DerivedStatus::Damaged { key },
                Err(e) => return Err(e.into()),
            };
            Ok(Ok((chain, Some(status))))
        })();
        self.backend.end_read();
        let (chain, status) = match out? {
            Ok(found) => found,
            Err(bad) => return Ok(bad),
        };
        match status {
            Some(derived) => Ok(Verified::Ok {
                entries: chain.entries,
                head: chain.head,
                derived,
                deep: false,
            }),
            // missing, or older than the head (entries appended behind the
            // program's back among them): the rebuild needs a replay, and a
            // replay checks everything, so the deep check runs
            None => self.verify_deep(want, false),
        }
    }

    /// Recompute the hash chain, re-derive every closed statement, check the
    /// head if one is expected, and compare the derived state with a rebuild
    /// (rebuilt when damaged and `repair`).
    ///
    /// The journal is read once, in one statement, entry by entry
    /// ([`Backend::for_each_stored`]): this thread checks each entry's place
    /// in the chain and decodes it; a second thread re-derives the statements
    /// and replays the entries into the state (see [`verify_journal`]). No
    /// entry is kept but in the state.
    fn verify_deep(&mut self, want: Option<&str>, repair: bool) -> Result<Verified, LedgerError> {
        let (chain, mut st) = match verify_journal(self.backend.as_mut(), want)? {
            Ok(verified) => verified,
            Err(bad) => return Ok(bad),
        };
        if let Some(bad) = chain.mismatch(want) {
            return Ok(bad);
        }
        let prev = chain.head;
        st.head = prev.clone();
        // the derived state must equal a rebuild from the verified journal
        let derived = if !derived::applicable(&st) {
            DerivedStatus::NotKept
        } else {
            let blobs = derived::build(&st)?;
            // compared with the state of the entries just verified, not with
            // the head now (a write may have landed meanwhile: see below)
            let mut bad: Option<String> = None;
            let backend = self.backend.as_mut();
            // the meta read before the head below: a write landing between
            // the two only makes the head newer than the meta
            let (fresh, stale) = match derived::meta(backend) {
                Ok(Some(m)) if m.seq == st.entries && m.head == st.head => (Some(m), None),
                Ok(m) => (None, m),
                Err(StoreError::Cache(key)) => {
                    bad = Some(key);
                    (None, None)
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(meta) = &fresh {
                bad = derived::differs(backend, meta, &blobs)?;
            }
            let head = backend.head()?;
            // a journal cut off at its end, or its last entry replaced, since
            // the derived state was written: told unless repairing (a
            // rebuild takes the journal as it is)
            if !repair
                && let Some(m) = &stale
                && let Some(cut) = derived::cut_off(m, head.as_ref().map(|(s, h)| (*s, h.as_str())))
            {
                return Ok(cut_off_bad(cut));
            }
            let moved = head.is_none_or(|(seq, h)| seq != st.entries || h != st.head);
            match bad {
                None if fresh.is_some() => DerivedStatus::Consistent,
                _ if moved => DerivedStatus::NotChecked,
                Some(key) if repair => {
                    self.write_blobs(&st, &blobs)?;
                    DerivedStatus::Repaired { key }
                }
                Some(key) => DerivedStatus::Damaged { key },
                None => {
                    self.write_blobs(&st, &blobs)?;
                    DerivedStatus::Refreshed
                }
            }
        };
        // freeing the state (a million lines: a fraction of a second) is
        // not the caller's wait: a thread of its own does it, or this one if
        // none can be started
        let _ = std::thread::Builder::new()
            .name("verify-free".into())
            .spawn(move || drop(st));
        Ok(Verified::Ok {
            entries: chain.entries,
            head: prev,
            derived,
            deep: true,
        })
    }
}

/// The journal's chain as [`verify_journal`] (or a replay) found it.
pub(crate) struct Chain {
    /// Entries read (the last one's seq).
    pub(crate) entries: u64,
    /// The last entry's hash ([`journal::GENESIS`] for an empty journal).
    pub(crate) head: String,
    /// The first entry whose hash is the expected head, if one is expected.
    pub(crate) at: Option<u64>,
}

impl Chain {
    /// The chain before the first entry.
    fn new() -> Chain {
        Chain {
            entries: 0,
            head: journal::GENESIS.to_string(),
            at: None,
        }
    }

    /// Check the next row's link ([`check_link`]) and move past it, noting
    /// whether its hash is `want`.
    fn step(&mut self, s: backend::StoredRef<'_>, want: Option<&str>) -> Result<Entry, Verified> {
        let e = check_link(self, s).map_err(|message| Verified::Bad { seq: s.seq, message })?;
        self.moved_past(s, want);
        Ok(e)
    }

    /// Past the row `s` (its link checked), noting whether its hash is `want`.
    fn moved_past(&mut self, s: backend::StoredRef<'_>, want: Option<&str>) {
        if want == Some(s.hash) && self.at.is_none() {
            self.at = Some(s.seq);
        }
        self.entries = s.seq;
        s.hash.clone_into(&mut self.head);
    }

    /// The verified chain does not end at the expected head `want`.
    fn mismatch(&self, want: Option<&str>) -> Option<Verified> {
        let want = want?;
        (want != self.head).then(|| Verified::HeadMismatch {
            at: self.at,
            expected: want.to_string(),
            entries: self.entries,
            head: self.head.clone(),
        })
    }
}

/// Read the journal once, in one statement ([`Backend::for_each_stored`]),
/// checking each entry's link ([`Chain::step`]) and handing it, decoded, to
/// `each` (which may stop the reading with an error). `Err` of the result:
/// the first bad entry (a bad link, or a column of another type than the
/// schema's); an error of `each` is returned as it is.
fn read_chain(
    backend: &mut dyn Backend,
    want: Option<&str>,
    each: &mut dyn FnMut(Entry) -> Result<(), StoreError>,
) -> Result<Result<Chain, Verified>, LedgerError> {
    let mut chain = Chain::new();
    // the first failure found
    let mut bad: Option<Verified> = None;
    let read = backend.for_each_stored(&mut |s| match chain.step(s, want) {
        Ok(e) => each(e),
        Err(b) => {
            bad = Some(b);
            Err(StoreError::Db("verify stopped at a bad entry".into()))
        }
    });
    if let Some(b) = bad {
        return Ok(Err(b));
    }
    Ok(column_bad(read)?.map_or(Ok(chain), Err))
}

/// Decoded entries go to the replaying thread in batches of this many, at
/// most this many batches ahead of it: the memory verify needs beyond the
/// state does not grow with the journal.
const VERIFY_BATCH: usize = 1024;
const VERIFY_BATCHES_AHEAD: usize = 8;

/// Read the journal once and check it: on this thread, each entry's link
/// ([`read_chain`]) and the first entry whose hash is `want`; on a second
/// thread, each statement re-derived from the entries before it, and each
/// entry applied to the state. The two run as a pipeline; the failure
/// reported is the first in journal order, with the message it had when one
/// loop checked both. `Err` of the result: the journal is bad.
fn verify_journal(
    backend: &mut dyn Backend,
    want: Option<&str>,
) -> Result<Result<(Chain, State), Verified>, LedgerError> {
    // the head's seq, as a capacity hint only (the chain is checked below; a
    // damaged head is no error here)
    let hint = backend.head().ok().flatten().map_or(0, |(seq, _)| seq);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Entry>>(VERIFY_BATCHES_AHEAD);
    std::thread::scope(|scope| {
        let replay = scope.spawn(move || replay_verified(rx, hint));
        let mut batch: Vec<Entry> = Vec::with_capacity(VERIFY_BATCH);
        let read = read_chain(backend, want, &mut |e| {
            batch.push(e);
            if batch.len() == VERIFY_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(VERIFY_BATCH));
                if tx.send(full).is_err() {
                    // it stopped at a bad entry: the rest of the journal does not matter
                    return Err(StoreError::Db("verify stopped at a bad entry".into()));
                }
            }
            Ok(())
        });
        if !batch.is_empty() {
            let _ = tx.send(batch);
        }
        // the replaying thread ends with the last batch
        drop(tx);
        let (st, replay_bad) = match replay.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // the replaying thread saw only entries before this thread's failure
        if let Some(b) = replay_bad {
            return Ok(Err(b));
        }
        match read {
            Ok(Ok(chain)) => Ok(Ok((chain, st))),
            Ok(Err(b)) => Ok(Err(b)),
            Err(e) => Err(e),
        }
    })
}

/// One entry's place in the chain after `chain`: its seq, `prev_hash` and
/// hash ([`check_chain_link`]), its bytes decoded and saying its seq, and a
/// statement's `head=` naming the entry before it ([`check_body`]). `Err`:
/// what is wrong with it.
pub(crate) fn check_link(chain: &Chain, s: backend::StoredRef<'_>) -> Result<Entry, String> {
    check_chain_link(chain, s)?;
    check_body(s.seq, &chain.head, s.body)
}

/// The first half of [`check_link`]: the entry's seq follows the chain's,
/// its `prev_hash` is the chain's head, and its bytes hash to its `hash`.
pub(crate) fn check_chain_link(chain: &Chain, s: backend::StoredRef<'_>) -> Result<(), String> {
    let expect_seq = chain.entries + 1;
    let prev = &chain.head;
    if s.seq != expect_seq {
        return Err(format!(
            "expected entry {expect_seq} here (an entry is missing or out of place)"
        ));
    }
    if s.prev_hash != prev {
        return Err(format!(
            "its previous hash {} does not match the hash {prev} of entry {}",
            s.prev_hash,
            expect_seq - 1
        ));
    }
    let h = journal::chain_digest(prev, s.body);
    if !journal::is_hex_of(s.hash, &h) {
        let h = journal::hex(&h);
        return Err(format!("its bytes hash to {h}, not the stored {}", s.hash));
    }
    Ok(())
}

/// The second half of [`check_link`], for entry `seq` whose previous hash
/// (checked) is `prev`: its bytes decode, say `seq`, and a statement's
/// `head=` is `prev`.
fn check_body(seq: u64, prev: &str, body: &[u8]) -> Result<Entry, String> {
    let e = journal::decode(body).map_err(|d| format!("its bytes do not read as an entry: {}", d.0))?;
    if e.seq != seq {
        return Err(format!("its bytes say entry {}", e.seq));
    }
    if let Body::Close { period, head, .. } = &e.body
        && !head.is_empty()
        && head != prev
    {
        // the head it was issued after is still the entry before it
        return Err(format!(
            "the {period} statement was issued after journal head {head}, but entry {} hashes to {prev} (entries before it were changed, removed or added)",
            seq - 1
        ));
    }
    Ok(e)
}

/// Entries' bytes on their way from the reading thread to the decoding one
/// ([`read_chain_split`]): each entry's previous hash and body, back to back
/// in one buffer, with its seq and where each ends (no allocation per entry).
#[derive(Default)]
struct Bodies {
    bytes: Vec<u8>,
    /// (seq, end of its previous hash, end of its body) in `bytes`.
    ends: Vec<(u64, usize, usize)>,
}

/// Bodies go to the decoding thread in batches of about this many bytes, at
/// most [`VERIFY_BATCHES_AHEAD`] batches ahead: flat memory.
const VERIFY_BATCH_BYTES: usize = 1 << 20;

/// [`read_chain`] for the integrity check, on two threads: this one reads
/// the rows and checks each link ([`check_chain_link`]: seq, previous hash,
/// recomputed hash), and hands the bytes in batches to a second one, which
/// decodes each ([`check_body`]); nothing decoded is kept. The failure named
/// is the first in journal order, whichever thread finds it, with
/// [`check_link`]'s message.
fn read_chain_split(backend: &mut dyn Backend, want: Option<&str>) -> Result<Result<Chain, Verified>, LedgerError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Bodies>(VERIFY_BATCHES_AHEAD);
    std::thread::scope(|scope| {
        let decode = scope.spawn(move || {
            for b in rx {
                let mut at = 0;
                for &(seq, prev_end, end) in &b.ends {
                    let prev = std::str::from_utf8(&b.bytes[at..prev_end]).unwrap_or_default();
                    if let Err(message) = check_body(seq, prev, &b.bytes[prev_end..end]) {
                        return Some(Verified::Bad { seq, message });
                    }
                    at = end;
                }
            }
            None
        });
        let mut chain = Chain::new();
        let mut bad: Option<Verified> = None;
        let mut batch = Bodies::default();
        let read = backend.for_each_stored(&mut |s| {
            if let Err(message) = check_chain_link(&chain, s) {
                bad = Some(Verified::Bad { seq: s.seq, message });
                return Err(StoreError::Db("verify stopped at a bad entry".into()));
            }
            batch.bytes.extend_from_slice(s.prev_hash.as_bytes());
            let prev_end = batch.bytes.len();
            batch.bytes.extend_from_slice(s.body);
            batch.ends.push((s.seq, prev_end, batch.bytes.len()));
            chain.moved_past(s, want);
            if batch.bytes.len() >= VERIFY_BATCH_BYTES {
                let full = std::mem::take(&mut batch);
                if tx.send(full).is_err() {
                    // it stopped at a bad entry: the rest of the journal does not matter
                    return Err(StoreError::Db("verify stopped at a bad entry".into()));
                }
            }
            Ok(())
        });
        if !batch.ends.is_empty() {
            let _ = tx.send(batch);
        }
        drop(tx);
        let decode_bad = match decode.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // the decoding thread saw only entries before this thread's failure
        if let Some(b) = decode_bad {
            return Ok(Err(b));
        }
        if let Some(b) = bad {
            return Ok(Err(b));
        }
        Ok(column_bad(read)?.map_or(Ok(chain), Err))
    })
}

/// `verify`'s failure for a journal cut off at its end or whose last entry
/// was replaced ([`derived::cut_off`]).
fn cut_off_bad((seq, what): (u64, String)) -> Verified {
    Verified::Bad {
        seq,
        message: format!(
            "{what}; restore the journal from a copy, or accept it as it is with `verify --repair`, which rebuilds the derived state from it"
        ),
    }
}

/// A column of another type than the schema's is that entry's failure;
/// another error is returned as it is.
fn column_bad(read: Result<(), StoreError>) -> Result<Option<Verified>, LedgerError> {
    match read {
        Ok(()) => Ok(None),
        Err(StoreError::ColumnType {
            seq,
            column,
            expected,
            found,
            ..
        }) => Ok(Some(Verified::Bad {
            seq,
            message: format!("its `{column}` is stored as {found}, not {expected}"),
        })),
        Err(e) => Err(e.into()),
    }
}

/// The replaying side of [`verify_journal`]: each statement re-derived from
/// the state of the entries before it, each entry applied, in order, until
/// the batches end or one fails (then the channel closes, and the reading
/// stops).
fn replay_verified(batches: std::sync::mpsc::Receiver<Vec<Entry>>, hint: u64) -> (State, Option<Verified>) {
    let mut st = State {
        head: journal::GENESIS.to_string(),
        ..State::default()
    };
    // room for as many lines as the journal has entries, made once rather
    // than by doubling (copying every line each time); a hint too large to
    // allocate is no error
    let hint = usize::try_from(hint).unwrap_or(0);
    let _ = st.lines.try_reserve_exact(hint);
    let _ = st.by_id.try_reserve(hint);
    for batch in batches {
        for e in batch {
            let seq = e.seq;
            if let Err(message) = restate_and_apply(&mut st, e) {
                return (st, Some(Verified::Bad { seq, message }));
            }
        }
    }
    (st, None)
}

/// A statement must equal the allocation of the entries before it (`st`);
/// then the entry is applied. `Err`: what is wrong with it.
fn restate_and_apply(st: &mut State, e: Entry) -> Result<(), String> {
    if let Body::Close {
        period, rows, as_of, ..
    } = &e.body
    {
        let Some(FiscalYear(fy)) = FiscalYear::parse(period) else {
            return Err(format!("its period `{period}` is not a fiscal year such as FY2022"));
        };
        let d = Date::parse(as_of).unwrap_or(Date {
            year: 1970,
            month: 1,
            day: 1,
        });
        let parts = state::allocate(st, d).map_err(|err| format!("the statement cannot be re-derived: {err}"))?;
        let again = state::year_totals(st, &parts, fy)
            .map_err(|e| format!("the statement cannot be re-derived: {}", too_large(e)))?;
        if &again != rows {
            return Err(format!(
                "the {period} statement differs from the allocation of the entries before it"
            ));
        }
    }
    st.apply(e).map_err(|err| err.to_string())
}

/// Why the figures of fiscal year `fy` may still change at `as_of`, if they
/// may: the one rule of both `close` paths. The year has not ended by
/// `as_of`; or `provisional` (asked only when it has) counts lines of the
/// year still provisional at `as_of`, with the latest day one of them is
/// provisional until.
fn early_close(
    cal: &costshare_core::calendar::FiscalCalendar,
    fy: i32,
    as_of: Date,
    provisional: impl FnOnce() -> (u64, Option<Date>),
) -> Option<EarlyClose> {
    let (_, last_day) = cal.fy_bounds(fy);
    if as_of < last_day {
        return Some(EarlyClose::NotEnded { last_day });
    }
    let (lines, until) = provisional();
    (lines > 0).then(|| EarlyClose::Provisional {
        lines: usize::try_from(lines).unwrap_or(usize::MAX),
        until: until.map_or(as_of, |d| d.max(as_of)),
    })
}

/// [`early_close`] from a replay's allocation.
fn early(st: &State, parts: &[state::Part], fy: i32, as_of: Date) -> Option<EarlyClose> {
    early_close(&st.latest().agreement.calendar, fy, as_of, || {
        let mut lines = 0u64;
        let mut until = None;
        for p in parts {
            let cal = &st.versions[p.version].agreement.calendar;
            for (i, l) in p.lines.iter().enumerate() {
                if p.alloc.provisional[i] && cal.fy_of(l.date) == fy {
                    lines += 1;
                    until = until.max(p.alloc.open_until[i]);
                }
            }
        }
        (lines, until)
    })
}

/// Rate entries for the rows of a rates file that the ledger lacks; a rate
/// that contradicts a recorded one is refused.
fn new_rates(st: &State, rates: &Input<'_>, agreement_currency: &str) -> Result<Vec<Body>, LedgerError> {
    let (parsed, errors) = parse_rates_partial(rates.bytes, agreement_currency);
    if !errors.is_empty() {
        return Err(LedgerError::Rows {
            file: rates.name.to_string(),
            errors,
        });
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (c, d, r) in parsed.rows() {
        match st.rates.get(&(c.clone(), d)) {
            Some((text, have)) if *have != r => problems.push(RateConflict {
                file: rates.name.to_string(),
                currency: c.clone(),
                date: d,
                recorded: text.clone(),
                new: fmt_ratio(&r, 18),
            }),
            Some(_) => {}
            None => out.push(Body::Rate {
                date: d.to_string(),
                currency: c,
                rate: fmt_ratio(&r, 18),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(Refusal::RateConflicts(problems).into());
    }
    Ok(out)
}

/// Seal `bodies`, then the new lines `lines` writes, as entries `base`,
/// `base + 1`, … chained after `head` and insert them (inside the caller's
/// write transaction). Returns the last entry's seq and hash. Sealing runs
/// on a second thread while this one inserts: the hash chain is sequential,
/// but the canonical bytes and hashes of one chunk are ready while the
/// database takes the previous chunk, and chunks are freed as they land. A
/// chunk holds its entries' bytes and hashes in two buffers: a bulk write's
/// million lines are sealed without an allocation of their own. Between
/// chunks, the blobs of the derived state that `feed` has ready are put.
#[allow(clippy::too_many_arguments)]
fn append(
    backend: &mut dyn Backend,
    bodies: Vec<Body>,
    mut lines: Option<LineWriter<'_>>,
    base: u64,
    head: String,
    now: &str,
    who: &str,
    mut feed: Option<&mut derived::Feed>,
) -> Result<Option<(u64, String)>, LedgerError> {
    // small enough that the chunks in flight (about four) stay a few MB
    const CHUNK: usize = 4_096;
    let mut last: Option<(u64, String)> = None;
    std::thread::scope(|s| -> Result<(), LedgerError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Sealed>(2);
        s.spawn(move || {
            let mut prev = head;
            let mut bodies = bodies.into_iter();
            let mut seq = base;
            let mut o = String::with_capacity(512);
            loop {
                let mut chunk = Sealed {
                    first: seq,
                    prev: std::mem::take(&mut prev),
                    kinds: Vec::with_capacity(CHUNK),
                    bytes: Vec::with_capacity(CHUNK * 200),
                    ends: Vec::with_capacity(CHUNK),
                    hashes: String::with_capacity(CHUNK * 64),
                };
                while chunk.kinds.len() < CHUNK {
                    o.clear();
                    let kind = match bodies.next() {
                        Some(body) => {
                            let kind = body.kind();
                            let e = Entry {
                                seq,
                                at: now.to_string(),
                                who: who.to_string(),
                                body,
                            };
                            chunk.bytes.extend_from_slice(&journal::canonical(&e));
                            kind
                        }
                        None => {
                            if !lines.as_mut().is_some_and(|l| l.write_next(&mut o, seq, now, who)) {
                                break;
                            }
                            chunk.bytes.extend_from_slice(o.as_bytes());
                            "line"
                        }
                    };
                    let start = chunk.ends.last().copied().unwrap_or(0);
                    let digest = journal::chain_digest(chunk.hash_before(chunk.kinds.len()), &chunk.bytes[start..]);
                    journal::hex_to(&mut chunk.hashes, &digest);
                    chunk.ends.push(chunk.bytes.len());
                    chunk.kinds.push(kind);
                    seq += 1;
                }
                if chunk.kinds.is_empty() {
                    break;
                }
                prev = chunk.hash_before(chunk.kinds.len()).to_string();
                if tx.send(chunk).is_err() {
                    break; // the insert failed: nothing more to do
                }
            }
        });
        for chunk in rx {
            let rows: Vec<Row<'_>> = (0..chunk.kinds.len())
                .map(|i| Row {
                    seq: chunk.first + i as u64,
                    kind: chunk.kinds[i],
                    at: now,
                    body: chunk.body(i),
                    prev_hash: chunk.hash_before(i),
                    hash: chunk.hash_before(i + 1),
                })
                .collect();
            backend.insert(&rows)?;
            drop(rows);
            if let Some(f) = feed.as_deref_mut() {
                f.take_ready(backend)?;
            }
            let n = chunk.kinds.len();
            last = Some((chunk.first + n as u64 - 1, chunk.hash_before(n).to_string()));
        }
        Ok(())
    })?;
    Ok(last)
}

/// A chunk of entries sealed by [`append`]: entry `first + i` is
/// `bytes[ends[i - 1]..ends[i]]`, of kind `kinds[i]`, its hash the `i`th
/// 64 characters of `hashes`; the first one chains after `prev`.
struct Sealed {
    first: u64,
    prev: String,
    kinds: Vec<&'static str>,
    bytes: Vec<u8>,
    ends: Vec<usize>,
    hashes: String,
}

impl Sealed {
    /// The canonical bytes of the chunk's `i`th entry.
    fn body(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.bytes.get(start..self.ends[i]).unwrap_or_default()
    }

    /// The hash the chunk's `i`th entry chains after: `prev` for the first,
    /// else entry `i - 1`'s (so `hash_before(i + 1)` is entry `i`'s own).
    fn hash_before(&self, i: usize) -> &str {
        match i {
            0 => &self.prev,
            i => self.hashes.get((i - 1) * 64..i * 64).unwrap_or_default(),
        }
    }
}

/// The journal bodies of a write's new lines (see [`NewLines`]), in entry
/// order, written one at a time from the cost lines `per_version` holds
/// (each version's new lines are the last of its list): `order` gives each
/// new line's version, `written` the amounts as written `fields_of` needs,
/// and `batch` the batch entry they belong to.
struct LineWriter<'a> {
    st: &'a State,
    per_version: &'a [Packed],
    order: &'a [usize],
    written: &'a [(usize, String)],
    batch: u64,
    /// Each version's next new line.
    next: Vec<usize>,
    /// New lines written so far.
    k: usize,
    formatted: Formatted,
}

impl<'a> LineWriter<'a> {
    fn new(
        st: &'a State,
        per_version: &'a [Packed],
        order: &'a [usize],
        written: &'a [(usize, String)],
        batch: u64,
    ) -> Self {
        let mut next: Vec<usize> = vec![0; per_version.len()];
        for &v in order {
            next[v] += 1;
        }
        for (n, lines) in next.iter_mut().zip(per_version) {
            *n = lines.len() - *n;
        }
        LineWriter {
            st,
            per_version,
            order,
            written,
            batch,
            next,
            k: 0,
            formatted: Formatted::default(),
        }
    }

    /// The next new line's canonical bytes as entry `seq`, appended to `o`;
    /// false when every new line is written.
    fn write_next(&mut self, o: &mut String, seq: u64, at: &str, who: &str) -> bool {
        let Some(&v) = self.order.get(self.k) else {
            return false;
        };
        let l = self.per_version[v].view(self.next[v]);
        self.next[v] += 1;
        let written = written_of(self.written, self.k);
        self.k += 1;
        let mut fields = fields_of(&self.st.versions[v].agreement, &l, written, &mut self.formatted);
        fields.batch = self.batch;
        journal::canonical_line_into(o, seq, at, who, &fields);
        true
    }
}

/// Files of at most this many rows may take the fast path (see `record_fast`).
const FAST_RECORD_MAX_ROWS: usize = 10_000;

/// The SHA-256 of a costs file as its batch entry records it (what tells a
/// file recorded before).
pub fn file_sha256(bytes: &[u8]) -> String {
    journal::sha256_hex(bytes)
}

/// More rows than [`Ledger::record_fast`] takes in (the full path's).
fn too_many_for_fast(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', bytes).count() > FAST_RECORD_MAX_ROWS + 1
}

/// What [`Ledger::record_small`] did.
#[derive(Debug)]
pub enum SmallRecord {
    /// The file was recorded before: nothing written ([`Ledger::record_noop`]).
    Noop(RecordOutcome),
    /// New lines taken in from the derived state ([`Ledger::record_fast`]).
    Fast(RecordOutcome, LateImpact),
}

/// The normalized, recorded form of a valid row: [`body_of`] of the cost
/// line the row was accepted as.
fn line_body_in(ag: &Agreement, raw: &RowRef<'_>, cl: &CostLine) -> LineBody {
    body_of(ag, &view_of(cl), raw.amount)
}

/// The journal body of a line accepted as `cl` under `ag` (batch 0): the
/// one home of a recorded line's normalized values. The category and the
/// payer are the agreement's ids the row matched exactly (`costs::accept`);
/// the amount has its currency's decimals, or is `written` (the text of the
/// row) for a currency the agreement cannot name; the quantity is exact.
fn body_of(ag: &Agreement, cl: &LineView<'_>, written: &str) -> LineBody {
    fields_of(ag, cl, written, &mut Formatted::default()).to_body()
}

/// The values [`fields_of`] formats, kept to be written again by the next
/// line (a bulk write formats a million).
#[derive(Default)]
struct Formatted {
    date: String,
    amount: String,
    quantity: String,
}

/// [`body_of`], borrowed: the line's text, the agreement's ids and the
/// formatted values in `f`.
fn fields_of<'a>(ag: &'a Agreement, cl: &LineView<'a>, written: &'a str, f: &'a mut Formatted) -> LineFields<'a> {
    use std::fmt::Write;
    f.date.clear();
    let _ = write!(f.date, "{}", cl.date);
    f.amount.clear();
    let amount = match ag.currency(cl.currency) {
        Some(c) => {
            write_minor(&mut f.amount, cl.source_amount as i128, c.decimals());
            f.amount.as_str()
        }
        None => written,
    };
    f.quantity.clear();
    if let Some(q) = cl.quantity {
        f.quantity.push_str(&fmt_ratio(&q.to_big(), 18));
    }
    LineFields {
        batch: 0,
        id: cl.id,
        date: &f.date,
        category: ag
            .categories
            .get(cl.category)
            .map(|c| c.id.as_str())
            .unwrap_or_default(),
        amount,
        currency: cl.currency,
        quantity: &f.quantity,
        site: cl.site,
        description: cl.description,
        replaces: cl.replaces.unwrap_or_default(),
        paid_by: cl
            .paid_by
            .and_then(|p| ag.parties.get(p))
            .map(|p| p.id.as_str())
            .unwrap_or_default(),
    }
}

/// The same recorded values (the batch aside).
fn same_line(a: &LineBody, b: &LineBody) -> bool {
    a.id == b.id
        && a.date == b.date
        && a.category == b.category
        && a.amount == b.amount
        && a.currency == b.currency
        && a.quantity == b.quantity
        && a.site == b.site
        && a.description == b.description
        && a.replaces == b.replaces
        && a.paid_by == b.paid_by
}

/// The new lines a write appends, packed as the cost lines a replay will
/// allocate (`state::cost_line` of each recorded line: the same rule,
/// `accept`, gave them; their `row` is the entry's seq and they replace
/// nothing; their rate, which neither the bodies nor the derived state
/// read, is not kept), each with its agreement version. Given only when the write's entries are one batch
/// and its new lines, in order, and nothing that changes earlier lines (no
/// rate, no void): the derived state after the write is then built from the
/// state before it and these, without applying a copy of every line to the
/// state and validating it again (a bulk `record`'s largest costs). The
/// lines are held once: their journal bodies are made from them (`body_of`)
/// as the entries are sealed, while the derived state is built from the
/// same lines on another thread.
pub(crate) struct NewLines {
    lines: Packed,
    /// The agreement version of each line.
    versions: Vec<usize>,
    /// The amount as written, for the few lines whose currency the
    /// agreement cannot name (`body_of`), by index into `lines`, ascending.
    written: Vec<(usize, String)>,
}

impl NewLines {
    /// `bodies` (entries from `base`) are the batch these lines follow.
    fn fits(&self, bodies: &[Body], base: u64) -> bool {
        matches!(bodies, [Body::Batch { .. }])
            && self.lines.len() == self.versions.len()
            && (0..self.lines.len())
                .all(|i| self.lines.row_of(i) == base + 1 + i as u64 && self.lines.replaces_of(i).is_none())
    }
}

/// One thread's share of a file's rows, checked (see `plan_record`): the
/// valid rows packed as the cost lines they were accepted as (`row` their
/// physical line), with their versions and any amount as written that
/// `body_of` needs.
struct Checked {
    errors: Vec<RowError>,
    lines: Packed,
    versions: Vec<usize>,
    written: Vec<(usize, String)>,
    rows: u64,
}

/// What `record` appends and says.
struct RecordPlan {
    bodies: Vec<Body>,
    new_lines: Option<NewLines>,
    outcome: RecordOutcome,
}

/// The amount as written of `lines[k]`, when `body_of` needs it.
fn written_of(written: &[(usize, String)], k: usize) -> &str {
    written
        .binary_search_by_key(&k, |(i, _)| *i)
        .map_or("", |at| written[at].1.as_str())
}

fn plan_record(
    st: &State,
    file: &str,
    sha: &str,
    bytes: &[u8],
    rates: Option<&Input<'_>>,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<RecordPlan, LedgerError> {
    let ccy = st.latest().agreement.currency.code().to_string();
    let rate_bodies = match rates {
        Some(r) => new_rates(st, r, &ccy)?,
        None => Vec::new(),
    };
    // the rates as they will be once this file's are added
    let mut merged = st.rates.clone();
    for b in &rate_bodies {
        if let Body::Rate { date, currency, rate } = b
            && let (Some(d), Ok(r)) = (Date::parse(date), costshare_core::num::parse_rational(rate, 18))
        {
            merged.insert((currency.clone(), d), (rate.clone(), r));
        }
    }
    let rates_now =
        costshare_core::costs::Rates::from_rows(merged.iter().map(|((c, d), (_, r))| (c.clone(), *d, r.clone())))
            .unwrap_or_default();
    // every row checked as it is read, on two threads for a large file: no
    // copy of the file's text is kept
    let total_rows = memchr::memchr_iter(b'\n', bytes).count() as u64;
    progress("checking rows", 0, total_rows);
    let (halves, csv_errors) = costs::for_each_row_split(
        bytes,
        || Checked {
            errors: Vec::new(),
            lines: Packed::with_capacity(total_rows as usize / 2 + 1),
            versions: Vec::with_capacity(total_rows as usize / 2 + 1),
            written: Vec::new(),
            rows: 0,
        },
        |c, raw| {
            c.rows += 1;
            let v = st.version_at(Date::parse(raw.date));
            let ag = &st.versions[v].agreement;
            // the one rule (`validate_ref`'s verdict and words), the
            // accepted row packed as the cost line it makes
            match costs::accept(ag, &rates_now, &raw) {
                Err(problems) => c.errors.push(RowError {
                    line: raw.line,
                    id: if raw.id.is_empty() {
                        None
                    } else {
                        Some(raw.id.to_string())
                    },
                    message: problems.to_string(),
                }),
                Ok(a) => {
                    if ag.currency(a.currency.code()).is_none() {
                        c.written.push((c.lines.len(), raw.amount.to_string()));
                    }
                    c.lines.push(a, &raw);
                    c.versions.push(v);
                }
            }
        },
        &mut |done| progress("checking rows", done.min(total_rows), total_rows),
    );
    let mut errors: Vec<RowError> = Vec::new();
    let mut rows = 0u64;
    let mut halves = halves.into_iter();
    let mut lines = Packed::default();
    let mut versions: Vec<usize> = Vec::new();
    let mut written: Vec<(usize, String)> = Vec::new();
    if let Some(first) = halves.next() {
        rows += first.rows;
        errors = first.errors;
        lines = first.lines;
        versions = first.versions;
        written = first.written;
    }
    for h in halves {
        rows += h.rows;
        errors.extend(h.errors);
        let at = lines.len();
        written.extend(h.written.into_iter().map(|(k, w)| (k + at, w)));
        lines.extend(h.lines);
        versions.extend(h.versions);
    }
    if !csv_errors.is_empty() {
        // the CSV layer failed (header, quoting, encoding): those with the
        // rows' own problems, in line order, as `parse_costs` names them
        let mut all = csv_errors;
        all.extend(errors);
        all.sort_by_key(|e| e.line);
        return Err(LedgerError::Rows {
            file: file.to_string(),
            errors: all,
        });
    }
    // the recorded form of valid row k (made only where values are compared)
    let body = |k: usize| {
        body_of(
            &st.versions[versions[k]].agreement,
            &lines.view(k),
            written_of(&written, k),
        )
    };
    // valid rows, first occurrence of each id in the file
    let mut in_file: HashMap<&str, usize, BuildFx> = HashMap::default();
    in_file.reserve(lines.len());
    // where each accepted row sits in `lines`
    let mut accepted: Vec<usize> = Vec::with_capacity(lines.len());
    for at in 0..lines.len() {
        let id = lines.id_of(at);
        match in_file.get(id) {
            Some(&k) => {
                let first = accepted[k];
                if !same_line(&body(first), &body(at)) {
                    errors.push(RowError {
                        line: lines.row_of(at) as usize,
                        id: Some(id.to_string()),
                        message: format!("id repeated with different values (first on line {})", lines.row(first)),
                    });
                }
            }
            None => {
                in_file.insert(id, accepted.len());
                accepted.push(at);
            }
        }
    }
    let mut outcome = RecordOutcome::default();
    // what is new, and what is recorded already (the same values, `replaces`
    // included, are "already there"; other values are an error)
    let mut is_new: Vec<bool> = Vec::with_capacity(accepted.len());
    for &at in &accepted {
        let id = lines.id_of(at);
        match st.by_id.get(id) {
            Some(&i) => {
                if same_line(&st.lines[i].body, &body(at)) {
                    outcome.already += 1;
                } else {
                    errors.push(RowError {
                        line: lines.row_of(at) as usize,
                        id: Some(id.to_string()),
                        message: format!(
                            "id already recorded with different values (journal entry {}); record the correction under a new id with `replaces`",
                            st.lines[i].seq
                        ),
                    });
                }
                is_new.push(false);
            }
            None => is_new.push(true),
        }
    }
    // replacements by new lines: the target (recorded, or a line of this
    // file) is voided, once; a line superseded within the file is recorded
    // and voided, so a later file cannot bring it back
    let mut voids: Vec<Body> = Vec::new();
    let mut replaced_once: HashMap<&str, usize, BuildFx> = HashMap::default();
    for (k, &at) in accepted.iter().enumerate() {
        let Some(r) = lines.replaces_of(at) else { continue };
        let l = lines.view(at);
        if !is_new[k] {
            continue; // recorded already, with this same `replaces`: done then
        }
        let line = l.row as usize;
        let fail = |m: String| RowError {
            line,
            id: Some(l.id.to_string()),
            message: m,
        };
        if let Some(prev) = replaced_once.insert(r, line) {
            errors.push(fail(format!("replaces `{r}`, which line {prev} already replaces")));
            continue;
        }
        match (st.by_id.get(r), in_file.get(r)) {
            (Some(&i), _) => match (&st.lines[i].voided, &st.lines[i].replaced_by) {
                (None, _) => {}
                (Some((seq, _)), Some(by)) => {
                    errors.push(fail(format!(
                        "replaces `{r}`, which `{by}` replaced already (journal entry {seq})"
                    )));
                    continue;
                }
                (Some((seq, why)), None) => {
                    errors.push(fail(format!(
                        "replaces `{r}`, which was voided already (journal entry {seq}: {why})"
                    )));
                    continue;
                }
            },
            (None, Some(_)) => {}
            (None, None) => {
                errors.push(fail(format!(
                    "replaces `{r}`, which is neither in the ledger nor in this file"
                )));
                continue;
            }
        }
        voids.push(Body::Void {
            id: r.to_string(),
            reason: format!("replaced by {} in {file}", l.id),
            by: l.id.to_string(),
        });
    }
    // a cycle of replacements (p replaces q, q replaces p) would void them all
    {
        let with: Vec<LineView<'_>> = accepted
            .iter()
            .filter(|&&at| lines.replaces_of(at).is_some())
            .map(|&at| lines.view(at))
            .collect();
        let edges: Vec<(&str, &str)> = with.iter().map(|l| (l.id, l.replaces.unwrap_or_default())).collect();
        for k in costs::replacement_cycles(&edges) {
            errors.push(RowError {
                line: with[k].row as usize,
                id: Some(with[k].id.to_string()),
                message: costs::replacement_cycle_message(with[k].id),
            });
        }
    }
    // totals stay within the limit
    // (new rates can change what recorded lines convert to: each must still
    // convert, and their total stay within the limit)
    let mut total: i128 = 0;
    for l in st.active() {
        let v = st.version_at(Date::parse(&l.body.date));
        match state::line_amount(&st.versions[v].agreement, &rates_now, &l.body) {
            Some(a) => total += a as i128,
            None => {
                return Err(Refusal::LineBeyondLimit {
                    id: l.body.id.clone(),
                    seq: l.seq,
                    amount: l.body.amount.clone(),
                    currency: l.body.currency.clone(),
                    date: l.body.date.clone(),
                }
                .into());
            }
        }
    }
    if total > i64::MAX as i128 {
        return Err(Refusal::TotalBeyondLimit.into());
    }
    let mut new_count = 0u64;
    for (k, &at) in accepted.iter().enumerate() {
        if !is_new[k] {
            continue;
        }
        new_count += 1;
        total += lines.amount(at) as i128;
        if total > i64::MAX as i128 {
            errors.push(RowError {
                line: lines.row_of(at) as usize,
                id: Some(lines.id_of(at).to_string()),
                message: "the ledger's total would exceed the limit of a signed 64-bit count of minor units".into(),
            });
            total = i64::MIN as i128;
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        errors.dedup();
        return Err(LedgerError::Rows {
            file: file.to_string(),
            errors,
        });
    }
    // exact repeats of a row within the file count as already there
    outcome.already += rows - accepted.len() as u64;
    outcome.dropped = voids
        .iter()
        .filter(
            |v| matches!(v, Body::Void { id, .. } if in_file.contains_key(id.as_str()) && !st.by_id.contains_key(id)),
        )
        .count() as u64;
    outcome.recorded = new_count;
    // which of the file's valid rows are new lines
    let mut keep = vec![false; lines.len()];
    for (k, &at) in accepted.iter().enumerate() {
        keep[at] = is_new[k];
    }
    drop(accepted);
    drop(in_file);
    drop(replaced_once);
    outcome.voided = voids.len() as u64 - outcome.dropped;
    outcome.rates_added = rate_bodies.len() as u64;
    progress("writing", outcome.recorded, outcome.recorded);
    // the entries, in order: rates, then the batch, its new lines and the
    // voids
    let writes = new_count > 0 || !voids.is_empty();
    let batch_seq = st.entries + 1 + rate_bodies.len() as u64;
    // the new lines kept once, as cost lines, when nothing else changes (see
    // `NewLines`): filtered in place, their `row` the entry's seq
    let plain = rate_bodies.is_empty() && voids.is_empty() && new_count > 0;
    let mut bodies: Vec<Body> = Vec::with_capacity(
        rate_bodies.len() + usize::from(writes) + if plain { 0 } else { new_count as usize } + voids.len(),
    );
    bodies.extend(rate_bodies);
    if writes {
        bodies.push(Body::Batch {
            file: file.to_string(),
            sha256: sha.to_string(),
            rows,
        });
    }
    if !plain {
        for (k, &kept) in keep.iter().enumerate() {
            if kept {
                let mut b = body_of(
                    &st.versions[versions[k]].agreement,
                    &lines.view(k),
                    written_of(&written, k),
                );
                b.batch = batch_seq;
                bodies.push(Body::Line(b));
            }
        }
        bodies.extend(voids);
        return Ok(RecordPlan {
            bodies,
            new_lines: None,
            outcome,
        });
    }
    let mut n = 0usize;
    let mut kept_written: Vec<(usize, String)> = Vec::new();
    let mut written = written.into_iter().peekable();
    let mut kept_versions: Vec<usize> = Vec::with_capacity(new_count as usize);
    lines.retain_as(|at| {
        let w = written.next_if(|(i, _)| *i == at);
        if !keep[at] {
            return None;
        }
        if let Some((_, w)) = w {
            kept_written.push((n, w));
        }
        kept_versions.push(versions[at]);
        n += 1;
        Some(batch_seq + n as u64)
    });
    Ok(RecordPlan {
        bodies,
        new_lines: Some(NewLines {
            lines,
            versions: kept_versions,
            written: kept_written,
        }),
        outcome,
    })
}

/// Differences between closed statements and the allocation now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adjustment {
    pub period: String,
    pub party: String,
    pub category: String,
    pub statement: i64,
    pub now: i64,
}

pub fn adjustments(st: &State, as_of: Date) -> Result<Vec<Adjustment>, LedgerError> {
    let parts = state::allocate(st, as_of)?;
    let mut out = Vec::new();
    for s in &st.statements {
        let now = state::year_totals(st, &parts, s.fy).map_err(too_large)?;
        differences(&st.latest().agreement, s, &now, &mut out);
    }
    Ok(out)
}

/// [`adjustments`] from a fresh derived state (its totals, the versions and
/// the statements it names): the same differences without a replay (the
/// amounts allocated do not depend on the as-of date).
pub fn adjustments_derived(
    meta: &derived::Meta,
    versions: &[state::Version],
    statements: &[state::Statement],
) -> Result<Vec<Adjustment>, LedgerError> {
    let ags: Vec<&Agreement> = versions.iter().map(|v| &v.agreement).collect();
    let Some(latest) = ags.last() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for s in statements {
        let now = derived::year_totals(&ags, meta, s.fy).map_err(too_large)?;
        differences(latest, s, &now, &mut out);
    }
    Ok(out)
}

/// The differences between statement `s` and the figures `now` of its year,
/// parties in agreement order, then categories in byte order.
fn differences(ag: &Agreement, s: &state::Statement, now: &[StatementRow], out: &mut Vec<Adjustment>) {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in s.rows.iter().chain(now.iter()) {
        let k = (r.party.clone(), r.category.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let prank = |p: &str| ag.parties.iter().position(|x| x.id == p).unwrap_or(usize::MAX);
    keys.sort_by(|a, b| prank(&a.0).cmp(&prank(&b.0)).then(a.1.as_bytes().cmp(b.1.as_bytes())));
    for (p, c) in keys {
        let get = |rows: &[StatementRow]| {
            rows.iter()
                .find(|r| r.party == p && r.category == c)
                .map(|r| r.amount_minor)
                .unwrap_or(0)
        };
        let (a, b) = (get(&s.rows), get(now));
        if a != b {
            out.push(Adjustment {
                period: s.period.clone(),
                party: p,
                category: c,
                statement: a,
                now: b,
            });
        }
    }
}
