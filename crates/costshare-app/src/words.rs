//! What costshare says: every typed error turned into text. The only place
//! where an error becomes words, shared by the command line (which prints
//! them on stderr) and the server (which puts them in its JSON errors).

use crate::error::{AppError, BadFile, FileKind, Place, UsageError};
use costshare_core::convert::{ConvertError, PolicyError};
use costshare_core::diag::{self, Diagnostic, Severity};
use costshare_store::LedgerError;

/// A usage error's text (printed after `costshare: usage error: `).
pub fn usage(e: &UsageError) -> String {
    match e {
        UsageError::TokenParty(p) => format!("--party `{p}` is not a party of the agreement in force"),
        UsageError::ScopedWriter => "--party: a party-scoped token is a viewer (--role viewer); recording through it could void, replace or confirm lines its party does not share in".to_string(),
        UsageError::TokenName(n) => {
            format!("--name `{n}`: a token's name is 1-64 letters, digits, `-`, `_`, `.` or `@`")
        }
        UsageError::EmptyReason => {
            "--reason is empty: say why the line is voided (the journal keeps it beside the void)".to_string()
        }
        UsageError::AsOf(t) => format!("--as-of `{t}` is not a date (YYYY-MM-DD)"),
        UsageError::Effective(t) => format!("--effective `{t}` is not a date (YYYY-MM-DD)"),
        UsageError::Dims(m) => format!("--by: {m}"),
        UsageError::LedgerWithFiles => "--ledger reads the agreement, costs and rates recorded in the ledger; do not give --agreement, --costs or --rates with it".into(),
        UsageError::MissingInputs => "give --agreement FILE and --costs FILE, or --ledger LEDGER".into(),
        UsageError::ExplainCsv => "explain has no csv form; use --format table or --format json".into(),
        UsageError::ExportBinaryToStdout => "export --format xlsx writes a workbook: give -o FILE.xlsx".into(),
        UsageError::RatePolicy(PolicyError::Unknown(p)) => {
            format!("--rate-policy `{p}` is not spot, fiscal-year-average or fixed:RATE")
        }
        UsageError::RatePolicy(PolicyError::BadRate(r)) => {
            format!("--rate-policy fixed:{r}: the rate must be a positive decimal (agreement currency per one unit of --currency)")
        }
        UsageError::PolicyWithoutCurrency => "--rate-policy needs --currency CODE".into(),
        UsageError::NoAgainst => "give at least one --against AGREEMENT.toml".into(),
        UsageError::DuplicateAgainst(id) => format!(
            "two --against agreements have the id `{id}`, and their columns would share a name; give each file its own [agreement] id"
        ),
        UsageError::Period(t) => format!("--period `{t}` is not a fiscal-year label (like FY2023)"),
        UsageError::Until(t) => format!("--until `{t}` is not a date (YYYY-MM-DD)"),
        UsageError::FilterDate { flag, text } => format!("{flag} `{text}` is not a date (YYYY-MM-DD)"),
        UsageError::PivotWithCurrency => {
            "--pivot party is not available with --currency yet; report --by party with --currency instead".into()
        }
        UsageError::PeriodWithRange => "--period selects a whole fiscal year; do not give --from or --to with it".into(),
        UsageError::FromAfterTo { from, to } => format!("--from {from} is after --to {to}; no date is in that range"),
    }
}

fn what(k: FileKind) -> &'static str {
    match k {
        FileKind::Agreement => "agreement",
        FileKind::Costs => "costs file",
        FileKind::Rates => "rates file",
        FileKind::Payments => "payments file",
        FileKind::Budget => "budget file",
    }
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Every bad row of a file, then a count.
fn bad_file(b: &BadFile) -> String {
    let mut s = String::new();
    for e in &b.errors {
        s.push_str(&e.located(&b.path));
        s.push('\n');
    }
    s.push_str(&format!(
        "costshare: error: {} bad row{} in {} `{}`; nothing was used\n",
        b.errors.len(),
        plural(b.errors.len()),
        what(b.kind),
        b.path
    ));
    s
}

/// Diagnostics rendered compiler-style against their file.
pub fn diagnostics(name: &str, text: &str, ds: &[Diagnostic]) -> String {
    let mut s = String::new();
    for d in ds {
        s.push_str(&diag::render(d, name, text));
        s.push('\n');
    }
    s
}

fn ledger(e: &LedgerError) -> String {
    match e {
        LedgerError::Rows { file, errors } => {
            let mut s = String::new();
            for r in errors {
                s.push_str(&r.located(file));
                s.push('\n');
            }
            s.push_str(&format!(
                "costshare: error: {} bad row{} in `{file}`; nothing was recorded",
                errors.len(),
                plural(errors.len())
            ));
            s
        }
        other => format!("costshare: error: {other}"),
    }
}

/// An input error's text (exit 1).
pub fn error(e: &AppError) -> String {
    match e {
        AppError::Token(m) => format!("costshare: error: {m}"),
        AppError::NoToken(n) => {
            format!("costshare: error: no token named `{n}` in this ledger (`costshare token list` shows them)")
        }
        AppError::Usage(u) => format!("costshare: usage error: {}", usage(u)),
        AppError::Read { what: w, path, error } => {
            format!("costshare: error: cannot read {} `{path}`: {error}", what(*w))
        }
        AppError::CreateDir { path, error } => format!("costshare: error: cannot create `{path}`: {error}"),
        AppError::Write { path, error } => format!("costshare: error: cannot write `{path}`: {error}"),
        AppError::NotAnAgreement { path, kind } => match kind {
            FileKind::Rates => format!(
                "costshare: error: `{path}` is a rates CSV (its header names date, currency, rate), not an agreement; give it with --rates"
            ),
            _ => format!(
                "costshare: error: `{path}` is a costs CSV (its header names id, date, category, amount), not an agreement; check it against one with `costshare check --agreement AGREEMENT.toml {path}`"
            ),
        },
        AppError::NotUtf8 { name, valid_up_to } => {
            format!("costshare: error: agreement `{name}` is not valid UTF-8 (byte {valid_up_to})")
        }
        AppError::Agreement {
            name,
            text,
            diagnostics: ds,
            omitted,
        } => {
            let errors = ds.iter().filter(|d| d.severity == Severity::Error).count() + omitted;
            format!(
                "{}costshare: error: {name}: {errors} problem{} found{}\n",
                diagnostics(name, text, ds),
                plural(errors),
                if *omitted > 0 {
                    format!(" (the first {} are shown)", ds.len())
                } else {
                    String::new()
                }
            )
        }
        AppError::BadRows(files) => files.iter().map(bad_file).collect(),
        AppError::TotalTooLarge { group } => format!(
            "costshare: error: the total of group {} exceeds the limit of a signed 64-bit count of minor units",
            group.join(",")
        ),
        AppError::Ledger(l) => ledger(l),
        AppError::NoLine { id, place } => format!(
            "costshare: error: no line with id `{id}` in {}",
            match place {
                Place::Ledger(l) => format!("the ledger `{l}`"),
                Place::File(f) => format!("`{f}`"),
            }
        ),
        AppError::Voided {
            id,
            ledger,
            seq,
            reason,
        } => format!(
            "costshare: error: line `{id}` was voided (journal entry {seq}: {reason}); `costshare history {ledger} --id {id}` shows its story"
        ),
        AppError::NoHistory { id, ledger } => {
            format!("costshare: error: no entry about line `{id}` in the ledger `{ledger}`")
        }
        AppError::DerivedDamaged {
            ledger,
            key,
            entries,
            head,
        } => format!(
            "costshare: verify: the journal verifies ({entries} entries, head {head}), but the derived state is damaged: blob `{key}` does not match its checksum, its meta or the journal\ncommands do not use it (they replay the journal); rebuild it with `costshare verify --repair {ledger}`"
        ),
        AppError::HeadMismatch {
            ledger,
            expected,
            entries,
            head,
            at: Some(at),
        } => format!(
            "costshare: verify failed: the journal of {ledger} does not end at the expected head {expected}: that is entry {at}, and {} later entr{} follow it (the journal ends at entry {entries}, head {head})",
            entries - at,
            if entries - at == 1 { "y" } else { "ies" }
        ),
        AppError::HeadMismatch {
            ledger,
            expected,
            entries,
            head,
            at: None,
        } => format!(
            "costshare: verify failed: no entry of the journal of {ledger} has the expected head {expected}; the journal ends at entry {entries}, head {head}: entries may have been cut off at the end or replaced"
        ),
        AppError::VerifyFailed { seq, message } => {
            format!("costshare: verify failed at journal entry {seq}: {message}")
        }
        AppError::ExplainDisagrees { id } => format!(
            "costshare: internal error: the explanation of `{id}` disagrees with the allocation; please report this"
        ),
        AppError::Demo { what, detail } => format!("costshare: internal error in the demo {what}: {detail}"),
        AppError::ExportInexact {
            sheet,
            amount,
            currency,
        } => format!(
            "costshare: error: the workbook cannot hold {amount} {currency} exactly (sheet `{sheet}`): \
             a spreadsheet number keeps 15 significant digits; export --format csv or json instead"
        ),
        AppError::ExportTooManyRows { sheet, rows, max } => format!(
            "costshare: error: sheet `{sheet}` would have {rows} rows, more than a worksheet holds ({max}); \
             export --format csv instead"
        ),
        AppError::Xlsx { detail } => format!("costshare: error: cannot write the workbook: {detail}"),
        AppError::Convert(c) => convert(c),
        AppError::AgainstCurrency { path, base, other } => format!(
            "costshare: error: `{path}` is in {other} and the costs are allocated in {base}; compare agreements in one currency (--currency converts the results, not the agreements)"
        ),
        AppError::AgainstParties { path, base, other } => format!(
            "costshare: error: `{path}` has the parties {} and the base agreement {}; compare agreements with the same party ids",
            other.join(", "),
            base.join(", ")
        ),
        AppError::PeriodOutsideTerm { period, first, last } => {
            format!("costshare: error: --period {period} is outside the agreement's term ({first} to {last})")
        }
        AppError::WouldOverwrite { path } => format!(
            "costshare: error: `{path}` already exists with different content; nothing was overwritten (use --force to overwrite)"
        ),
    }
}

/// Why an amount could not be put in the reporting currency.
fn convert(e: &ConvertError) -> String {
    match e {
        ConvertError::UnknownCurrency(c) => format!(
            "costshare: error: --currency `{c}` is neither a built-in currency (JPY, USD, EUR, AUD, GBP) nor declared in the agreement's [currencies]"
        ),
        ConvertError::NoRates { currency } => format!(
            "costshare: error: --currency {currency} needs {currency} rates: give --rates FILE (date,currency,rate) or record them in the ledger, or use --rate-policy fixed:RATE"
        ),
        ConvertError::NoRateBefore { currency, date } => format!(
            "costshare: error: no {currency} rate dated on or before {date}, the date of a line (--rate-policy spot)"
        ),
        ConvertError::NoRateInYear { currency, fiscal_year } => format!(
            "costshare: error: no {currency} rate dated within {fiscal_year} to average (--rate-policy fiscal-year-average)"
        ),
        ConvertError::TooLarge { currency } => format!(
            "costshare: error: an amount converted to {currency} exceeds the limit of a signed 64-bit count of minor units"
        ),
    }
}
