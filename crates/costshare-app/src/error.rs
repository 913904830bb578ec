//! Typed errors of the application layer. Nothing here is text for people:
//! the binary (or the server) turns these into messages.

use costshare_core::costs::RowError;
use costshare_core::diag::Diagnostic;
use costshare_store::LedgerError;

/// A request that is wrong as asked (the command line exits 2 on these).
#[derive(Debug)]
pub enum UsageError {
    /// `--as-of` is not a `YYYY-MM-DD` date.
    AsOf(String),
    /// `--effective` is not a `YYYY-MM-DD` date.
    Effective(String),
    /// `--by` names no dimension, an unknown one, or one twice (the core's words).
    Dims(String),
    /// `--ledger` given together with file inputs.
    LedgerWithFiles,
    /// Neither `--ledger` nor both `--agreement` and `--costs`.
    MissingInputs,
    /// `explain` has no CSV form.
    ExplainCsv,
    /// `export --format xlsx` needs `-o FILE` (a workbook is not text).
    ExportBinaryToStdout,
    /// `--rate-policy` is not `spot`, `fiscal-year-average` or `fixed:RATE`.
    RatePolicy(costshare_core::convert::PolicyError),
    /// `--rate-policy` without `--currency`.
    PolicyWithoutCurrency,
    /// `compare` without `--against`.
    NoAgainst,
    /// Two `--against` agreements with this `[agreement] id`.
    DuplicateAgainst(String),
    /// `--period` is not a fiscal-year label (`FY2023`).
    Period(String),
    /// `--until` is not a `YYYY-MM-DD` date.
    Until(String),
    /// `--from` or `--to` is not a `YYYY-MM-DD` date.
    FilterDate { flag: &'static str, text: String },
    /// `--period` given with `--from` or `--to`.
    PeriodWithRange,
    /// `report --pivot party --currency CODE` (not supported yet).
    PivotWithCurrency,
    /// `token create --party ID`: no such party in the agreement.
    TokenParty(String),
    /// `token create --name`: not 1–64 of letters, digits, `-_.@`.
    TokenName(String),
    /// `token create --party` with a role that writes: a write would touch or
    /// reveal lines the party does not share in.
    ScopedWriter,
    /// `void --reason` empty (or only spaces): the journal keeps why.
    EmptyReason,
    /// `--from` is after `--to`.
    FromAfterTo {
        from: costshare_core::calendar::Date,
        to: costshare_core::calendar::Date,
    },
}

/// Which input a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Agreement,
    Costs,
    Rates,
    Payments,
    /// A `forecast --budget` file.
    Budget,
}

/// Every bad row of one file.
#[derive(Debug)]
pub struct BadFile {
    /// The file as the user named it.
    pub path: String,
    pub kind: FileKind,
    pub errors: Vec<RowError>,
}

/// Where a line was looked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    Ledger(String),
    File(String),
}

/// Everything a request can fail with.
#[derive(Debug)]
pub enum AppError {
    Usage(UsageError),
    /// A file could not be read.
    Read {
        what: FileKind,
        path: String,
        error: std::io::Error,
    },
    /// A directory could not be created (`demo --write`).
    CreateDir {
        path: String,
        error: std::io::Error,
    },
    /// A file could not be written (`demo --write`).
    Write {
        path: String,
        error: std::io::Error,
    },
    /// The agreement is not UTF-8; `valid_up_to` is the first bad byte.
    NotUtf8 {
        name: String,
        valid_up_to: usize,
    },
    /// A file given as an agreement is a costs or rates CSV (its header says so).
    NotAnAgreement {
        path: String,
        kind: FileKind,
    },
    /// The agreement has errors: every diagnostic (warnings too), with the
    /// text they point into.
    Agreement {
        name: String,
        text: String,
        diagnostics: Vec<Diagnostic>,
        /// Problems found beyond those listed.
        omitted: usize,
    },
    /// Bad rows, in every file that has some (rates first, then costs);
    /// nothing was used.
    BadRows(Vec<BadFile>),
    /// A report group's total is past the signed 64-bit limit of minor units.
    TotalTooLarge {
        group: Vec<String>,
    },
    /// The ledger refused or failed.
    Ledger(LedgerError),
    /// No active line with that id.
    NoLine {
        id: String,
        place: Place,
    },
    /// The line was recorded and later voided.
    Voided {
        id: String,
        ledger: String,
        seq: u64,
        reason: String,
    },
    /// `history --id` found no entry about the line.
    NoHistory {
        id: String,
        ledger: String,
    },
    /// `verify`: the journal verified, but a blob of the derived state is
    /// damaged (`verify --repair` rebuilds it).
    DerivedDamaged {
        ledger: String,
        key: String,
        entries: u64,
        head: String,
    },
    /// `verify --expect-head`: the chain verified but does not end at the
    /// expected head (`at`: the entry with that hash, if any).
    HeadMismatch {
        ledger: String,
        expected: String,
        entries: u64,
        head: String,
        at: Option<u64>,
    },
    /// `verify` found an entry that does not match.
    VerifyFailed {
        seq: u64,
        message: String,
    },
    /// The explanation (the literal oracle) disagrees with the allocation.
    ExplainDisagrees {
        id: String,
    },
    /// The built-in demo data did not load: a bug, never the user's input.
    Demo {
        what: &'static str,
        detail: String,
    },
    /// `export --format xlsx`: an amount a spreadsheet cannot hold exactly
    /// (more than 15 significant digits, or not exact as a double).
    ExportInexact {
        sheet: &'static str,
        amount: String,
        currency: String,
    },
    /// `export --format xlsx`: more rows than a worksheet holds.
    ExportTooManyRows {
        sheet: &'static str,
        rows: usize,
        max: usize,
    },
    /// The workbook writer failed (its words).
    Xlsx {
        detail: String,
    },
    /// An amount could not be put in the reporting currency (`--currency`).
    Convert(costshare_core::convert::ConvertError),
    /// `compare --against` an agreement in another currency than the base.
    AgainstCurrency {
        path: String,
        base: String,
        other: String,
    },
    /// `compare --against` an agreement with other parties (by id) than the base.
    AgainstParties {
        path: String,
        base: Vec<String>,
        other: Vec<String>,
    },
    /// `--period` names a fiscal year outside the agreement's term
    /// (`first`..=`last`).
    PeriodOutsideTerm {
        period: String,
        first: String,
        last: String,
    },
    /// `demo --write`: a file there already has other content (`--force`
    /// overwrites it).
    WouldOverwrite {
        path: String,
    },
    /// A token could not be created or revoked (the reason, worded).
    Token(String),
    /// `token revoke` of a name the ledger has no token by.
    NoToken(String),
}

impl From<LedgerError> for AppError {
    fn from(e: LedgerError) -> Self {
        AppError::Ledger(e)
    }
}

impl From<costshare_store::StoreError> for AppError {
    fn from(e: costshare_store::StoreError) -> Self {
        AppError::Ledger(LedgerError::Store(e))
    }
}

impl From<UsageError> for AppError {
    fn from(e: UsageError) -> Self {
        AppError::Usage(e)
    }
}
