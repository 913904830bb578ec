//! Inputs of a request: where the agreement, costs and rates come from, the
//! as-of date, and the agreement loaded with its diagnostics.

use crate::error::{AppError, FileKind, UsageError};
use costshare_core::agreement::Agreement;
use costshare_core::calendar::{Date, date_from_unix_seconds};
use costshare_core::diag::{Diagnostic, Severity};
use costshare_core::load;
use std::path::{Path, PathBuf};

/// Where a command's agreement, costs and rates come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Files: an agreement (TOML), costs (CSV) and optional rates (CSV).
    Files {
        agreement: PathBuf,
        costs: PathBuf,
        rates: Option<PathBuf>,
    },
    /// A ledger: a SQLite file path or a `postgres://` URL.
    Ledger(String),
}

impl Source {
    /// The source named by the usual options: `--ledger` alone, or
    /// `--agreement` and `--costs` with optional `--rates`.
    pub fn from_options(
        ledger: Option<&str>,
        agreement: Option<&Path>,
        costs: Option<&Path>,
        rates: Option<&Path>,
    ) -> Result<Source, UsageError> {
        match (ledger, agreement, costs) {
            (Some(l), None, None) if rates.is_none() => Ok(Source::Ledger(l.to_string())),
            (Some(_), _, _) => Err(UsageError::LedgerWithFiles),
            (None, Some(a), Some(c)) => Ok(Source::Files {
                agreement: a.to_path_buf(),
                costs: c.to_path_buf(),
                rates: rates.map(Path::to_path_buf),
            }),
            (None, _, _) => Err(UsageError::MissingInputs),
        }
    }
}

/// An agreement and what was derived from its file.
#[derive(Clone, Debug)]
pub struct LoadedAgreement {
    pub agreement: Agreement,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
    /// The name it was loaded under (a path, or empty when read from a ledger).
    pub name: String,
    /// Its text (BOM removed), which the warnings point into.
    pub text: String,
    /// Warnings (an agreement with an error is never loaded).
    pub warnings: Vec<Diagnostic>,
}

impl LoadedAgreement {
    /// An agreement version recorded in a ledger (checked when it was recorded).
    pub fn recorded(agreement: Agreement, sha256: String) -> LoadedAgreement {
        LoadedAgreement {
            agreement,
            sha256,
            name: String::new(),
            text: String::new(),
            warnings: Vec::new(),
        }
    }
}

/// Hears what a request has to say besides its result: warnings as soon as
/// an agreement is loaded, progress of long writes. Every method does nothing
/// by default.
pub trait Observer {
    /// An agreement with warnings was loaded.
    fn warnings(&mut self, _agreement: &LoadedAgreement) {}
    /// Progress of a long step of `file`: `done` of `total` (0 when unknown).
    fn progress(&mut self, _file: &str, _stage: &str, _done: u64, _total: u64) {}
    /// The long step is over.
    fn progress_done(&mut self) {}
    /// A blob of a ledger's derived state (`key`) failed its check and was
    /// not used: the journal was replayed instead and the derived state
    /// rewritten (when the ledger could be written).
    fn derived_damaged(&mut self, _ledger: &str, _key: &str) {}
    /// `compare`: the agreement `against` (read from `path`) left these
    /// lines UNALLOCATED (a category it lacks, dates outside its term, …);
    /// the amount is in its currency (the base's).
    fn compare_unallocated(&mut self, _against: &Agreement, _path: &str, _what: &costshare_core::compare::Unallocated) {
    }
}

/// An observer that hears nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// Which report path to take with file inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReportPath {
    /// Stream when the input allows it, else the general path.
    #[default]
    Auto,
    /// Always the general path (parse every line, allocate, group).
    General,
}

/// How a request runs: threads it may use, the report path, who hears notes.
pub struct Session<'o> {
    /// Threads the streaming report and the parallel allocation may use (at least 1).
    pub threads: usize,
    pub report_path: ReportPath,
    pub observer: &'o mut dyn Observer,
    /// Whether a report needs its per-row provisional flags (tables and
    /// JSON do, CSV does not). Without them a ledger's derived state answers
    /// even when lines are provisional, and `ReportResult::provisional_rows`
    /// is left empty.
    pub row_flags: bool,
}

impl<'o> Session<'o> {
    /// Two threads, the automatic report path.
    pub fn new(observer: &'o mut dyn Observer) -> Session<'o> {
        Session {
            threads: 2,
            report_path: ReportPath::Auto,
            observer,
            row_flags: true,
        }
    }
}

/// Who the command line's writes are recorded as: `COSTSHARE_USER`, else
/// the login name (`USER`, `LOGNAME`); empty when none is set.
pub fn cli_user() -> String {
    ["COSTSHARE_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_default()
}

/// Read a whole file.
pub fn read(path: &Path, what: FileKind) -> Result<Vec<u8>, AppError> {
    std::fs::read(path).map_err(|error| AppError::Read {
        what,
        path: path.display().to_string(),
        error,
    })
}

/// SHA-256 of bytes, lowercase hex (the ledger's function: one home).
pub fn sha256_hex(bytes: &[u8]) -> String {
    costshare_store::journal::sha256_hex(bytes)
}

/// Load and check an agreement from its bytes: UTF-8, a BOM dropped, every
/// diagnostic collected. `name` is what messages call the file.
pub fn load_agreement_bytes(name: &str, bytes: &[u8]) -> Result<LoadedAgreement, AppError> {
    let text = load::text_of(bytes).map_err(|valid_up_to| AppError::NotUtf8 {
        name: name.to_string(),
        valid_up_to,
    })?;
    let loaded = load::load(text);
    let errors = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    match loaded.agreement {
        Some(agreement) if errors == 0 => Ok(LoadedAgreement {
            agreement,
            sha256: sha256_hex(bytes),
            name: name.to_string(),
            text: text.to_string(),
            warnings: loaded.diagnostics,
        }),
        _ => Err(match csv_kind(text) {
            Some(kind) => AppError::NotAnAgreement {
                path: name.to_string(),
                kind,
            },
            None => AppError::Agreement {
                name: name.to_string(),
                text: text.to_string(),
                diagnostics: loaded.diagnostics,
                omitted: loaded.omitted,
            },
        }),
    }
}

/// Whether `text` is a costs or a rates CSV: its first line names the
/// columns one of them requires (SPEC section 6).
pub fn csv_kind(text: &str) -> Option<FileKind> {
    let first = text.lines().next()?;
    let names: Vec<&str> = first.split(',').map(|c| c.trim_matches(' ')).collect();
    let has = |want: &[&str]| want.iter().all(|w| names.contains(w));
    if has(&["id", "date", "category", "amount"]) {
        Some(FileKind::Costs)
    } else if has(&["date", "currency", "rate"]) {
        Some(FileKind::Rates)
    } else {
        None
    }
}

/// Load an agreement file; its warnings go to the observer at once.
pub fn load_agreement(path: &Path, observer: &mut dyn Observer) -> Result<LoadedAgreement, AppError> {
    let bytes = read(path, FileKind::Agreement)?;
    let la = load_agreement_bytes(&path.display().to_string(), &bytes)?;
    if !la.warnings.is_empty() {
        observer.warnings(&la);
    }
    Ok(la)
}

/// Today in UTC (the default as-of date).
pub fn today() -> Date {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    date_from_unix_seconds(secs)
}

/// An `--as-of` value, or today when there is none.
pub fn as_of(text: Option<&str>) -> Result<Date, UsageError> {
    match text {
        Some(t) => Date::parse(t).ok_or_else(|| UsageError::AsOf(t.to_string())),
        None => Ok(today()),
    }
}
