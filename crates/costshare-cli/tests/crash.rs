//! A SQLite ledger under `kill -9` and under concurrent writers.
//!
//! `record` runs in one transaction (BEGIN IMMEDIATE, read the journal,
//! append, COMMIT) on a WAL database with `synchronous = FULL`, a bulk
//! file as any other. So a `record`
//! killed at any moment leaves the ledger holding none or all of its file,
//! never a part, and the ledger still verifies; recording the file again
//! completes it. Concurrent `record`s wait for each other and every line ends
//! up in the ledger exactly once.
//!
//! Run with `--nocapture` to see what happened at each kill point.

mod common;

use common::Dir;
use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests measure wall-clock time; run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Lines of the large file: a full `record` of it takes about 1-2 s in a
/// debug build (measured by the test and printed).
const BIG: usize = 16_000;
/// Lines of the small first file.
const SMALL: usize = 1_000;
/// Kill points chosen by bisection around the end of a full run.
const BISECT: usize = 8;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const AGREEMENT: &str = r#"[agreement]
id = "crash-test"
title = "Crash and concurrency test"
currency = "JPY"
start = "2022-04-01"
end = "2027-03-31"
fiscal_year_start = "04-01"

[parties.JP]
name = "Japan"
[parties.US]
name = "United States"

[categories.utilities]
name = "Utilities"
  [[categories.utilities.layers]]
  split = { JP = "100%" }
  cap = "50000000"
  period = "month"
  [[categories.utilities.layers]]
  split = { US = "100%" }

[categories.welfare]
name = "Welfare"
  [[categories.welfare.layers]]
  split = { JP = "60%", US = "40%" }
"#;

/// `n` valid cost lines with ids `PREFIX-0000000`..., spread over the term.
fn costs(prefix: &str, n: usize) -> String {
    let mut s = String::with_capacity(n * 80);
    s.push_str("id,date,category,amount,currency,quantity,site,description\n");
    for i in 0..n {
        let k = i % 60; // month of the term, 2022-04 .. 2027-03
        let year = 2022 + (k + 3) / 12;
        let month = (k + 3) % 12 + 1;
        let day = i % 28 + 1;
        let category = if i % 2 == 0 { "welfare" } else { "utilities" };
        let amount = 1000 + (i * 7919) % 1_000_000;
        s.push_str(&format!(
            "{prefix}-{i:07},{year}-{month:02}-{day:02},{category},{amount},,,Site{},{prefix} line {i}\n",
            i % 7
        ));
    }
    s
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_costshare"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `recorded N lines from FILE; M already there` / `journal: E entries, head H`.
fn parse_record(stdout: &str) -> (u64, u64, u64) {
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or_default();
    let second = lines.next().unwrap_or_default();
    let recorded = first
        .strip_prefix("recorded ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected record output: {stdout}"));
    let already = first
        .rsplit_once("; ")
        .and_then(|(_, r)| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected record output: {stdout}"));
    let entries = second
        .strip_prefix("journal: ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected record output: {stdout}"));
    (recorded, already, entries)
}

/// `verify` must pass; the number of journal entries it verified.
fn verify(ledger: &str) -> u64 {
    let out = run(&["verify", ledger]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify {ledger} failed\nstdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    stdout
        .strip_prefix("ok: ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected verify output: {stdout}"))
}

/// How many times each line id appears in the journal (`history` rows of
/// kind `line`).
fn recorded_ids(ledger: &str) -> HashMap<String, usize> {
    let out = ok(&["history", ledger, "--format", "csv"]);
    let mut ids = HashMap::new();
    for row in out.lines().skip(1) {
        let mut f = row.splitn(5, ',');
        let (_seq, _at, kind, id) = (f.next(), f.next(), f.next(), f.next());
        if kind == Some("line") {
            *ids.entry(id.unwrap_or_default().to_string()).or_insert(0) += 1;
        }
    }
    ids
}

/// Lines of the ledger per id prefix (`S`, `B`, ...); panics on an id
/// recorded more than once.
fn counts(ledger: &str) -> HashMap<String, usize> {
    let ids = recorded_ids(ledger);
    let dup: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dup.is_empty(), "{ledger}: ids recorded more than once, e.g. {dup:?}");
    let mut per = HashMap::new();
    for id in ids.keys() {
        let prefix = id.split('-').next().unwrap_or_default().to_string();
        *per.entry(prefix).or_insert(0) += 1;
    }
    per
}

/// A new ledger holding the agreement and the small file.
fn fresh_ledger(d: &Dir, name: &str, agreement: &str, small: &str) -> String {
    let l = d.path(name);
    ok(&["init", &l, "--agreement", agreement]);
    let (recorded, already, entries) = parse_record(&ok(&["record", &l, small]));
    assert_eq!((recorded, already), (SMALL as u64, 0));
    assert_eq!(entries, BASE_ENTRIES);
    l
}

/// init + agreement + batch + the small file's lines.
const BASE_ENTRIES: u64 = 2 + 1 + SMALL as u64;
/// ... + batch + the big file's lines.
const FULL_ENTRIES: u64 = BASE_ENTRIES + 1 + BIG as u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    None,
    All,
}

/// The ledger after a kill: it verifies and holds the small file and none or
/// all of the big one, each line once.
fn check_none_or_all(ledger: &str, what: &str) -> Held {
    let entries = verify(ledger);
    let per = counts(ledger);
    let small = per.get("S").copied().unwrap_or(0);
    let big = per.get("B").copied().unwrap_or(0);
    assert_eq!(small, SMALL, "{what}: the first file's lines in {ledger}");
    assert_eq!(
        per.len(),
        if big == 0 { 1 } else { 2 },
        "{what}: unexpected ids {per:?}"
    );
    match big {
        0 => {
            assert_eq!(entries, BASE_ENTRIES, "{what}: journal entries with none of big.csv");
            Held::None
        }
        BIG => {
            assert_eq!(entries, FULL_ENTRIES, "{what}: journal entries with all of big.csv");
            Held::All
        }
        part => panic!("{what}: the ledger {ledger} holds {part} of the {BIG} lines of big.csv (a partial record)"),
    }
}

/// Record big.csv to completion and check the ledger holds exactly both files.
fn complete(ledger: &str, big: &str, held: Held, what: &str) {
    let out = ok(&["record", ledger, big]);
    let (recorded, already, entries) = parse_record(&out);
    let expect = match held {
        Held::None => (BIG as u64, 0),
        Held::All => (0, BIG as u64),
    };
    assert_eq!(
        (recorded, already),
        expect,
        "{what}: record again after the kill\n{out}"
    );
    assert_eq!(entries, FULL_ENTRIES, "{what}: {out}");
    assert_eq!(verify(ledger), FULL_ENTRIES, "{what}");
    let per = counts(ledger);
    assert_eq!(per.get("S").copied(), Some(SMALL), "{what}: {per:?}");
    assert_eq!(per.get("B").copied(), Some(BIG), "{what}: {per:?}");
    assert_eq!(per.len(), 2, "{what}: {per:?}");
}

#[test]
fn kill_9_during_record_leaves_none_or_all_of_the_file() {
    let _serial = serial();
    let started = Instant::now();
    let d = Dir::new("kill");
    let a = d.file("agreement.toml", AGREEMENT);
    let small = d.file("small.csv", costs("S", SMALL));
    let big = d.file("big.csv", costs("B", BIG));

    // how long a full record of big.csv takes here
    let scratch = fresh_ledger(&d, "measure.db", &a, &small);
    let t0 = Instant::now();
    let out = ok(&["record", &scratch, &big]);
    let full = t0.elapsed();
    assert_eq!(parse_record(&out), (BIG as u64, 0, FULL_ENTRIES));
    println!("a full `record` of {BIG} lines takes {} ms", full.as_millis());

    // Fixed points first, then bisection between the latest kill that left
    // the process running with none of the file recorded (lo) and the
    // earliest at which it had committed (hi): the points close in on the
    // end of the run, where the transaction commits.
    let fixed: Vec<Duration> = [0, 10, 30, 100, 300, 1000].map(Duration::from_millis).to_vec();
    let mut lo = Duration::ZERO;
    let mut hi = full.mul_f64(1.25);

    // A ledger that holds none of big.csv after a kill is unchanged, so the
    // next point reuses it (crash recovery on top of crash recovery); after
    // one that holds all of it, the next point starts on a new ledger.
    let mut n = 0;
    let mut ledger = fresh_ledger(&d, &format!("l{n}.db"), &a, &small);
    let mut completed_after_all = false;
    let mut tally: HashMap<&str, usize> = HashMap::new();
    let points = fixed.len() + BISECT;
    for i in 0..points {
        let wait = match fixed.get(i) {
            Some(&w) => w,
            None => (lo + hi) / 2,
        };
        let what = format!("kill point {i} ({} ms)", wait.as_millis());
        let t = Instant::now();
        let mut child = bin()
            .args(["record", &ledger, &big])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(wait.saturating_sub(t.elapsed()));
        let exited_before = child.try_wait().unwrap();
        let _ = child.kill(); // SIGKILL; a no-op if it exited already
        let killed_at = t.elapsed();
        let out = child.wait_with_output().unwrap();
        let wal = std::fs::metadata(format!("{ledger}-wal")).map(|m| m.len()).unwrap_or(0);
        // WAL mode throughout: no rollback journal (see the bulk tests below)
        let journal = std::fs::metadata(format!("{ledger}-journal"))
            .map(|m| m.len())
            .unwrap_or(0);
        let held = check_none_or_all(&ledger, &what);
        let kind = match (exited_before, held) {
            (Some(status), _) => {
                assert!(
                    status.success(),
                    "{what}: record failed on its own\n{}",
                    text(&out.stderr)
                );
                assert_eq!(held, Held::All, "{what}: record exited 0 before the kill");
                "finished before the kill; ALL recorded"
            }
            (None, Held::None) => "killed; none recorded",
            (None, Held::All) => "killed after its commit; ALL recorded",
        };
        println!(
            "{what}: SIGKILL sent at {} ms; {kind} (exit: {}; WAL left {} bytes, rollback journal {} bytes)",
            killed_at.as_millis(),
            out.status,
            wal,
            journal
        );
        *tally.entry(kind).or_insert(0) += 1;
        match held {
            Held::None => lo = lo.max(wait),
            Held::All => {
                hi = hi.min(wait);
                // recording again after a complete record finds it all there
                if !completed_after_all {
                    complete(&ledger, &big, held, &what);
                    completed_after_all = true;
                }
                n += 1;
                ledger = fresh_ledger(&d, &format!("l{n}.db"), &a, &small);
            }
        }
    }
    // the last ledger: record big.csv again, to completion
    let held = check_none_or_all(&ledger, "final");
    complete(&ledger, &big, held, "final");
    let mut tally: Vec<_> = tally.into_iter().collect();
    tally.sort();
    println!(
        "{points} kill points: {tally:?}; boundary between {} and {} ms; {:.1} s in all",
        lo.as_millis(),
        hi.as_millis(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn concurrent_records_put_every_line_in_once() {
    let _serial = serial();
    let started = Instant::now();
    let d = Dir::new("conc");
    let a = d.file("agreement.toml", AGREEMENT);
    let small = d.file("small.csv", costs("S", SMALL));
    let one = d.file("one.csv", costs("A", BIG));
    let two = d.file("two.csv", costs("C", BIG));
    let l = fresh_ledger(&d, "l.db", &a, &small);

    let children = [spawn_record(&l, &one), spawn_record(&l, &two), spawn_record(&l, &one)];
    let outs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let mut results = Vec::new();
    for (name, out) in ["one.csv", "two.csv", "one.csv (again)"].iter().zip(&outs) {
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "record {name}\nstdout:\n{stdout}\nstderr:\n{}",
            text(&out.stderr)
        );
        let r = parse_record(&stdout);
        println!("record {name}: {}", stdout.lines().next().unwrap_or_default());
        results.push(r);
    }
    let big = BIG as u64;
    // two.csv is all new; of the two records of one.csv, one records it all
    // and the other finds it all there
    assert_eq!((results[1].0, results[1].1), (big, 0));
    let (r1, r3) = (results[0], results[2]);
    assert!(
        (r1.0, r1.1, r3.0, r3.1) == (big, 0, 0, big) || (r1.0, r1.1, r3.0, r3.1) == (0, big, big, 0),
        "one.csv twice: {r1:?} and {r3:?}"
    );
    let total = BASE_ENTRIES + 2 * (1 + big);
    assert_eq!(results.iter().map(|r| r.2).max(), Some(total));
    assert_eq!(verify(&l), total);
    let per = counts(&l);
    assert_eq!(per.get("S").copied(), Some(SMALL), "{per:?}");
    assert_eq!(per.get("A").copied(), Some(BIG), "{per:?}");
    assert_eq!(per.get("C").copied(), Some(BIG), "{per:?}");
    assert_eq!(per.len(), 3, "{per:?}");
    println!("three concurrent records: {} s in all", started.elapsed().as_secs_f64());
}

/// A new ledger holding the small file, and the big file beside it.
fn bulk_setup(name: &str) -> (Dir, String, String) {
    let d = Dir::new(name);
    let a = d.file("agreement.toml", AGREEMENT);
    let small = d.file("small.csv", costs("S", SMALL));
    let big = d.file("big.csv", costs("B", BIG));
    let l = fresh_ledger(&d, "l.db", &a, &small);
    (d, l, big)
}

/// `record ledger file` started, its output piped.
fn spawn_record(ledger: &str, file: &str) -> std::process::Child {
    bin()
        .args(["record", ledger, file])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The journal mode the ledger's file is in, read by a connection of its own.
fn journal_mode(ledger: &str) -> String {
    let c = rusqlite::Connection::open(ledger).unwrap();
    c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap()
}

/// A bulk `record` (more rows than the fast path takes) stays in WAL mode:
/// readers started meanwhile answer (with none or all of the file) and the
/// ledger's file is in WAL mode whenever one looks. Rollback-journal mode
/// for bulk writes (tried at stop 19 to write their pages once) made a fresh
/// user's readers wait for the whole write and fail past their timeout, and
/// a ledger killed mid-write unusable without its `-journal` (a copy of the
/// file alone was malformed): WAL keeps readers on the last commit and the
/// file consistent on its own.
#[test]
fn readers_during_a_bulk_record_answer_in_wal_mode() {
    let _serial = serial();
    let (_d, l, big) = bulk_setup("bulkread");
    assert_eq!(journal_mode(&l), "wal");
    let mut child = spawn_record(&l, &big);
    let mut answers = HashMap::new();
    loop {
        let running = child.try_wait().unwrap().is_none();
        let out = run(&["history", &l, "--format", "csv"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "a reader during the bulk record failed:\n{}",
            text(&out.stderr)
        );
        let lines = text(&out.stdout).lines().filter(|r| r.contains(",line,")).count();
        assert!(lines == SMALL || lines == SMALL + BIG, "a reader saw {lines} lines");
        *answers.entry(lines).or_insert(0) += 1;
        assert_eq!(journal_mode(&l), "wal", "during the bulk record");
        if !running {
            break;
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    println!("readers' answers (lines seen: times): {answers:?}");
    assert_eq!(journal_mode(&l), "wal");
    assert_eq!(verify(&l), FULL_ENTRIES);
}

/// With another connection open (a server's pool), a bulk `record` leaves
/// that connection reading meanwhile without waiting (a busy timeout of
/// zero would fail).
#[test]
fn a_bulk_record_beside_an_open_connection_keeps_wal_mode() {
    let _serial = serial();
    let (_d, l, big) = bulk_setup("bulkopen");
    let open = rusqlite::Connection::open(&l).unwrap();
    open.busy_timeout(Duration::ZERO).unwrap();
    let count = || -> i64 {
        open.query_row("SELECT count(*) FROM journal", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("the open connection could not read during the bulk record: {e}"))
    };
    assert_eq!(count(), BASE_ENTRIES as i64);
    let mut child = spawn_record(&l, &big);
    let mut reads = 0;
    while child.try_wait().unwrap().is_none() {
        let n = count();
        assert!(n == BASE_ENTRIES as i64 || n == FULL_ENTRIES as i64, "{n} entries");
        reads += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(count(), FULL_ENTRIES as i64);
    let mode: String = open.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal", "after {reads} reads");
    drop(open);
    assert_eq!(verify(&l), FULL_ENTRIES);
}
