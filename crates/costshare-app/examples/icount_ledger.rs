//! Instruction-count workload for the ledger's read paths from the derived
//! state, run under callgrind by `bench/icount.sh` and checked against
//! `bench/icount-budget.txt` (issue 12: "the instruction-count guard covers
//! the new read paths").
//!
//! Setup (not counted): a small SQLite ledger in a fixed temporary folder,
//! the demo's 2022 SMA history (seed 2022: 1,460 lines, dollar lines
//! converted at 60 recorded rates), recorded in one file, which writes the
//! derived state in the same transaction. Then one measured scenario:
//!
//! - `ledger_allocate`: `allocate --ledger` (`query::allocate`): every line
//!   read from the derived state's buckets and allocated, no replay;
//! - `ledger_report_period`: `report --ledger --by party,category --period
//!   FY2023` (`query::report_filtered` with a date filter): the same lines
//!   from the buckets (`PathTaken::DerivedLines`), restricted and grouped.
//!
//! Each scenario checks first that the derived state is fresh and, after,
//! that the measured call took the derived path, so a change that makes it
//! replay the journal fails here rather than moving the count. Only the
//! `#[inline(never)]` `icount_measure_*` functions are counted
//! (`valgrind --tool=callgrind --toggle-collect='*icount_measure_*'`); they
//! include opening the ledger and its SQLite reads.
//!
//! Run: `cargo run --release -p costshare-app --example icount_ledger -- [ledger_allocate|ledger_report_period]`

use costshare_app::filter::DateFilter;
use costshare_app::query::{self, PathTaken};
use costshare_app::{Quiet, Session, Source};
use costshare_core::calendar::Date;
use costshare_core::report::Dim;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;

const SEED: u64 = 2022;

/// A fresh ledger holding the demo history, at a fixed path (so the counted
/// work does not depend on the folder's name).
fn setup() -> String {
    let dir = PathBuf::from("/tmp/costshare-icount-ledger");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let data = costshare_demo::generate(SEED);
    let (ag, costs, rates) = (dir.join("a.toml"), dir.join("costs.csv"), dir.join("rates.csv"));
    std::fs::write(&ag, costshare_demo::agreements::SMA_2022).expect("write");
    std::fs::write(&costs, &data.costs_csv).expect("write");
    std::fs::write(&rates, &data.rates_csv).expect("write");
    let target = dir.join("l.db").display().to_string();
    let mut quiet = Quiet;
    costshare_app::ledger::init(&target, &ag, Some(&rates), &mut quiet).expect("init");
    costshare_app::ledger::record(&target, &costs, None, false, &mut quiet).expect("record");
    let mut l = costshare_store::Ledger::open(&target).expect("open");
    assert!(
        l.derived_lines().expect("read").is_some(),
        "the derived state is fresh after a small record"
    );
    target
}

#[inline(never)]
fn icount_measure_ledger_allocate(source: &Source, as_of: Date) -> costshare_app::run::Run {
    let mut quiet = Quiet;
    let mut s = Session::new(&mut quiet);
    query::allocate(black_box(source), black_box(as_of), &mut s).expect("allocate")
}

#[inline(never)]
fn icount_measure_ledger_report_period(source: &Source, as_of: Date, filter: &DateFilter) -> query::ReportResult {
    let mut quiet = Quiet;
    let mut s = Session::new(&mut quiet);
    let dims = [Dim::Party, Dim::Category];
    query::report_filtered(black_box(source), &dims, black_box(as_of), filter, &mut s).expect("report")
}

fn main() -> ExitCode {
    let scenario = std::env::args().nth(1).unwrap_or_else(|| "ledger_allocate".into());
    if std::env::var_os("COSTSHARE_LEDGER_PATH").is_some() {
        eprintln!("icount_ledger: unset COSTSHARE_LEDGER_PATH (the derived path is what is measured)");
        return ExitCode::from(2);
    }
    let as_of = Date::new(2026, 11, 27).expect("date");
    match scenario.as_str() {
        "ledger_allocate" => {
            let source = Source::Ledger(setup());
            let r = icount_measure_ledger_allocate(&source, as_of);
            let t = r.party_totals();
            println!(
                "ledger_allocate lines={} provisional={} totals={t:?}",
                r.line_count(),
                r.provisional_count()
            );
        }
        "ledger_report_period" => {
            let source = Source::Ledger(setup());
            let filter = DateFilter::parse(None, None, Some("FY2023")).expect("filter");
            let r = icount_measure_ledger_report_period(&source, as_of, &filter);
            if r.path != PathTaken::DerivedLines {
                eprintln!(
                    "icount_ledger: the report took {:?}, not the derived state's lines",
                    r.path
                );
                return ExitCode::from(1);
            }
            let sum: i128 = r.rows.iter().map(|row| row.amount as i128).sum();
            println!(
                "ledger_report_period rows={} lines={} sum={sum}",
                r.rows.len(),
                r.provenance.lines
            );
        }
        other => {
            eprintln!("icount_ledger: unknown scenario {other:?} (ledger_allocate | ledger_report_period)");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
