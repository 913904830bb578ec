//! Property tests: random agreements and cost lines, checked against the
//! literal reference allocator and against the invariants of SPEC section 4.

use costshare_core::agreement::{Agreement, Cap};
use costshare_core::alloc::{self, CapAmount};
use costshare_core::calendar::{Date, Period};
use costshare_core::costs::{CostLine, Rates, parse_costs};
use costshare_core::explain;
use costshare_core::load;
use costshare_core::num::{BigRational, Q};
use costshare_core::reference::{self, CapTrace};
use costshare_demo::Rng;
use num_bigint::BigInt;
use proptest::prelude::*;
use std::fmt::Write;

/// A random but valid agreement as TOML text, and matching costs CSV.
struct Case {
    toml: String,
    csv: String,
}

fn pct_split(rng: &mut Rng, n: usize, fine: bool) -> Vec<String> {
    // n shares adding to exactly 100%, in hundredths (or 1e-4 %) of a percent
    let total: i64 = if fine { 1_000_000 } else { 10_000 };
    let mut cuts: Vec<i64> = (0..n - 1).map(|_| rng.range(0, total)).collect();
    cuts.sort();
    let mut prev = 0;
    let mut out = Vec::new();
    for c in cuts.into_iter().chain(std::iter::once(total)) {
        let v = c - prev;
        prev = c;
        out.push(if fine {
            format!("{}.{:04}%", v / 10_000, v % 10_000)
        } else {
            format!("{}.{:02}%", v / 100, v % 100)
        });
    }
    out
}

fn gen_case(seed: u64) -> Case {
    let mut rng = Rng::new(seed);
    let ccy = if rng.range(0, 1) == 0 {
        ("JPY", 0u32)
    } else {
        ("USD", 2u32)
    };
    let start_y = rng.range(2019, 2023) as i32;
    let start_m = rng.range(1, 12) as u8;
    let start_d = rng.range(1, 28) as u8;
    let start = Date::new(start_y, start_m, start_d).unwrap();
    let days = rng.range(200, 1100);
    let end = Date::from_days(start.to_days() + days);
    let fy_m = rng.range(1, 12);
    let label = if rng.range(0, 1) == 0 { "start" } else { "end" };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "[agreement]\nid = \"p{seed}\"\ntitle = \"t\"\ncurrency = \"{}\"\nstart = \"{start}\"\nend = \"{end}\"\nfiscal_year_start = \"{fy_m:02}-01\"\nfiscal_year_label = \"{label}\"\n",
        ccy.0
    );
    let np = rng.range(1, 4) as usize;
    let parties: Vec<String> = (0..np).map(|i| format!("P{i}")).collect();
    for p in &parties {
        let _ = writeln!(t, "[parties.{p}]\nname = \"{p}\"");
    }
    // fiscal years of the term
    let cal = costshare_core::calendar::FiscalCalendar {
        start_month: fy_m as u8,
        label: if label == "start" {
            costshare_core::calendar::FyLabel::Start
        } else {
            costshare_core::calendar::FyLabel::End
        },
    };
    let fys: Vec<i32> = (cal.fy_of(start)..=cal.fy_of(end)).collect();
    // a key
    let has_key = rng.range(0, 2) == 0;
    if has_key {
        let w: Vec<String> = parties
            .iter()
            .map(|p| format!("{p} = \"{}.{}\"", rng.range(0, 500), rng.range(0, 99)))
            .collect();
        let _ = writeln!(t, "[keys.k]\nweights = {{ {} }}", w.join(", "));
        // a ceiling on the first party when there are others to take the rest
        if np > 1 {
            let _ = writeln!(t, "max = {{ P0 = \"{}%\" }}", rng.range(10, 60));
        }
        if np > 2 {
            let _ = writeln!(t, "min = {{ P1 = \"{}%\" }}", rng.range(0, 20));
        }
        // all-zero weights would be infeasible: add weight to the last party
        t = t.replace(
            &format!("{} = \"0.0\"", parties[np - 1]),
            &format!("{} = \"1.0\"", parties[np - 1]),
        );
    }
    let nc = rng.range(1, 3);
    let mut cats = Vec::new();
    for c in 0..nc {
        let unit = rng.range(0, 1) == 0;
        let id = format!("c{c}");
        let _ = writeln!(t, "\n[categories.{id}]\nname = \"{id}\"");
        if unit {
            let _ = writeln!(t, "unit = \"worker\"");
        }
        let nl = rng.range(1, 4);
        for _ in 0..nl {
            let _ = writeln!(t, "  [[categories.{id}.layers]]");
            // split
            let kind = rng.range(0, 9);
            if has_key && kind < 2 {
                let _ = writeln!(t, "  split = {{ key = \"k\" }}");
            } else if kind < 4 && fys.len() > 1 {
                // per-party schedules
                let per_fy: Vec<Vec<String>> = fys.iter().map(|_| pct_split(&mut rng, np, false)).collect();
                let entries: Vec<String> = parties
                    .iter()
                    .enumerate()
                    .map(|(pi, p)| {
                        let s: Vec<String> = fys
                            .iter()
                            .enumerate()
                            .map(|(fi, fy)| format!("FY{fy} = \"{}\"", per_fy[fi][pi]))
                            .collect();
                        format!("{p} = {{ {} }}", s.join(", "))
                    })
                    .collect();
                let _ = writeln!(t, "  split = {{ {} }}", entries.join(", "));
            } else {
                let fine = kind == 8;
                let s = pct_split(&mut rng, np, fine);
                let entries: Vec<String> = parties.iter().zip(&s).map(|(p, v)| format!("{p} = \"{v}\"")).collect();
                let _ = writeln!(t, "  split = {{ {} }}", entries.join(", "));
            }
            let period = ["month", "quarter", "fiscal_year", "term"][rng.range(0, 3) as usize];
            let policy = if rng.range(0, 1) == 0 { "running" } else { "pro_rata" };
            let cap_kind = rng.range(0, 3);
            let scale = 10i64.pow(ccy.1);
            match cap_kind {
                1 => {
                    let cap = rng.range(0, 3000) * scale / if rng.range(0, 1) == 0 { 1 } else { 7 };
                    if period != "term" && rng.range(0, 1) == 0 {
                        let s: Vec<String> = fys
                            .iter()
                            .map(|fy| format!("FY{fy} = \"{}\"", cap + rng.range(0, 500) * scale))
                            .collect();
                        let _ = writeln!(t, "  cap = {{ {} }}", s.join(", "));
                    } else {
                        let _ = writeln!(t, "  cap = {cap}");
                    }
                    let _ = writeln!(t, "  period = \"{period}\"\n  cap_policy = \"{policy}\"");
                }
                2 if unit => {
                    let _ = writeln!(t, "  cap_units = \"{}.{}\"", rng.range(0, 40), rng.range(0, 9));
                    let _ = writeln!(t, "  period = \"{period}\"\n  cap_policy = \"{policy}\"");
                }
                _ => {}
            }
            if cap_kind != 2 && rng.range(0, 3) == 0 {
                let _ = writeln!(t, "  portion = \"{}.{}%\"", rng.range(0, 100), rng.range(0, 9));
            }
        }
        cats.push((id, unit));
    }
    let t = fix_portions(&t);
    // costs
    let mut c = String::from("id,date,category,amount,quantity,site\n");
    let n = rng.range(1, 60);
    for i in 0..n {
        let d = Date::from_days(start.to_days() + rng.range(0, days));
        let (cid, unit) = &cats[rng.range(0, cats.len() as i64 - 1) as usize];
        let amt = match rng.range(0, 9) {
            0 => 0,
            1 => rng.range(1, 3),
            2 => rng.range(1_000_000_000, 9_000_000_000_000),
            _ => rng.range(1, 2000),
        };
        let amount = if ccy.1 == 0 {
            amt.to_string()
        } else {
            format!("{}.{:02}", amt / 100, amt % 100)
        };
        let q = if *unit {
            format!("{}.{}", rng.range(0, 12), rng.range(1, 9))
        } else {
            String::new()
        };
        let site = ["", "A", "B"][rng.range(0, 2) as usize];
        let _ = writeln!(c, "l{i:03}-{},{d},{cid},{amount},{q},{site}", rng.range(0, 9));
    }
    Case { toml: t, csv: c }
}

/// Portions above 100% (from the generator's random digits) are clamped.
fn fix_portions(t: &str) -> String {
    t.lines()
        .map(|l| {
            if let Some(rest) = l.trim_start().strip_prefix("portion = \"")
                && let Some(num) = rest.strip_suffix("%\"")
                && num.split('.').next().and_then(|i| i.parse::<u32>().ok()).unwrap_or(0) >= 100
            {
                return "  portion = \"100%\"".to_string();
            }
            l.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn load_case(c: &Case) -> (Agreement, Vec<CostLine>) {
    let loaded = load::load(&c.toml);
    let ag = loaded
        .agreement
        .unwrap_or_else(|| panic!("generated agreement invalid: {:?}\n{}", loaded.diagnostics, c.toml));
    let costs = parse_costs(&ag, c.csv.as_bytes(), &Rates::empty())
        .unwrap_or_else(|e| panic!("generated costs invalid: {e:?}\n{}", c.csv));
    (ag, costs.lines)
}

fn as_of() -> Date {
    Date::new(2022, 6, 30).unwrap()
}

/// What a case exercised, so the generator cannot quietly degenerate.
#[derive(Default, Debug)]
struct Seen {
    running_money_bound: usize,
    running_units_partial: usize,
    pro_rata_money_bound: usize,
    pro_rata_units_bound: usize,
    portions: usize,
    unallocated: usize,
    split_rounding: usize,
}

fn check_case(seed: u64) -> Seen {
    let mut seen = Seen::default();
    let case = gen_case(seed);
    let (ag, lines) = load_case(&case);
    let fast = alloc::allocate(&ag, &lines, as_of());
    let (slow, traces) = reference::allocate(&ag, &lines, as_of());
    // 1. the fast engine agrees with the literal reference, bit for bit
    assert_eq!(fast.order, slow.order, "seed {seed}");
    assert_eq!(fast.amounts, slow.amounts, "seed {seed}\n{}\n{}", case.toml, case.csv);
    assert_eq!(fast.provisional, slow.provisional, "seed {seed}");
    assert_eq!(fast.open_until, slow.open_until, "seed {seed}");
    // on several threads, whole categories each: the same allocation
    for threads in [1, 2, 3] {
        let par = alloc::allocate_lines_par(&ag, lines.as_slice(), as_of(), threads);
        assert_eq!(par, fast, "seed {seed}: allocation on {threads} threads differs");
    }
    // 2. parts add up to the whole, and nothing is negative
    for (i, l) in lines.iter().enumerate() {
        let row = fast.row(i);
        assert!(row.iter().all(|&v| v >= 0), "seed {seed}: negative part");
        assert_eq!(
            row.iter().sum::<i64>(),
            l.amount,
            "seed {seed}: line {} does not add up",
            l.id
        );
    }
    // 3. no cap is ever exceeded
    for u in &fast.usage {
        match &u.cap {
            CapAmount::Money(c) => assert!(u.used_money <= *c, "seed {seed}: money cap exceeded"),
            CapAmount::Units(c) => assert!(u.used_units.as_ref().unwrap() <= c, "seed {seed}: unit cap exceeded"),
        }
    }
    // money caps, summed from the reference traces independently
    let mut per_period: std::collections::HashMap<(usize, usize, Period), i64> = Default::default();
    for (i, tr) in traces.iter().enumerate() {
        for t in tr {
            if let Some(p) = t.period {
                *per_period.entry((lines[i].category, t.layer, p)).or_default() += t.take;
            }
        }
    }
    for ((c, l, p), used) in per_period {
        if let Some(Cap::Money(m)) = &ag.categories[c].layers[l].cap {
            let fy = p.fy(&ag.calendar).map(|f| (f - ag.first_fy) as usize).unwrap_or(0);
            assert!(used <= *m.get(fy), "seed {seed}: {used} taken in {p:?} over its cap");
        }
    }
    // 4. pro rata: every line of a period keeps the same fraction within one unit
    for tr in &traces {
        for t in tr {
            let f = match &t.cap {
                Some(CapTrace::ProRataMoney { fraction, .. }) | Some(CapTrace::ProRataUnits { fraction, .. }) => {
                    fraction
                }
                _ => continue,
            };
            let exact = BigRational::from_int(t.offered).mul(f);
            let diff = BigRational::from_int(t.take).sub(&exact);
            let one = BigRational::one();
            assert!(
                diff < one && diff > BigRational::from_int(-1),
                "seed {seed}: pro-rata take {} strays from {}",
                t.take,
                costshare_core::num::fmt_ratio(&exact, 4)
            );
        }
    }
    for tr in &traces {
        for t in tr {
            match &t.cap {
                Some(CapTrace::RunningMoney { left_after: 0, .. }) if t.take < t.offered => {
                    seen.running_money_bound += 1
                }
                Some(CapTrace::RunningUnits {
                    units_taken, quantity, ..
                }) if units_taken < quantity && t.take > 0 => seen.running_units_partial += 1,
                Some(CapTrace::ProRataMoney { fraction, .. }) if *fraction < BigRational::one() => {
                    seen.pro_rata_money_bound += 1
                }
                Some(CapTrace::ProRataUnits { fraction, .. }) if *fraction < BigRational::one() => {
                    seen.pro_rata_units_bound += 1
                }
                _ => {}
            }
            if t.portion.is_some() && t.offered > 0 {
                seen.portions += 1;
            }
            if !t.rounding_units.is_empty() {
                seen.split_rounding += 1;
            }
        }
    }
    seen.unallocated = (0..lines.len()).filter(|&i| fast.row(i)[ag.parties.len()] > 0).count();
    // 5. permutation: shuffled input gives the same allocation per line
    let mut rng = Rng::new(seed ^ 0xABCD);
    let mut perm: Vec<usize> = (0..lines.len()).collect();
    for i in (1..perm.len()).rev() {
        let j = rng.range(0, i as i64) as usize;
        perm.swap(i, j);
    }
    let shuffled: Vec<CostLine> = perm.iter().map(|&i| lines[i].clone()).collect();
    let again = alloc::allocate(&ag, &shuffled, as_of());
    for (k, &i) in perm.iter().enumerate() {
        assert_eq!(
            again.row(k),
            fast.row(i),
            "seed {seed}: order changed line {}",
            lines[i].id
        );
    }
    seen
}

/// Random use carried over from earlier versions (SPEC section 8) on some
/// of the case's capped layer periods: zero, a little, about the cap, past it.
fn random_carry(seed: u64, ag: &Agreement, lines: &[CostLine]) -> alloc::Carry {
    let mut rng = Rng::new(seed ^ 0x5EED_CA22);
    let mut entries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for l in lines {
        for (li, layer) in ag.categories[l.category].layers.iter().enumerate() {
            let Some(cap) = &layer.cap else { continue };
            let period = Period::of(layer.period, &ag.calendar, l.date);
            if !seen.insert((l.category, li, period)) || rng.range(0, 2) == 0 {
                continue;
            }
            let fy = alloc::cap_year(ag, period);
            let (money, units) = match cap {
                Cap::Money(m) => {
                    let c = *m.get(fy) as i128;
                    let v = match rng.range(0, 3) {
                        0 => 0,
                        1 => c * rng.range(0, 100) as i128 / 100,
                        2 => c,
                        _ => c + rng.range(1, 1000) as i128,
                    };
                    (v.min(i64::MAX as i128) as i64, Q::ZERO)
                }
                Cap::Units(u) => {
                    let c = u.get(fy).to_big();
                    let f = BigRational::new(BigInt::from(rng.range(0, 130)), BigInt::from(100));
                    (rng.range(0, 1_000_000), Q::from_big(&c.mul(&f)))
                }
            };
            entries.push(alloc::Carried {
                category: l.category,
                layer: li,
                period,
                money,
                units: units.clone(),
                from: vec![alloc::CarrySource {
                    version: 1,
                    money,
                    units,
                }],
            });
        }
    }
    alloc::Carry::new(entries)
}

fn check_tied_explanations(
    seed: u64,
    ag: &Agreement,
    lines: &[CostLine],
    carry: &alloc::Carry,
    fast: &alloc::Allocation,
    traces: &[Vec<reference::LayerTrace>],
) {
    for (i, l) in lines.iter().enumerate() {
        // the focused oracle: the line's own trace as the full run makes it
        let (tr, parts, prov) = reference::trace_line(ag, lines, i, as_of(), carry);
        assert_eq!(tr, traces[i], "seed {seed}: focused trace of {}", l.id);
        assert_eq!(parts, fast.row(i), "seed {seed}: focused parts of {}", l.id);
        assert_eq!(prov, fast.provisional[i], "seed {seed}");
        let whole = explain::explain_carried(ag, lines, i, as_of(), carry);
        let (lo, hi) = alloc::tied_range(ag, l.category, l.date);
        let tied: Vec<CostLine> = lines
            .iter()
            .filter(|t| t.category == l.category && t.date >= lo && t.date <= hi)
            .cloned()
            .collect();
        let pos = tied.iter().position(|t| t.id == l.id).unwrap();
        let part = explain::explain_carried(ag, &tied, pos, as_of(), carry);
        assert_eq!(
            part.layers, whole.layers,
            "seed {seed}: trace of {} over its tied lines",
            l.id
        );
        assert_eq!(part.parts, whole.parts, "seed {seed}");
        assert_eq!(part.provisional, whole.provisional, "seed {seed}");
        assert_eq!(part.line, whole.line, "seed {seed}");
        let engine = alloc::allocate_carried(ag, tied.as_slice(), as_of(), carry);
        assert_eq!(
            engine.row(pos),
            fast.row(i),
            "seed {seed}: engine row of {} over its tied lines",
            l.id
        );
        if ag.categories[l.category].layers.iter().all(|x| x.cap.is_none()) {
            assert_eq!(
                (lo, hi),
                (l.date, l.date),
                "seed {seed}: an uncapped category ties a line to its date"
            );
        }
    }
}

/// With random carried use: the fast engine equals the literal reference,
/// and no cap takes more than it has left after the carried use.
fn check_carry(seed: u64) -> usize {
    let case = gen_case(seed);
    let (ag, lines) = load_case(&case);
    let carry = random_carry(seed, &ag, &lines);
    let fast = alloc::allocate_carried(&ag, lines.as_slice(), as_of(), &carry);
    let (slow, traces) = reference::allocate_carried(&ag, &lines, as_of(), &carry);
    assert_eq!(fast.order, slow.order, "seed {seed}");
    assert_eq!(
        fast.amounts, slow.amounts,
        "seed {seed} (carry)\n{}\n{}\n{carry:?}",
        case.toml, case.csv
    );
    assert_eq!(fast.provisional, slow.provisional, "seed {seed}");
    assert_eq!(fast.open_until, slow.open_until, "seed {seed}");
    if carry.is_empty() {
        assert_eq!(
            fast,
            alloc::allocate(&ag, &lines, as_of()),
            "seed {seed}: an empty carry changes nothing"
        );
    }
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(
            fast.row(i).iter().sum::<i64>(),
            l.amount,
            "seed {seed}: line {} does not add up",
            l.id
        );
    }
    // the cap each period had is the cap less the carried use, never below zero
    for u in &fast.usage {
        let fy = alloc::cap_year(&ag, u.period);
        let k = carry.get(u.category, u.layer, u.period);
        match (&u.cap, &ag.categories[u.category].layers[u.layer].cap) {
            (CapAmount::Money(c), Some(Cap::Money(m))) => {
                let full = *m.get(fy);
                assert_eq!(*c, k.map_or(full, |k| (full - k.money).max(0)), "seed {seed}");
                assert!(u.used_money <= *c, "seed {seed}: money cap exceeded after carry");
            }
            (CapAmount::Units(c), Some(Cap::Units(q))) => {
                let full = q.get(fy).clone();
                let want = k.map_or(
                    full.clone(),
                    |k| if k.units >= full { Q::ZERO } else { full.sub(&k.units) },
                );
                assert_eq!(*c, want, "seed {seed}");
                assert!(
                    u.used_units.as_ref().unwrap() <= c,
                    "seed {seed}: unit cap exceeded after carry"
                );
            }
            _ => panic!("seed {seed}: usage of the wrong kind"),
        }
    }
    // one line's explanation from the lines tied to its date (its category
    // within `alloc::tied_range`, what the ledger's derived state reads)
    // equals the one from every line: the same trace, parts and flag, and
    // the engine gives it the same row
    check_tied_explanations(seed, &ag, &lines, &carry, &fast, &traces);
    // the traces name the carried use on every line of a period that had one
    let mut named = 0;
    for (i, tr) in traces.iter().enumerate() {
        for t in tr {
            let want = t.period.and_then(|p| carry.get(lines[i].category, t.layer, p));
            if t.cap.is_some() {
                assert_eq!(t.carried.as_ref(), want, "seed {seed}");
                named += usize::from(want.is_some_and(|k| k.money > 0 || !k.units.is_zero()));
            }
        }
    }
    named
}

/// Lines that are only a (date, id) key, for `alloc::line_order`.
struct Keys(Vec<(Date, Vec<u8>)>);

impl alloc::Lines for Keys {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn date(&self, i: usize) -> Date {
        self.0[i].0
    }
    fn category(&self, _: usize) -> usize {
        0
    }
    fn amount(&self, _: usize) -> i64 {
        1
    }
    fn quantity(&self, _: usize) -> Option<&Q> {
        None
    }
    fn id(&self, i: usize) -> &[u8] {
        &self.0[i].1
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn line_order_is_date_then_id_bytes_and_keeps_ordered_lines(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let n = rng.range(0, 59) as usize;
        // few dates, and ids short or sharing more than 16 bytes, so that ties on the
        // date and on the sort's 16-byte id prefix are common; distinct ids (`-i`)
        let prefixes: [&[u8]; 4] = [b"", b"B", b"B0000000000000000000", b"B00000000000000000001"];
        let keys: Vec<(Date, Vec<u8>)> = (0..n)
            .map(|i| {
                let d = Date::new(2023, 4, 1 + rng.range(0, 3) as u8).expect("a date");
                let mut id = prefixes[rng.range(0, 3) as usize].to_vec();
                id.extend(format!("{}-{i}", rng.range(0, 3)).bytes());
                (d, id)
            })
            .collect();
        let order = alloc::line_order(&Keys(keys.clone()));
        let mut want: Vec<u32> = (0..n as u32).collect();
        want.sort_by(|&a, &b| keys[a as usize].cmp(&keys[b as usize]));
        prop_assert_eq!(&order, &want);
        // the same lines already in that order come back as they are
        let sorted = Keys(want.iter().map(|&i| keys[i as usize].clone()).collect());
        prop_assert_eq!(alloc::line_order(&sorted), (0..n as u32).collect::<Vec<u32>>());
    }

    #[test]
    fn fast_matches_reference_with_carried_use(seed in any::<u64>()) {
        let _ = check_carry(seed);
    }

    #[test]
    fn fast_matches_reference_and_invariants_hold(seed in any::<u64>()) {
        let _ = check_case(seed);
    }

    #[test]
    fn split_parts_add_up_and_follow_largest_remainder(amount in 0i64..i64::MAX, a in 0u32..=10_000, b in 0u32..=10_000) {
        // three parties: a, b and the rest, in hundredths of a percent
        let (a, b) = if a + b > 10_000 { (a / 2, b / 2) } else { (a, b) };
        let c = 10_000 - a - b;
        let shares: Vec<BigRational> = [a, b, c].iter().map(|&x| BigRational::new(BigInt::from(x), BigInt::from(10_000))).collect();
        let s = costshare_core::agreement::Shares::new(shares.clone());
        let mut acc = vec![0i64; 3];
        alloc::Splitter::new(3).split(amount, &s, &mut acc);
        prop_assert_eq!(acc.iter().map(|&v| v as i128).sum::<i128>(), amount as i128);
        let (parts, _, _) = reference::split_exact(amount, &shares);
        prop_assert_eq!(&acc, &parts);
        for (j, sh) in shares.iter().enumerate() {
            // each part is the floor or the floor plus one
            let exact = BigRational::from_int(amount).mul(sh);
            let d = BigRational::from_int(acc[j]).sub(&exact);
            prop_assert!(d > BigRational::from_int(-1) && d < BigRational::one());
        }
    }

    #[test]
    fn q_parse_decimal_matches_the_general_parser(int in 0u64.., frac in 0u64..1_000_000_000_000_000_000, digits in 0usize..=19) {
        let f = format!("{frac:019}");
        let text = if digits == 0 { int.to_string() } else { format!("{int}.{}", &f[..digits]) };
        let general = costshare_core::num::parse_rational(&text, 18).ok().map(|r| Q::from_big(&r));
        let fast = Q::parse_decimal(&text, 18);
        match (general, fast) {
            (Some(g), Some(q)) => prop_assert!(g == q, "{text}"),
            (None, Some(q)) => prop_assert!(false, "{text}: fast {q:?}, general refused"),
            _ => {}
        }
    }

    #[test]
    fn q_arithmetic_matches_big_rationals(a in 1u64.., b in 1u64.., c in 1u64.., d in 1u64.., m in 0u64..) {
        let x = Q::from_big(&BigRational::new(a.into(), b.into()));
        let y = Q::from_big(&BigRational::new(c.into(), d.into()));
        let bx = x.to_big();
        let by = y.to_big();
        prop_assert_eq!(x.add(&y).to_big(), bx.add(&by));
        prop_assert_eq!(x.mul(&y).to_big(), bx.mul(&by));
        prop_assert_eq!(x.div(&y).to_big(), bx.div(&by));
        prop_assert_eq!(x.cmp(&y), bx.cmp(&by));
        if bx >= by {
            prop_assert_eq!(x.sub(&y).to_big(), bx.sub(&by));
        }
        let rhe = x.mul_int_rhe(m as u128).to_u128();
        prop_assert_eq!(BigInt::from(rhe), BigRational::from_int(m).mul(&bx).round_half_even());
    }
}

#[test]
fn half_even_edges() {
    use costshare_core::num::rhe_u128;
    // exact halves go to the even neighbour
    assert_eq!(rhe_u128(1, 2), 0);
    assert_eq!(rhe_u128(3, 2), 2);
    assert_eq!(rhe_u128(5, 2), 2);
    assert_eq!(rhe_u128(7, 2), 4);
    // just below and above a half
    assert_eq!(rhe_u128(49, 100), 0);
    assert_eq!(rhe_u128(51, 100), 1);
}

#[test]
fn largest_remainder_edges() {
    // 100 in thirds, declared C, A, B with 33.34/33.33/33.33: C 34, A 33, B 33
    let third = |n: i64| BigRational::new(BigInt::from(n), BigInt::from(10_000));
    let (parts, _, given) = reference::split_exact(100, &[third(3334), third(3333), third(3333)]);
    assert_eq!(parts, vec![34, 33, 33]);
    assert_eq!(given, vec![0]);
    // 2 units: exact parts .6668, .6666, .6666 -> C and then A (tie, declared first)
    let (parts, _, given) = reference::split_exact(2, &[third(3334), third(3333), third(3333)]);
    assert_eq!(parts, vec![1, 1, 0]);
    assert_eq!(given, vec![0, 1]);
    // exact thirds: the tie on 1 unit goes to the first party
    let t = BigRational::new(BigInt::from(1), BigInt::from(3));
    let (parts, _, _) = reference::split_exact(1, &[t.clone(), t.clone(), t]);
    assert_eq!(parts, vec![1, 0, 0]);
}

#[test]
fn carried_use_on_many_seeds() {
    let named: usize = (0..300).map(check_carry).sum();
    assert!(
        named > 100,
        "the carry generator stopped exercising carried use ({named})"
    );
}

#[test]
fn many_seeds_quickly() {
    let mut total = Seen::default();
    for seed in 0..300 {
        let s = check_case(seed);
        total.running_money_bound += s.running_money_bound;
        total.running_units_partial += s.running_units_partial;
        total.pro_rata_money_bound += s.pro_rata_money_bound;
        total.pro_rata_units_bound += s.pro_rata_units_bound;
        total.portions += s.portions;
        total.unallocated += s.unallocated;
        total.split_rounding += s.split_rounding;
    }
    eprintln!("{total:?}");
    // the generator must keep exercising every rule
    assert!(total.running_money_bound > 20, "{total:?}");
    assert!(total.running_units_partial > 20, "{total:?}");
    assert!(total.pro_rata_money_bound > 20, "{total:?}");
    assert!(total.pro_rata_units_bound > 20, "{total:?}");
    assert!(total.portions > 20, "{total:?}");
    assert!(total.unallocated > 20, "{total:?}");
    assert!(total.split_rounding > 20, "{total:?}");
}

/// Lines added one at a time to an incremental allocation end where a full
/// allocation of all of them does.
fn check_incremental(seed: u64) {
    let case = gen_case(seed);
    let (ag, lines) = load_case(&case);
    let mut rng = Rng::new(seed ^ 0x1234);
    let mut shuffled = lines.clone();
    for i in (1..shuffled.len()).rev() {
        let j = rng.range(0, i as i64) as usize;
        shuffled.swap(i, j);
    }
    let cut = rng.range(0, shuffled.len() as i64) as usize;
    let rest = shuffled.split_off(cut);
    let mut inc = alloc::Incremental::new(&ag, shuffled, as_of());
    for l in rest {
        inc.add_line(l);
    }
    let got = inc.allocation();
    let want = alloc::allocate(&ag, inc.lines(), as_of());
    assert_eq!(got.amounts, want.amounts, "seed {seed}\n{}\n{}", case.toml, case.csv);
    assert_eq!(got.provisional, want.provisional, "seed {seed}");
    assert_eq!(got.open_until, want.open_until, "seed {seed}");
    assert_eq!(got.order, want.order, "seed {seed}");
}

/// A category that runs in order (`alloc::runs_in_order`) allocated from a
/// line on, in runs, each run starting with the use the lines before it
/// left (`Carry::after`), gives every line its parts in the allocation of
/// all the lines: what the ledger's late lines and voids rely on to skip
/// the lines before a new line and to stop where two allocations agree
/// (`Carry::same_use`). Returns the categories checked whose caps bound.
fn check_runs(seed: u64) -> usize {
    let case = gen_case(seed);
    let (ag, lines) = load_case(&case);
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut bound = 0;
    for c in 0..ag.categories.len() {
        if !alloc::runs_in_order(&ag, c) {
            continue;
        }
        let one = ag.with_only_category(c);
        let mut mine: Vec<CostLine> = lines.iter().filter(|l| l.category == c).cloned().collect();
        if mine.is_empty() {
            continue;
        }
        for l in &mut mine {
            l.category = 0;
        }
        mine.sort_by(|a, b| (a.date, a.id.as_bytes()).cmp(&(b.date, b.id.as_bytes())));
        let whole = alloc::allocate(&one, &mine, as_of());
        if whole.usage.iter().any(|u| u.reached_on.is_some()) {
            bound += 1;
        }
        let n = mine.len();
        for k in [0, n / 2, n - 1, rng.range(0, n as i64 - 1) as usize] {
            let before = alloc::allocate(&one, &mine[..k], as_of());
            assert_eq!(
                before.amounts[..],
                whole.amounts[..k * whole.width()],
                "seed {seed}: lines ..{k}"
            );
            let mut carry = alloc::Carry::NONE.after(&before.usage);
            let mut p = k;
            while p < n {
                let q = n.min(p + rng.range(1, 8) as usize);
                let run = alloc::allocate_carried(&one, &mine[p..q], as_of(), &carry);
                let w = whole.width();
                assert_eq!(
                    run.amounts[..],
                    whole.amounts[p * w..q * w],
                    "seed {seed}: category {c}, lines {p}..{q} after {k}\n{}\n{}",
                    case.toml,
                    case.csv
                );
                carry = carry.after(&run.usage);
                p = q;
            }
            // the use all the runs leave is the whole allocation's
            assert!(carry.same_use(&alloc::Carry::NONE.after(&whole.usage)), "seed {seed}");
            // and a line's explanation among the lines up to its date is
            // the one among all of them (what `explain --ledger` reads)
            if k < n {
                let upto = mine.partition_point(|l| l.date <= mine[k].date);
                let all =
                    explain::explain_lines(&one, mine.as_slice(), k, mine[k].clone(), as_of(), &alloc::Carry::NONE);
                let some =
                    explain::explain_lines(&one, &mine[..upto], k, mine[k].clone(), as_of(), &alloc::Carry::NONE);
                assert_eq!(
                    (&some.layers, &some.parts, some.provisional),
                    (&all.layers, &all.parts, all.provisional),
                    "seed {seed}: the explanation of line {k}"
                );
            }
        }
    }
    bound
}

#[test]
fn runs_from_a_carry_equal_the_whole_allocation() {
    let bound: usize = (0..400).map(check_runs).sum();
    assert!(bound > 50, "the generator stopped binding running caps ({bound})");
}

#[test]
fn incremental_equals_full_allocation() {
    for seed in 0..400 {
        check_incremental(seed);
    }
}

#[test]
fn a_late_line_recomputes_only_its_groups() {
    // monthly caps: a late line touches its month, not the other 59
    let toml = r#"[agreement]
id = "late"
currency = "JPY"
start = "2022-04-01"
end = "2027-03-31"
fiscal_year_start = "04-01"
[parties.JP]
name = "JP"
[parties.US]
name = "US"
[categories.labor]
name = "Labor"
unit = "worker"
  [[categories.labor.layers]]
  split = { JP = "100%" }
  cap_units = 100
  period = "month"
  cap_policy = "pro_rata"
  [[categories.labor.layers]]
  split = { US = "100%" }
"#;
    let ag = load::load(toml).agreement.unwrap();
    let mut csv = String::from("id,date,category,amount,quantity\n");
    for m in 0..60 {
        let d = Date::from_days(Date::new(2022, 4, 10).unwrap().to_days() + m * 30);
        for k in 0..20 {
            let _ = writeln!(csv, "L{m:02}-{k:02},{d},labor,{},{}", 1000 + k * 7, 5 + k % 4);
        }
    }
    let lines = parse_costs(&ag, csv.as_bytes(), &Rates::empty()).unwrap().lines;
    let n = lines.len();
    let mut inc = alloc::Incremental::new(&ag, lines, as_of());
    let late = parse_costs(
        &ag,
        b"id,date,category,amount,quantity\nLATE,2023-06-15,labor,5000,9\n",
        &Rates::empty(),
    )
    .unwrap()
    .lines
    .remove(0);
    let stats = inc.add_line(late);
    // layer 1: the June group (20 lines + the new one); layer 2: only the lines whose share changed
    assert!(stats.line_layers <= 2 * 21, "{stats:?} for {n} lines");
    assert_eq!(
        inc.allocation().amounts,
        alloc::allocate(&ag, inc.lines(), as_of()).amounts
    );
}

/// The streaming report gives the general path's rows, line count and
/// provisional count, capped agreements (lines kept in columns) and uncapped
/// ones (no line kept) alike, for every kind of dimension list, whether the
/// file is fed to one worker or split between two.
#[test]
fn streaming_report_equals_general_report() {
    use costshare_core::report::{self, Dim};
    use costshare_core::stream::{Plan, split_point};
    let dim_lists: [&[Dim]; 6] = [
        &[Dim::Party],
        &[Dim::Party, Dim::Category],
        &[Dim::Category, Dim::Site],
        &[Dim::FiscalYear, Dim::Month],
        &[Dim::Site, Dim::Party, Dim::Month],
        &[Dim::Party, Dim::FiscalYear, Dim::Category, Dim::Site, Dim::Month],
    ];
    let mut streamed = [0; 2];
    let mut provisional = 0;
    for seed in 0..300u64 {
        let c = gen_case(seed);
        // odd seeds drop every cap (the uncapped path keeps no line)
        let toml: String = if seed % 2 == 1 {
            c.toml
                .lines()
                .filter(|l| {
                    let t = l.trim_start();
                    !(t.starts_with("cap") || t.starts_with("period") || t.starts_with("cap_policy"))
                })
                .map(|l| format!("{l}\n"))
                .collect()
        } else {
            c.toml
        };
        let case = Case { toml, csv: c.csv };
        let (ag, lines) = load_case(&case);
        let alloc = alloc::allocate(&ag, &lines, as_of());
        let prov = alloc.provisional.iter().filter(|&&p| p).count();
        let (header, body) = case.csv.split_once('\n').unwrap();
        let rates = Rates::empty();
        for dims in dim_lists {
            let general = report::report(&ag, &lines, &alloc, dims);
            let plan = Plan::new(&ag, &rates, as_of(), dims, header.as_bytes()).expect("plan");
            let mut workers = vec![plan.worker(4), plan.worker(4)];
            let body = body.as_bytes();
            match (seed % 4 < 2, split_point(body)) {
                (true, Some(cut)) => {
                    workers[0].feed(&plan, &body[..cut]).unwrap();
                    workers[1].feed(&plan, &body[cut..]).unwrap();
                }
                _ => workers[0].feed(&plan, body).unwrap(),
            }
            // merged on one, two or three threads
            let sr = plan.finish_with(workers, 1 + (seed as usize / 4) % 3).unwrap();
            assert_eq!(sr.lines, lines.len(), "seed {seed}");
            assert_eq!(sr.provisional, prov, "seed {seed}");
            assert_eq!(sr.rows, general, "seed {seed} dims {dims:?}\n{}", case.toml);
            streamed[(seed % 2) as usize] += 1;
            provisional += sr.provisional;
        }
    }
    assert_eq!(streamed, [150 * 6, 150 * 6]);
    assert!(provisional > 0, "no provisional line in any case");
}

/// What the streaming path must leave to the general one, and the bad rows
/// it names itself (issue 12).
#[test]
fn streaming_report_falls_back() {
    use costshare_core::report::Dim;
    use costshare_core::stream::{Fallback, Plan, Settled};
    let ag = load::load(
        "[agreement]\nid = \"a\"\ntitle = \"t\"\ncurrency = \"USD\"\nstart = \"2022-01-01\"\nend = \"2022-12-31\"\n\
         fiscal_year_start = \"01-01\"\nfiscal_year_label = \"start\"\n[parties.A]\nname = \"A\"\n[parties.B]\nname = \"B\"\n\
         [categories.x]\nname = \"x\"\n  [[categories.x.layers]]\n  split = { A = \"50%\", B = \"50%\" }\n",
    )
    .agreement
    .unwrap();
    let rates = Rates::empty();
    let dims = [Dim::Party];
    let settle = |header: &str, rows: &[&str]| -> Result<Settled, Fallback> {
        let plan = Plan::new(&ag, &rates, Date::new(2022, 6, 30).unwrap(), &dims, header.as_bytes())?;
        let mut w = vec![plan.worker(1), plan.worker(1)];
        w[0].feed(&plan, rows[0].as_bytes())?;
        let next = 2 + w[0].place(2);
        if let Some(r) = rows.get(1) {
            w[1].feed(&plan, r.as_bytes())?;
            w[1].place(next);
        }
        plan.settle(w, 2)
    };
    let run = |header: &str, rows: &[&str]| settle(header, rows).map(|_| ());
    let h = "id,date,category,amount";
    assert!(run(h, &["a,2022-01-01,x,1.00\nb,2022-01-02,x,2.00\n"]).is_ok());
    assert!(run(h, &["\"a,1\",2022-01-01,x,\" 1.00\"\n\"b\"\"\",2022-01-02,x,2.00\n"]).is_ok());
    for (why, header, rows) in [
        ("repeat", h, vec!["a,2022-01-01,x,1.00\na,2022-01-01,x,1.00\n"]),
        (
            "repeat across workers",
            h,
            vec!["a,2022-01-01,x,1.00\n", "a,2022-01-01,x,1.00\n"],
        ),
        ("a quoted field across lines", h, vec!["\"a\nb\",2022-01-01,x,1.00\n"]),
        ("a quote inside a field", h, vec!["a\"b,2022-01-01,x,1.00\n"]),
        ("lone CR", h, vec!["a,2022-01-01,x,1.00\rb,2022-01-01,x,1.00\n"]),
        ("missing column", "id,date,amount", vec!["a,2022-01-01,1.00\n"]),
        ("twice", "id,id,date,category,amount", vec!["a,a,2022-01-01,x,1.00\n"]),
    ] {
        assert!(run(header, &rows).is_err(), "{why} should fall back");
    }
    // bad rows are named by the stream, as the general parser names them
    let r = "id,date,category,amount,replaces";
    for (why, header, rows) in [
        ("bad date", h, vec!["a,2022-13-01,x,1.00\n"]),
        ("out of term", h, vec!["a,2023-01-01,x,1.00\n"]),
        ("category", h, vec!["a,2022-01-01,y,1.00\n"]),
        ("amount", h, vec!["a,2022-01-01,x,1.001\n"]),
        ("empty id", h, vec![",2022-01-01,x,1.00\n"]),
        ("replaces a missing id", r, vec!["b,2022-01-01,x,1.00,a\n"]),
        (
            "a cycle across workers",
            r,
            vec!["a,2022-01-01,x,1.00,b\n", "b,2022-01-02,x,1.00,a\n"],
        ),
        (
            "two bad rows across workers",
            h,
            vec!["a,2022-01-01,x,1.00\nb,2022-01-01,y,1.00\n", "c,2022-01-01,x,-1\n"],
        ),
    ] {
        let Ok(Settled::BadRows(errors)) = settle(header, &rows) else {
            panic!("{why}: the stream names the bad rows");
        };
        let general = parse_costs(&ag, format!("{header}\n{}", rows.concat()).as_bytes(), &rates).unwrap_err();
        assert_eq!(errors, general, "{why}");
    }
    // a replacement is applied (capped: in the columns; uncapped, as here: read again)
    assert!(matches!(
        settle(r, &["a,2022-01-01,x,1.00\n", "b,2022-01-02,x,2.00,a\n"]),
        Ok(Settled::ReadAgain(_))
    ));
    let plan = Plan::new(&ag, &rates, Date::new(2022, 6, 30).unwrap(), &dims, h.as_bytes()).unwrap();
    assert!(plan.worker(1).feed(&plan, b"a,2022-01-01,x,1.00\n\xff\n").is_err());
}

/// A generated case's costs with bad rows and replacements mixed in
/// (issue 12): every kind of refused row the generator can make, rows that
/// replace others (before and after them, chains), replacements of missing
/// or already replaced ids, cycles, blank lines and now and then a repeated
/// row. The header gains `replaces` and `paid_by`.
fn mutate_costs(csv: &str, rng: &mut Rng) -> String {
    let mut rows: Vec<Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let mut f: Vec<String> = l.split(',').map(str::to_string).collect();
            f.resize(8, String::new());
            f
        })
        .collect();
    let n = rows.len();
    // id, date, category, amount, quantity, site, replaces, paid_by
    let (id, date, cat, amount, qty, rep, paid) = (0, 1, 2, 3, 4, 6, 7);
    let clean = rng.range(0, 2) == 0; // a third: replacements only, all valid
    let mutations = rng.range(1, 4);
    let mut blank_after = Vec::new();
    let mut repeat = None;
    for _ in 0..mutations {
        let i = rng.range(0, n as i64 - 1) as usize;
        let j = rng.range(0, n as i64 - 1) as usize;
        let kind = if clean { 0 } else { rng.range(0, 15) };
        let jid = rows[j][id].clone();
        match kind {
            0 | 1 if i != j && rows[j][rep].is_empty() => {
                // a valid replacement (unless another mutation spoils it)
                rows[i][rep] = jid;
                if rng.range(0, 2) == 0 {
                    // a chain: some other row replaces the replacing one
                    let k = rng.range(0, n as i64 - 1) as usize;
                    if k != i && k != j && rows[k][rep].is_empty() {
                        rows[k][rep] = rows[i][id].clone();
                    }
                }
            }
            0 | 1 => {}
            2 => rows[i][date] = "2022-13-01".into(),
            3 => rows[i][date] = String::new(),
            4 => rows[i][date] = "1990-01-01".into(),
            5 => rows[i][cat] = "nope".into(),
            6 => rows[i][amount] = "-5".into(),
            7 => rows[i][amount] = "1.2.3".into(),
            8 => rows[i][id] = String::new(),
            9 => rows[i][qty] = "abc".into(),
            10 => rows[i][rep] = rows[i][id].clone(),
            11 => rows[i][rep] = "missing-id".into(),
            12 => rows[i][paid] = "ZZ".into(),
            13 => {
                // a cycle of two, or two rows replacing one
                rows[i][rep] = jid;
                if rng.range(0, 1) == 0 {
                    rows[j][rep] = rows[i][id].clone();
                } else {
                    let k = rng.range(0, n as i64 - 1) as usize;
                    rows[k][rep] = rows[j][id].clone();
                }
            }
            14 => blank_after.push(i),
            _ => repeat = Some(i),
        }
    }
    let mut out = String::from("id,date,category,amount,quantity,site,replaces,paid_by\n");
    for (k, r) in rows.iter().enumerate() {
        out.push_str(&r.join(","));
        out.push('\n');
        if blank_after.contains(&k) {
            out.push('\n');
        }
        if repeat == Some(k) {
            out.push_str(&r.join(","));
            out.push('\n');
        }
    }
    out
}

/// Issue 12: a file with bad rows or replacements stays on the streaming
/// path. Its errors are the general parser's, word for word, line for line,
/// in its order; its report (replaced lines dropped from a capped
/// agreement's columns, or taken back out of an uncapped one's totals by a
/// second reading) equals the general path's, with the same line and
/// provisional counts; fed to one worker or split between two. Only a
/// repeated id (and a total past 64 bits) still falls back.
#[test]
fn streaming_names_bad_rows_and_applies_replacements_as_the_general_path() {
    use costshare_core::report::{self, Dim};
    use costshare_core::stream::{Plan, Settled, split_point};
    let dims: &[Dim] = &[Dim::Party, Dim::FiscalYear, Dim::Category, Dim::Site];
    let (mut bad, mut replaced, mut again, mut fallback) = (0, 0, 0, 0);
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 0..400u64 {
        let c = gen_case(seed);
        let toml: String = if seed % 2 == 1 {
            c.toml
                .lines()
                .filter(|l| {
                    let t = l.trim_start();
                    !(t.starts_with("cap") || t.starts_with("period") || t.starts_with("cap_policy"))
                })
                .map(|l| format!("{l}\n"))
                .collect()
        } else {
            c.toml
        };
        let ag = load::load(&toml).agreement.expect("agreement");
        let mut rng = Rng::new(seed ^ 0x12);
        let csv = mutate_costs(&c.csv, &mut rng);
        let rates = Rates::empty();
        let general = parse_costs(&ag, csv.as_bytes(), &rates);
        let (header, body) = csv.split_once('\n').unwrap();
        let body = body.as_bytes();
        let plan = Plan::new(&ag, &rates, as_of(), dims, header.as_bytes()).expect("plan");
        let cut = if seed % 4 < 2 { split_point(body) } else { None };
        let parts: Vec<&[u8]> = match cut {
            Some(cut) => vec![&body[..cut], &body[cut..]],
            None => vec![body],
        };
        let feed = |workers: &mut Vec<costshare_core::stream::Worker>| {
            let mut line = 2;
            for (w, p) in workers.iter_mut().zip(&parts) {
                w.feed(&plan, p)?;
                line += w.place(line);
            }
            Ok::<(), costshare_core::stream::Fallback>(())
        };
        let mut workers = vec![plan.worker(4), plan.worker(4)];
        let settled = feed(&mut workers).and_then(|()| plan.settle(workers, 1 + (seed as usize / 4) % 2));
        let ctx = format!("seed {seed}\n{csv}");
        let settled = match settled {
            Ok(s) => s,
            Err(why) => {
                assert!(
                    ["a repeated id", "an id repeated across blocks"].contains(&why.0),
                    "{ctx}: fell back: {why:?}"
                );
                assert!(csv.lines().count() > csv.lines().collect::<std::collections::HashSet<_>>().len());
                fallback += 1;
                continue;
            }
        };
        let sr = match (settled, &general) {
            (Settled::BadRows(errors), Err(want)) => {
                assert_eq!(&errors, want, "{ctx}");
                bad += 1;
                for e in &errors {
                    // the message without what it quotes or numbers
                    let words: String = e.message.split('`').step_by(2).collect();
                    kinds.insert(words.replace(|c: char| c.is_ascii_digit(), ""));
                }
                continue;
            }
            (Settled::Report(sr), Ok(_)) => sr,
            (Settled::ReadAgain(a), Ok(_)) => {
                let mut undo = vec![plan.undo_worker(&a), plan.undo_worker(&a)];
                feed(&mut undo).expect("the second reading");
                again += 1;
                plan.finish_again(a, undo, 2).expect("the replaced lines found again")
            }
            (s, g) => panic!("{ctx}: stream {s:?}, general {g:?}"),
        };
        let costs = general.unwrap();
        let alloc = alloc::allocate(&ag, &costs.lines, as_of());
        assert_eq!(sr.rows, report::report(&ag, &costs.lines, &alloc, dims), "{ctx}");
        assert_eq!(sr.lines, costs.lines.len(), "{ctx}");
        assert_eq!(
            sr.provisional,
            alloc.provisional.iter().filter(|&&p| p).count(),
            "{ctx}"
        );
        if costs.replaced > 0 {
            replaced += 1;
        }
    }
    eprintln!("bad {bad}, replaced {replaced} (read again {again}), fell back {fallback}");
    assert!(bad >= 150 && replaced >= 80 && again >= 40 && fallback >= 5);
    for kind in [
        ", which is not in this file",
        ", which line  already replaces",
        "is part of a cycle of replacements that leads back to ",
        "a line cannot replace itself",
        "id is empty",
        "date is empty",
    ] {
        assert!(
            kinds.iter().any(|k| k.contains(kind)),
            "no error {kind:?} in {kinds:#?}"
        );
    }
}
