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

/// One category of Japan's five-year total against the headline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconRow {
    pub category: String,
    /// What the generated history allocates to the headline's party, in yen.
    pub generated: i128,
    /// What the headline counts of the category, in yen (`implied`: the
    /// headline less the other categories' sourced figures).
    pub headline: i128,
    pub implied: bool,
    /// Why they differ (from the sourced figures' notes).
    pub why: &'static str,
}

/// Japan's five-year total reconciled to the headline, category by category:
/// the generated rows sum to the generated total and the headline rows to
/// the headline total, exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciliation {
    pub party: String,
    pub rows: Vec<ReconRow>,
    pub generated_total: i128,
    pub headline_total: i128,
}

/// The reconciliation of a demo run (`None` when the agreement has no
/// headline party, which the built-in one always has).
pub fn reconcile(r: &Run) -> Option<Reconciliation> {
    use costshare_demo::headline::{Counted, PARTS, PARTY, TOTAL_YEN};
    let part = r.main();
    let a = &part.la.agreement;
    let p = a.parties.iter().position(|x| x.id == PARTY)?;
    let w = part.alloc.width();
    let mut by_cat = vec![0i128; a.categories.len()];
    for (i, l) in part.costs.lines.iter().enumerate() {
        by_cat[l.category] += part.alloc.amounts[i * w + p] as i128;
    }
    let sourced = |id: &str| PARTS.iter().find(|x| x.category == id);
    let named: i128 = a
        .categories
        .iter()
        .filter_map(|c| match sourced(&c.id).map(|x| x.counted) {
            Some(Counted::Yen(v)) => Some(v as i128),
            _ => None,
        })
        .sum();
    let rows = a
        .categories
        .iter()
        .zip(&by_cat)
        .map(|(c, &generated)| {
            let s = sourced(&c.id);
            let (headline, implied) = match s.map(|x| x.counted) {
                Some(Counted::Yen(v)) => (v as i128, false),
                Some(Counted::Rest) => (TOTAL_YEN as i128 - named, true),
                None => (0, false),
            };
            ReconRow {
                category: c.id.clone(),
                generated,
                headline,
                implied,
                why: s.map(|x| x.why).unwrap_or("not in the headline"),
            }
        })
        .collect();
    Some(Reconciliation {
        party: PARTY.to_string(),
        rows,
        generated_total: by_cat.iter().sum(),
        headline_total: TOTAL_YEN as i128,
    })
}
