//! The ledger requests: init, record, void, amend, close, adjustments,
//! history, verify. Each returns a typed result with its provenance; the
//! choice between the late-line path (derived state) and the full path of
//! `record` is made here.

use crate::error::{AppError, FileKind, UsageError};
use crate::input::{LoadedAgreement, Observer, load_agreement, read};
use crate::run::{AgreementRef, JournalInfo, open_state};
use costshare_core::agreement::Agreement;
use costshare_core::calendar::Date;
use costshare_store::journal::StatementRow;
use costshare_store::ledger::{
    self, Adjustment, Closed, DerivedStatus, EarlyClose, Input, Ledger, Verified, VerifyOptions, now_utc,
};
use costshare_store::state::{self, State};
use costshare_store::{RecordOutcome, SmallRecord};
use std::path::Path;
use std::time::Duration;

fn latest_ref(st: &State) -> AgreementRef {
    version_ref(st.latest())
}

fn version_ref(v: &state::Version) -> AgreementRef {
    AgreementRef {
        id: v.agreement.id.clone(),
        sha256: v.sha256.clone(),
    }
}

fn journal_of(l: &mut Ledger) -> Result<JournalInfo, AppError> {
    let (entries, head) = l.last_head()?;
    Ok(JournalInfo { entries, head })
}

/// An optional rates file, read whole, as the ledger takes it.
struct RatesFile(Option<(String, Vec<u8>)>);

impl RatesFile {
    fn read(path: Option<&Path>) -> Result<RatesFile, AppError> {
        Ok(RatesFile(match path {
            Some(p) => Some((p.display().to_string(), read(p, FileKind::Rates)?)),
            None => None,
        }))
    }
    fn input(&self) -> Option<Input<'_>> {
        self.0.as_ref().map(|(name, bytes)| Input { name, bytes })
    }
}

/// A new ledger.
pub struct InitResult {
    pub ledger: String,
    pub agreement: AgreementRef,
    /// Rates recorded with it.
    pub rates: usize,
    pub journal: JournalInfo,
}

/// `init`: create a ledger holding an agreement (checked first with full
/// diagnostics) and optional rates.
pub fn init(
    target: &str,
    agreement: &Path,
    rates: Option<&Path>,
    observer: &mut dyn Observer,
) -> Result<InitResult, AppError> {
    let la = load_agreement(agreement, observer)?;
    let bytes = read(agreement, FileKind::Agreement)?;
    let rates = RatesFile::read(rates)?;
    let name = agreement.display().to_string();
    let rin = rates.input();
    let (_, st) = Ledger::init_by(
        target,
        Input {
            name: &name,
            bytes: &bytes,
        },
        rin,
        &now_utc(),
        &crate::input::cli_user(),
    )?;
    Ok(InitResult {
        ledger: target.to_string(),
        agreement: AgreementRef {
            id: la.agreement.id,
            sha256: la.sha256,
        },
        rates: st.rates.len(),
        journal: JournalInfo::of(&st),
    })
}

/// What recorded lines changed in the allocation of earlier ones.
pub enum Impact {
    /// Taken in from the derived state: lines re-allocated; `elapsed` is the
    /// whole request up to then.
    Derived {
        new_lines: u64,
        reallocated: usize,
        elapsed: Duration,
        changes: Changes,
    },
    /// Taken in by the incremental allocator after a replay.
    Incremental {
        new_lines: usize,
        groups: usize,
        line_layers: usize,
        elapsed: Duration,
        changes: Changes,
    },
    /// Lines were also voided: two full allocations compared.
    Full {
        new_lines: usize,
        voided_lines: usize,
        changes: Changes,
    },
}

/// Earlier lines whose allocation changed.
pub struct Changes {
    /// Id and change per party (then UNALLOCATED).
    pub changed: Vec<(String, Vec<i64>)>,
    /// Party ids in order, then UNALLOCATED.
    pub parties: Vec<String>,
    /// Decimals of the agreement currency.
    pub decimals: u32,
}

/// What `record` did.
pub struct RecordResult {
    /// The costs file as named.
    pub file: String,
    pub outcome: RecordOutcome,
    /// Asked for with `impact` and something was recorded or voided.
    pub impact: Option<Impact>,
    pub journal: JournalInfo,
}

/// `record`: a costs file (and optional rates) into a ledger, idempotent and
/// atomic. A small file of new lines under a fresh derived state is taken in
/// without replaying the journal; anything else takes the full path.
pub fn record(
    target: &str,
    costs: &Path,
    rates: Option<&Path>,
    impact: bool,
    observer: &mut dyn Observer,
) -> Result<RecordResult, AppError> {
    let bytes = read(costs, FileKind::Costs)?;
    let rates = RatesFile::read(rates)?;
    let name = costs.display().to_string();
    record_input(
        target,
        &crate::input::cli_user(),
        Input {
            name: &name,
            bytes: &bytes,
        },
        rates.input(),
        impact,
        observer,
    )
}

/// `record` of costs (and optional rates) given as bytes, written as by
/// `who`: the one body of `record`, which the server also calls.
pub fn record_input(
    target: &str,
    who: &str,
    costs: Input<'_>,
    rin: Option<Input<'_>>,
    impact: bool,
    observer: &mut dyn Observer,
) -> Result<RecordResult, AppError> {
    let started = std::time::Instant::now();
    let (name, bytes) = (costs.name.to_string(), costs.bytes);
    let mut l = Ledger::open(target)?;
    l.set_author(who);
    // a file recorded before (nothing new), or a few new lines, answered
    // from the derived state under one lock and one read of its meta
    // hashed once for both paths (a million-line file's SHA-256 is a tenth of a second)
    let sha = costshare_store::ledger::file_sha256(bytes);
    if rin.is_none() && !crate::run::replay_forced() {
        match l.record_small_hashed(Input { name: &name, bytes }, &sha, &now_utc())? {
            Some(SmallRecord::Noop(outcome)) => {
                return Ok(RecordResult {
                    file: name,
                    outcome,
                    impact: None,
                    journal: journal_of(&mut l)?,
                });
            }
            Some(SmallRecord::Fast(outcome, imp)) => {
                let impact = (impact && outcome.recorded > 0).then(|| Impact::Derived {
                    new_lines: outcome.recorded,
                    reallocated: imp.reallocated,
                    elapsed: started.elapsed(),
                    changes: Changes {
                        changed: imp.changed,
                        parties: imp.parties,
                        decimals: imp.decimals,
                    },
                });
                return Ok(RecordResult {
                    file: name,
                    outcome,
                    impact,
                    journal: journal_of(&mut l)?,
                });
            }
            None => {}
        }
    }
    let mut bar = |stage: &str, done: u64, total: u64| observer.progress(&name, stage, done, total);
    bar("reading the file", 0, 0);
    let out = l.record_hashed(Input { name: &name, bytes }, rin, &sha, &now_utc(), &mut bar);
    observer.progress_done();
    let outcome = out?;
    // a damaged derived state was not used: rebuild it from the journal
    if let Some(key) = l.take_damaged() {
        observer.derived_damaged(target, &key);
        let st = l.state()?;
        l.write_derived(&st)?;
    }
    let impact = if impact && (outcome.recorded > 0 || outcome.voided > 0) {
        batch_impact(&mut l)?
    } else {
        None
    };
    Ok(RecordResult {
        file: name,
        outcome,
        impact,
        journal: journal_of(&mut l)?,
    })
}

/// What the last batch changed in earlier lines' allocation.
fn batch_impact(l: &mut Ledger) -> Result<Option<Impact>, AppError> {
    let st = l.state()?;
    let Some(batch) = st.batches.last() else {
        return Ok(None);
    };
    let imp = state::impact_of_batch(&st, batch.seq, crate::input::today())?;
    let changes = Changes {
        changed: imp.changed,
        parties: imp.parties,
        decimals: st.latest().agreement.currency.decimals(),
    };
    Ok(Some(match imp.incremental {
        Some((stats, elapsed)) => Impact::Incremental {
            new_lines: imp.new_lines,
            groups: stats.groups,
            line_layers: stats.line_layers,
            elapsed,
            changes,
        },
        None => Impact::Full {
            new_lines: imp.new_lines,
            voided_lines: imp.voided_lines,
            changes,
        },
    }))
}

/// A voided line.
pub struct VoidResult {
    pub id: String,
    pub reason: String,
    pub journal: JournalInfo,
}

/// `void`: a recorded line stops counting; it stays in the journal.
pub fn void(target: &str, id: &str, reason: &str) -> Result<VoidResult, AppError> {
    void_by(target, &crate::input::cli_user(), id, reason)
}

/// `void`, written as by `who`.
pub fn void_by(target: &str, who: &str, id: &str, reason: &str) -> Result<VoidResult, AppError> {
    // spaces around the id are not part of it (`record` trims a row's id
    // the same way), nor around the reason, which must say something
    let (id, reason) = (id.trim_matches(' '), reason.trim());
    if reason.is_empty() {
        return Err(UsageError::EmptyReason.into());
    }
    let mut l = Ledger::open(target)?;
    l.set_author(who);
    let now = now_utc();
    // from the derived state when it is fresh: milliseconds, not a replay
    let fast = !crate::run::replay_forced() && l.void_fast(id, reason, &now)?.is_some();
    if !fast {
        l.void(id, reason, &now)?;
    }
    Ok(VoidResult {
        id: id.to_string(),
        reason: reason.to_string(),
        journal: journal_of(&mut l)?,
    })
}

/// A new agreement version.
pub struct AmendResult {
    /// Its version number (1 is the agreement of `init`).
    pub version: u32,
    pub agreement: AgreementRef,
    pub effective: Date,
    pub journal: JournalInfo,
}

/// Parse an `--effective` date.
pub fn effective(text: &str) -> Result<Date, UsageError> {
    Date::parse(text).ok_or_else(|| UsageError::Effective(text.to_string()))
}

/// `amend`: a new agreement version in force from `effective`.
pub fn amend(
    target: &str,
    agreement: &Path,
    effective: Date,
    observer: &mut dyn Observer,
) -> Result<AmendResult, AppError> {
    let la: LoadedAgreement = load_agreement(agreement, observer)?;
    let bytes = read(agreement, FileKind::Agreement)?;
    let name = agreement.display().to_string();
    amend_loaded(target, &crate::input::cli_user(), la, &name, &bytes, effective)
}

/// `amend` with the agreement given as bytes (checked with full
/// diagnostics, as from a file named `name`), written as by `who`.
pub fn amend_input(
    target: &str,
    who: &str,
    name: &str,
    bytes: &[u8],
    effective: Date,
    observer: &mut dyn Observer,
) -> Result<AmendResult, AppError> {
    let la = crate::input::load_agreement_bytes(name, bytes)?;
    if !la.warnings.is_empty() {
        observer.warnings(&la);
    }
    amend_loaded(target, who, la, name, bytes, effective)
}

fn amend_loaded(
    target: &str,
    who: &str,
    la: LoadedAgreement,
    name: &str,
    bytes: &[u8],
    effective: Date,
) -> Result<AmendResult, AppError> {
    let mut l = Ledger::open(target)?;
    l.set_author(who);
    let version = l.amend(Input { name, bytes }, effective, &now_utc())?;
    let st = l.state()?;
    Ok(AmendResult {
        version,
        agreement: AgreementRef {
            id: la.agreement.id,
            sha256: la.sha256,
        },
        effective,
        journal: JournalInfo::of(&st),
    })
}

/// A closed fiscal year's statement.
pub struct StatementResult {
    pub period: String,
    pub as_of: Date,
    /// The journal entry that holds the statement.
    pub seq: u64,
    /// The journal's head before the statement, as its entry records it
    /// (`verify` checks it is still the entry before).
    pub head_before: String,
    /// Closed with `--force` although its figures may still change: why.
    pub forced: Option<EarlyClose>,
    pub rows: Vec<StatementRow>,
    /// The agreement in force now (currency and decimals of the figures).
    pub agreement: Agreement,
    pub agreement_ref: AgreementRef,
    pub journal: JournalInfo,
}

/// `close`: freeze a fiscal year's statement. A year not ended by `as_of`,
/// or with lines in pro-rata periods still open then, is refused unless
/// `force`.
pub fn close(target: &str, period: &str, as_of: Date, force: bool) -> Result<StatementResult, AppError> {
    close_by(target, &crate::input::cli_user(), period, as_of, force)
}

/// `close`, written as by `who`.
pub fn close_by(target: &str, who: &str, period: &str, as_of: Date, force: bool) -> Result<StatementResult, AppError> {
    let mut l = Ledger::open(target)?;
    l.set_author(who);
    // from the derived state when it is fresh (no replay), else the full path
    if !crate::run::replay_forced()
        && let Some(c) = l.close_fast(period, as_of, force, &now_utc())?
    {
        return Ok(StatementResult {
            period: period.to_string(),
            as_of,
            seq: c.seq,
            head_before: c.head_before,
            forced: c.closed.forced,
            rows: c.closed.rows,
            agreement_ref: version_ref(&c.latest),
            agreement: c.latest.agreement,
            journal: JournalInfo {
                entries: c.entries,
                head: c.head,
            },
        });
    }
    let Closed { rows, forced } = l.close_with(period, as_of, force, &now_utc())?;
    let st = l.state()?;
    let last = st.statements.last();
    Ok(StatementResult {
        period: period.to_string(),
        as_of,
        seq: last.map(|s| s.seq).unwrap_or(0),
        head_before: last.map(|s| s.head.clone()).unwrap_or_default(),
        forced,
        rows,
        agreement: st.latest().agreement.clone(),
        agreement_ref: latest_ref(&st),
        journal: JournalInfo::of(&st),
    })
}

/// Differences between closed statements and the allocation now.
pub struct AdjustmentsResult {
    pub adjustments: Vec<Adjustment>,
    /// The allocation "now" is as of this date.
    pub as_of: Date,
    /// The closed periods, in the order they were closed.
    pub closed: Vec<String>,
    pub agreement: Agreement,
    pub agreement_ref: AgreementRef,
    pub journal: JournalInfo,
}

/// `adjustments`: what to settle in the current period.
pub fn adjustments(target: &str, as_of: Date) -> Result<AdjustmentsResult, AppError> {
    // from the derived state when it is fresh (no replay), else a replay
    if !crate::run::replay_forced()
        && let Some(a) = Ledger::open(target)?.adjustments_fast()?
    {
        return Ok(AdjustmentsResult {
            adjustments: a.adjustments,
            as_of,
            closed: a.closed,
            agreement_ref: version_ref(&a.latest),
            agreement: a.latest.agreement,
            journal: JournalInfo {
                entries: a.entries,
                head: a.head,
            },
        });
    }
    let (_, st) = open_state(target)?;
    let adjustments = ledger::adjustments(&st, as_of)?;
    Ok(AdjustmentsResult {
        adjustments,
        as_of,
        closed: st.statements.iter().map(|s| s.period.clone()).collect(),
        agreement: st.latest().agreement.clone(),
        agreement_ref: latest_ref(&st),
        journal: JournalInfo::of(&st),
    })
}

/// One journal entry as history tells it.
pub struct HistoryEntry {
    pub seq: u64,
    pub at: String,
    /// Who wrote it (a user or a server token's name; empty: not recorded).
    pub who: String,
    pub kind: &'static str,
    /// The line it concerns, if any.
    pub id: Option<String>,
    pub summary: String,
    /// For a line: the file it came from and that file's SHA-256; else empty.
    pub source: String,
}

/// What was recorded, voided, amended and closed.
pub struct HistoryResult {
    pub entries: Vec<HistoryEntry>,
    /// The line asked about, if any.
    pub id: Option<String>,
    pub agreement_ref: AgreementRef,
    pub journal: JournalInfo,
}

/// `history`: every entry, or those about one line (or payment). With an
/// id and a fresh derived state, the entries are read from the journal by
/// the seqs the derived state names ([`history_derived`]), without a replay.
pub fn history(target: &str, id: Option<&str>) -> Result<HistoryResult, AppError> {
    if let Some(want) = id
        && !crate::run::replay_forced()
        && let Some(r) = history_of_id_derived(target, want)?
    {
        return r;
    }
    let (_, st) = open_state(target)?;
    // the batch each line came from, for "from which file"
    let source_of = |e: &state::LogEntry| -> String {
        let line = e.id.as_ref().and_then(|id| st.by_id.get(id)).map(|&i| &st.lines[i]);
        match (e.kind, line.and_then(|l| st.batch_of(l))) {
            ("line", Some(b)) => state::line_source(&b.file, &b.sha256),
            _ => String::new(),
        }
    };
    let entries: Vec<HistoryEntry> = st
        .history()
        .into_iter()
        .filter(|e| match id {
            None => true,
            Some(want) => e.id.as_deref() == Some(want),
        })
        .map(|e| HistoryEntry {
            seq: e.seq,
            at: e.at.to_string(),
            who: e.who.to_string(),
            kind: e.kind,
            source: source_of(&e),
            summary: state::summary(&st, &e),
            id: e.id,
        })
        .collect();
    if let Some(want) = id
        && entries.is_empty()
    {
        return Err(AppError::NoHistory {
            id: want.to_string(),
            ledger: target.to_string(),
        });
    }
    Ok(HistoryResult {
        entries,
        id: id.map(str::to_string),
        agreement_ref: latest_ref(&st),
        journal: JournalInfo::of(&st),
    })
}

/// `history --id want` from a fresh derived state, without a replay
/// (`None`: the derived state is stale or damaged; the caller replays).
pub fn history_of_id_derived(target: &str, want: &str) -> Result<Option<Result<HistoryResult, AppError>>, AppError> {
    let mut l = Ledger::open(target)?;
    let Some((entries, agreement_ref, journal)) = l.read_derived(|b, meta| history_derived(b, meta, want))? else {
        return Ok(None);
    };
    if entries.is_empty() {
        return Ok(Some(Err(AppError::NoHistory {
            id: want.to_string(),
            ledger: target.to_string(),
        })));
    }
    Ok(Some(Ok(HistoryResult {
        entries,
        id: Some(want.to_string()),
        agreement_ref,
        journal,
    })))
}

/// The entries `history --id want` lists, from a fresh derived state: the
/// line entry and its void (from the id's shard), and a payment of that id
/// (from the meta), each read from the journal by its seq and told as a
/// replay tells it (`state::line_summary`, `void_summary`,
/// `payment_summary`; a line's file is the batch entry its body names).
fn history_derived(
    b: &mut dyn costshare_store::backend::Backend,
    meta: costshare_store::derived::Meta,
    want: &str,
) -> Result<(Vec<HistoryEntry>, AgreementRef, JournalInfo), costshare_store::StoreError> {
    use costshare_store::derived;
    use costshare_store::journal::Body;
    let mut entries = Vec::new();
    if let Some(rec) = derived::lookup(b, &meta, want)? {
        let (e, body) = derived::line_entry(b, want, rec.seq)?;
        let mut source = String::new();
        if (1..=meta.seq).contains(&body.batch)
            && let Body::Batch { file, sha256, .. } =
                derived::named_entry(b, body.batch, &derived::shard_key_of(want))?.body
        {
            source = state::line_source(&file, &sha256);
        }
        entries.push(HistoryEntry {
            seq: rec.seq,
            at: e.at,
            who: e.who,
            kind: "line",
            id: Some(want.to_string()),
            summary: state::line_summary(&body),
            source,
        });
        if rec.void != 0 {
            let (e, reason, _) = derived::void_entry(b, want, rec.void)?;
            entries.push(HistoryEntry {
                seq: rec.void,
                at: e.at,
                who: e.who,
                kind: "void",
                id: Some(want.to_string()),
                summary: state::void_summary(want, &reason),
                source: String::new(),
            });
        }
    }
    for (_, seq) in meta.payments.iter().filter(|(pid, _)| pid == want) {
        let e = derived::named_entry(b, *seq, "meta")?;
        let Body::Payment(p) = e.body else {
            return Err(costshare_store::StoreError::Cache("meta".into()));
        };
        if p.id != want {
            return Err(costshare_store::StoreError::Cache("meta".into()));
        }
        entries.push(HistoryEntry {
            seq: *seq,
            at: e.at,
            who: e.who,
            kind: "payment",
            id: Some(p.id.clone()),
            summary: state::payment_summary(&p),
            source: String::new(),
        });
    }
    entries.sort_by_key(|e| e.seq);
    let (ag, sha256) = derived::agreement(b, &meta)?;
    Ok((
        entries,
        AgreementRef { id: ag.id, sha256 },
        JournalInfo {
            entries: meta.seq,
            head: meta.head,
        },
    ))
}

/// A journal that verified.
pub struct VerifyResult {
    pub entries: u64,
    pub head: String,
    pub derived: DerivedStatus,
    /// `--deep` ran: statements re-derived, the derived state compared with
    /// a rebuild (otherwise the integrity check alone).
    pub deep: bool,
}

/// `verify`: the hash chain recomputed, the derived state's seals checked;
/// with `opts.deep` (or `opts.repair`, which implies it) every closed
/// statement re-derived and the derived state compared with a rebuild. A
/// damaged derived state is an error unless `opts.repair` (then it is
/// rebuilt, and the result says so).
pub fn verify(target: &str, opts: &VerifyOptions) -> Result<VerifyResult, AppError> {
    let mut l = Ledger::open(target)?;
    match l.verify_with(opts)? {
        Verified::Ok {
            entries,
            head,
            derived: DerivedStatus::Damaged { key },
            ..
        } => Err(AppError::DerivedDamaged {
            ledger: target.to_string(),
            key,
            entries,
            head,
        }),
        Verified::Ok {
            entries,
            head,
            derived,
            deep,
        } => Ok(VerifyResult {
            entries,
            head,
            derived,
            deep,
        }),
        Verified::Bad { seq, message } => Err(AppError::VerifyFailed { seq, message }),
        Verified::HeadMismatch {
            expected,
            entries,
            head,
            at,
        } => Err(AppError::HeadMismatch {
            ledger: target.to_string(),
            expected,
            entries,
            head,
            at,
        }),
    }
}

/// What `record` of these costs would do, with nothing written: the same
/// checks and the same errors (the server's dry run).
pub fn record_dry_run(target: &str, costs: Input<'_>) -> Result<costshare_store::RecordOutcome, AppError> {
    let mut l = Ledger::open(target)?;
    Ok(l.record_dry_run(costs)?)
}
