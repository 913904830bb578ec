//! Instruction-count workload for the allocator, run under callgrind by
//! `bench/icount.sh` and checked against `bench/icount-budget.txt`.
//!
//! Builds a fixed, seeded input in memory (the generator of
//! `benches/allocate.rs`, at 50,000 lines of mixed layers under the 2022 SMA
//! agreement), then runs one measured scenario:
//!
//! - `allocate`: [`alloc::allocate`] over every line;
//! - `late_line`: three late lines added to an [`alloc::Incremental`] built
//!   on those lines (labor: monthly pro-rata unit cap; utilities: yearly
//!   running cap; facilities: term envelope, which recomputes its category).
//!
//! Only the `#[inline(never)]` `icount_measure_*` functions do measured work;
//! the script counts just them with
//! `valgrind --tool=callgrind --toggle-collect='*icount_measure_*'`.
//! Setup (loading the agreement, generating lines, building the incremental
//! state) and the checksum are outside. The checksum is printed so the work
//! cannot be optimized away, and so a change in results shows too.
//!
//! Run: `cargo run --release -p costshare-core --example icount -- [allocate|late_line] [LINES]`

use costshare_core::calendar::Date;
use costshare_core::costs::CostLine;
use costshare_core::num::Q;
use costshare_core::{Agreement, alloc, load};
use std::hint::black_box;
use std::process::ExitCode;

const SMA_2022: &str = costshare_demo::agreements::SMA_2022;
const DEFAULT_LINES: usize = 50_000;
const SEED: u64 = 42;

/// `n` lines spread over the term, mixed across the six categories (the
/// generator `benches/allocate.rs` uses too).
fn generate(ag: &Agreement, n: usize, seed: u64) -> Vec<CostLine> {
    costshare_demo::sma_bench_lines(ag, n, seed).expect("the SMA categories")
}

fn line(id: String, date: Date, category: usize, amount: i64, quantity: Option<Q>) -> CostLine {
    CostLine {
        id,
        date,
        category,
        amount,
        source_amount: amount,
        currency: "JPY".into(),
        rate: None,
        quantity,
        site: String::new(),
        description: String::new(),
        row: 0,
        replaces: None,
        paid_by: None,
    }
}

/// The measured part of `allocate`.
#[inline(never)]
fn icount_measure_allocate(ag: &Agreement, lines: &[CostLine], as_of: Date) -> alloc::Allocation {
    alloc::allocate(black_box(ag), black_box(lines), black_box(as_of))
}

/// The measured part of `late_line`: the lines are built outside, so only
/// `add_line` is counted.
#[inline(never)]
fn icount_measure_late_lines(inc: &mut alloc::Incremental<'_>, late: Vec<CostLine>) -> alloc::UpdateStats {
    let mut total = alloc::UpdateStats::default();
    for l in late {
        let s = inc.add_line(black_box(l));
        total.groups += s.groups;
        total.line_layers += s.line_layers;
    }
    black_box(total)
}

/// Order-independent digest of an allocation: the sum of every amount and a
/// position-weighted sum, so both totals and who-got-what show.
fn checksum(a: &alloc::Allocation) -> (i128, u64) {
    let sum: i128 = a.amounts.iter().map(|&x| x as i128).sum();
    let mut h = 0u64;
    for (i, &x) in a.amounts.iter().enumerate() {
        h = h.wrapping_add((x as u64).wrapping_mul(i as u64 | 1));
    }
    (sum, h)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = args.first().map(String::as_str).unwrap_or("allocate");
    let n = match args.get(1).map(|s| s.parse::<usize>()) {
        None => DEFAULT_LINES,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("icount: LINES must be a whole number");
            return ExitCode::from(2);
        }
    };
    let ag = load::load(SMA_2022).agreement.expect("the example agreement loads");
    let lines = generate(&ag, n, SEED);
    let as_of = Date::new(2026, 11, 27).expect("date");
    match scenario {
        "allocate" => {
            let a = icount_measure_allocate(&ag, &lines, as_of);
            let (sum, h) = checksum(&a);
            println!("allocate lines={n} sum={sum} hash={h:016x} usage={}", a.usage.len());
        }
        "late_line" => {
            let mut inc = alloc::Incremental::new(&ag, lines, as_of);
            let late: Vec<CostLine> = [("labor", Some(20u128)), ("utilities", None), ("facilities", None)]
                .into_iter()
                .enumerate()
                .map(|(k, (cat, qty))| {
                    let c = ag.category_index(cat).expect("category");
                    let date = Date::new(2023, 6, 15).expect("date");
                    line(format!("LATE{k:08}"), date, c, 9_000_000, qty.map(Q::int))
                })
                .collect();
            let s = icount_measure_late_lines(&mut inc, late);
            let (sum, h) = checksum(&inc.allocation());
            println!(
                "late_line lines={n}+3 groups={} line_layers={} sum={sum} hash={h:016x}",
                s.groups, s.line_layers
            );
        }
        other => {
            eprintln!("icount: unknown scenario {other:?} (allocate | late_line)");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
