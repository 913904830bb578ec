//! `explain --ledger` and `history --id` read a fresh derived state instead
//! of replaying the journal; their output must be byte-identical to the
//! replay's (`COSTSHARE_LEDGER_PATH=replay`): stdout, stderr and exit code,
//! in every format. Every example agreement, random lines sized so that the
//! caps bind, on a ledger with late lines, a replacement, a void, payments
//! (one sharing a line's id) and an amendment; ids that are active (in each
//! version), voided, replaced, replacing and missing; several as-of dates.

mod common;

use common::{Dir, run, run_env};
use costshare_core::agreement::{Agreement, Cap};
use costshare_core::calendar::Date;
use costshare_demo::Rng;
use std::fmt::Write;
use std::path::PathBuf;

fn examples() -> Vec<(String, String)> {
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

/// Random valid lines (as the store's tests make them): amounts up to a
/// quarter of the category's smallest money cap, quantities up to half its
/// unit cap, so caps bind. Dates within `from..=to`.
fn lines_csv(ag: &Agreement, rng: &mut Rng, n: usize, prefix: &str, from: Date, to: Date) -> String {
    let mut s = String::from("id,date,category,amount,quantity,site\n");
    let days = to.to_days() - from.to_days();
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
                        // whole units of the cap, rounded down (a positive rational)
                        let b = q.to_big();
                        let whole = b.floor().to_string().parse::<i64>().unwrap_or(i64::MAX);
                        units = units.min(whole);
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
        let amount = costshare_core::money::format_minor(minor as i128, ag.currency.decimals());
        let qty = if cat.unit.is_some() {
            let top = if units == i64::MAX { 500 } else { (units / 2).max(1) };
            format!("{}.{}", rng.range(0, top), rng.range(1, 9))
        } else {
            String::new()
        };
        let d = Date::from_days(from.to_days() + rng.range(0, days));
        let site = ["", "North", "South"][rng.range(0, 2) as usize];
        let _ = writeln!(s, "{prefix}{i:04},{d},{},{amount},{qty},{site}", cat.id);
    }
    s
}

fn ok(args: &[&str]) {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
}

/// The command with a derived state and with the replay forced: the same
/// exit code, stdout and stderr. Returns the exit code.
fn same(args: &[&str], what: &str) -> i32 {
    let fast = run(args);
    let replay = run_env(args, &[("COSTSHARE_LEDGER_PATH", "replay")]);
    assert_eq!(
        fast.0, replay.0,
        "{what}: {args:?}: exit code\n{}\n{}",
        fast.2, replay.2
    );
    assert_eq!(fast.1, replay.1, "{what}: {args:?}: stdout");
    assert_eq!(fast.2, replay.2, "{what}: {args:?}: stderr");
    fast.0
}

/// What the comparisons covered, so the test cannot quietly degenerate.
#[derive(Default)]
struct Seen {
    explained: usize,
    voided: usize,
    missing: usize,
    in_v2: usize,
    with_payment: usize,
}

#[test]
fn explain_and_history_from_the_derived_state_equal_the_replay() {
    let dir = Dir::new("derived-reads");
    let mut seen = Seen::default();
    for (n, (name, text)) in examples().into_iter().enumerate() {
        let l = dir.path(&format!("l{n}.db"));
        compare_on(&l, &dir, n, &name, &text, &mut seen);
    }
    assert!(seen.explained >= 100, "lines explained: {}", seen.explained);
    assert!(seen.in_v2 >= 12, "lines under an amendment: {}", seen.in_v2);
    assert!(seen.voided >= 10 && seen.missing >= 5 && seen.with_payment >= 5);
}

/// The same on PostgreSQL (two examples; skipped without a server).
#[test]
fn explain_and_history_from_the_derived_state_equal_the_replay_on_postgres() {
    let dir = Dir::new("derived-reads-pg");
    let mut seen = Seen::default();
    for (n, (name, text)) in examples().into_iter().enumerate().take(2) {
        let Some(db) = common::PgDb::new(&format!("derived_reads{n}")) else {
            return;
        };
        compare_on(&db.url, &dir, n, &name, &text, &mut seen);
    }
    assert!(seen.explained >= 20 && seen.voided >= 4 && seen.with_payment >= 2);
}

/// Build a ledger at `l` under the example agreement `name` (late lines, a
/// replacement, a void, payments, an amendment), then compare `explain` and
/// `history --id` of many ids with and without the replay forced.
fn compare_on(l: &str, dir: &Dir, n: usize, name: &str, text: &str, seen: &mut Seen) {
    let (l, name) = (l.to_string(), name.to_string());
    let Seen {
        explained,
        voided,
        missing,
        in_v2,
        with_payment,
    } = seen;
    {
        let ag = costshare_core::load(text).agreement.expect("example loads");
        ok(&["init", &l, "--agreement", &name]);
        let mut rng = Rng::new(n as u64 + 11);
        // a first file, then late lines (the derived state's fast path)
        let first = dir.file(
            &format!("first{n}.csv"),
            lines_csv(&ag, &mut rng, 90, "a", ag.start, ag.end),
        );
        ok(&["record", &l, &first]);
        let mut ids: Vec<String> = (0..90).step_by(6).map(|i| format!("a{i:04}")).collect();
        for k in 0..3 {
            let late = dir.file(
                &format!("late{n}-{k}.csv"),
                lines_csv(&ag, &mut rng, 2, &format!("late{k}-"), ag.start, ag.end),
            );
            ok(&["record", &l, &late]);
            ids.push(format!("late{k}-0000"));
        }
        // a replacement (a0003 voided, r1 recorded) and a void
        let first_text = std::fs::read_to_string(&first).unwrap();
        let old: Vec<&str> = first_text.lines().nth(4).unwrap().split(',').collect();
        assert_eq!(old[0], "a0003");
        let repl = dir.file(
            &format!("r{n}.csv"),
            format!(
                "id,date,category,amount,quantity,site,replaces\nr1,{},{},{},{},{},a0003\n",
                old[1], old[2], old[3], old[4], old[5]
            ),
        );
        ok(&["record", &l, &repl]);
        ok(&["void", &l, "a0007", "--reason", "entered twice"]);
        ids.extend(["a0003", "r1", "a0007", "missing-id"].map(String::from));
        // payments: one with its own id, one sharing a line's id
        let (p0, p1) = (&ag.parties[0].id, &ag.parties[ag.parties.len() - 1].id);
        let pay = dir.file(
            &format!("pay{n}.csv"),
            format!(
                "id,date,from,to,amount\nP1,{d},{p0},{p1},1\na0012,{d},{p1},{p0},2\n",
                d = ag.start
            ),
        );
        ok(&["pay", &l, &pay]);
        ids.extend(["P1", "a0012"].map(String::from));
        // an amendment from the second fiscal year, and lines under it
        if ag.fy_count >= 2 {
            let (effective, _) = ag.calendar.fy_bounds(ag.first_fy + 1);
            let amended = dir.file(&format!("amended{n}.toml"), text);
            ok(&[
                "amend",
                &l,
                "--agreement",
                &amended,
                "--effective",
                &effective.to_string(),
            ]);
            let more = dir.file(
                &format!("more{n}.csv"),
                lines_csv(&ag, &mut rng, 30, "b", effective, ag.end),
            );
            ok(&["record", &l, &more]);
            ids.extend((0..30).step_by(5).map(|i| format!("b{i:04}")));
            *in_v2 += 6;
        }
        let mid = Date::from_days((ag.start.to_days() + ag.end.to_days()) / 2);
        for id in &ids {
            // the derived path answers (no replay), and as the replay does
            let fast = costshare_app::query::explain_derived(&l, id, mid).unwrap();
            assert!(fast.is_some(), "{name}: explain {id}: the derived state was not read");
            let fast = costshare_app::ledger::history_of_id_derived(&l, id).unwrap();
            assert!(fast.is_some(), "{name}: history {id}: the derived state was not read");
            for as_of in [ag.start, mid, ag.end] {
                let a = as_of.to_string();
                let formats: &[&str] = if as_of == mid { &["table", "json"] } else { &["table"] };
                for format in formats {
                    let code = same(
                        &["explain", "--ledger", &l, "--id", id, "--as-of", &a, "--format", format],
                        &name,
                    );
                    if code == 0 && *format == "table" && as_of == mid {
                        *explained += 1;
                    }
                }
            }
            for format in ["table", "csv", "json"] {
                let code = same(&["history", &l, "--id", id, "--format", format], &name);
                if format == "table" {
                    match id.as_str() {
                        "missing-id" => {
                            assert_ne!(code, 0, "{name}: history of a missing id");
                            *missing += 1;
                        }
                        "a0003" | "a0007" => *voided += 1,
                        "a0012" => *with_payment += 1,
                        _ => {}
                    }
                }
            }
        }
        // what history says of a line and its void, and of a line sharing a payment's id
        let (_, out, _) = run(&["history", &l, "--id", "a0007", "--format", "csv"]);
        assert!(
            out.contains(",line,a0007,") && out.contains(",void,a0007,voided a0007: entered twice,"),
            "{out}"
        );
        assert!(out.contains(" (sha256 "), "{out}");
        let (_, out, _) = run(&["history", &l, "--id", "a0012", "--format", "csv"]);
        assert!(out.contains(",line,a0012,") && out.contains(",payment,a0012,"), "{out}");
    }
}

/// A stale derived state (bulk load) or a damaged one is not read: explain
/// and history replay and answer the same.
#[test]
fn stale_or_damaged_derived_state_is_not_read() {
    let dir = Dir::new("derived-reads-stale");
    let (name, text) = examples().into_iter().next().unwrap();
    let ag = costshare_core::load(&text).agreement.unwrap();
    let l = dir.path("l.db");
    ok(&["init", &l, "--agreement", &name]);
    let mut rng = Rng::new(3);
    let first = dir.file("first.csv", lines_csv(&ag, &mut rng, 40, "a", ag.start, ag.end));
    ok(&["record", &l, &first]);
    let want_explain = run_env(
        &[
            "explain",
            "--ledger",
            &l,
            "--id",
            "a0005",
            "--format",
            "json",
            "--as-of",
            "2030-01-01",
        ],
        &[("COSTSHARE_LEDGER_PATH", "replay")],
    );
    let want_history = run_env(
        &["history", &l, "--id", "a0005"],
        &[("COSTSHARE_LEDGER_PATH", "replay")],
    );
    assert_eq!(want_explain.0, 0, "{}", want_explain.2);
    // damage every bucket: the derived read fails its seal and is not used
    let db = rusqlite::Connection::open(&l).unwrap();
    let blobs: Vec<(String, Vec<u8>)> = db
        .prepare("SELECT k, v FROM cache WHERE k LIKE 'b/%' OR k LIKE 'i/%'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!blobs.is_empty());
    for (k, mut v) in blobs {
        let last = v.len() - 1;
        v[last] ^= 0x5a;
        db.execute("UPDATE cache SET v = ?1 WHERE k = ?2", rusqlite::params![v, k])
            .unwrap();
    }
    drop(db);
    assert!(
        costshare_app::query::explain_derived(&l, "a0005", ag.start)
            .unwrap()
            .is_none(),
        "a damaged derived state is not read"
    );
    let got = run(&[
        "explain",
        "--ledger",
        &l,
        "--id",
        "a0005",
        "--format",
        "json",
        "--as-of",
        "2030-01-01",
    ]);
    assert_eq!((got.0, &got.1), (want_explain.0, &want_explain.1));
    let got = run(&["history", &l, "--id", "a0005"]);
    assert_eq!((got.0, &got.1), (want_history.0, &want_history.1));
}
