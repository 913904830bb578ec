//! The in-memory allocator on a million generated lines of mixed layers:
//! monthly pro-rata unit caps (labor), yearly running money caps (utilities,
//! relocation), term envelopes (facilities, equipment) and an uncapped
//! category (welfare), under the 2022 SMA agreement.
//!
//! Run: `cargo bench -p costshare-core --bench allocate` (criterion prints
//! the throughput in elements, i.e. lines, per second).

use costshare_core::calendar::Date;
use costshare_core::costs::CostLine;
use costshare_core::num::Q;
use costshare_core::{alloc, load};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const SMA_2022: &str = costshare_demo::agreements::SMA_2022;

/// `n` lines spread over the term, mixed across the six categories.
pub fn generate(ag: &costshare_core::Agreement, n: usize, seed: u64) -> Vec<CostLine> {
    costshare_demo::sma_bench_lines(ag, n, seed).expect("the SMA categories")
}

fn bench(c: &mut Criterion) {
    let ag = load::load(SMA_2022).agreement.expect("the example loads");
    let n = 1_000_000;
    let lines = generate(&ag, n, 42);
    let as_of = Date::new(2026, 11, 27).expect("date");
    let mut g = c.benchmark_group("allocate");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("sma2022_1M_mixed_layers", |b| {
        b.iter(|| black_box(alloc::allocate(&ag, black_box(&lines), as_of)))
    });
    g.finish();

    // a late line in a ledger of a million lines: only its period groups are
    // recomputed (monthly and yearly caps), or its whole category (term caps)
    let mut g = c.benchmark_group("late_line_in_1M");
    g.sample_size(20);
    let mut inc = alloc::Incremental::new(&ag, lines.clone(), as_of);
    let mut k = 0u64;
    for (name, cat, date, qty) in [
        ("labor_monthly_pro_rata_units", "labor", (2023, 6, 15), Some(20u128)),
        ("utilities_yearly_running_cap", "utilities", (2023, 6, 15), None),
        ("facilities_term_envelope", "facilities", (2023, 6, 15), None),
    ] {
        let category = ag.category_index(cat).expect("category");
        let date = Date::new(date.0, date.1, date.2).expect("date");
        g.bench_function(name, |b| {
            b.iter(|| {
                k += 1;
                let line = CostLine {
                    id: format!("LATE{k:08}"),
                    date,
                    category,
                    amount: 9_000_000,
                    source_amount: 9_000_000,
                    currency: "JPY".into(),
                    rate: None,
                    quantity: qty.map(Q::int),
                    site: String::new(),
                    description: String::new(),
                    row: 0,
                    replaces: None,
                    paid_by: None,
                };
                black_box(inc.add_line(line))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
