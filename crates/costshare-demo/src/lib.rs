//! # costshare-demo
//!
//! Demo data, kept out of the core's API: the example agreements (embedded
//! from this crate's `agreements/`, which the workspace's `examples/` links
//! to), and generators for the demo, the tests and the benchmarks.
//!
//! [`generate`] is a seeded, realistic five-year cost history for the 2022
//! U.S.–Japan agreement (JFY2022–2026), as CSV text. Pure: same seed, same bytes.
//!
//! Sizes follow the sourced figures (see `examples/us-japan-sma-2022.toml`):
//! about 26,000 base workers against the 23,178 cap; a base utility bill of
//! about ¥38 billion a year against the fixed yearly amounts; facility
//! projects somewhat above the ¥164.1 billion envelope; relocation exercises
//! slightly above ¥11.4 billion a year; training equipment, partly bought in
//! dollars, above its ¥20 billion envelope. So every kind of ceiling binds
//! somewhere, and the labor cap binds in every month.

use std::fmt::Write;

pub mod headline;

/// The example agreements, as shipped (file name, text).
pub mod agreements {
    /// The 2022 U.S.–Japan Special Measures Agreement (the demo's agreement).
    pub const SMA_2022: &str = include_str!("../agreements/us-japan-sma-2022.toml");
    /// Every example, by file name.
    pub const ALL: [(&str, &str); 7] = [
        ("household.toml", include_str!("../agreements/household.toml")),
        ("joint-venture.toml", include_str!("../agreements/joint-venture.toml")),
        (
            "nato-common-funding.toml",
            include_str!("../agreements/nato-common-funding.toml"),
        ),
        (
            "us-japan-fourfold-proposal.toml",
            include_str!("../agreements/us-japan-fourfold-proposal.toml"),
        ),
        (
            "us-japan-rd-2022.toml",
            include_str!("../agreements/us-japan-rd-2022.toml"),
        ),
        (
            "us-japan-sma-2016.toml",
            include_str!("../agreements/us-japan-sma-2016.toml"),
        ),
        ("us-japan-sma-2022.toml", SMA_2022),
    ];

    /// The demo's categories with every cap removed (every layer splits
    /// without a ceiling): what the tests of the streaming path, which totals
    /// uncapped lines as they go by, allocate beside the demo's agreement.
    pub const DEMO_UNCAPPED: &str = r#"[agreement]
id = "demo-uncapped"
currency = "JPY"
start = "2022-04-01"
end = "2027-03-31"
fiscal_year_start = "04-01"
fiscal_year_label = "start"
[parties.JP]
[parties.US]
[categories.labor]
unit = "worker"
  [[categories.labor.layers]]
  portion = "70%"
  split = { JP = "100%" }
  [[categories.labor.layers]]
  split = { JP = "33.3%", US = "66.7%" }
[categories.welfare]
  [[categories.welfare.layers]]
  split = { US = "100%" }
[categories.utilities]
  [[categories.utilities.layers]]
  split = { JP = "61%", US = "39%" }
[categories.training_relocation]
  [[categories.training_relocation.layers]]
  split = { JP = "50%", US = "50%" }
[categories.facilities]
  [[categories.facilities.layers]]
  split = { JP = "66.6667%", US = "33.3333%" }
[categories.training_equipment]
  [[categories.training_equipment.layers]]
  split = { JP = "14.2857%", US = "85.7143%" }
"#;
}

/// SplitMix64: small, seedable, good enough for synthetic data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo + 1) as u64;
        lo + (self.next_u64() % span) as i64
    }
    /// `base` varied by up to ±`permille`/1000, in integers.
    pub fn around(&mut self, base: i64, permille: i64) -> i64 {
        let d = self.range(-permille, permille);
        base + (base as i128 * d as i128 / 1000) as i64
    }
}

/// Installations with their share of the workforce (head counts sum ≈ 26,000).
pub const INSTALLATIONS: [(&str, &str, i64); 7] = [
    ("OKI", "Okinawa", 9042),
    ("YKS", "Yokosuka", 5150),
    ("YKT", "Yokota", 3380),
    ("IWK", "Iwakuni", 2630),
    ("MSW", "Misawa", 2210),
    ("ZAM", "Zama", 1900),
    ("SSB", "Sasebo", 1690),
];

/// The generated files.
pub struct DemoData {
    pub costs_csv: String,
    pub rates_csv: String,
    pub lines: usize,
}

fn last_day(y: i32, m: u8) -> u8 {
    costshare_core::calendar::days_in_month(y, m)
}

/// Yen per dollar at the start of month `k` of the term (k = 0 is April 2022):
/// 122.5 rising to about 150 by late 2023, then drifting near 150.
fn usd_rate_milli(k: i64, rng: &mut Rng) -> i64 {
    let base = if k < 20 {
        122_500 + k * 1_400
    } else {
        150_500 - (k - 20) * 60
    };
    rng.around(base, 8)
}

/// Generate the history. Amounts in yen unless noted; dollar purchases carry
/// `currency = USD` and convert through the rates file.
pub fn generate(seed: u64) -> DemoData {
    let mut rng = Rng::new(seed);
    let mut c = String::with_capacity(400_000);
    c.push_str("id,date,category,amount,currency,quantity,site,description\n");
    let mut n = 0usize;
    let mut rates = String::from("date,currency,rate\n");
    // head counts drift month to month
    let mut heads: Vec<i64> = INSTALLATIONS.iter().map(|(_, _, h)| *h).collect();
    for k in 0..60i64 {
        let y = 2022 + ((3 + k) / 12) as i32;
        let m = ((3 + k) % 12 + 1) as u8;
        let fy = 2022 + k / 12;
        let end = last_day(y, m);
        let rate = usd_rate_milli(k, &mut rng);
        let _ = writeln!(rates, "{y:04}-{m:02}-01,USD,{}.{:03}", rate / 1000, rate % 1000);
        // monthly pay per worker ≈ ¥465,000 rising ~1.5% a year (NPA revisions in April)
        let pay = 465_000 + (fy - 2022) * 7_000;
        for (i, (code, site, _)) in INSTALLATIONS.iter().enumerate() {
            heads[i] = (heads[i] + rng.range(-12, 14)).max(100);
            let h = heads[i];
            let payroll = h * rng.around(pay, 15);
            let _ = writeln!(
                c,
                "L-{y:04}-{m:02}-{code},{y:04}-{m:02}-{end:02},labor,{payroll},,{h},{site},{site} payroll {y:04}-{m:02}"
            );
            n += 1;
            // welfare ≈ ¥26.1 billion a year, by head count
            let welfare = rng.around(h * 83_600, 40);
            let _ = writeln!(
                c,
                "W-{y:04}-{m:02}-{code},{y:04}-{m:02}-{end:02},welfare,{welfare},,,{site},{site} welfare {y:04}-{m:02}"
            );
            n += 1;
            // utilities ≈ ¥38.4 billion a year with a winter and summer peak
            let season: i64 = match m {
                12 | 1 | 2 => 1_250,
                7 | 8 => 1_200,
                _ => 900,
            };
            let util = rng.around(h * 123_000 * season / 1000, 60);
            let _ = writeln!(
                c,
                "U-{y:04}-{m:02}-{code},{y:04}-{m:02}-{:02},utilities,{util},,,{site},{site} utilities {y:04}-{m:02}",
                end.min(25)
            );
            n += 1;
        }
        // training relocation: an exercise in most quarters' middle months
        if matches!(m, 5 | 8 | 11 | 2) {
            let amt = rng.around(2_950_000_000, 120);
            let dest = ["Guam", "Northern Marianas", "Alaska", "Guam"][(k as usize / 3) % 4];
            let _ = writeln!(
                c,
                "T-{y:04}-{m:02},{y:04}-{m:02}-15,training_relocation,{amt},,,{dest},Relocated training exercise ({dest})"
            );
            n += 1;
        }
        // facilities: two or three FIP projects a month, ¥0.8–1.6 billion each
        let projects = if k % 2 == 0 { 3 } else { 2 };
        for p in 0..projects {
            let (_, site, _) = INSTALLATIONS[rng.range(0, 6) as usize];
            let amt = rng.range(800, 1_600) * 1_000_000;
            let day = 10 + p * 5;
            let _ = writeln!(
                c,
                "F-{y:04}-{m:02}-{p},{y:04}-{m:02}-{day:02},facilities,{amt},,,{site},FIP project {}",
                k * 3 + p
            );
            n += 1;
        }
        // training equipment: a purchase every other month, often in dollars
        if k % 2 == 1 {
            let (_, site, _) = INSTALLATIONS[rng.range(0, 6) as usize];
            if k % 4 == 1 {
                let usd_cents = rng.range(7_000_000, 11_000_000) * 100;
                let _ = writeln!(
                    c,
                    "E-{y:04}-{m:02},{y:04}-{m:02}-20,training_equipment,{}.{:02},USD,,{site},Simulator purchase (U.S. vendor)",
                    usd_cents / 100,
                    usd_cents % 100
                );
            } else {
                let amt = rng.range(700, 1_100) * 1_000_000;
                let _ = writeln!(
                    c,
                    "E-{y:04}-{m:02},{y:04}-{m:02}-20,training_equipment,{amt},,,{site},Training equipment purchase"
                );
            }
            n += 1;
        }
    }
    DemoData {
        costs_csv: c,
        rates_csv: rates,
        lines: n,
    }
}

/// `n` cost lines for benchmarks under the 2022 SMA agreement (`ag` must
/// have its six categories, else `None`): dates spread over the term, 40%
/// labor (head counts against the monthly pro-rata unit cap), 15% welfare
/// (uncapped), 25% utilities (yearly running cap), 5% training relocation,
/// 10% facilities and 5% training equipment (term envelopes). Seeded: the
/// same seed gives the same lines.
pub fn sma_bench_lines(ag: &costshare_core::Agreement, n: usize, seed: u64) -> Option<Vec<costshare_core::CostLine>> {
    use costshare_core::num::Q;
    let mut rng = Rng::new(seed);
    let start = ag.start.to_days();
    let days = ag.end.to_days() - start + 1;
    let cat = |id: &str| ag.category_index(id);
    let cats = [
        (cat("labor")?, 40),
        (cat("welfare")?, 15),
        (cat("utilities")?, 25),
        (cat("training_relocation")?, 5),
        (cat("facilities")?, 10),
        (cat("training_equipment")?, 5),
    ];
    let labor = cats[0].0;
    let mut lines = Vec::with_capacity(n);
    for i in 0..n {
        let pick = rng.range(0, 99);
        let mut acc = 0;
        let mut c = cats[0].0;
        for (ci, w) in cats {
            acc += w;
            if pick < acc {
                c = ci;
                break;
            }
        }
        let date = costshare_core::Date::from_days(start + rng.range(0, days - 1));
        let (amount, quantity) = if c == labor {
            let heads = rng.range(1, 400);
            (heads * rng.range(400_000, 520_000), Some(Q::int(heads as u128)))
        } else {
            (rng.range(1_000, 900_000_000), None)
        };
        lines.push(costshare_core::CostLine {
            id: format!("L{i:07}"),
            date,
            category: c,
            amount,
            source_amount: amount,
            currency: ag.currency.code().to_string(),
            rate: None,
            quantity,
            site: String::new(),
            description: String::new(),
            row: i + 2,
            replaces: None,
            paid_by: None,
        });
    }
    Some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_loads_without_error() {
        for (name, text) in agreements::ALL {
            let loaded = costshare_core::load(text);
            assert!(loaded.agreement.is_some(), "{name}: {:?}", loaded.diagnostics);
        }
    }

    #[test]
    fn deterministic() {
        let a = generate(7);
        let b = generate(7);
        assert_eq!(a.costs_csv, b.costs_csv);
        assert_ne!(a.costs_csv, generate(8).costs_csv);
        assert_eq!(a.costs_csv.lines().count(), a.lines + 1);
    }
}
