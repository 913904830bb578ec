//! `compare` on random agreement pairs and costs: in the rendered CSV, every
//! delta is amount − amount_against; every amount column sums to the total
//! cost (UNALLOCATED included when party is a dimension, counted in its
//! groups otherwise); and the base column's non-zero rows are exactly
//! `report`'s rows under the base.

use costshare_app::compare::compare;
use costshare_app::input::{Quiet, Session, Source};
use costshare_app::query;
use costshare_app::render::{self, Format};
use costshare_core::Date;
use costshare_core::num::parse_minor_units;
use proptest::prelude::*;
use std::path::PathBuf;

#[derive(Clone, Debug)]
struct Cat {
    present: bool,
    p_percent: u32,
    cap: Option<(u32, &'static str)>,
    rest_to_q: bool,
}

#[derive(Clone, Debug)]
struct Ag {
    id: &'static str,
    end: &'static str,
    q_first: bool,
    cats: Vec<Cat>,
}

const CATS: [&str; 3] = ["a", "b", "c"];

fn toml(a: &Ag) -> String {
    let mut s = format!(
        "[agreement]\nid = \"{}\"\ncurrency = \"USD\"\nstart = \"2022-01-01\"\nend = \"{}\"\nfiscal_year_start = \"01-01\"\n",
        a.id, a.end
    );
    if a.q_first {
        s.push_str("[parties.Q]\n[parties.P]\n");
    } else {
        s.push_str("[parties.P]\n[parties.Q]\n");
    }
    for (c, id) in a.cats.iter().zip(CATS) {
        if !c.present {
            continue;
        }
        s.push_str(&format!("[categories.{id}]\n  [[categories.{id}.layers]]\n"));
        let split = match c.p_percent {
            0 => "{ Q = \"100%\" }".to_string(),
            100 => "{ P = \"100%\" }".to_string(),
            p => format!("{{ P = \"{p}%\", Q = \"{}%\" }}", 100 - p),
        };
        s.push_str(&format!("  split = {split}\n"));
        if let Some((cap, period)) = c.cap {
            s.push_str(&format!("  cap = \"{cap}.00\"\n  period = \"{period}\"\n"));
            if c.rest_to_q {
                s.push_str(&format!("  [[categories.{id}.layers]]\n  split = {{ Q = \"100%\" }}\n"));
            }
        }
    }
    s
}

fn cat() -> impl Strategy<Value = Cat> {
    (
        any::<bool>(),
        0u32..=100,
        proptest::option::of((1u32..500, prop_oneof![Just("month"), Just("quarter"), Just("term")])),
        any::<bool>(),
    )
        .prop_map(|(present, p_percent, cap, rest_to_q)| Cat {
            present,
            p_percent,
            cap,
            rest_to_q,
        })
}

fn ag(id: &'static str, base: bool) -> impl Strategy<Value = Ag> {
    (
        prop_oneof![Just("2022-12-31"), Just("2022-06-30")],
        any::<bool>(),
        proptest::collection::vec(cat(), 3),
    )
        .prop_map(move |(end, q_first, mut cats)| {
            if base {
                // the base takes every line
                for c in &mut cats {
                    c.present = true;
                }
            }
            if !cats.iter().any(|c| c.present) {
                cats[0].present = true;
            }
            Ag {
                id,
                end: if base { "2022-12-31" } else { end },
                q_first: !base && q_first,
                cats,
            }
        })
}

/// (day of 2022 0..365, category, cents)
fn costs() -> impl Strategy<Value = Vec<(u32, usize, i64)>> {
    proptest::collection::vec((0u32..365, 0usize..3, 0i64..100_000), 1..25)
}

fn date_of(day: u32) -> String {
    let lens = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let (mut m, mut d) = (0, day);
    while d >= lens[m] {
        d -= lens[m];
        m += 1;
    }
    format!("2022-{:02}-{:02}", m + 1, d + 1)
}

fn amounts(csv: &str, cols: usize) -> Vec<Vec<i64>> {
    csv.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            f[f.len() - cols..]
                .iter()
                .map(|v| match v.strip_prefix('-') {
                    Some(x) => -parse_minor_units(x, 2).unwrap(),
                    None => parse_minor_units(v, 2).unwrap(),
                })
                .collect()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    #[test]
    fn delta_is_the_difference_and_columns_add_up(base in ag("base", true), b in ag("b", false), c in ag("c", false), lines in costs(), by_party in any::<bool>(), two in any::<bool>()) {
        let dir = std::env::temp_dir().join(format!("costshare-compare-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = |name: &str, body: String| -> PathBuf {
            let p = dir.join(name);
            std::fs::write(&p, body).unwrap();
            p
        };
        let a = w("base.toml", toml(&base));
        let bp = w("b.toml", toml(&b));
        let cp = w("c.toml", toml(&c));
        let mut csv = String::from("id,date,category,amount\n");
        let mut total: i64 = 0;
        for (i, (day, cat, cents)) in lines.iter().enumerate() {
            csv.push_str(&format!("L{i},{},{},{}.{:02}\n", date_of(*day), CATS[*cat], cents / 100, cents % 100));
            total += cents;
        }
        let costs = w("costs.csv", csv);
        let source = Source::Files { agreement: a, costs, rates: None };
        let dims = query::dims(if by_party { "party,month" } else { "category,month" }).unwrap();
        let against: Vec<PathBuf> = if two { vec![bp, cp] } else { vec![bp] };
        let as_of = Date::parse("2023-06-30").unwrap();
        let mut quiet = Quiet;
        let mut s = Session::new(&mut quiet);
        let r = compare(&source, &against, &dims, as_of, None, &mut s).unwrap();
        let out = render::compare::compare(&r, Format::Csv);
        let cols = 1 + 2 * against.len();
        let rows = amounts(&out, cols);
        let mut sums = vec![0i64; against.len() + 1];
        for row in &rows {
            sums[0] += row[0];
            for k in 0..against.len() {
                prop_assert_eq!(row[2 + 2 * k], row[0] - row[1 + 2 * k], "{}", out);
                sums[k + 1] += row[1 + 2 * k];
            }
            // a row is there because some agreement has a non-zero amount in it
            let nonzero = (0..=against.len()).any(|k| row[if k == 0 { 0 } else { 2 * k - 1 }] != 0);
            prop_assert!(nonzero, "{}", out);
        }
        for s in &sums {
            prop_assert_eq!(*s, total, "{}", out);
        }
        // the base column is `report`'s answer
        let rep = query::report(&source, &dims, as_of, &mut s).unwrap();
        let base_rows: Vec<(Vec<String>, i64)> = r.rows.iter().filter(|x| x.amounts[0] != 0).map(|x| (x.values.clone(), x.amounts[0])).collect();
        let want: Vec<(Vec<String>, i64)> = rep.rows.iter().map(|x| (x.values.clone(), x.amount)).collect();
        prop_assert_eq!(base_rows, want);
    }
}
