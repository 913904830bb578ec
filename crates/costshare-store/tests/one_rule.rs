//! One rule, one home: a costs row is accepted or refused by
//! `costs::accept`, whichever path reads it. Each row of a table (bad rows,
//! one per rule, and good ones) goes through
//!
//! - (a) the general path, `costs::parse_costs`;
//! - (b) the streaming report (`stream::Plan`, workers, `finish`), which must
//!   fall back exactly when (a) refuses and report when (a) accepts;
//! - (c) `record` into a fresh SQLite ledger;
//! - (d) a late line (`Ledger::record_fast`) under a fresh derived state,
//!   after a first file was recorded; a file it cannot take goes to
//!   `record`, as the CLI does, which names the problems.
//!
//! Every path must give the same verdict, and (a), (c) and (d) the same
//! messages, word for word; accepted rows must read back as the same lines.

mod common;

use common::input;
use costshare_core::calendar::Date;
use costshare_core::costs::{self, CostLine, Rates, RowError};
use costshare_core::report::Dim;
use costshare_core::stream::Plan;
use costshare_store::{Ledger, LedgerError, state};
use std::path::{Path, PathBuf};

const AGREEMENT: &str = r#"
[agreement]
id = "one-rule"
title = "One rule, one home"
currency = "USD"
start = "2022-01-01"
end = "2023-12-31"
fiscal_year_start = "01-01"
fiscal_year_label = "start"

[currencies]
KRW = 0

[parties.A]
name = "A"
[parties.B]
name = "B"

[categories.rent]
name = "Rent"
  [[categories.rent.layers]]
  split = { A = "50%", B = "50%" }

[categories.labor]
name = "Labor"
unit = "worker"
  [[categories.labor.layers]]
  split = { A = "100%" }
  cap_units = 100
  period = "month"
  cap_policy = "pro_rata"
  [[categories.labor.layers]]
  split = { B = "100%" }
"#;

const RATES: &str = "date,currency,rate\n2022-03-01,EUR,1.10\n2022-01-01,KRW,0.00075\n";

const HEADER: &str = "id,date,category,amount,currency,quantity,site,description,replaces,paid_by\n";

/// Lines already in the ledger of path (d).
const FIRST: &str = "base1,2022-04-01,rent,10.00,,,,,\n\
                     base2,2022-05-03,labor,500.00,,60,North,,\n\
                     base3,2022-05-20,labor,700.00,EUR,70,South,,\n";

/// Files of rows every path must refuse, with why.
const BAD: &[(&str, &str)] = &[
    ("bad date", "b1,2022-13-01,rent,1.00,,,,,\n"),
    ("empty date", "b2,,rent,1.00,,,,,\n"),
    ("date outside the term", "b3,2024-01-01,rent,1.00,,,,,\n"),
    ("date before the term", "b3,2021-12-31,rent,1.00,,,,,\n"),
    ("unknown category", "b4,2022-05-01,food,1.00,,,,,\n"),
    ("empty category", "b5,2022-05-01,,1.00,,,,,\n"),
    ("bad quantity", "b6,2022-05-01,labor,1.00,,abc,,,\n"),
    (
        "bad quantity where the category has no unit",
        "b6,2022-05-01,rent,1.00,,abc,,,\n",
    ),
    ("negative quantity", "b6,2022-05-01,labor,1.00,,-2,,,\n"),
    ("zero quantity", "b7,2022-05-01,labor,1.00,,0.00,,,\n"),
    ("missing quantity", "b8,2022-05-01,labor,1.00,,,,,\n"),
    (
        "quantity with too many decimals",
        "b9,2022-05-01,labor,1.00,,0.1234567890123456789,,,\n",
    ),
    ("amount with too many decimals", "c1,2022-05-01,rent,1.001,,,,,\n"),
    (
        "amount with decimals in KRW (it has none)",
        "c1,2022-05-01,rent,1.5,KRW,,,,\n",
    ),
    ("negative amount", "c2,2022-05-01,rent,-1.00,,,,,\n"),
    ("empty amount", "c3,2022-05-01,rent,,,,,,\n"),
    ("malformed amount", "c4,2022-05-01,rent,1e5,,,,,\n"),
    (
        "amount beyond 64 bits",
        "c5,2022-05-01,rent,92233720368547758.08,,,,,\n",
    ),
    ("unknown currency", "c6,2022-05-01,rent,1.00,XYZ,,,,\n"),
    ("no rate yet", "c7,2022-02-01,rent,1.00,EUR,,,,\n"),
    (
        "a conversion beyond 64 bits",
        "c8,2022-05-01,rent,92233720368547758.07,EUR,,,,\n",
    ),
    ("empty id", ",2022-05-01,rent,1.00,,,,,\n"),
    (
        "repeated id with different values",
        "d1,2022-05-01,rent,1.00,,,,,\nd1,2022-05-01,rent,2.00,,,,,\n",
    ),
    ("a line replacing itself", "d2,2022-05-01,rent,1.00,,,,,d2\n"),
    (
        "a cycle of two replacements",
        "p1,2022-05-01,rent,1.00,,,,,p2\np2,2022-05-01,rent,2.00,,,,,p1\n",
    ),
    (
        "a cycle of three, and a line replacing into it",
        "q1,2022-05-01,rent,1.00,,,,,q2\nq2,2022-05-01,rent,2.00,,,,,q3\nq3,2022-05-01,rent,3.00,,,,,q1\nq4,2022-05-01,rent,4.00,,,,,q1\n",
    ),
    ("several problems at once", ",2022-13-01,food,-1.00,XYZ,,,,\n"),
    ("paid_by names no party", "e1,2022-05-01,rent,1.00,,,,,,JP\n"),
    (
        "one bad row among good ones",
        "d3,2022-05-01,rent,1.00,,,,,\nd4,2022-05-01,labor,1.00,,,,,\nd5,2022-06-01,rent,2.00,,,,,\n",
    ),
];

/// Files every path must accept.
const GOOD: &[(&str, &str)] = &[
    ("plain", "g1,2022-05-01,rent,100.00,,,,,\n"),
    ("own currency named", "g2,2022-05-01,rent,100.5,USD,,North,a desc,\n"),
    ("converted", "g3,2022-05-01,rent,100.00,EUR,,,,\n"),
    ("converted on the rate's date", "g3,2022-03-01,rent,0.01,EUR,,,,\n"),
    ("declared currency", "g4,2023-12-31,rent,1000,KRW,,,,\n"),
    ("quantity", "g5,2022-05-01,labor,5000.00,,2.5,,,\n"),
    (
        "quantity beyond u128 digits",
        "g5,2022-05-01,labor,1.00,,12345678901234567890123456789012345678901,,,\n",
    ),
    ("quantity unused without a unit", "g6,2022-05-01,rent,1.00,,3,,,\n"),
    ("zero amount", "g7,2022-01-01,rent,0,,,,,\n"),
    ("paid by a party", "g10,2022-05-01,rent,1.00,,,,,,B\n"),
    (
        "several rows",
        "g8,2022-05-01,rent,1.00,,,,,\ng9,2022-05-02,labor,2.00,EUR,40,North,,\n",
    ),
];

struct Paths {
    /// (a): the lines, or every row error as the user reads it.
    general: Result<Vec<CostLine>, Vec<String>>,
    /// (b): the streaming report took the file (else it fell back), and its
    /// line count.
    streamed: Result<usize, &'static str>,
    /// (c) and (d): the recorded lines read back, or the row errors.
    record: Result<Vec<CostLine>, Vec<String>>,
    late: Result<Vec<CostLine>, Vec<String>>,
    /// (d) took the file without the full path.
    late_fast: bool,
}

fn messages(errors: &[RowError]) -> Vec<String> {
    errors.iter().map(|e| e.to_string()).collect()
}

fn row_errors(e: LedgerError) -> Vec<String> {
    match e {
        LedgerError::Rows { errors, .. } => messages(&errors),
        other => panic!("expected row errors, got: {other}"),
    }
}

/// The lines of the file `csv` as a ledger holds them, read back.
fn recorded(l: &mut Ledger, csv: &str) -> Vec<CostLine> {
    let st = l.state().unwrap();
    let ag = &st.latest().agreement;
    let rates = st.rates();
    let mut out = Vec::new();
    for row in csv.lines() {
        let id = row.split(',').next().unwrap();
        if out.iter().any(|c: &CostLine| c.id == id) {
            continue;
        }
        let line = &st.lines[st.by_id[id]];
        out.push(state::cost_line(ag, &rates, line).unwrap());
    }
    out
}

fn run_paths(dir: &Path, name: &str, rows: &str) -> Paths {
    let now = "2026-11-27T00:00:00Z";
    let ag = costshare_core::load(AGREEMENT).agreement.expect("the agreement loads");
    let rates: Rates = costs::parse_rates(RATES.as_bytes(), "USD").expect("the rates parse");
    let csv = format!("{HEADER}{rows}");

    // (a) the general path
    let general = costs::parse_costs(&ag, csv.as_bytes(), &rates)
        .map(|c| c.lines)
        .map_err(|e| messages(&e));

    // (b) the streaming path, the body split between two workers when it can be
    let as_of = Date::new(2023, 12, 31).unwrap();
    let streamed = (|| {
        let plan = Plan::new(
            &ag,
            &rates,
            as_of,
            &[Dim::Party, Dim::Category],
            HEADER.trim_end().as_bytes(),
        )
        .map_err(|f| f.0)?;
        let body = rows.as_bytes();
        let mut workers = vec![plan.worker(4), plan.worker(4)];
        match costshare_core::stream::split_point(body) {
            Some(cut) if cut < body.len() => {
                workers[0].feed(&plan, &body[..cut]).map_err(|f| f.0)?;
                workers[1].feed(&plan, &body[cut..]).map_err(|f| f.0)?;
            }
            _ => workers[0].feed(&plan, body).map_err(|f| f.0)?,
        }
        plan.finish(workers).map(|r| r.lines).map_err(|f| f.0)
    })();

    // (c) a fresh ledger
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let path = dir.join(format!("{slug}-record.db")).display().to_string();
    let (mut l, _) = Ledger::init(&path, input("one-rule.toml", AGREEMENT), None, now).unwrap();
    let record = match l.record(input("rows.csv", &csv), Some(input("rates.csv", RATES)), now) {
        Ok(out) => {
            assert_eq!(out.recorded as usize, rows.lines().count(), "{name}: (c) recorded");
            Ok(recorded(&mut l, rows))
        }
        Err(e) => Err(row_errors(e)),
    };

    // (d) a late line under a fresh derived state
    let path = dir.join(format!("{slug}-late.db")).display().to_string();
    let (mut l, _) = Ledger::init(
        &path,
        input("one-rule.toml", AGREEMENT),
        Some(input("rates.csv", RATES)),
        now,
    )
    .unwrap();
    l.record(input("first.csv", &format!("{HEADER}{FIRST}")), None, now)
        .unwrap();
    let st = l.state().unwrap();
    l.write_derived(&st).unwrap();
    assert!(l.derived().unwrap().is_some(), "{name}: (d) the derived state is fresh");
    let (late, late_fast) = match l.record_fast(input("late.csv", &csv), now).unwrap() {
        Some((out, _)) => {
            assert_eq!(out.recorded as usize, rows.lines().count(), "{name}: (d) recorded");
            (Ok(recorded(&mut l, rows)), true)
        }
        // what the CLI does next: the full path records the file or names every problem
        None => match l.record(input("late.csv", &csv), None, now) {
            Ok(_) => (Ok(recorded(&mut l, rows)), false),
            Err(e) => (Err(row_errors(e)), false),
        },
    };
    Paths {
        general,
        streamed,
        record,
        late,
        late_fast,
    }
}

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("costshare-one-rule-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The values a line takes from its row (the row number aside: a ledger
/// numbers lines by journal entry).
fn values(l: &CostLine) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        &l.id,
        l.date,
        l.category,
        l.amount,
        l.source_amount,
        &l.currency,
        &l.rate,
        &l.quantity,
        &l.site,
        &l.description,
    )
}

#[test]
fn every_path_refuses_a_bad_row_in_the_same_words() {
    let dir = temp_dir("bad");
    for (name, rows) in BAD {
        let p = run_paths(&dir, name, rows);
        let Err(general) = &p.general else {
            panic!("{name}: (a) the general path accepted it");
        };
        assert!(!general.is_empty(), "{name}");
        assert!(p.streamed.is_err(), "{name}: (b) the streaming path took it");
        assert_eq!(p.record.as_ref().err(), Some(general), "{name}: (c) ledger record");
        assert!(!p.late_fast, "{name}: (d) the late-line path took it");
        assert_eq!(p.late.as_ref().err(), Some(general), "{name}: (d) late line");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_path_accepts_a_good_row_as_the_same_line() {
    let dir = temp_dir("good");
    for (name, rows) in GOOD {
        let p = run_paths(&dir, name, rows);
        let general = match &p.general {
            Ok(lines) => lines,
            Err(e) => panic!("{name}: (a) the general path refused it: {e:?}"),
        };
        assert_eq!(p.streamed, Ok(general.len()), "{name}: (b) the streaming path");
        for (what, got) in [("(c) ledger record", &p.record), ("(d) late line", &p.late)] {
            match got {
                Ok(lines) => {
                    let a: Vec<_> = general.iter().map(values).collect();
                    let b: Vec<_> = lines.iter().map(values).collect();
                    assert_eq!(a, b, "{name}: {what}");
                }
                Err(e) => panic!("{name}: {what} refused it: {e:?}"),
            }
        }
        assert!(p.late_fast, "{name}: (d) the late-line path fell back");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The messages are the contract's, word for word (a few, pinned here so a
/// change to the one rule shows up in its own test too).
#[test]
fn the_messages_of_the_one_rule() {
    let dir = temp_dir("words");
    let p = run_paths(&dir, "several", ",2022-13-01,food,-1.00,XYZ,,,,\n");
    assert_eq!(
        p.general.err().unwrap(),
        [
            "line 2: id is empty; date `2022-13-01` is not a valid YYYY-MM-DD date; unknown category `food` (the agreement has rent, labor); unknown currency `XYZ` (declare it under [currencies] in the agreement)"
        ]
    );
    let p = run_paths(&dir, "no-rate", "n1,2022-02-01,labor,1.00,EUR,0,,,\n");
    assert_eq!(
        p.general.err().unwrap(),
        [
            "line 2, id n1: quantity is zero; category `labor` counts worker and needs a positive quantity; no EUR rate dated on or before 2022-02-01"
        ]
    );
    let p = run_paths(&dir, "beyond", "n2,2022-05-01,rent,92233720368547758.07,EUR,,,,\n");
    assert_eq!(
        p.general.err().unwrap(),
        ["line 2, id n2: amount 92233720368547758.07 EUR converts beyond the limit of a 64-bit amount"]
    );
    let p = run_paths(
        &dir,
        "cycle",
        "q1,2022-05-01,rent,1.00,,,,,q2\nq2,2022-05-01,rent,2.00,,,,,q1\nq3,2022-05-01,rent,3.00,,,,,q1\n",
    );
    assert_eq!(
        p.general.err().unwrap(),
        [
            "line 2, id q1: is part of a cycle of replacements that leads back to `q1`",
            "line 3, id q2: is part of a cycle of replacements that leads back to `q2`",
            "line 4, id q3: replaces `q1`, which line 3 already replaces",
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A header problem that does not stop the reader (a column twice) is named
/// with the rows' own problems, in line order, by `record` as by the
/// general path (`record` named the header alone).
#[test]
fn a_header_problem_is_named_with_the_rows_problems() {
    let dir = temp_dir("header");
    let now = "2026-11-27T00:00:00Z";
    let ag = costshare_core::load(AGREEMENT).agreement.expect("the agreement loads");
    let rates: Rates = costs::parse_rates(RATES.as_bytes(), "USD").expect("the rates parse");
    let header = HEADER.trim_end().to_string() + ",id\n";
    let csv = format!("{header}x1,2023-04-01,nope,5\n");
    let general = messages(&costs::parse_costs(&ag, csv.as_bytes(), &rates).unwrap_err());
    assert_eq!(general.len(), 2, "{general:?}");
    let path = dir.join("l.db").display().to_string();
    let (mut l, _) = Ledger::init(&path, input("a.toml", AGREEMENT), None, now).unwrap();
    let record = row_errors(l.record(input("c.csv", &csv), None, now).unwrap_err());
    assert_eq!(record, general);
    let _ = std::fs::remove_dir_all(&dir);
}
