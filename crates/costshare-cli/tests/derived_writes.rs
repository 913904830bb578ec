//! Writes and reads answered from the derived state without a replay —
//! `close`, `adjustments` and a `record` of a file recorded before — give
//! the full path's answer byte for byte: the same stdout, stderr and exit
//! code, and for `close` the same journal entry (its bytes but `at=`).
//!
//! Each scenario runs on two copies of one ledger: one as a user runs it,
//! one with `COSTSHARE_LEDGER_PATH=replay` (every command replays the
//! journal). Entries written by the two copies differ in their time (`at=`)
//! and so in their hashes: outputs are compared with every head hash
//! written as the entry it is the hash of.

use std::collections::HashMap;

mod common;
use common::{Dir, run_env};

const AS_OF: &str = "2030-06-01";
const HEADER: &str = "id,date,category,amount,currency,quantity,site,description\n";

/// A ledger run twice: `fast` as a user runs it, `full` replaying.
struct Twin {
    fast: String,
    full: String,
}

/// stdout, stderr and exit code, with head hashes named by their entry.
type Answer = (i32, String, String);

fn journal(ledger: &str) -> Vec<(u64, String, String)> {
    let c = rusqlite::Connection::open(ledger).unwrap();
    let mut q = c.prepare("SELECT seq, body, hash FROM journal ORDER BY seq").unwrap();
    q.query_map([], |r| {
        let body: Vec<u8> = r.get(1)?;
        Ok((r.get::<_, i64>(0)? as u64, String::from_utf8(body).unwrap(), r.get(2)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Every hash of `ledger`'s journal in `text` written as `#SEQ`.
fn named(ledger: &str, text: &str) -> String {
    let hashes: HashMap<String, u64> = journal(ledger).into_iter().map(|(s, _, h)| (h, s)).collect();
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if i + 64 <= b.len() && text.is_char_boundary(i) && text.is_char_boundary(i + 64) {
            let w = &text[i..i + 64];
            if let Some(seq) = hashes.get(w) {
                out.push_str(&format!("#{seq}"));
                i += 64;
                continue;
            }
        }
        let ch = text[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Entry bodies without their `at=` line (the time each copy wrote it), a
/// `head=` written as the entry it is the hash of.
fn bodies(ledger: &str) -> Vec<String> {
    let j = journal(ledger);
    let seq_of: HashMap<&str, u64> = j.iter().map(|(s, _, h)| (h.as_str(), *s)).collect();
    j.iter()
        .map(|(_, b, _)| {
            b.lines()
                .filter(|l| !l.starts_with("at="))
                .map(|l| match l.strip_prefix("head=").and_then(|h| seq_of.get(h)) {
                    Some(seq) => format!("head=#{seq}"),
                    None => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

impl Twin {
    /// Two copies of the ledger at `ledger` (a SQLite file, no writer open).
    fn of(d: &Dir, ledger: &str, tag: &str) -> Twin {
        let fast = d.path(&format!("{tag}-fast.db"));
        let full = d.path(&format!("{tag}-full.db"));
        for to in [&fast, &full] {
            std::fs::copy(ledger, to).unwrap();
            for ext in ["-wal", "-shm"] {
                if std::path::Path::new(&format!("{ledger}{ext}")).exists() {
                    std::fs::copy(format!("{ledger}{ext}"), format!("{to}{ext}")).unwrap();
                }
            }
        }
        Twin { fast, full }
    }

    /// Run `args` (`{L}` is the ledger) on both copies; both answers must be
    /// the same. Returns the fast copy's answer.
    fn same(&self, args: &[&str]) -> Answer {
        let on = |l: &str, env: &[(&str, &str)]| -> Answer {
            let a: Vec<String> = args.iter().map(|a| a.replace("{L}", l)).collect();
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            let (code, out, err) = run_env(&a, env);
            (code, named(l, &out).replace(l, "{L}"), named(l, &err).replace(l, "{L}"))
        };
        let fast = on(&self.fast, &[]);
        let full = on(&self.full, &[("COSTSHARE_LEDGER_PATH", "replay")]);
        assert_eq!(
            fast, full,
            "{args:?}: the derived path's answer (left) differs from the replay's"
        );
        let (a, b) = (bodies(&self.fast), bodies(&self.full));
        if let Some(k) = (0..a.len().max(b.len())).find(|&k| a.get(k) != b.get(k)) {
            panic!(
                "{args:?}: the journals differ at entry {}:\n{:?}\n{:?}",
                k + 1,
                a.get(k),
                b.get(k)
            );
        }
        fast
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.same(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    }

    fn refused(&self, args: &[&str]) -> String {
        let (code, _, err) = self.same(args);
        assert_ne!(code, 0, "{args:?} was not refused");
        err
    }

    /// Both derived states match a rebuild from the journal.
    fn verify(&self) {
        for l in [&self.fast, &self.full] {
            let (code, out, err) = run_env(&["verify", l, "--deep"], &[]);
            assert_eq!(code, 0, "{err}");
            assert!(out.contains("derived state: matches the journal"), "{out}");
        }
    }
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run_env(args, &[]);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

/// A small deterministic generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Cost rows for every category of `ag`, two a month over its term (ids
/// `{tag}-N`), amounts large enough to reach caps.
fn rows(ag: &costshare_core::Agreement, tag: &str, per_month: usize, seed: u64) -> Vec<String> {
    let mut r = Rng(seed | 1);
    let dec = ag.currency.decimals();
    let code = ag.currency.code();
    let mut out = Vec::new();
    let (m0, m1) = (ag.start.month_index(), ag.end.month_index());
    let mut n = 0;
    for (ci, c) in ag.categories.iter().enumerate() {
        for m in m0..=m1 {
            for k in 0..per_month {
                let first = costshare_core::calendar::Date::first_of_month_index(m);
                let day = 1 + ((ci + k * 11) % 28) as u8;
                let date = costshare_core::calendar::Date { day, ..first };
                if date < ag.start || date > ag.end {
                    continue;
                }
                let minor = (r.next() % 4_000_000_000) as i64 + 1;
                let amount = if dec == 0 {
                    minor.to_string()
                } else {
                    let p = 10i64.pow(dec);
                    format!("{}.{:0w$}", minor / p, minor % p, w = dec as usize)
                };
                let qty = if c.unit.is_some() {
                    format!("{}", 1 + r.next() % 40)
                } else {
                    String::new()
                };
                let site = ["North", "South", "East"][(r.next() % 3) as usize];
                n += 1;
                out.push(format!(
                    "{tag}-{n},{date},{},{amount},{code},{qty},{site},row {n}",
                    c.id
                ));
            }
        }
    }
    out
}

fn csv(rows: &[String]) -> String {
    let mut s = HEADER.to_string();
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

fn load(text: &str) -> costshare_core::Agreement {
    costshare_core::load(text).agreement.expect("the example loads")
}

fn examples() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 7, "{out:?}");
    out
}

/// Every way `close` ends, `adjustments` after late lines and voids, and
/// the no-op `record`, on a ledger of `text` (amended from its second fiscal
/// year when `amend`).
fn scenario(name: &str, text: &str, amend: Option<&str>) {
    let d = Dir::new(&format!("dw-{name}"));
    let ag = load(text);
    let a = d.file("agreement.toml", text);
    let costs = rows(&ag, "C", 2, 7);
    let costs_path = d.file("costs.csv", csv(&costs));
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a]);
    ok(&["record", &l, &costs_path]);
    let fy0 = ag.first_fy;
    let last_fy = ag.first_fy + ag.fy_count as i32 - 1;
    if let Some(amended) = amend {
        let b = d.file("amended.toml", amended);
        let (first, _) = ag.calendar.fy_bounds(fy0 + 1);
        ok(&["amend", &l, "--agreement", &b, "--effective", &first.to_string()]);
    }
    let t = Twin::of(&d, &l, "t");
    let fy = |y: i32| format!("FY{y}");
    let day = |d: costshare_core::calendar::Date| d.to_string();
    let (_, end0) = ag.calendar.fy_bounds(fy0);
    let (_, end_last) = ag.calendar.fy_bounds(last_fy);
    let after_end0 = day(costshare_core::calendar::Date::first_of_month_index(
        end0.month_index() + 1,
    ));

    // nothing closed yet
    t.ok(&["adjustments", "{L}", "--as-of", AS_OF]);
    t.ok(&["adjustments", "{L}", "--as-of", AS_OF, "--format", "json"]);
    // refusals: not a year, outside the term, not ended
    t.refused(&["close", "{L}", "--period", "2022", "--as-of", AS_OF]);
    t.refused(&["close", "{L}", "--period", &fy(fy0 - 5), "--as-of", AS_OF]);
    t.refused(&["close", "{L}", "--period", &fy(last_fy + 3), "--as-of", AS_OF]);
    t.refused(&[
        "close",
        "{L}",
        "--period",
        &fy(fy0),
        "--as-of",
        &day(costshare_core::calendar::Date::from_days(end0.to_days() - 1)),
    ]);
    // the day after the year: closed, or refused for provisional lines
    let (code, _, err) = t.same(&["close", "{L}", "--period", &fy(fy0), "--as-of", &after_end0]);
    if code != 0 {
        assert!(err.contains("pro-rata periods still open"), "{err}");
        // forced: the entry says so
        t.ok(&["close", "{L}", "--period", &fy(fy0), "--as-of", &after_end0, "--force"]);
        let j = bodies(&t.fast);
        assert!(j.last().unwrap().contains("forced=yes"), "{j:?}");
    }
    // closed once
    t.refused(&["close", "{L}", "--period", &fy(fy0), "--as-of", AS_OF]);
    // a year not ended, forced, as JSON
    t.ok(&[
        "close",
        "{L}",
        "--period",
        &fy(last_fy),
        "--as-of",
        &day(costshare_core::calendar::Date::from_days(end_last.to_days() - 40)),
        "--force",
        "--format",
        "json",
    ]);
    t.ok(&["adjustments", "{L}", "--as-of", AS_OF]);
    // late lines (a file of one line, then one of a line per month) and voids
    let late = d.file("late.csv", csv(&rows(&ag, "LATE", 1, 99)[..1]));
    t.ok(&["record", "{L}", &late]);
    let many = d.file("many.csv", csv(&rows(&ag, "M", 1, 5)));
    t.ok(&["record", "{L}", &many]);
    t.ok(&["void", "{L}", "C-1", "--reason", "typo"]);
    t.ok(&["void", "{L}", "C-3", "--reason", "twice"]);
    t.ok(&["adjustments", "{L}", "--as-of", AS_OF]);
    t.ok(&["adjustments", "{L}", "--as-of", AS_OF, "--format", "csv"]);
    // the no-op record: a file recorded before, a line of it voided since
    let out = t.ok(&["record", "{L}", &costs_path]);
    assert!(out.starts_with("recorded 0 lines"), "{out}");
    t.ok(&["record", "{L}", &many]);
    // not a no-op: a row changed, a row added
    let mut changed = costs.clone();
    changed[1] = changed[1].replace(",row 2", ",row 2 changed");
    t.refused(&["record", "{L}", &d.file("changed.csv", csv(&changed))]);
    let mut added = costs.clone();
    added.push(rows(&ag, "ADDED", 1, 3)[0].clone());
    t.ok(&["record", "{L}", &d.file("added.csv", csv(&added))]);
    // another year closed after all that, then the adjustments of both
    if last_fy > fy0 + 1 {
        t.same(&["close", "{L}", "--period", &fy(fy0 + 1), "--as-of", AS_OF]);
        t.same(&["close", "{L}", "--period", &fy(fy0 + 1), "--as-of", AS_OF, "--force"]);
    }
    t.ok(&["adjustments", "{L}", "--as-of", AS_OF, "--format", "json"]);
    t.verify();
}

#[test]
fn every_example_agreement() {
    for (name, text) in examples() {
        scenario(&name, &text, None);
    }
}

#[test]
fn every_example_agreement_amended() {
    for (name, text) in examples() {
        let ag = load(&text);
        if ag.fy_count < 2 {
            continue;
        }
        scenario(&format!("{name}-amended"), &text, Some(&text));
    }
}

#[test]
fn amended_with_a_lower_cap() {
    let (_, text) = examples()
        .into_iter()
        .find(|(n, _)| n == "us-japan-sma-2022.toml")
        .unwrap();
    let lower = text.replace("FY2025 = \"13300000000\"", "FY2025 = \"12000000000\"");
    assert_ne!(lower, text);
    load(&lower);
    scenario("sma-lower", &text, Some(&lower));
}

/// JP pays utilities up to 1,000 a fiscal year (pro rata, so a year's lines
/// stay open until its end); the US pays the rest; rent is split.
const SMALL: &str = r#"[agreement]
id = "small"
currency = "JPY"
start = "2022-04-01"
end = "2025-03-31"
fiscal_year_start = "04-01"
[parties.JP]
name = "JP"
[parties.US]
name = "US"
[categories.u]
name = "Utilities"
  [[categories.u.layers]]
  split = { JP = "100%" }
  cap = 1000
  cap_policy = "pro_rata"
  [[categories.u.layers]]
  split = { US = "100%" }
[categories.r]
name = "Rent"
  [[categories.r.layers]]
  split = { JP = "50%", US = "50%" }
"#;

/// The same without rent: a voided rent line dated after the amendment no
/// longer validates.
fn without_rent() -> String {
    SMALL.split("[categories.r]").next().unwrap().to_string()
}

#[test]
fn provisional_lines_refuse_a_close_until_their_period_ends() {
    let d = Dir::new("dw-prov");
    // a term cap shared pro rata: its lines stay open until the term's end
    let text = format!(
        "{SMALL}[categories.t]\nname = \"Term\"\n  [[categories.t.layers]]\n  split = {{ JP = \"100%\" }}\n  cap = 500\n  period = \"term\"\n  cap_policy = \"pro_rata\"\n  [[categories.t.layers]]\n  split = {{ US = \"100%\" }}\n"
    );
    let a = d.file("a.toml", &text);
    load(&text);
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a]);
    let c = d.file(
        "c.csv",
        format!(
            "{HEADER}U1,2022-05-01,u,600,JPY,,Naha,May\nU2,2023-02-01,u,700,JPY,,Naha,Feb\nR1,2022-06-01,r,100,JPY,,Naha,rent\n\
             T1,2022-05-01,t,400,JPY,,Naha,a\nT2,2022-07-01,t,1,JPY,,Naha,b\nT3,2023-05-01,t,400,JPY,,Naha,c\n"
        ),
    );
    ok(&["record", &l, &c]);
    let t = Twin::of(&d, &l, "p");
    for as_of in ["2022-12-31", "2023-03-30"] {
        t.same(&["close", "{L}", "--period", "FY2022", "--as-of", as_of]);
    }
    let err = t.refused(&["close", "{L}", "--period", "FY2022", "--as-of", "2023-04-02"]);
    assert!(
        err.contains("2 of its lines are in pro-rata periods still open (until 2025-03-31)"),
        "{err}"
    );
    t.ok(&["close", "{L}", "--period", "FY2022", "--as-of", "2023-04-02", "--force"]);
    t.refused(&["close", "{L}", "--period", "FY2022", "--as-of", "2023-04-02", "--force"]);
    // the term's last day: nothing open any more
    t.ok(&["close", "{L}", "--period", "FY2023", "--as-of", "2025-03-31"]);
    t.ok(&[
        "record",
        "{L}",
        &d.file("late.csv", format!("{HEADER}U3,2022-09-01,u,900,JPY,,Naha,late\n")),
    ]);
    t.ok(&["adjustments", "{L}", "--as-of", "2024-01-01"]);
    t.verify();
}

#[test]
fn no_op_record_in_every_case_the_full_path_answers_the_same() {
    let d = Dir::new("dw-noop");
    let a = d.file("a.toml", SMALL);
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a]);
    // a file with a repeated row and a row replaced within the file (full
    // path); a small file (the late-line path)
    let big = d.file(
        "big.csv",
        format!(
            "{HEADER}A1,2022-05-01,u,100,JPY,,Naha,a\nA1,2022-05-01,u,100,JPY,,Naha,a\nA2,2022-06-01,u,200,JPY,,Naha,b\n\
             A3,2023-05-01,r,300,JPY,,Naha,c\nA4,2023-06-01,r,301,JPY,,Naha,d\n"
        ),
    );
    let replaced = d.file(
        "replaced.csv",
        "id,date,category,amount,currency,quantity,site,description,replaces\n\
         B1,2022-07-01,u,10,JPY,,Naha,x,\nB2,2022-07-01,u,11,JPY,,Naha,x fixed,B1\n",
    );
    let small = d.file("small.csv", format!("{HEADER}S1,2022-08-01,u,5,JPY,,Naha,s\n"));
    ok(&["record", &l, &big]);
    ok(&["record", &l, &replaced]);
    let t = Twin::of(&d, &l, "n");
    t.ok(&["record", "{L}", &small]);
    for f in [&big, &replaced, &small] {
        let out = t.ok(&["record", "{L}", f]);
        assert!(out.starts_with("recorded 0 lines"), "{out}");
    }
    // a line of a recorded file voided since
    t.ok(&["void", "{L}", "A2", "--reason", "wrong"]);
    t.ok(&["record", "{L}", &big]);
    t.ok(&["record", "{L}", &big, "--impact"]);
    // an amendment since: a voided rent line of the file dated after it no
    // longer validates (refused by both paths); the others still answer
    t.ok(&["void", "{L}", "A4", "--reason", "gone"]);
    t.ok(&["void", "{L}", "A3", "--reason", "gone"]);
    t.ok(&[
        "amend",
        "{L}",
        "--agreement",
        &d.file("b.toml", without_rent()),
        "--effective",
        "2023-04-01",
    ]);
    t.refused(&["record", "{L}", &big]);
    t.ok(&["record", "{L}", &replaced]);
    t.ok(&["record", "{L}", &small]);
    // the same bytes under another name are the same file
    let copy = d.file("copy.csv", std::fs::read(&small).unwrap());
    t.ok(&["record", "{L}", &copy]);
    // rates given: the full path either way; once rates are recorded, every
    // row is checked again
    let rates = d.file("rates.csv", "currency,date,rate\nUSD,2022-01-01,150\n");
    t.refused(&["record", "{L}", &big, "--rates", &rates]);
    t.ok(&["record", "{L}", &small, "--rates", &rates]);
    t.refused(&["record", "{L}", &big]);
    t.ok(&["record", "{L}", &replaced]);
    t.verify();
}

/// A close from the derived state leaves it as a rebuild would (verify
/// compares blob for blob) and records the same entry as the full path.
#[test]
fn close_entry_bytes_equal_the_full_paths() {
    let d = Dir::new("dw-entry");
    let a = d.file("a.toml", SMALL);
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a]);
    ok(&[
        "record",
        &l,
        &d.file(
            "c.csv",
            format!("{HEADER}U1,2022-05-01,u,600,JPY,,Naha,May\nU2,2022-06-01,u,700,JPY,,Okinawa,Jun\nR1,2022-06-01,r,101,JPY,,Naha,rent\n"),
        ),
    ]);
    let t = Twin::of(&d, &l, "e");
    t.ok(&["close", "{L}", "--period", "FY2022", "--as-of", "2023-06-01"]);
    let j = bodies(&t.fast);
    let last = j.last().unwrap();
    assert!(last.contains("kind=close") && last.contains("head="), "{last}");
    assert!(last.contains("row=JP\tu\t1000"), "{last}");
    t.verify();
}
