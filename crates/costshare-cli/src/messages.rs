//! The observer of the binary: warnings printed to stderr at once, progress
//! on a terminal. The words of errors are `costshare_app::words`.

use costshare_app::input::{LoadedAgreement, Observer};
use costshare_app::words::{diagnostics, plural};
use costshare_core::Agreement;
use costshare_core::compare::{Reason, Unallocated};
use costshare_core::money::format_grouped;
use std::io::IsTerminal;

pub use costshare_app::words::{error, usage};

/// Prints warnings to stderr at once, and a progress bar when stderr is a terminal.
pub struct Stderr {
    tty: bool,
}

impl Stderr {
    pub fn new() -> Stderr {
        Stderr {
            tty: std::io::stderr().is_terminal(),
        }
    }
}

impl Observer for Stderr {
    fn warnings(&mut self, la: &LoadedAgreement) {
        eprint!("{}", diagnostics(&la.name, &la.text, &la.warnings));
    }

    fn progress(&mut self, file: &str, stage: &str, done: u64, total: u64) {
        if !self.tty {
            return;
        }
        let msg = if total > 0 {
            let width = 30u64;
            let filled = (done * width / total.max(1)) as usize;
            format!(
                "{file}: {stage} [{}{}] {done}/{total}",
                "#".repeat(filled),
                "-".repeat(width as usize - filled)
            )
        } else {
            format!("{file}: {stage}…")
        };
        eprint!("\r\x1b[2K{msg}");
    }

    fn progress_done(&mut self) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
    }

    fn derived_damaged(&mut self, ledger: &str, key: &str) {
        eprintln!(
            "costshare: warning: the derived state of {ledger} is damaged (blob `{key}` is missing, fails its checksum, or is not the one its meta names); it was not used: the journal was replayed and the derived state rewritten"
        );
    }

    fn compare_unallocated(&mut self, against: &Agreement, path: &str, u: &Unallocated) {
        let n = u.lines;
        let why = match u.reason {
            Reason::NoCategory => format!("it has no category `{}`", u.category),
            Reason::OutsideTerm => format!("they are dated outside its term (category `{}`)", u.category),
            Reason::NoQuantity => format!("its category `{}` counts units and they have no quantity", u.category),
        };
        eprintln!(
            "costshare: warning: {n} line{} ({} {}) UNALLOCATED under `{}` ({path}): {why}",
            plural(n),
            format_grouped(u.amount, against.currency.decimals()),
            against.currency.code(),
            against.id
        );
    }
}
