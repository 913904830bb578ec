//! Late lines and voids in a category whose capped layers all run in date
//! order are allocated by runs from the line on (`derived::Runs`): the lines
//! before it are not allocated twice, and the runs stop where the
//! allocations with and without it leave the same use of every cap. These
//! tests put late lines and voids where such a shortcut would go wrong — the
//! first and last day of the term and its middle, a line that takes a whole
//! cap, lines after a cap is used up, several late lines in one file — on
//! every example agreement and on one whose caps run out after hundreds of
//! lines (so the runs go on over several runs and months, and the two
//! allocations come to agree inside a run, or never), with a running unit
//! cap, a portion and three periods in one category. After each, the impact
//! on earlier lines must be what two replays' allocations differ by, line
//! for line, the derived state must say what a replay says
//! (`common::check`), and at the end it must equal a rebuild blob for blob
//! (`verify --deep`).

mod common;

use common::{examples, input, lines_csv};
use costshare_core::agreement::{Agreement, Cap};
use costshare_core::calendar::Date;
use costshare_demo::Rng;
use costshare_store::{DerivedStatus, Ledger, Verified, VerifyOptions, state};
use num_traits::ToPrimitive;
use std::collections::BTreeMap;
use std::fmt::Write;

const NOW: &str = "2026-11-27T00:00:00Z";

/// Caps that run out after hundreds of lines: a running unit cap per month,
/// then 70% of what is left against a running yearly cap, then a term cap;
/// a second category with one term cap.
const RUNS: &str = r#"[agreement]
id = "runs"
currency = "EUR"
start = "2022-01-01"
end = "2024-12-31"
fiscal_year_start = "01-01"
[parties.a]
[parties.b]
[parties.c]
[keys.equal]
weights = { a = 1, b = 1, c = 1 }
[categories.work]
unit = "hour"
  [[categories.work.layers]]
  split = { key = "equal" }
  cap_units = 60
  period = "month"
  cap_policy = "running"
  [[categories.work.layers]]
  split = { b = "100%" }
  portion = "70%"
  cap = "1500.00"
  period = "fiscal_year"
  cap_policy = "running"
  [[categories.work.layers]]
  split = { c = "100%" }
  cap = "6000.00"
  period = "term"
[categories.plain]
  [[categories.plain.layers]]
  split = { a = "100%" }
  cap = "8000.00"
  period = "term"
"#;

/// 1,500 lines of 1.00 to 40.00 EUR, 1 to 15 hours of work.
fn runs_lines(ag: &Agreement, rng: &mut Rng) -> String {
    let mut s = String::from("id,date,category,amount,quantity,site\n");
    let days = ag.end.to_days() - ag.start.to_days();
    for i in 0..1500 {
        let d = Date::from_days(ag.start.to_days() + rng.range(0, days));
        let minor = rng.range(100, 4000);
        let (cat, qty) = if rng.range(0, 1) == 0 {
            ("work", format!("{}", rng.range(1, 15)))
        } else {
            ("plain", String::new())
        };
        let _ = writeln!(s, "a{i:04},{d},{cat},{}.{:02},{qty},North", minor / 100, minor % 100);
    }
    s
}

/// Every active line's parts, by id, as a replay allocates them.
fn parts(l: &mut Ledger) -> BTreeMap<String, Vec<i64>> {
    let st = l.state().unwrap();
    let ag = st.versions[0].agreement.clone();
    let mut out = BTreeMap::new();
    for p in state::allocate(&st, ag.start).unwrap() {
        for (i, line) in p.lines.iter().enumerate() {
            out.insert(line.id.clone(), p.alloc.row(i).to_vec());
        }
    }
    out
}

/// The lines of `before` whose parts differ in `after`, by how much.
fn differences(before: &BTreeMap<String, Vec<i64>>, after: &BTreeMap<String, Vec<i64>>) -> Vec<(String, Vec<i64>)> {
    before
        .iter()
        .filter_map(|(id, r0)| {
            let r1 = after.get(id)?;
            let d: Vec<i64> = r1.iter().zip(r0).map(|(a, b)| a - b).collect();
            d.iter().any(|&x| x != 0).then(|| (id.clone(), d))
        })
        .collect()
}

/// A cost row of category `c` dated `d`: `big` takes the whole of the
/// category's first cap (its money, or its units), else a small amount.
fn row(ag: &Agreement, c: usize, id: &str, d: Date, big: bool) -> String {
    let cat = &ag.categories[c];
    let dec = ag.currency.decimals();
    let mut minor: i128 = 1234;
    let mut qty = if cat.unit.is_some() {
        "2.5".to_string()
    } else {
        String::new()
    };
    if big {
        match cat.layers.iter().find_map(|l| l.cap.as_ref()) {
            Some(Cap::Money(m)) => minor = *m.get(0) as i128,
            Some(Cap::Units(u)) => {
                qty = (u.get(0).to_big().floor().to_i64().unwrap_or(0) + 1).to_string();
                minor = 5_000_000;
            }
            None => {}
        }
    }
    let amount = costshare_core::money::format_minor(minor, dec);
    format!("{id},{d},{},{amount},{qty},South\n", cat.id)
}

/// Record `rows` (one file) from the derived state and check it against
/// two replays' allocations and the replay's reports.
fn late(l: &mut Ledger, what: &str, rows: &str) {
    let before = parts(l);
    let csv = format!("id,date,category,amount,quantity,site\n{rows}");
    let (_, impact) = l
        .record_fast(input("late.csv", &csv), NOW)
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: the fast path"));
    let after = parts(l);
    assert_eq!(
        impact.changed,
        differences(&before, &after),
        "{what}: the earlier lines that moved"
    );
    common::check(l, what);
}

/// Void `id` from the derived state and check it as [`late`] does.
fn void(l: &mut Ledger, what: &str, id: &str) {
    l.void_fast(id, "test", NOW)
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: the fast path"));
    common::check(l, what);
}

#[test]
fn late_lines_and_voids_by_runs_equal_the_replay() {
    let dir = std::env::temp_dir().join(format!("costshare-runs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let deep = VerifyOptions {
        deep: true,
        ..VerifyOptions::default()
    };
    let mut agreements = examples();
    agreements.push(("runs.toml".to_string(), RUNS.to_string()));
    let mut in_order = 0;
    for (n, (name, text)) in agreements.into_iter().enumerate() {
        let ag = costshare_core::load(&text).agreement.expect("agreement loads");
        let path = dir.join(format!("r{n}.db")).display().to_string();
        let (mut l, _) = Ledger::init(&path, input(&name, &text), None, NOW).unwrap();
        let mut rng = Rng::new(n as u64 + 71);
        let first = if ag.id == "runs" {
            runs_lines(&ag, &mut rng)
        } else {
            lines_csv(&ag, &mut rng, 600, "a")
        };
        l.record(input("first.csv", &first), None, NOW).unwrap();
        let mid = Date::from_days((ag.start.to_days() + ag.end.to_days()) / 2);
        let next = |d: Date| Date::from_days(d.to_days() + 1);
        for (c, cat) in ag.categories.iter().enumerate() {
            if cat.layers.iter().all(|l| l.cap.is_none()) {
                continue;
            }
            if costshare_core::alloc::runs_in_order(&ag, c) {
                in_order += 1;
            }
            let what = |s: &str| format!("{name} {}: {s}", cat.id);
            let id = |s: &str| format!("{}-{s}", cat.id);
            late(
                &mut l,
                &what("the term's first day"),
                &row(&ag, c, &id("first"), ag.start, false),
            );
            late(&mut l, &what("the term's middle"), &row(&ag, c, &id("mid"), mid, false));
            late(
                &mut l,
                &what("the term's last day"),
                &row(&ag, c, &id("last"), ag.end, false),
            );
            late(
                &mut l,
                &what("a line that takes the cap"),
                &row(&ag, c, &id("big"), next(ag.start), true),
            );
            late(
                &mut l,
                &what("after the cap is used"),
                &row(&ag, c, &id("after"), next(next(ag.start)), false),
            );
            late(
                &mut l,
                &what("later after the cap is used"),
                &row(&ag, c, &id("mid2"), mid, false),
            );
            // several in one file: the later ones see the earlier ones' months
            let rows = [(ag.start, "f1"), (mid, "f2"), (ag.end, "f3"), (next(mid), "f4")]
                .iter()
                .map(|(d, s)| row(&ag, c, &id(s), *d, false))
                .collect::<String>();
            late(&mut l, &what("four in one file"), &rows);
            // voids: the line that took the cap (the use after it comes back),
            // and the first, a middle and the last line of the category
            void(&mut l, &what("the void of the line that took the cap"), &id("big"));
            let st = l.state().unwrap();
            let mut ids: Vec<(Date, String)> = state::allocate(&st, ag.start)
                .unwrap()
                .into_iter()
                .flat_map(|p| p.lines)
                .filter(|x| x.category == c && x.id.starts_with('a'))
                .map(|x| (x.date, x.id))
                .collect();
            ids.sort();
            if ids.len() >= 3 {
                for k in [0, ids.len() / 2, ids.len() - 1] {
                    void(&mut l, &what(&format!("the void of {}", ids[k].1)), &ids[k].1);
                }
            }
        }
        match l.verify_with(&deep).unwrap() {
            Verified::Ok { derived, .. } => assert_eq!(derived, DerivedStatus::Consistent, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(in_order >= 6, "{in_order} capped categories that run in order");
    let _ = std::fs::remove_dir_all(&dir);
}
