//! `demo`: the built-in U.S.–Japan 2022 example end to end: a seeded
//! five-year cost history generated, parsed and allocated by the same path as
//! any file input.

use crate::error::AppError;
use crate::input::{LoadedAgreement, load_agreement_bytes, sha256_hex};
use crate::run::{Run, run_with};
use costshare_core::calendar::Date;
use costshare_core::costs::{parse_costs, parse_rates};
use costshare_demo::agreements::SMA_2022;
use std::path::{Path, PathBuf};

/// The demo's run and what it was made from.
pub struct DemoResult {
    pub run: Run,
    pub seed: u64,
    /// SHA-256 of the generated costs CSV.
    pub costs_sha256: String,
    /// Where the inputs were written (`--write`), and how many lines.
    pub written: Option<(PathBuf, usize)>,
}

/// Generate the history for `seed`, allocate it as of `as_of`, and write the
/// agreement, costs and rates into `write` when given (never over a file
/// with other content: see [`run_forced`]).
pub fn run(write: Option<&Path>, seed: u64, as_of: Date) -> Result<DemoResult, AppError> {
    run_forced(write, false, seed, as_of)
}

/// [`run`]; a file already in `write` with the same content is left as it
/// is, and one with other content is an error (`WouldOverwrite`, nothing
/// written) unless `force`.
pub fn run_forced(write: Option<&Path>, force: bool, seed: u64, as_of: Date) -> Result<DemoResult, AppError> {
    let la: LoadedAgreement = load_agreement_bytes("us-japan-sma-2022.toml", SMA_2022.as_bytes())?;
    let data = costshare_demo::generate(seed);
    let rates = parse_rates(data.rates_csv.as_bytes(), la.agreement.currency.code()).map_err(|e| AppError::Demo {
        what: "rates",
        detail: format!("{e:?}"),
    })?;
    let costs = parse_costs(&la.agreement, data.costs_csv.as_bytes(), &rates).map_err(|e| AppError::Demo {
        what: "costs",
        detail: format!("{e:?}"),
    })?;
    let mut written = None;
    if let Some(dir) = write {
        std::fs::create_dir_all(dir).map_err(|error| AppError::CreateDir {
            path: dir.display().to_string(),
            error,
        })?;
        let files = [
            ("agreement.toml", SMA_2022),
            ("costs.csv", &data.costs_csv),
            ("rates.csv", &data.rates_csv),
        ];
        // every file checked before any is written
        let mut to_write = Vec::new();
        for (name, body) in files {
            let p = dir.join(name);
            match std::fs::read(&p) {
                Ok(old) if old == body.as_bytes() => {}
                Ok(_) if !force => {
                    return Err(AppError::WouldOverwrite {
                        path: p.display().to_string(),
                    });
                }
                _ => to_write.push((p, body)),
            }
        }
        for (p, body) in to_write {
            std::fs::write(&p, body).map_err(|error| AppError::Write {
                path: p.display().to_string(),
                error,
            })?;
        }
        written = Some((dir.to_path_buf(), data.lines));
    }
    Ok(DemoResult {
        costs_sha256: sha256_hex(data.costs_csv.as_bytes()),
        run: run_with(la, costs, as_of),
        seed,
        written,
    })
}
