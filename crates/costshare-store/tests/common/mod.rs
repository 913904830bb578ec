//! Helpers shared by the store's tests of the derived state.
#![allow(dead_code)]

use costshare_core::agreement::{Agreement, Cap};
use costshare_core::calendar::Date;
use costshare_core::report::{self, Dim};
use costshare_demo::Rng;
use costshare_store::{Input, Ledger, derived, state};
use num_traits::ToPrimitive;
use std::fmt::Write;
use std::path::PathBuf;

pub fn examples() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    v.sort();
    assert!(v.len() >= 5, "the example agreements");
    v
}

/// Random valid lines: amounts up to a quarter of the category's smallest
/// money cap, quantities up to half its unit cap, so caps bind.
pub fn lines_csv(ag: &Agreement, rng: &mut Rng, n: usize, prefix: &str) -> String {
    let mut s = String::from("id,date,category,amount,quantity,site\n");
    let days = ag.end.to_days() - ag.start.to_days();
    for i in 0..n {
        let c = rng.range(0, ag.categories.len() as i64 - 1) as usize;
        let cat = &ag.categories[c];
        let mut money = i64::MAX;
        let mut units = i64::MAX;
        for l in &cat.layers {
            match &l.cap {
                Some(Cap::Money(m)) => money = money.min(m.values.iter().copied().min().unwrap_or(i64::MAX)),
                Some(Cap::Units(u)) => {
                    for q in &u.values {
                        units = units.min(q.to_big().floor().to_i64().unwrap_or(i64::MAX));
                    }
                }
                None => {}
            }
        }
        let top = if money == i64::MAX {
            10_000_000
        } else {
            (money / 4).max(1)
        };
        let minor = rng.range(1, top);
        let dec = ag.currency.decimals();
        let amount = costshare_core::money::format_minor(minor as i128, dec);
        let qty = if cat.unit.is_some() {
            let top = if units == i64::MAX { 500 } else { (units / 2).max(1) };
            format!("{}.{}", rng.range(0, top), rng.range(1, 9))
        } else {
            String::new()
        };
        let d = Date::from_days(ag.start.to_days() + rng.range(0, days));
        let site = ["", "North", "South"][rng.range(0, 2) as usize];
        let _ = writeln!(s, "{prefix}{i:04},{d},{},{amount},{qty},{site}", cat.id);
    }
    s
}

const DIMS: [&[Dim]; 5] = [
    &[Dim::Party],
    &[Dim::Party, Dim::Category],
    &[Dim::FiscalYear, Dim::Category, Dim::Party],
    &[Dim::Site, Dim::Month],
    &[Dim::Party, Dim::FiscalYear, Dim::Category, Dim::Site, Dim::Month],
];

/// The derived state is fresh and says what a replay says: the same report
/// totals, provisional counts and lines (every field of every cost line,
/// per agreement version).
pub fn check(l: &mut Ledger, what: &str) {
    let st = l.state().unwrap();
    let (meta, versions) = l
        .derived()
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: no fresh derived state"));
    assert_eq!(meta.seq, st.entries, "{what}");
    assert_eq!(meta.head, st.head, "{what}");
    assert_eq!(versions.len(), st.versions.len(), "{what}");
    let ags: Vec<_> = versions.iter().map(|v| &v.agreement).collect();
    let ag = &versions[0].agreement;
    let latest = &st.latest().agreement;
    let d = l.derived_lines().unwrap().expect("derived lines");
    let replayed = state::allocate(&st, ag.start).unwrap();
    for (v, p) in replayed.iter().enumerate() {
        assert_eq!(d.lines[v], p.lines, "{what}: the lines of version {v}");
    }
    for as_of in [
        ag.start,
        Date::from_days((ag.start.to_days() + latest.end.to_days()) / 2),
        latest.end,
    ] {
        let parts = state::allocate(&st, as_of).unwrap();
        let lines: usize = parts.iter().map(|p| p.lines.len()).sum();
        assert_eq!(meta.lines as usize, lines, "{what}");
        let prov = parts
            .iter()
            .map(|p| p.alloc.provisional.iter().filter(|&&x| x).count() as u64)
            .sum::<u64>();
        assert_eq!(meta.provisional(as_of), prov, "{what}: provisional at {as_of}");
        for dims in DIMS {
            let per = parts
                .iter()
                .map(|p| report::report(&st.versions[p.version].agreement, &p.lines, &p.alloc, dims).unwrap())
                .collect();
            let want = report::merge(latest, dims, per).unwrap();
            let got = derived::report(&ags, &meta, dims, None).unwrap();
            assert_eq!(got, want, "{what}: report by {dims:?}");
            let per = parts
                .iter()
                .map(|p| {
                    let a = &p.alloc;
                    let ag = &st.versions[p.version].agreement;
                    report::report_where(ag, &p.lines, a, dims, |i| a.provisional[i]).unwrap()
                })
                .collect();
            let want = report::merge(latest, dims, per).unwrap();
            let got = derived::provisional_report(&ags, &meta, dims, as_of).unwrap();
            assert_eq!(got, want, "{what}: provisional report by {dims:?} at {as_of}");
        }
    }
}

pub fn input<'a>(name: &'a str, text: &'a str) -> Input<'a> {
    Input {
        name,
        bytes: text.as_bytes(),
    }
}

/// A fresh ledger of the 2022 agreement in a directory of its own (named by
/// `test` and the process), nothing recorded: the directory, the ledger's
/// path, the agreement and the open ledger. `now` is every entry's time.
pub fn sma_fresh(test: &str, now: &str) -> (PathBuf, String, Agreement, Ledger) {
    let dir = std::env::temp_dir().join(format!("costshare-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (name, text) = examples().into_iter().find(|(n, _)| n.contains("sma-2022")).unwrap();
    let ag = costshare_core::load(&text).agreement.unwrap();
    let path = dir.join("l.db").display().to_string();
    let (l, _) = Ledger::init(&path, input(&name, &text), None, now).unwrap();
    (dir, path, ag, l)
}
