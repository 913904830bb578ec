//! The costs reader, both paths, on the same bytes against fixed agreements:
//! the general path (`parse_costs`, `allocate`, `report`) and the streaming
//! path (`Plan::new` on the header line, workers fed the rest, `finish`), as
//! the CLI drives them. Never a panic; when the stream gives a report, the
//! general path accepts the file and gives the same rows.
#![no_main]

use costshare_core::calendar::Date;
use costshare_core::report::{self, Dim};
use costshare_core::stream::{Plan, split_point};
use costshare_core::{Agreement, Rates, alloc, costs, load};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

struct Fixture {
    ag: Agreement,
    rates: Rates,
    as_of: Date,
}

fn fixture(toml: &str, rates: &[u8], as_of: Date) -> Fixture {
    let ag = load::load(toml).agreement.expect("the fixture agreement loads");
    let rates = if rates.is_empty() {
        Rates::empty()
    } else {
        costs::parse_rates(rates, ag.currency.code()).expect("the fixture rates load")
    };
    Fixture { ag, rates, as_of }
}

/// A running monthly cap and keys (an example agreement); two currencies
/// (uncapped); a pro-rata unit cap by site (conformance cases).
static FIXTURES: LazyLock<[Fixture; 3]> = LazyLock::new(|| {
    let d = |y, m, d| Date::new(y, m, d).unwrap();
    [
        fixture(include_str!("../../examples/household.toml"), b"", d(2025, 9, 30)),
        fixture(
            include_str!("../../tests/conformance/09-fx/agreement.toml"),
            include_bytes!("../../tests/conformance/09-fx/rates.csv"),
            d(2023, 6, 30),
        ),
        fixture(
            include_str!("../../tests/conformance/05-pro-rata-unit-cap/agreement.toml"),
            b"",
            d(2022, 5, 15),
        ),
    ]
});

const DIMS: [&[Dim]; 6] = [
    &[Dim::Party],
    &[Dim::Party, Dim::FiscalYear],
    &[Dim::Party, Dim::Category, Dim::Site],
    &[Dim::Category, Dim::Site],
    &[Dim::Site, Dim::Party, Dim::Month],
    &[Dim::Party, Dim::FiscalYear, Dim::Category, Dim::Site, Dim::Month],
];

fn check(f: &Fixture, data: &[u8], dims: &[Dim], split: bool) {
    // the general path, as `report` runs it when the stream falls back
    let general = match costs::parse_costs(&f.ag, data, &f.rates) {
        Ok(c) => {
            let a = alloc::allocate(&f.ag, &c.lines, f.as_of);
            let rows = report::report(&f.ag, &c.lines, &a, dims);
            Some((c, a, rows))
        }
        Err(errors) => {
            for e in &errors {
                let _ = e.located("costs.csv");
            }
            None
        }
    };
    // the streaming path, split as the CLI's driver splits the file
    let body = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let Some(nl) = body.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(plan) = Plan::new(&f.ag, &f.rates, f.as_of, dims, &body[..nl]) else {
        return;
    };
    let rest = &body[nl + 1..];
    let mut workers = vec![plan.worker(4), plan.worker(4)];
    let fed = match (split, split_point(rest)) {
        (true, Some(cut)) => workers[0]
            .feed(&plan, &rest[..cut])
            .and_then(|()| workers[1].feed(&plan, &rest[cut..])),
        _ => workers[0].feed(&plan, rest),
    };
    if fed.is_err() {
        return;
    }
    let Ok(sr) = plan.finish_with(workers, 1) else {
        return;
    };
    let Some((c, a, rows)) = general else {
        panic!("the stream gave a report, the general path refused the file");
    };
    assert_eq!(sr.lines, c.lines.len(), "lines counted");
    assert_eq!(
        sr.provisional,
        a.provisional.iter().filter(|&&p| p).count(),
        "provisional lines"
    );
    assert_eq!(sr.rows, rows, "report rows");
}

fuzz_target!(|data: &[u8]| {
    let dims = DIMS[data.len() % DIMS.len()];
    let split = (data.len() / DIMS.len()) % 2 == 1;
    for f in FIXTURES.iter() {
        check(f, data, dims, split);
    }
});
