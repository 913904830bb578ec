//! The read-only requests: report, allocate, explain. Every path choice is
//! made here: streaming or general for files, derived state or replay for a
//! ledger (and the derived state written back after a replay).

use crate::error::{AppError, FileKind, Place, UsageError};
use crate::filter::DateFilter;
use crate::input::{LoadedAgreement, ReportPath, Session, Source};
use crate::run::{AgreementRef, FileInputs, JournalInfo, Provenance, Run, bad_costs, open_state, run, run_state};
use crate::stream::Streamed;
use costshare_core::Agreement;
use costshare_core::alloc;
use costshare_core::calendar::{Date, DateRange};
use costshare_core::explain::{self, Explanation};
use costshare_core::report::{self, Dim, Row};
use costshare_core::stream::{self, Fallback};
use costshare_store::derived;
use costshare_store::state;
use costshare_store::{Ledger, StoreError};

/// Which path produced a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathTaken {
    /// Files, streamed in one pass.
    Streaming,
    /// Files, every line parsed and allocated; why the stream could not take them.
    General(&'static str),
    /// A ledger's derived state: its totals (no replay).
    Derived,
    /// A ledger's derived state: every line read from it and allocated
    /// (a date filter, or per-row flags with provisional lines; no replay).
    DerivedLines,
    /// A ledger's journal replayed.
    Replay,
}

/// Totals of the allocation by dimensions.
pub struct ReportResult {
    /// The agreement that names the parties and titles the report.
    pub agreement: Agreement,
    pub dims: Vec<Dim>,
    pub rows: Vec<Row>,
    pub provenance: Provenance,
    pub path: PathTaken,
    /// Per row: it counts a line that is provisional at the as-of date.
    /// Empty when the session did not ask for them (`Session::row_flags`)
    /// and the ledger's derived state answered.
    pub provisional_rows: Vec<bool>,
    /// Parties as columns (`--pivot party`; the party is then the last of
    /// `dims`, see [`pivot_dims`]).
    pub pivot: bool,
    /// The cost dates reported (`DateRange::ALL` without a filter).
    pub range: DateRange,
}

/// Parse a `--by` list.
pub fn dims(by: &str) -> Result<Vec<Dim>, UsageError> {
    report::parse_dims(by).map_err(|e| UsageError::Dims(e.to_string()))
}

fn too_large(e: report::TotalTooLarge) -> AppError {
    AppError::TotalTooLarge { group: e.group }
}

/// `report`: totals by `dims` from files or a ledger.
pub fn report(source: &Source, dims: &[Dim], as_of: Date, s: &mut Session<'_>) -> Result<ReportResult, AppError> {
    report_filtered(source, dims, as_of, &DateFilter::NONE, s)
}

/// `report` of the lines dated within `filter` (allocated over the whole
/// history). A filter takes the general path for files and the replay for a
/// ledger.
pub fn report_filtered(
    source: &Source,
    dims: &[Dim],
    as_of: Date,
    filter: &DateFilter,
    s: &mut Session<'_>,
) -> Result<ReportResult, AppError> {
    match source {
        Source::Ledger(target) => report_ledger(target, dims, as_of, filter, s),
        Source::Files {
            agreement,
            costs,
            rates,
        } => {
            let f = FileInputs::open(agreement, costs, rates.as_deref(), as_of, s.observer)?;
            if filter.is_none() {
                return report_files(f, dims, s);
            }
            let range = filter.resolve(&f.la.agreement)?;
            let r = f.run()?.restrict(&range);
            let mut out = from_run(&r, dims, PathTaken::General("a date filter"))?;
            out.range = range;
            Ok(out)
        }
    }
}

/// The dimensions of a `--pivot party` report: `dims` with the party moved
/// (or added) last, so that each pivoted row's parties are neighbours.
pub fn pivot_dims(dims: &[Dim]) -> Vec<Dim> {
    let mut out: Vec<Dim> = dims.iter().copied().filter(|d| *d != Dim::Party).collect();
    out.push(Dim::Party);
    out
}

/// The report of a run already allocated (the server's scoped and cached
/// reads): the same rows and flags as the general path.
pub fn report_of_run(r: &Run, dims: &[Dim]) -> Result<ReportResult, AppError> {
    from_run(r, dims, PathTaken::General("a run in memory"))
}

fn from_run(r: &Run, dims: &[Dim], path: PathTaken) -> Result<ReportResult, AppError> {
    let rows = r.report_rows(dims)?;
    Ok(ReportResult {
        agreement: r.main().la.agreement.clone(),
        dims: dims.to_vec(),
        provisional_rows: provisional_rows(r, dims, &rows)?,
        rows,
        provenance: r.provenance(),
        path,
        pivot: false,
        range: DateRange::ALL,
    })
}

/// Which rows count a line provisional at the run's as-of date: the report
/// of the provisional lines alone, by the same grouping and merge.
fn provisional_rows(r: &Run, dims: &[Dim], rows: &[Row]) -> Result<Vec<bool>, AppError> {
    if r.provisional_count() == 0 {
        return Ok(vec![false; rows.len()]);
    }
    let mut per = Vec::with_capacity(r.parts.len());
    for part in &r.parts {
        let a = &part.alloc;
        per.push(
            report::report_where(&part.la.agreement, &part.costs.lines, a, dims, |i| a.provisional[i])
                .map_err(too_large)?,
        );
    }
    let prov = report::merge(&r.main().la.agreement, dims, per).map_err(too_large)?;
    Ok(report::provisional_flags(rows, &prov))
}

/// Files: the streaming path when the input allows it, else the general one.
fn report_files(f: FileInputs, dims: &[Dim], s: &Session<'_>) -> Result<ReportResult, AppError> {
    let streamed = if s.report_path == ReportPath::General {
        Err(Fallback("the general path was asked for"))
    } else if !f.rate_errors.is_empty() {
        Err(Fallback("bad rates"))
    } else {
        stream_file(&f, dims, s.threads)?
    };
    match streamed {
        Ok(Streamed::Report(sr)) => {
            let rows = sr.rows.map_err(too_large)?;
            Ok(ReportResult {
                provisional_rows: report::provisional_flags(&rows, &sr.provisional_rows),
                pivot: false,
                range: DateRange::ALL,
                agreement: f.la.agreement.clone(),
                dims: dims.to_vec(),
                rows,
                provenance: Provenance {
                    agreements: vec![AgreementRef {
                        id: f.la.agreement.id.clone(),
                        sha256: f.la.sha256.clone(),
                    }],
                    journal: None,
                    as_of: f.as_of,
                    lines: sr.lines,
                    provisional: sr.provisional,
                },
                path: PathTaken::Streaming,
            })
        }
        // the workers named the bad rows as the general path would
        Ok(Streamed::BadRows(errors)) => Err(AppError::BadRows(vec![bad_costs(&f.costs, errors)])),
        Err(why) => {
            let r = f.run()?;
            from_run(&r, dims, PathTaken::General(why.0))
        }
    }
}

/// The costs file through the streaming driver. A pipe or a device reads
/// once, so a fallback could not read it again: those take the general path.
fn stream_file(f: &FileInputs, dims: &[Dim], threads: usize) -> Result<Result<Streamed, Fallback>, AppError> {
    let cannot = |error: std::io::Error| AppError::Read {
        what: FileKind::Costs,
        path: f.costs.display().to_string(),
        error,
    };
    let mut file = std::fs::File::open(&f.costs).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Ok(Err(Fallback("not a regular file")));
    }
    let plan = |header: &[u8]| stream::Plan::new(&f.la.agreement, &f.rates, f.as_of, dims, header);
    crate::stream::report(plan, &mut file, meta.len() as usize, threads).map_err(cannot)
}

/// A ledger: from its derived state when that reflects the journal's head
/// (no replay), else by replaying the journal, after which the derived state
/// is written for the next command. A damaged blob is never used: the
/// observer hears of it, and the replay rewrites the derived state.
///
/// The derived state keeps no per-row provisional flag (only how many lines
/// stay open until each date): when the flags are asked for and some line
/// is provisional at the as-of date, or a date filter is set, the journal is
/// replayed instead.
fn report_ledger(
    target: &str,
    dims: &[Dim],
    as_of: Date,
    filter: &DateFilter,
    s: &mut Session<'_>,
) -> Result<ReportResult, AppError> {
    let mut l = Ledger::open(target)?;
    let fresh = if crate::run::replay_forced() {
        None
    } else {
        l.derived()?
    };
    if let Some(key) = l.take_damaged() {
        s.observer.derived_damaged(target, &key);
    }
    let was_fresh = fresh.is_some();
    if let Some((meta, versions)) = fresh
        && filter.is_none()
        && let Some(latest) = versions.last()
    {
        let ags: Vec<&Agreement> = versions.iter().map(|v| &v.agreement).collect();
        let rows = derived::report(&ags, &meta, dims, None).map_err(too_large)?;
        let provisional_rows = if meta.provisional(as_of) == 0 {
            vec![false; rows.len()]
        } else if s.row_flags {
            let prov = derived::provisional_report(&ags, &meta, dims, as_of).map_err(too_large)?;
            report::provisional_flags(&rows, &prov)
        } else {
            Vec::new()
        };
        return Ok(ReportResult {
            provisional_rows,
            pivot: false,
            range: DateRange::ALL,
            provenance: Provenance {
                agreements: versions
                    .iter()
                    .map(|v| AgreementRef {
                        id: v.agreement.id.clone(),
                        sha256: v.sha256.clone(),
                    })
                    .collect(),
                journal: Some(JournalInfo {
                    entries: meta.seq,
                    head: meta.head.clone(),
                }),
                as_of,
                lines: meta.lines as usize,
                provisional: meta.provisional(as_of) as usize,
            },
            agreement: latest.agreement.clone(),
            dims: dims.to_vec(),
            rows,
            path: PathTaken::Derived,
        });
    }
    // a date filter: every line, from the derived state's buckets when
    // fresh, else from a replay
    let derived_lines = if was_fresh { l.derived_lines()? } else { None };
    // a damaged bucket (the meta was whole): said, and rewritten below
    let damaged_lines = l.take_damaged();
    if let Some(key) = &damaged_lines {
        s.observer.derived_damaged(target, key);
    }
    let (r, path) = match derived_lines {
        Some(d) => (crate::run::run_derived(d, as_of), PathTaken::DerivedLines),
        None => {
            let st = l.state()?;
            let r = run_state(&st, as_of)?;
            if (!was_fresh || damaged_lines.is_some()) && !crate::run::replay_forced() {
                crate::run::write_back(&mut l, &st, &r);
            }
            (r, PathTaken::Replay)
        }
    };
    let range = filter.resolve(&r.main().la.agreement)?;
    let r = r.restrict(&range);
    let mut out = from_run(&r, dims, path)?;
    out.range = range;
    Ok(out)
}

/// `allocate`: every line's parts.
pub fn allocate(source: &Source, as_of: Date, s: &mut Session<'_>) -> Result<Run, AppError> {
    run(source, as_of, s.observer)
}

/// `allocate` of the lines dated within `filter` (allocated over the whole
/// history, then restricted).
pub fn allocate_filtered(
    source: &Source,
    as_of: Date,
    filter: &DateFilter,
    s: &mut Session<'_>,
) -> Result<Run, AppError> {
    let r = run(source, as_of, s.observer)?;
    if filter.is_none() {
        return Ok(r);
    }
    let range = filter.resolve(&r.main().la.agreement)?;
    Ok(r.restrict(&range))
}

/// One line, layer by layer, from the literal oracle (checked against the
/// engine's allocation).
pub struct ExplainResult {
    /// The agreement version the line falls under.
    pub agreement: LoadedAgreement,
    pub explanation: Explanation,
    /// Set when read from a ledger (the line's `row` is then its journal entry).
    pub journal: Option<JournalInfo>,
    pub as_of: Date,
}

/// `explain`: how one line was allocated. A ledger with a fresh derived
/// state answers from it (see [`explain_derived`]); otherwise, and for
/// files, every line is allocated.
pub fn explain(source: &Source, id: &str, as_of: Date, s: &mut Session<'_>) -> Result<ExplainResult, AppError> {
    if let Source::Ledger(target) = source
        && !crate::run::replay_forced()
        && let Some(r) = explain_derived(target, id, as_of)?
    {
        return r;
    }
    let mut r = run(source, as_of, s.observer)?;
    let found = r
        .parts
        .iter()
        .enumerate()
        .find_map(|(k, p)| p.costs.lines.iter().position(|l| l.id == id).map(|i| (k, i)));
    let Some((k, idx)) = found else {
        return Err(match source {
            Source::Ledger(l) => voided(l, id).unwrap_or(AppError::NoLine {
                id: id.to_string(),
                place: Place::Ledger(l.clone()),
            }),
            Source::Files { costs, .. } => AppError::NoLine {
                id: id.to_string(),
                place: Place::File(costs.display().to_string()),
            },
        });
    };
    let part = r.parts.swap_remove(k);
    let ex = explain::explain_carried(&part.la.agreement, &part.costs.lines, idx, r.as_of, &part.carry);
    // the explanation comes from the literal oracle: it must agree with the engine
    if ex.final_parts() != part.alloc.row(idx) {
        return Err(AppError::ExplainDisagrees { id: id.to_string() });
    }
    Ok(ExplainResult {
        agreement: part.la,
        explanation: ex,
        journal: r.journal,
        as_of: r.as_of,
    })
}

/// What a fresh derived state says of the id `explain` asks about.
enum Found {
    /// No line with that id was recorded.
    Missing,
    /// Recorded, then voided by entry `seq`.
    Voided { seq: u64, reason: String },
    /// Active: explained under the version in force at its date; `agrees`:
    /// the engine gives it the parts the oracle does.
    Line(Box<Explained>),
}

struct Explained {
    version: state::Version,
    explanation: Explanation,
    agrees: bool,
    journal: JournalInfo,
}

/// `explain` of a ledger line from a fresh derived state, without a replay
/// (`None`: the derived state is stale or damaged; the caller replays).
///
/// The id's shard names its entry (and its void). Its date picks the
/// version in force (`state::version_in_force`, the replay's rule); only
/// the lines of its category within `alloc::tied_range` of its date are
/// read: that range is a union of whole periods of every capped layer of
/// the category, so every period group the line takes part in, and every
/// line of those groups, is whole in it; uncapped layers tie a line to
/// nothing (the range is its own date). The literal oracle and the engine
/// therefore give the line the trace and parts they give it among all the
/// category's lines (the replay's explanation), and the engine's row checks
/// the oracle as the replay path does.
pub fn explain_derived(
    target: &str,
    id: &str,
    as_of: Date,
) -> Result<Option<Result<ExplainResult, AppError>>, AppError> {
    let mut l = Ledger::open(target)?;
    let found = l.read_derived(|backend, meta| {
        let Some(rec) = derived::lookup(backend, &meta, id)? else {
            return Ok(Found::Missing);
        };
        if rec.void != 0 {
            let (_, reason, _) = derived::void_entry(backend, id, rec.void)?;
            return Ok(Found::Voided { seq: rec.void, reason });
        }
        let (_, body) = derived::line_entry(backend, id, rec.seq)?;
        let damaged = || StoreError::Cache(derived::shard_key_of(id));
        let date = Date::parse(&body.date).ok_or_else(damaged)?;
        let mut versions = derived::versions(backend, &meta)?;
        let v = state::version_in_force(&versions, Some(date));
        let version = versions.swap_remove(v);
        let ag = &version.agreement;
        let c = ag.category_index(&body.category).ok_or_else(damaged)?;
        let rates = derived::rates(backend, &meta)?;
        let carry = meta.carries.get(v).ok_or_else(|| StoreError::Cache("meta".into()))?;
        let (lo, hi) = alloc::tied_range(ag, c, date);
        // when every capped layer of its category runs, no line after it
        // changes its parts or its trace (`alloc::runs_in_order`): the lines
        // up to its date are read, not the whole range
        let hi = if alloc::runs_in_order(ag, c) { date } else { hi };
        let blobs = derived::tied_blobs(backend, &meta, ag, v, c, (lo, hi))?;
        let tied = blobs.view()?;
        let idx = tied.position(rec.seq, id).ok_or_else(damaged)?;
        let line = tied.cost_line(ag, &rates, idx).ok_or_else(damaged)?;
        // the explanation comes from the literal oracle: it must agree with the
        // engine, whose allocation of the same lines runs beside it
        let (engine, explanation) = derived::both(
            || alloc::allocate_carried(ag, &tied, as_of, carry),
            || explain::explain_lines(ag, &tied, idx, line, as_of, carry),
        );
        let agrees = explanation.final_parts() == engine.row(idx);
        drop(tied);
        Ok(Found::Line(Box::new(Explained {
            version,
            explanation,
            agrees,
            journal: JournalInfo {
                entries: meta.seq,
                head: meta.head,
            },
        })))
    })?;
    Ok(found.map(|f| match f {
        Found::Missing => Err(AppError::NoLine {
            id: id.to_string(),
            place: Place::Ledger(target.to_string()),
        }),
        Found::Voided { seq, reason } => Err(AppError::Voided {
            id: id.to_string(),
            ledger: target.to_string(),
            seq,
            reason,
        }),
        Found::Line(e) if !e.agrees => Err(AppError::ExplainDisagrees { id: id.to_string() }),
        Found::Line(e) => {
            let Explained {
                version,
                explanation,
                journal,
                ..
            } = *e;
            Ok(ExplainResult {
                agreement: LoadedAgreement::recorded(version.agreement, version.sha256),
                explanation,
                journal: Some(journal),
                as_of,
            })
        }
    }))
}

/// The line was recorded and voided: when and why.
fn voided(target: &str, id: &str) -> Option<AppError> {
    let (_, st) = open_state(target).ok()?;
    let l = &st.lines[*st.by_id.get(id)?];
    let (seq, why) = l.voided.as_ref()?;
    Some(AppError::Voided {
        id: id.to_string(),
        ledger: target.to_string(),
        seq: *seq,
        reason: why.clone(),
    })
}

/// A costs file checked against an agreement, nothing recorded.
pub struct CostsCheck {
    /// The costs file as named.
    pub file: String,
    pub agreement: LoadedAgreement,
    /// Lines that would be recorded (after repeats and replacements).
    pub lines: usize,
    /// Rows that repeated an earlier row exactly.
    pub duplicates: usize,
    /// Lines a later row of the file replaces.
    pub replaced: usize,
}

/// `check --agreement A.toml C.csv`: every row of a costs file checked
/// against the agreement (and rates), by the rule every path uses; bad rows
/// are `BadRows`, as for `allocate`.
pub fn check_costs(
    agreement: &std::path::Path,
    costs: &std::path::Path,
    rates: Option<&std::path::Path>,
    s: &mut Session<'_>,
) -> Result<CostsCheck, AppError> {
    let f = FileInputs::open(agreement, costs, rates, crate::input::today(), s.observer)?;
    let file = costs.display().to_string();
    let (agreement, c) = f.parse()?;
    Ok(CostsCheck {
        file,
        agreement,
        lines: c.lines.len(),
        duplicates: c.duplicates,
        replaced: c.replaced,
    })
}
