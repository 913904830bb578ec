//! Outside oracle: costshare's per-party, per-category totals checked against two
//! independent double-entry tools, `hledger` and `ledger` (Debian packages).
//!
//! A seeded generator (splitmix64, no crates) writes an agreement with 2–3 parties and
//! 3–4 categories, each a single uncapped layer with a fixed percentage split, in USD,
//! plus ~2,000 cost lines. The same costs are written as an hledger journal (auto
//! postings `= ^expenses:CAT$` with `(alloc:CAT:PARTY)  *0.6100` multipliers, run with
//! `--auto`) and a ledger journal (automated transactions `= /^expenses:CAT$/` with
//! `(alloc:CAT:PARTY)  0.6100`). Each tool sums the `alloc:CAT:PARTY` accounts and we
//! compare with `costshare report --by party,category --format csv`.
//!
//! Why the comparison is exact. costshare rounds every line to cents by largest
//! remainder; hledger and ledger never round a posting (they keep full decimal precision
//! and round only for display, and both journals declare a display precision of six
//! decimals, enough for cents times shares of 1/10000). Per-line rounding therefore
//! differs between the tools in general. In the main test every line's amount (in cents)
//! is a multiple of its category's *grain*: the least g such that g·k/10000 is a whole
//! number for every share k/10000 of that category (61%/39% → g = 100 cents,
//! 33.33%/33.33%/33.34% → g = 10000 cents, 50%/50% → g = 2 cents). Every line then splits
//! exactly into cents, largest remainder has nothing to distribute, and the tools'
//! unrounded sums are whole cents: costshare must equal both tools to the cent. The
//! oracle output is parsed at its full six decimals and any non-zero sub-cent digit is a
//! failure, so display rounding cannot hide a difference.
//!
//! A second test uses arbitrary cent amounts. There the oracle totals are the exact
//! unrounded sums Σ a·s; the exact assertion is that each category's parties add up to
//! the oracle's category total, and each party's total differs from its unrounded sum by
//! less than one cent per line (what per-line rounding can move).
//!
//! `COSTSHARE_ORACLE_EXTRA_SEEDS=N` adds N more seeds to each test (soak runs).
//!
//! Missing tools: with `COSTSHARE_REQUIRE_ORACLES=1` (CI) the test fails; otherwise it
//! prints `SKIPPED: ... not installed` to stderr and passes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

// ---------------------------------------------------------------- generator

/// splitmix64 (Steele, Lea, Flood 2014).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// Shares are in units of 1/10000 (a percentage with two decimals: 6137 = 61.37%).
const ONE: u64 = 10_000;

struct Category {
    id: String,
    /// One share per party, in party order, summing to `ONE`.
    shares: Vec<u64>,
    /// Every amount (cents) that is a multiple of this splits exactly into cents.
    grain: i64,
}

struct Line {
    id: String,
    date: String,
    cat: usize,
    cents: i64,
    amount_text: String,
    currency: &'static str,
    description: String,
}

struct Scenario {
    seed: u64,
    fy_start: &'static str,
    parties: Vec<String>,
    categories: Vec<Category>,
    lines: Vec<Line>,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn grain(shares: &[u64]) -> i64 {
    shares.iter().fold(1u64, |g, &k| {
        let need = ONE / gcd(k, ONE);
        g / gcd(g, need) * need
    }) as i64
}

fn percent_text(k: u64) -> String {
    let (int, frac) = (k / 100, k % 100);
    match frac {
        0 => format!("{int}%"),
        f if f % 10 == 0 => format!("{int}.{}%", f / 10),
        f => format!("{int}.{f:02}%"),
    }
}

/// `k/10000` as a plain decimal for the journals' multipliers: 6100 → `0.6100`.
fn multiplier_text(k: u64) -> String {
    format!("{}.{:04}", k / ONE, k % ONE)
}

fn dollars(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn gen_shares(rng: &mut SplitMix64, n: usize) -> Vec<u64> {
    const TWO: &[[u64; 2]] = &[
        [6100, 3900],
        [5000, 5000],
        [2500, 7500],
        [3750, 6250],
        [10000, 0],
        [9999, 1],
    ];
    const THREE: &[[u64; 3]] = &[
        [3333, 3333, 3334],
        [5000, 2500, 2500],
        [4000, 3500, 2500],
        [0, 5000, 5000],
        [1, 1, 9998],
    ];
    if rng.below(2) == 0 {
        return if n == 2 {
            rng.pick(TWO).to_vec()
        } else {
            rng.pick(THREE).to_vec()
        };
    }
    // Random two-decimal percentages adding to exactly 100%.
    let mut v = Vec::with_capacity(n);
    let mut left = ONE;
    for _ in 0..n - 1 {
        let k = rng.below(left + 1);
        v.push(k);
        left -= k;
    }
    v.push(left);
    // Do not always leave the last party the remainder.
    let r = rng.below(n as u64) as usize;
    v.rotate_left(r);
    v
}

/// `exact`: every amount a multiple of its category's grain (see the module comment).
fn generate(seed: u64, exact: bool) -> Scenario {
    let mut rng = SplitMix64(seed);
    let n_parties = 2 + rng.below(2) as usize;
    let parties: Vec<String> = ["JP", "US", "party_3-x"][..n_parties]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let n_cats = 3 + rng.below(2) as usize;
    // Names chosen so that a careless (unanchored) regex would cross-match:
    // `labor` is a prefix of `labor2`.
    let cat_names = ["utilities", "labor", "labor2", "training-equip_2022"];
    let categories: Vec<Category> = cat_names[..n_cats]
        .iter()
        .map(|name| {
            let shares = gen_shares(&mut rng, n_parties);
            assert_eq!(shares.iter().sum::<u64>(), ONE);
            let grain = grain(&shares);
            Category {
                id: name.to_string(),
                shares,
                grain,
            }
        })
        .collect();

    let fy_start = *rng.pick(&["01-01", "04-01", "10-01"]);
    let n_lines = 1900 + rng.below(201) as usize;
    let mut lines = Vec::with_capacity(n_lines);
    for i in 0..n_lines {
        let cat = rng.below(n_cats as u64) as usize;
        let cents: i64 = if rng.below(100) == 0 {
            0 // a zero line takes no part
        } else if exact {
            let g = categories[cat].grain;
            // Up to about $1,000,000 per line.
            let m = 1 + rng.below((100_000_000 / g).max(1) as u64) as i64;
            g * m
        } else {
            match rng.below(3) {
                0 => 1 + rng.below(100) as i64,
                1 => 1 + rng.below(100_000) as i64,
                _ => 1 + rng.below(100_000_000) as i64,
            }
        };
        // Any valid way of writing the amount (spec §2): `12.50`, `12.5`, `12`.
        let amount_text = match rng.below(3) {
            1 if cents % 10 == 0 => format!("{}.{}", cents / 100, (cents % 100) / 10),
            2 if cents % 100 == 0 => format!("{}", cents / 100),
            _ => dollars(cents),
        };
        let date = format!(
            "{}-{:02}-{:02}",
            2022 + rng.below(5),
            1 + rng.below(12),
            1 + rng.below(28)
        );
        let currency = if rng.below(2) == 0 { "USD" } else { "" };
        let description = format!("item {i}, batch {}", rng.below(1000));
        lines.push(Line {
            id: format!("L-{seed:x}-{i:05}"),
            date,
            cat,
            cents,
            amount_text,
            currency,
            description,
        });
    }
    Scenario {
        seed,
        fy_start,
        parties,
        categories,
        lines,
    }
}

// ---------------------------------------------------------------- file writers

fn agreement_toml(s: &Scenario) -> String {
    let mut t = String::new();
    t.push_str("[agreement]\n");
    t.push_str(&format!("id = \"oracle-{:x}\"\n", s.seed));
    t.push_str("title = \"Outside-oracle test agreement\"\n");
    t.push_str("currency = \"USD\"\n");
    t.push_str("start = \"2022-01-01\"\nend = \"2026-12-31\"\n");
    t.push_str(&format!("fiscal_year_start = \"{}\"\n\n", s.fy_start));
    for p in &s.parties {
        t.push_str(&format!("[parties.{p}]\nname = \"Party {p}\"\n"));
    }
    for c in &s.categories {
        let split: Vec<String> = s
            .parties
            .iter()
            .zip(&c.shares)
            .map(|(p, &k)| format!("{p} = \"{}\"", percent_text(k)))
            .collect();
        t.push_str(&format!(
            "\n[categories.{id}]\nname = \"Category {id}\"\n  [[categories.{id}.layers]]\n  split = {{ {} }}\n",
            split.join(", "),
            id = c.id
        ));
    }
    t
}

fn costs_csv(s: &Scenario) -> String {
    let mut t = String::from("id,date,category,amount,currency,description\n");
    for l in &s.lines {
        t.push_str(&format!(
            "{},{},{},{},{},\"{}\"\n",
            l.id, l.date, s.categories[l.cat].id, l.amount_text, l.currency, l.description
        ));
    }
    t
}

fn transactions(s: &Scenario, t: &mut String) {
    for l in &s.lines {
        t.push_str(&format!(
            "\n{} {}\n    expenses:{}    {} USD\n    funding\n",
            l.date,
            l.id,
            s.categories[l.cat].id,
            dollars(l.cents)
        ));
    }
}

fn hledger_journal(s: &Scenario) -> String {
    // Six display decimals: never round what the tool computed (cents × 1/10000).
    let mut t = String::from("commodity 1000.000000 USD\n");
    for c in &s.categories {
        t.push_str(&format!("\n= ^expenses:{}$\n", c.id));
        for (p, &k) in s.parties.iter().zip(&c.shares) {
            t.push_str(&format!("    (alloc:{}:{p})    *{}\n", c.id, multiplier_text(k)));
        }
    }
    transactions(s, &mut t);
    t
}

fn ledger_journal(s: &Scenario) -> String {
    let mut t = String::from("commodity USD\n    format 1000.000000 USD\n");
    for c in &s.categories {
        t.push_str(&format!("\n= /^expenses:{}$/\n", c.id));
        for (p, &k) in s.parties.iter().zip(&c.shares) {
            // A commodity-less amount in an automated transaction is a multiplier.
            t.push_str(&format!("    (alloc:{}:{p})    {}\n", c.id, multiplier_text(k)));
        }
    }
    transactions(s, &mut t);
    t
}

// ---------------------------------------------------------------- running and parsing

/// (party, category) → amount in micro-dollars (1e-6 USD = 1/10000 cent).
type Totals = BTreeMap<(String, String), i128>;

const MICRO_PER_CENT: i128 = 10_000;

/// Exact decimal text (optional `-`, digits, optional `.digits`) → micro-dollars.
/// More than six decimals must be zeros: nothing may be lost silently.
fn parse_micro(text: &str) -> Result<i128, String> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !ok(int) || !ok(frac) {
        return Err(format!("not a decimal: {text:?}"));
    }
    if frac.len() > 6 && frac[6..].bytes().any(|b| b != b'0') {
        return Err(format!("more than 6 significant decimals: {text:?}"));
    }
    let frac6: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    let v = int.parse::<i128>().map_err(|e| format!("{text:?}: {e}"))? * 1_000_000 + frac6.parse::<i128>().unwrap();
    Ok(if neg { -v } else { v })
}

/// `alloc:CAT:PARTY` → (PARTY, CAT).
fn alloc_key(account: &str) -> Result<(String, String), String> {
    let mut it = account.split(':');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some("alloc"), Some(c), Some(p), None) => Ok((p.to_string(), c.to_string())),
        _ => Err(format!("unexpected account {account:?}")),
    }
}

/// An amount cell of the tools' output: `753093.196100 USD` or a bare `0`.
fn parse_usd(cell: &str) -> Result<i128, String> {
    let cell = cell.trim();
    if cell.contains(',') {
        return Err(format!("several commodities in {cell:?}"));
    }
    match cell.strip_suffix("USD") {
        Some(n) => parse_micro(n),
        None if cell.trim_start_matches('-').bytes().all(|b| b == b'0' || b == b'.') => Ok(0),
        None => Err(format!("not a USD amount: {cell:?}")),
    }
}

/// `hledger balance -O csv`: `"account","balance"` then one quoted row per account.
fn parse_hledger_csv(out: &str) -> Result<Totals, String> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    // 1.25 prints `"account","balance"`; accept any further columns later
    // versions may add, reading the first (account) and last (balance) cells.
    if !header.trim().starts_with("\"account\",") {
        return Err(format!("unexpected hledger csv header {header:?}"));
    }
    let mut m = Totals::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        // Cells are quoted; account names and USD amounts hold no `","`.
        let cells: Vec<&str> = line.trim().trim_matches('"').split("\",\"").collect();
        let (acct, bal) = match cells[..] {
            [a, .., b] => (a, b),
            _ => return Err(format!("unexpected hledger row {line:?}")),
        };
        if m.insert(alloc_key(acct)?, parse_usd(bal)?).is_some() {
            return Err(format!("account listed twice: {acct}"));
        }
    }
    Ok(m)
}

/// `ledger balance --flat --no-total`: `   753093.196100 USD  alloc:c1:JP` per account.
fn parse_ledger_balance(out: &str) -> Result<Totals, String> {
    let mut m = Totals::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let tok: Vec<&str> = line.split_whitespace().collect();
        let (amount, acct) = match tok.as_slice() {
            [n, "USD", a] => (parse_micro(n)?, *a),
            [z, a] if z.trim_start_matches('-').bytes().all(|b| b == b'0' || b == b'.') => (0, *a),
            _ => return Err(format!("unexpected ledger row {line:?}")),
        };
        if m.insert(alloc_key(acct)?, amount).is_some() {
            return Err(format!("account listed twice: {acct}"));
        }
    }
    Ok(m)
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} exited {:?}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{cmd:?}: output not UTF-8: {e}"))
}

#[derive(Clone, Copy, PartialEq)]
enum Oracle {
    Hledger,
    Ledger,
}

impl Oracle {
    fn name(self) -> &'static str {
        match self {
            Oracle::Hledger => "hledger",
            Oracle::Ledger => "ledger",
        }
    }

    fn version(self) -> Option<String> {
        let out = Command::new(self.name()).arg("--version").output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Some(text.lines().next().unwrap_or_default().trim().to_string())
    }

    fn totals(self, s: &Scenario, dir: &Path) -> Result<Totals, String> {
        match self {
            Oracle::Hledger => {
                let j = dir.join("hledger.journal");
                std::fs::write(&j, hledger_journal(s)).unwrap();
                let out = run(Command::new("hledger")
                    .env_remove("LEDGER_FILE")
                    .arg("-f")
                    .arg(&j)
                    .args(["--auto", "balance", "^alloc:", "--flat", "--no-total"])
                    .args(["-O", "csv"]))?;
                parse_hledger_csv(&out).map_err(|e| format!("hledger: {e}\n{out}"))
            }
            Oracle::Ledger => {
                let j = dir.join("ledger.journal");
                std::fs::write(&j, ledger_journal(s)).unwrap();
                let out = run(Command::new("ledger")
                    .env_remove("LEDGER_FILE")
                    .args(["--init-file", "/dev/null", "-f"])
                    .arg(&j)
                    .args(["balance", "--flat", "--no-total", "^alloc:"]))?;
                parse_ledger_balance(&out).map_err(|e| format!("ledger: {e}\n{out}"))
            }
        }
    }
}

/// The oracles present on this machine. A missing one fails the test under
/// `COSTSHARE_REQUIRE_ORACLES=1`, and is otherwise skipped loudly.
fn available_oracles() -> Vec<Oracle> {
    let require = std::env::var("COSTSHARE_REQUIRE_ORACLES").is_ok_and(|v| v.trim() == "1");
    let mut v = Vec::new();
    for o in [Oracle::Hledger, Oracle::Ledger] {
        match o.version() {
            Some(ver) => {
                eprintln!("outside oracle: using {ver}");
                v.push(o);
            }
            None if require => panic!(
                "COSTSHARE_REQUIRE_ORACLES=1 but `{0}` is not installed or does not run \
                 (apt-get install {0})",
                o.name()
            ),
            None => {
                // Straight to fd 2, not `eprintln!`: libtest captures the macros'
                // output of passing tests, and a skip must be seen.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n********************************************************************\n\
                     SKIPPED: {0} not installed (apt-get install {0})\n\
                     ********************************************************************",
                    o.name()
                );
            }
        }
    }
    v
}

fn scratch_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("costshare-outside-oracle-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// costshare's report (per party and category, micro-dollars), with its own
/// contract checked on the way: header, exact two decimals, row order, no
/// UNALLOCATED (nothing is capped), and agreement with `allocate`.
fn costshare_totals(s: &Scenario, dir: &Path) -> Result<Totals, String> {
    let agreement = dir.join("agreement.toml");
    let costs = dir.join("costs.csv");
    std::fs::write(&agreement, agreement_toml(s)).unwrap();
    std::fs::write(&costs, costs_csv(s)).unwrap();
    let bin = env!("CARGO_BIN_EXE_costshare");
    let common = |sub: &str| {
        let mut c = Command::new(bin);
        c.arg(sub).arg("--agreement").arg(&agreement).arg("--costs").arg(&costs);
        c
    };
    let cents = |text: &str| -> Result<i128, String> {
        match text.split_once('.') {
            Some((_, f)) if f.len() == 2 => parse_micro(text),
            _ => Err(format!("amount {text:?} does not have exactly 2 decimals")),
        }
    };

    let report = run(common("report").args(["--by", "party,category", "--format", "csv"]))?;
    let mut lines = report.lines();
    if lines.next() != Some("party,category,amount") {
        return Err(format!("report header wrong:\n{report}"));
    }
    let mut totals = Totals::new();
    let mut last: Option<(usize, String)> = None;
    for row in lines {
        let f: Vec<&str> = row.split(',').collect();
        let [party, cat, amount] = f[..] else {
            return Err(format!("report row {row:?}"));
        };
        let pi = s
            .parties
            .iter()
            .position(|p| p == party)
            .ok_or_else(|| format!("report row for unexpected party {row:?}"))?;
        let key = (pi, cat.to_string());
        if last.as_ref().is_some_and(|l| *l >= key) {
            return Err(format!("report rows out of order at {row:?}"));
        }
        last = Some(key);
        let v = cents(amount)?;
        if v == 0 {
            return Err(format!("zero row in report: {row:?}"));
        }
        totals.insert((party.to_string(), cat.to_string()), v);
    }

    // `allocate` summed per (party, category) must give the same table.
    let cat_of: BTreeMap<&str, &str> = s
        .lines
        .iter()
        .map(|l| (l.id.as_str(), s.categories[l.cat].id.as_str()))
        .collect();
    let alloc = run(common("allocate").args(["--format", "csv"]))?;
    let mut lines = alloc.lines();
    if lines.next() != Some("id,party,amount") {
        return Err(format!("allocate header wrong:\n{alloc}"));
    }
    let mut from_alloc = Totals::new();
    for row in lines {
        let f: Vec<&str> = row.split(',').collect();
        let [id, party, amount] = f[..] else {
            return Err(format!("allocate row {row:?}"));
        };
        let cat = cat_of
            .get(id)
            .ok_or_else(|| format!("allocate row for unknown id {row:?}"))?;
        *from_alloc.entry((party.to_string(), cat.to_string())).or_default() += cents(amount)?;
    }
    if from_alloc != totals {
        return Err(format!(
            "allocate summed per (party, category) differs from report:\nallocate {from_alloc:?}\nreport   {totals:?}"
        ));
    }
    Ok(totals)
}

fn describe(s: &Scenario) -> String {
    let mut t = format!(
        "seed {:#x}: {} parties {:?}, {} lines, fiscal_year_start {}",
        s.seed,
        s.parties.len(),
        s.parties,
        s.lines.len(),
        s.fy_start
    );
    for c in &s.categories {
        let sh: Vec<String> = c.shares.iter().map(|&k| percent_text(k)).collect();
        t.push_str(&format!("\n  {}: {} (grain {} cents)", c.id, sh.join("/"), c.grain));
    }
    t
}

fn get(m: &Totals, p: &str, c: &str) -> i128 {
    m.get(&(p.to_string(), c.to_string())).copied().unwrap_or(0)
}

/// Compare one scenario against every available oracle. On failure the inputs are
/// kept and the message names their directory.
fn check_scenario(seed: u64, exact: bool, oracles: &[Oracle]) {
    let s = generate(seed, exact);
    let dir = scratch_dir(if exact { "exact" } else { "free" });
    let mut log = describe(&s);
    let mut failures: Vec<String> = Vec::new();

    let t0 = Instant::now();
    let ours = match costshare_totals(&s, &dir) {
        Ok(t) => t,
        Err(e) => panic!(
            "costshare failed on {}:\n{e}\ninputs kept in {}",
            describe(&s),
            dir.display()
        ),
    };
    log.push_str(&format!("\n  costshare: {:?}", t0.elapsed()));

    // Line counts and exact totals per category, from the generator itself.
    let mut n_lines: BTreeMap<&str, i128> = BTreeMap::new();
    let mut cat_total: BTreeMap<&str, i128> = BTreeMap::new();
    for l in &s.lines {
        let c = s.categories[l.cat].id.as_str();
        *n_lines.entry(c).or_default() += i128::from(l.cents != 0);
        *cat_total.entry(c).or_default() += i128::from(l.cents) * MICRO_PER_CENT;
    }

    for &o in oracles {
        let t0 = Instant::now();
        let theirs = match o.totals(&s, &dir) {
            Ok(t) => t,
            Err(e) => panic!(
                "{} failed on {}:\n{e}\ninputs kept in {}",
                o.name(),
                describe(&s),
                dir.display()
            ),
        };
        log.push_str(&format!("\n  {}: {:?}", o.name(), t0.elapsed()));
        for key in theirs.keys() {
            if !s.parties.contains(&key.0) || !s.categories.iter().any(|c| c.id == key.1) {
                failures.push(format!("{} reports unexpected account {key:?}", o.name()));
            }
        }
        for c in &s.categories {
            let mut sum_theirs = 0;
            let mut sum_ours = 0;
            for p in &s.parties {
                let (a, b) = (get(&ours, p, &c.id), get(&theirs, p, &c.id));
                sum_ours += a;
                sum_theirs += b;
                if exact {
                    if b % MICRO_PER_CENT != 0 {
                        failures.push(format!(
                            "{}: {p}/{}: oracle total {b} µ$ is not whole cents (generator bug)",
                            o.name(),
                            c.id
                        ));
                    }
                    if a != b {
                        failures.push(format!(
                            "{p}/{}: costshare {} ≠ {} {}",
                            c.id,
                            a as f64 / 1e6,
                            o.name(),
                            b as f64 / 1e6
                        ));
                    }
                } else {
                    // Largest remainder moves each line's part by less than one cent.
                    let bound = n_lines[c.id.as_str()] * MICRO_PER_CENT;
                    if (a - b).abs() >= bound.max(1) && a != b {
                        failures.push(format!(
                            "{p}/{}: costshare {a} µ$ vs {} unrounded {b} µ$: off by ≥ one cent per line ({} lines)",
                            c.id,
                            o.name(),
                            n_lines[c.id.as_str()]
                        ));
                    }
                }
            }
            let want = cat_total.get(c.id.as_str()).copied().unwrap_or(0);
            if sum_ours != want || sum_theirs != want {
                failures.push(format!(
                    "{}: category total: costshare {sum_ours} µ$, {} {sum_theirs} µ$, input {want} µ$",
                    c.id,
                    o.name()
                ));
            }
        }
    }

    eprintln!("{log}");
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        panic!(
            "outside oracle disagrees with costshare on {}\n{}\ninputs kept in {}",
            describe(&s),
            failures.join("\n"),
            dir.display()
        );
    }
}

// ---------------------------------------------------------------- tests

/// `COSTSHARE_ORACLE_EXTRA_SEEDS=N` runs N more scenarios (for soak runs).
fn extra_seeds(base: u64) -> impl Iterator<Item = u64> {
    let n = std::env::var("COSTSHARE_ORACLE_EXTRA_SEEDS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    (1..=n).map(move |i| base + i)
}

/// Main check: every line splits exactly into cents, so costshare's per-party,
/// per-category totals must equal hledger's and ledger's to the cent.
#[test]
fn per_party_category_totals_equal_hledger_and_ledger() {
    let oracles = available_oracles();
    if oracles.is_empty() {
        return;
    }
    let t0 = Instant::now();
    let fixed = [0x5EED_0001_u64, 0x5EED_0002, 0x5EED_0003, 0xC0FF_EE00];
    for seed in fixed.into_iter().chain(extra_seeds(0xE7_0000)) {
        check_scenario(seed, true, &oracles);
    }
    eprintln!("outside oracle (exact): {:?}", t0.elapsed());
}

/// Arbitrary cents: the category totals are exact, and each party's rounded total is
/// within one cent per line of the tools' unrounded sum.
#[test]
fn arbitrary_cents_stay_within_rounding_of_unrounded_sums() {
    let oracles = available_oracles();
    if oracles.is_empty() {
        return;
    }
    let t0 = Instant::now();
    for seed in [0xF4EE_0001_u64, 0xF4EE_0002].into_iter().chain(extra_seeds(0xF4_0000)) {
        check_scenario(seed, false, &oracles);
    }
    eprintln!("outside oracle (free): {:?}", t0.elapsed());
}

#[test]
fn generator_sanity() {
    assert_eq!(grain(&[6100, 3900]), 100);
    assert_eq!(grain(&[3333, 3333, 3334]), 10_000);
    assert_eq!(grain(&[5000, 5000]), 2);
    assert_eq!(grain(&[10000, 0]), 1);
    assert_eq!(percent_text(6100), "61%");
    assert_eq!(percent_text(1250), "12.5%");
    assert_eq!(percent_text(3333), "33.33%");
    assert_eq!(percent_text(0), "0%");
    assert_eq!(multiplier_text(6100), "0.6100");
    assert_eq!(multiplier_text(10000), "1.0000");
    assert_eq!(parse_micro("753093.196100").unwrap(), 753_093_196_100);
    assert_eq!(parse_micro("0.0061").unwrap(), 6_100);
    assert!(parse_micro("1.0000001").is_err());
    assert_eq!(parse_usd("0").unwrap(), 0);
    assert_eq!(parse_usd("-12.50 USD").unwrap(), -12_500_000);
    // Same seed, same scenario.
    let (a, b) = (generate(7, true), generate(7, true));
    assert_eq!(costs_csv(&a), costs_csv(&b));
    assert_eq!(agreement_toml(&a), agreement_toml(&b));
    for l in &a.lines {
        assert_eq!(l.cents % a.categories[l.cat].grain, 0);
    }
}
