//! A run: the lines of a request allocated under their agreement(s), with the
//! provenance every result carries.

use crate::error::{AppError, BadFile, FileKind};
use crate::input::{LoadedAgreement, Observer, load_agreement, read};
use costshare_core::calendar::Date;
use costshare_core::costs::{Costs, Rates, RowError, parse_costs, parse_rates_partial};
use costshare_core::report::{self, Dim};
use costshare_core::{Agreement, alloc};
use costshare_store::state::{self, State};
use costshare_store::{DerivedLines, Ledger, derived};
use std::path::{Path, PathBuf};

/// The journal a result was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalInfo {
    /// Entries in the journal.
    pub entries: u64,
    /// Hash of the last entry.
    pub head: String,
}

impl JournalInfo {
    pub fn of(st: &State) -> JournalInfo {
        JournalInfo {
            entries: st.entries,
            head: st.head.clone(),
        }
    }
}

/// One agreement version a result was computed under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgreementRef {
    pub id: String,
    pub sha256: String,
}

/// Where a result comes from: agreement versions (the last one names the
/// parties and titles the output), journal, as-of date, line counts.
#[derive(Clone, Debug)]
pub struct Provenance {
    pub agreements: Vec<AgreementRef>,
    pub journal: Option<JournalInfo>,
    pub as_of: Date,
    /// Lines allocated.
    pub lines: usize,
    /// Lines in pro-rata periods not ended by the as-of date.
    pub provisional: usize,
}

/// The lines allocated under one agreement (a ledger has one part per
/// agreement version; files have one part).
pub struct RunPart {
    pub la: LoadedAgreement,
    pub costs: Costs,
    pub alloc: alloc::Allocation,
    /// The use of its caps this part's version inherited from earlier
    /// versions (a ledger after `amend`); empty otherwise.
    pub carry: alloc::Carry,
    /// The first day this part's version is in force (files: the
    /// agreement's start; a ledger: the version's effective date).
    pub effective: Date,
    /// The version's number, 1-based (files: 1).
    pub version: u32,
}

/// Agreement(s), lines and allocation: what allocate, report and explain
/// compute from.
pub struct Run {
    pub parts: Vec<RunPart>,
    pub as_of: Date,
    pub journal: Option<JournalInfo>,
}

impl Run {
    /// The part whose agreement names the parties and titles the output (the
    /// latest version; versions keep the same parties and currency).
    pub fn main(&self) -> &RunPart {
        &self.parts[self.parts.len() - 1]
    }
    pub fn line_count(&self) -> usize {
        self.parts.iter().map(|p| p.costs.lines.len()).sum()
    }
    pub fn provisional_count(&self) -> usize {
        self.parts
            .iter()
            .map(|p| p.alloc.provisional.iter().filter(|&&x| x).count())
            .sum()
    }
    pub fn provenance(&self) -> Provenance {
        Provenance {
            agreements: self
                .parts
                .iter()
                .map(|p| AgreementRef {
                    id: p.la.agreement.id.clone(),
                    sha256: p.la.sha256.clone(),
                })
                .collect(),
            journal: self.journal.clone(),
            as_of: self.as_of,
            lines: self.line_count(),
            provisional: self.provisional_count(),
        }
    }

    /// Report rows over every part: one part as the core groups it; several
    /// merged by the core's rule for merging.
    pub fn report_rows(&self, dims: &[Dim]) -> Result<Vec<report::Row>, AppError> {
        let mut per = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            per.push(
                report::report(&part.la.agreement, &part.costs.lines, &part.alloc, dims)
                    .map_err(|e| AppError::TotalTooLarge { group: e.group })?,
            );
        }
        report::merge(&self.main().la.agreement, dims, per).map_err(|e| AppError::TotalTooLarge { group: e.group })
    }

    /// Per-party totals over every part (then UNALLOCATED).
    pub fn party_totals(&self) -> Vec<i128> {
        let w = self.main().alloc.width();
        let mut t = vec![0i128; w];
        for part in &self.parts {
            for (k, v) in part.alloc.amounts.iter().enumerate() {
                t[k % w] += *v as i128;
            }
        }
        t
    }
}

/// File inputs with the agreement and rates read (the costs not yet).
pub struct FileInputs {
    pub la: LoadedAgreement,
    pub rates: Rates,
    pub rates_path: Option<PathBuf>,
    pub rate_errors: Vec<RowError>,
    pub costs: PathBuf,
    pub as_of: Date,
}

impl FileInputs {
    /// Load the agreement (warnings to the observer) and parse the rates,
    /// keeping their bad rows so that the costs are still checked.
    pub fn open(
        agreement: &Path,
        costs: &Path,
        rates: Option<&Path>,
        as_of: Date,
        observer: &mut dyn Observer,
    ) -> Result<FileInputs, AppError> {
        let la = load_agreement(agreement, observer)?;
        let (rates_parsed, rate_errors) = match rates {
            Some(p) => {
                let b = read(p, FileKind::Rates)?;
                parse_rates_partial(&b, la.agreement.currency.code())
            }
            None => (Rates::empty(), Vec::new()),
        };
        Ok(FileInputs {
            la,
            rates: rates_parsed,
            rates_path: rates.map(Path::to_path_buf),
            rate_errors,
            costs: costs.to_path_buf(),
            as_of,
        })
    }

    /// The general path: every line parsed, kept and allocated. Bad rows of
    /// both files are named in one error.
    pub fn run(self) -> Result<Run, AppError> {
        let as_of = self.as_of;
        let (la, costs) = self.parse()?;
        Ok(run_with(la, costs, as_of))
    }

    /// Every line parsed and checked against the agreement and rates, not
    /// allocated. Bad rows of both files are named in one error.
    pub fn parse(self) -> Result<(LoadedAgreement, Costs), AppError> {
        let bytes = read(&self.costs, FileKind::Costs)?;
        // check the costs even when some rates are bad, so every bad row of
        // both files is named in one run
        let parsed = parse_costs(&self.la.agreement, &bytes, &self.rates);
        drop(bytes);
        let mut bad = Vec::new();
        if let (Some(p), false) = (&self.rates_path, self.rate_errors.is_empty()) {
            bad.push(BadFile {
                path: p.display().to_string(),
                kind: FileKind::Rates,
                errors: self.rate_errors,
            });
        }
        let costs = match parsed {
            Ok(c) if bad.is_empty() => c,
            Ok(_) => return Err(AppError::BadRows(bad)),
            Err(errors) => {
                bad.push(bad_costs(&self.costs, errors));
                return Err(AppError::BadRows(bad));
            }
        };
        Ok((self.la, costs))
    }
}

/// The bad rows of the costs file at `path`, as both report paths name them.
pub fn bad_costs(path: &Path, errors: Vec<RowError>) -> BadFile {
    BadFile {
        path: path.display().to_string(),
        kind: FileKind::Costs,
        errors,
    }
}

/// Allocate parsed lines under one agreement.
pub fn run_with(la: LoadedAgreement, costs: Costs, as_of: Date) -> Run {
    let alloc = alloc::allocate(&la.agreement, &costs.lines, as_of);
    Run {
        parts: vec![RunPart {
            effective: la.agreement.start,
            version: 1,
            la,
            costs,
            alloc,
            carry: alloc::Carry::NONE,
        }],
        as_of,
        journal: None,
    }
}

/// Everything recorded in a ledger, each line allocated under the agreement
/// version in force at its date (a replay of the journal).
pub fn run_state(st: &State, as_of: Date) -> Result<Run, AppError> {
    let parts = run_parts(&st.versions, state::allocate(st, as_of)?);
    Ok(Run {
        parts,
        as_of,
        journal: Some(JournalInfo::of(st)),
    })
}

/// A ledger's allocated parts as a run's parts, each under its version (the
/// replay and the derived state both allocate with `state::allocate_versions`).
fn run_parts(versions: &[state::Version], parts: Vec<state::Part>) -> Vec<RunPart> {
    parts
        .into_iter()
        .map(|p| {
            let v = &versions[p.version];
            RunPart {
                la: LoadedAgreement::recorded(v.agreement.clone(), v.sha256.clone()),
                costs: Costs {
                    lines: p.lines,
                    duplicates: 0,
                    replaced: 0,
                },
                alloc: p.alloc,
                carry: p.carry,
                effective: v.effective,
                version: v.version,
            }
        })
        .collect()
}

/// Open a ledger and replay it.
pub fn open_state(target: &str) -> Result<(Ledger, State), AppError> {
    let mut l = Ledger::open(target)?;
    let st = l.state()?;
    Ok((l, st))
}

/// `COSTSHARE_LEDGER_PATH=replay` makes every ledger read replay the
/// journal instead of reading the derived state (tests and benchmarks
/// compare the two; the answers must be byte-identical).
pub fn replay_forced() -> bool {
    std::env::var_os("COSTSHARE_LEDGER_PATH").is_some_and(|v| v == "replay")
}

/// The lines of a fresh derived state allocated as a replay allocates them
/// (`state::allocate_versions`): the same lines per version, in journal
/// order, so the same run.
pub fn run_derived(d: DerivedLines, as_of: Date) -> Run {
    let DerivedLines {
        meta, versions, lines, ..
    } = d;
    let parts = run_parts(&versions, state::allocate_versions(&versions, lines, as_of));
    Run {
        parts,
        as_of,
        journal: Some(JournalInfo {
            entries: meta.seq,
            head: meta.head,
        }),
    }
}

/// A ledger's run and its rates: from the derived state when it reflects
/// the journal's head (no replay), else by replaying the journal, after
/// which the derived state is written for the next command. A damaged blob
/// is never used: the observer hears of it, and the replay rewrites it.
pub fn run_ledger(target: &str, as_of: Date, observer: &mut dyn Observer) -> Result<(Run, Rates), AppError> {
    let mut l = Ledger::open(target)?;
    if !replay_forced() {
        if let Some(d) = l.derived_lines()? {
            let rates = d.rates.clone();
            return Ok((run_derived(d, as_of), rates));
        }
        if let Some(key) = l.take_damaged() {
            observer.derived_damaged(target, &key);
        }
    }
    let st = l.state()?;
    let r = run_state(&st, as_of)?;
    if !replay_forced() {
        write_back(&mut l, &st, &r);
    }
    Ok((r, st.rates()))
}

/// Write the derived state from a replay's run (a cache: a ledger this
/// process may not write to is still read).
pub fn write_back(l: &mut Ledger, st: &State, r: &Run) {
    let views: Vec<derived::PartView<'_>> = r
        .parts
        .iter()
        .enumerate()
        .map(|(v, p)| derived::PartView {
            version: v,
            lines: &p.costs.lines,
            alloc: &p.alloc,
            carry: &p.carry,
        })
        .collect();
    let _ = l.write_derived_with(st, &views);
}

/// The run of a source: the general path for files, the derived state or a
/// replay for a ledger.
pub fn run(source: &crate::input::Source, as_of: Date, observer: &mut dyn Observer) -> Result<Run, AppError> {
    match source {
        crate::input::Source::Ledger(l) => Ok(run_ledger(l, as_of, observer)?.0),
        crate::input::Source::Files {
            agreement,
            costs,
            rates,
        } => FileInputs::open(agreement, costs, rates.as_deref(), as_of, observer)?.run(),
    }
}

/// The party (or UNALLOCATED) of column `p`.
pub fn party_name(a: &Agreement, p: usize) -> &str {
    if p < a.parties.len() {
        &a.parties[p].id
    } else {
        "UNALLOCATED"
    }
}
