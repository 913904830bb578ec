//! The store's test suite, run against both backends with the same bodies.
//!
//! Every test is a function taking a ledger `target`; the `both!` macro at the
//! bottom makes `sqlite::NAME` (a fresh temporary file) and `postgresql::NAME`
//! (a fresh database `costshare_t_*` on the server at 127.0.0.1:5432, user
//! `postgres`, trust auth, dropped afterwards) for each.
//!
//! Without a PostgreSQL server the `postgresql::` tests print
//! `SKIPPED: no PostgreSQL server on 127.0.0.1:5432` and pass, unless
//! `COSTSHARE_REQUIRE_POSTGRES=1`, in which case they fail.

mod common;

use costshare_core::calendar::Date;
use costshare_store::journal;
use costshare_store::ledger::{Adjustment, Refusal, adjustments};
use costshare_store::{Input, Ledger, LedgerError, RecordOutcome, State, StoreError, Verified, VerifyOptions};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

// ---------------------------------------------------------------- fixtures

const AGREEMENT: &str = r#"[agreement]
id = "suite"
title = "Store suite agreement"
currency = "JPY"
start = "2022-04-01"
end = "2024-03-31"
fiscal_year_start = "04-01"

[parties.JP]
name = "Japan"
[parties.US]
name = "United States"

[categories.utilities]
name = "Utilities"
  [[categories.utilities.layers]]
  split = { JP = "100%" }
  cap = { FY2022 = "1000000", FY2023 = "1000000" }
  period = "fiscal_year"
  [[categories.utilities.layers]]
  split = { US = "100%" }

[categories.labor]
name = "Labor"
  [[categories.labor.layers]]
  split = { JP = "75%", US = "25%" }
"#;

const RATES: &str = "date,currency,rate\n2022-04-01,USD,120\n";

const NOW: &str = "2024-05-01T00:00:00Z";

fn date(s: &str) -> Date {
    Date::parse(s).unwrap_or_else(|| panic!("bad test date {s}"))
}

fn agreement() -> Input<'static> {
    Input {
        name: "agreement.toml",
        bytes: AGREEMENT.as_bytes(),
    }
}

fn input<'a>(name: &'a str, text: &'a str) -> Input<'a> {
    Input {
        name,
        bytes: text.as_bytes(),
    }
}

/// The agreement with its text edited (for amendments).
fn agreement_with(edit: impl Fn(&str) -> String) -> String {
    let s = edit(AGREEMENT);
    assert_ne!(s, AGREEMENT, "the edit changed nothing");
    s
}

const HEADER: &str = "id,date,category,amount,currency,quantity,site,description\n";

/// `n` valid lines with ids `{prefix}-00000`…, spread over the whole term
/// (both fiscal years), a third of them labor.
fn costs_csv(prefix: &str, n: usize) -> String {
    let mut s = String::from(HEADER);
    for i in 0..n {
        let m = i % 24;
        let (y, mo) = (2022 + (3 + m) / 12, (3 + m) % 12 + 1);
        let day = 1 + (i / 24) % 28;
        let cat = if i % 3 == 0 { "labor" } else { "utilities" };
        let amount = 1000 + (i * 7919) % 100_000;
        writeln!(
            s,
            "{prefix}-{i:05},{y}-{mo:02}-{day:02},{cat},{amount},JPY,,Site {},line {i} of {prefix}",
            i % 5
        )
        .unwrap();
    }
    s
}

fn init(target: &str) -> Ledger {
    let (ledger, st) = Ledger::init(target, agreement(), Some(input("rates.csv", RATES)), NOW)
        .unwrap_or_else(|e| panic!("init {target}: {e}"));
    // init, agreement, one rate
    assert_eq!(st.entries, 3);
    assert_eq!(st.versions.len(), 1);
    assert_eq!(st.rates.len(), 1);
    ledger
}

fn state(l: &mut Ledger) -> State {
    l.state().unwrap_or_else(|e| panic!("state: {e}"))
}

fn record(l: &mut Ledger, name: &str, text: &str) -> RecordOutcome {
    l.record(input(name, text), None, NOW)
        .unwrap_or_else(|e| panic!("record {name}: {e}"))
}

fn verify_ok(l: &mut Ledger) -> (u64, String) {
    match l.verify().unwrap_or_else(|e| panic!("verify: {e}")) {
        Verified::Ok { entries, head, .. } => (entries, head),
        Verified::Bad { seq, message } => panic!("verify: entry {seq} is bad: {message}"),
        other => panic!("{other:?}"),
    }
}

/// The journal's (entries, head) — to show that a refused write changed nothing.
fn mark(l: &mut Ledger) -> (u64, String, usize) {
    let st = state(l);
    (st.entries, st.head, st.lines.len())
}

fn ids_of(st: &State) -> Vec<&str> {
    st.lines.iter().map(|l| l.body.id.as_str()).collect()
}

// ------------------------------------------------------ raw database access

/// A connection to the ledger's database that bypasses the store.
enum Raw {
    Lite(rusqlite::Connection),
    #[cfg(feature = "postgres")]
    Pg(postgres::Client),
}

impl Raw {
    fn open(target: &str) -> Raw {
        if target.starts_with("postgres://") {
            #[cfg(feature = "postgres")]
            return Raw::Pg(postgres::Client::connect(target, postgres::NoTls).unwrap());
            #[cfg(not(feature = "postgres"))]
            panic!("built without postgres");
        }
        let c = rusqlite::Connection::open(target).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(60)).unwrap();
        Raw::Lite(c)
    }

    fn exec(&mut self, sql: &str) -> Result<(), String> {
        match self {
            Raw::Lite(c) => c.execute_batch(sql).map_err(|e| e.to_string()),
            #[cfg(feature = "postgres")]
            Raw::Pg(c) => c.batch_execute(sql).map_err(|e| pg_err(&e)),
        }
    }

    fn seqs(&mut self) -> Vec<i64> {
        match self {
            Raw::Lite(c) => {
                let mut st = c.prepare("SELECT seq FROM journal ORDER BY seq").unwrap();
                st.query_map([], |r| r.get::<_, i64>(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            }
            #[cfg(feature = "postgres")]
            Raw::Pg(c) => c
                .query("SELECT seq FROM journal ORDER BY seq", &[])
                .unwrap()
                .iter()
                .map(|r| r.get::<_, i64>(0))
                .collect(),
        }
    }

    fn body(&mut self, seq: u64) -> Vec<u8> {
        match self {
            Raw::Lite(c) => c
                .query_row("SELECT body FROM journal WHERE seq = ?1", [seq as i64], |r| r.get(0))
                .unwrap(),
            #[cfg(feature = "postgres")]
            Raw::Pg(c) => c
                .query_one("SELECT body FROM journal WHERE seq = $1", &[&(seq as i64)])
                .unwrap()
                .get(0),
        }
    }

    fn hash(&mut self, seq: u64) -> String {
        match self {
            Raw::Lite(c) => c
                .query_row("SELECT hash FROM journal WHERE seq = ?1", [seq as i64], |r| r.get(0))
                .unwrap(),
            #[cfg(feature = "postgres")]
            Raw::Pg(c) => c
                .query_one("SELECT hash FROM journal WHERE seq = $1", &[&(seq as i64)])
                .unwrap()
                .get(0),
        }
    }

    fn set_body(&mut self, seq: u64, body: &[u8]) -> Result<(), String> {
        match self {
            Raw::Lite(c) => c
                .execute(
                    "UPDATE journal SET body = ?1 WHERE seq = ?2",
                    rusqlite::params![body, seq as i64],
                )
                .map(drop)
                .map_err(|e| e.to_string()),
            #[cfg(feature = "postgres")]
            Raw::Pg(c) => c
                .execute("UPDATE journal SET body = $1 WHERE seq = $2", &[&body, &(seq as i64)])
                .map(drop)
                .map_err(|e| pg_err(&e)),
        }
    }

    fn set_hash(&mut self, seq: u64, hash: &str) -> Result<(), String> {
        match self {
            Raw::Lite(c) => c
                .execute(
                    "UPDATE journal SET hash = ?1 WHERE seq = ?2",
                    rusqlite::params![hash, seq as i64],
                )
                .map(drop)
                .map_err(|e| e.to_string()),
            #[cfg(feature = "postgres")]
            Raw::Pg(c) => c
                .execute("UPDATE journal SET hash = $1 WHERE seq = $2", &[&hash, &(seq as i64)])
                .map(drop)
                .map_err(|e| pg_err(&e)),
        }
    }

    /// Turn off the append-only guard, as a saboteur with the database's
    /// owner rights could.
    fn disable_guard(&mut self) {
        let sql = match self {
            Raw::Lite(_) => "DROP TRIGGER journal_no_update",
            #[cfg(feature = "postgres")]
            Raw::Pg(_) => "ALTER TABLE journal DISABLE TRIGGER USER",
        };
        self.exec(sql).unwrap();
    }
}

/// A PostgreSQL error with its reason (its Display says only "db error").
#[cfg(feature = "postgres")]
fn pg_err(e: &postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(s) => format!("{e}: {s}"),
        None => e.to_string(),
    }
}

// ------------------------------------------------------------------- tests

/// `init` on an existing ledger refuses with `Exists` and leaves the first
/// intact; a refused `init` creates nothing.
fn init_refuses_an_existing_ledger(target: &str) {
    assert!(
        matches!(Ledger::open(target), Err(LedgerError::Store(StoreError::NotFound(_)))),
        "open before init must say NotFound"
    );
    // a bad agreement or bad rates create nothing
    let bad = input("bad.toml", "[agreement]\nid = \"x\"\n");
    assert!(matches!(
        Ledger::init(target, bad, None, NOW),
        Err(LedgerError::Refused(Refusal::AgreementInvalid { .. }))
    ));
    let bad_rates = input("r.csv", "date,currency,rate\n2022-04-01,USD,abc\n");
    assert!(matches!(
        Ledger::init(target, agreement(), Some(bad_rates), NOW),
        Err(LedgerError::Rows { .. })
    ));
    assert!(
        matches!(Ledger::open(target), Err(LedgerError::Store(StoreError::NotFound(_)))),
        "a refused init must create nothing"
    );

    let mut first = init(target);
    record(&mut first, "a.csv", &costs_csv("A", 10));
    let before = state(&mut first);

    let other = AGREEMENT.replace("id = \"suite\"", "id = \"other\"");
    for rates in [
        None,
        Some(input("rates.csv", "date,currency,rate\n2022-04-01,USD,99\n")),
    ] {
        match Ledger::init(target, input("other.toml", &other), rates, NOW) {
            Err(LedgerError::Store(StoreError::Exists(_))) => {}
            Err(e) => panic!("second init: expected Exists, got {e:?}"),
            Ok(_) => panic!("second init succeeded over an existing ledger"),
        }
    }

    let mut again = Ledger::open(target).unwrap();
    let after = state(&mut again);
    assert_eq!(after.entries, before.entries);
    assert_eq!(after.head, before.head);
    assert_eq!(after.versions.len(), 1);
    assert_eq!(after.versions[0].agreement.id, "suite");
    assert_eq!(after.rates.len(), 1);
    assert_eq!(after.lines.len(), 10);
    assert_eq!(verify_ok(&mut again).0, before.entries);
    // and it still takes writes
    assert_eq!(record(&mut again, "b.csv", &costs_csv("B", 3)).recorded, 3);
}

/// Recording the same file twice records nothing the second time; a file
/// repeating recorded lines (same values) records only what is new.
fn record_is_idempotent(target: &str) {
    let mut l = init(target);
    let csv = costs_csv("A", 50);
    let first = record(&mut l, "a.csv", &csv);
    assert_eq!(
        first,
        RecordOutcome {
            recorded: 50,
            ..RecordOutcome::default()
        }
    );
    let m = mark(&mut l);
    assert_eq!(m.0, 3 + 1 + 50, "a batch entry and one entry per line");

    let second = record(&mut l, "a.csv", &csv);
    assert_eq!(
        second,
        RecordOutcome {
            already: 50,
            ..RecordOutcome::default()
        }
    );
    assert_eq!(mark(&mut l), m, "the second record appended something");

    // the same values written differently (spaces, CRLF, BOM, columns
    // reordered, a repeated row) are the same lines
    let mut messy = String::from("\u{feff}description , amount,id,category,date,site,currency\r\n");
    let st = state(&mut l);
    for line in st.lines.iter().take(5) {
        let b = &line.body;
        write!(
            messy,
            "{} , {} ,{},{},{},{},{}\r\n",
            b.description, b.amount, b.id, b.category, b.date, b.site, b.currency
        )
        .unwrap();
    }
    let b = &st.lines[0].body;
    write!(
        messy,
        "{},{},{},{},{},{},{}\r\n",
        b.description, b.amount, b.id, b.category, b.date, b.site, b.currency
    )
    .unwrap();
    messy.push_str("line new,123,N-1,labor,2023-01-05,,\r\n");
    let third = record(&mut l, "messy.csv", &messy);
    assert_eq!(third.recorded, 1);
    assert_eq!(third.already, 6);
    let st = state(&mut l);
    assert_eq!(st.lines.len(), 51);
    assert_eq!(st.batches.len(), 2);
    assert_eq!(st.by_id.len(), 51);
    verify_ok(&mut l);
}

/// A file with bad rows records nothing, and the error names every bad row
/// by physical line number and id.
fn bad_rows_record_nothing(target: &str) {
    let mut l = init(target);
    record(&mut l, "a.csv", "id,date,category,amount\nX-1,2022-05-01,labor,1000\n");
    let before = mark(&mut l);

    let csv = "id,date,category,amount,currency,site,description\n\
               G-1,2022-05-01,utilities,1000,JPY,Camp,good\n\
               B-1,2022-13-01,utilities,1000,JPY,,bad date\n\
               G-2,2022-05-02,labor,2000,,,good\n\
               B-2,2022-05-03,nosuch,1000,,,unknown category\n\
               B-3,2022-05-04,labor,5.5,JPY,,decimals in JPY\n\
               B-4,2021-05-04,labor,100,,,outside the term\n\
               ,2022-05-04,labor,100,,,no id\n\
               X-1,2022-05-01,labor,1001,,,recorded with another amount\n\
               B-5,2022-05-04,labor,-5,,,negative\n\
               G-3,2022-06-01,utilities,10.50,USD,,good in dollars\n\
               B-6,2022-05-04,labor,100,EUR,,no EUR rate\n";
    let err = l.record(input("bad.csv", csv), None, NOW).unwrap_err();
    let LedgerError::Rows { file, errors } = &err else {
        panic!("expected Rows, got {err:?}")
    };
    assert_eq!(file, "bad.csv");
    let got: Vec<(usize, Option<&str>)> = errors.iter().map(|e| (e.line, e.id.as_deref())).collect();
    assert_eq!(
        got,
        vec![
            (3, Some("B-1")),
            (5, Some("B-2")),
            (6, Some("B-3")),
            (7, Some("B-4")),
            (8, None),
            (9, Some("X-1")),
            (10, Some("B-5")),
            (12, Some("B-6")),
        ],
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("nothing was recorded"), "{text}");
    assert_eq!(mark(&mut l), before, "a refused record changed the journal");
    let st = state(&mut l);
    for id in ["G-1", "G-2", "G-3"] {
        assert!(!st.by_id.contains_key(id), "{id} was recorded from a refused file");
    }

    // an unreadable file (a quote never closed) is refused before the lock
    let err = l
        .record(
            input("q.csv", "id,date,category,amount\n\"Q-1,2022-05-01,labor,1\n"),
            None,
            NOW,
        )
        .unwrap_err();
    assert!(matches!(err, LedgerError::Rows { .. }), "{err:?}");
    // bad rates alongside good costs: nothing either
    let err = l
        .record(
            input("g.csv", "id,date,category,amount\nG-1,2022-05-01,labor,1\n"),
            Some(input("r.csv", "date,currency,rate\n2022-04-01,USD,121\n")),
            NOW,
        )
        .unwrap_err();
    assert!(
        matches!(&err, LedgerError::Refused(Refusal::RateConflicts(c)) if c.len() == 1),
        "a contradicting rate: {err:?}"
    );
    assert_eq!(mark(&mut l), before);
    verify_ok(&mut l);
}

/// A `replaces` column voids the recorded line; the voided line stays in
/// `state.lines` with `voided` set, and re-recording changes nothing.
fn replaces_voids_the_recorded_line(target: &str) {
    let mut l = init(target);
    record(
        &mut l,
        "a.csv",
        "id,date,category,amount\nL-1,2022-05-01,utilities,1000\nL-2,2022-05-02,labor,2000\n",
    );
    let fix = "id,date,category,amount,replaces\nL-1b,2022-05-01,utilities,1100,L-1\n";
    let out = record(&mut l, "fix.csv", fix);
    assert_eq!(
        out,
        RecordOutcome {
            recorded: 1,
            voided: 1,
            ..RecordOutcome::default()
        }
    );
    let st = state(&mut l);
    assert_eq!(ids_of(&st), vec!["L-1", "L-2", "L-1b"]);
    let l1 = &st.lines[st.by_id["L-1"]];
    let (void_seq, reason) = l1.voided.as_ref().expect("L-1 is voided");
    assert!(*void_seq > l1.seq);
    assert!(reason.contains("L-1b"), "{reason}");
    assert!(st.lines[st.by_id["L-2"]].voided.is_none());
    assert!(st.lines[st.by_id["L-1b"]].voided.is_none());
    let active: Vec<&str> = st.active().map(|l| l.body.id.as_str()).collect();
    assert_eq!(active, vec!["L-2", "L-1b"]);

    // the same correction again: nothing new
    let m = mark(&mut l);
    let again = record(&mut l, "fix.csv", fix);
    assert_eq!(
        again,
        RecordOutcome {
            already: 1,
            ..RecordOutcome::default()
        }
    );
    assert_eq!(mark(&mut l), m);

    // replacing a line of the same file supersedes it; replacing nothing is an error
    let out = record(
        &mut l,
        "b.csv",
        "id,date,category,amount,replaces\nM-1,2022-06-01,labor,5,\nM-2,2022-06-01,labor,6,M-1\n",
    );
    // the superseded line is recorded and voided too, so a later file cannot bring it back
    assert_eq!((out.recorded, out.dropped, out.voided), (2, 1, 0));
    let err = l
        .record(
            input(
                "c.csv",
                "id,date,category,amount,replaces\nN-1,2022-06-01,labor,5,ZZZ\n",
            ),
            None,
            NOW,
        )
        .unwrap_err();
    assert!(matches!(&err, LedgerError::Rows { errors, .. } if errors.len() == 1 && errors[0].line == 2));
    let st = state(&mut l);
    assert!(st.by_id.contains_key("M-2"));
    let m1 = &st.lines[st.by_id["M-1"]];
    assert_eq!(m1.replaced_by.as_deref(), Some("M-2"), "M-1 is kept, voided by M-2");
    assert!(m1.voided.is_some());
    verify_ok(&mut l);
}

/// `void` of an unknown or already voided id is an error and appends nothing.
fn void_refuses_unknown_and_voided_ids(target: &str) {
    let mut l = init(target);
    record(&mut l, "a.csv", &costs_csv("A", 3));
    let m = mark(&mut l);
    let err = l.void("NOPE", "typo", NOW).unwrap_err();
    assert!(
        matches!(&err, LedgerError::Refused(Refusal::NoSuchLine { id }) if id == "NOPE"),
        "{err:?}"
    );
    assert_eq!(mark(&mut l), m);

    l.void("A-00001", "entered twice", NOW).unwrap();
    let st = state(&mut l);
    assert_eq!(st.entries, m.0 + 1);
    let line = &st.lines[st.by_id["A-00001"]];
    assert_eq!(line.voided, Some((m.0 + 1, "entered twice".to_string())));
    assert_eq!(st.active().count(), 2);

    let m = mark(&mut l);
    let err = l.void("A-00001", "again", NOW).unwrap_err();
    assert!(
        matches!(&err, LedgerError::Refused(Refusal::AlreadyVoided { id, .. }) if id == "A-00001"),
        "{err:?}"
    );
    assert_eq!(mark(&mut l), m);
    // a voided id cannot come back under the same id with other values
    let err = l
        .record(
            input("x.csv", "id,date,category,amount\nA-00001,2022-04-01,labor,1\n"),
            None,
            NOW,
        )
        .unwrap_err();
    assert!(matches!(err, LedgerError::Rows { .. }), "{err:?}");
    verify_ok(&mut l);
}

/// Closing a year freezes its statement; a late line then shows as an
/// adjustment, the statement stays as issued, and verify re-derives it.
fn close_then_late_line_is_an_adjustment(target: &str) {
    let mut l = init(target);
    // FY2022 utilities 1,200,000: JP takes its 1,000,000 cap, US the rest
    record(
        &mut l,
        "fy22.csv",
        "id,date,category,amount\n\
         U-1,2022-04-30,utilities,400000\n\
         U-2,2022-05-31,utilities,400000\n\
         U-3,2022-06-30,utilities,400000\n\
         W-1,2022-07-31,labor,100000\n\
         U-9,2023-04-30,utilities,7\n",
    );
    let rows = l.close("FY2022", date("2023-04-30"), NOW).unwrap();
    let got: Vec<(&str, &str, i64)> = rows
        .iter()
        .map(|r| (r.party.as_str(), r.category.as_str(), r.amount_minor))
        .collect();
    assert_eq!(
        got,
        vec![
            ("JP", "labor", 75000),
            ("JP", "utilities", 1_000_000),
            ("US", "labor", 25000),
            ("US", "utilities", 200_000),
        ]
    );
    let st = state(&mut l);
    assert_eq!(st.statements.len(), 1);
    assert_eq!(st.statements[0].period, "FY2022");
    assert_eq!(st.statements[0].rows, rows);
    assert!(adjustments(&st, date("2024-05-01")).unwrap().is_empty());

    // closing again, or a year outside the term, or not a year: refused
    let m = mark(&mut l);
    for p in ["FY2022", "FY2030", "2022", "FY", "FYx"] {
        let err = l.close(p, date("2023-04-30"), NOW).unwrap_err();
        assert!(
            matches!(
                err,
                LedgerError::Refused(
                    Refusal::AlreadyClosed { .. } | Refusal::OutsideTerm { .. } | Refusal::NotAFiscalYear { .. }
                )
            ),
            "close {p}: {err:?}"
        );
    }
    assert_eq!(mark(&mut l), m);

    // a late FY2022 line
    record(
        &mut l,
        "late.csv",
        "id,date,category,amount\nU-4,2022-06-15,utilities,50000\n",
    );
    let st = state(&mut l);
    assert_eq!(st.statements[0].rows, rows, "a closed statement was rewritten");
    let adj = adjustments(&st, date("2024-05-01")).unwrap();
    assert_eq!(
        adj,
        vec![Adjustment {
            period: "FY2022".into(),
            party: "US".into(),
            category: "utilities".into(),
            statement: 200_000,
            now: 250_000,
        }]
    );
    // voiding a closed-year line is an adjustment too
    l.void("W-1", "booked to the wrong year", NOW).unwrap();
    let st = state(&mut l);
    let adj = adjustments(&st, date("2024-05-01")).unwrap();
    assert_eq!(adj.len(), 3, "{adj:?}");
    assert!(
        adj.iter()
            .any(|a| a.party == "JP" && a.category == "labor" && a.now == 0)
    );
    assert_eq!(st.statements[0].rows, rows);
    // the next year closes on its own
    let fy23 = l.close("FY2023", date("2024-04-30"), NOW).unwrap();
    assert_eq!(fy23.len(), 1);
    assert_eq!((fy23[0].party.as_str(), fy23[0].amount_minor), ("JP", 7));
    let (entries, head) = verify_ok(&mut l);
    let st = state(&mut l);
    assert_eq!((entries, head), (st.entries, st.head));
}

/// `amend`: the effective date is the first day of a fiscal year after the
/// current version's, inside the new term; parties, currency and calendar
/// stay; recorded lines from that date must fit; lines then allocate under
/// the version in force at their date.
fn amend_effective_date_rules(target: &str) {
    let mut l = init(target);
    record(
        &mut l,
        "a.csv",
        "id,date,category,amount\n\
         U-1,2022-06-01,utilities,1500000\n\
         U-2,2023-06-01,utilities,1500000\n\
         W-1,2023-07-01,labor,1000\n",
    );
    let v2 = agreement_with(|a| a.replace("FY2023 = \"1000000\"", "FY2023 = \"2000000\""));
    let m = mark(&mut l);
    let refused = |l: &mut Ledger, text: &str, eff: &str, want: &str| {
        let err = l.amend(input("v2.toml", text), date(eff), NOW).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(want), "amend {eff}: expected `{want}` in: {msg}");
    };
    refused(&mut l, &v2, "2023-05-01", "not the first day of a fiscal year");
    refused(&mut l, &v2, "2023-01-01", "not the first day of a fiscal year");
    refused(&mut l, &v2, "2022-04-01", "must come after");
    refused(&mut l, &v2, "2021-04-01", "must come after");
    refused(&mut l, &v2, "2024-04-01", "outside the new agreement's term");
    let swapped = agreement_with(|a| {
        a.replace(
            "[parties.JP]\nname = \"Japan\"\n[parties.US]\nname = \"United States\"",
            "[parties.US]\nname = \"United States\"\n[parties.JP]\nname = \"Japan\"",
        )
    });
    refused(&mut l, &swapped, "2023-04-01", "same parties in the same order");
    let usd = agreement_with(|a| {
        a.replace("currency = \"JPY\"", "currency = \"USD\"")
            .replace("\"1000000\"", "\"1000000.00\"")
    });
    refused(&mut l, &usd, "2023-04-01", "keep the currency");
    let calendar = agreement_with(|a| {
        a.replace("fiscal_year_start = \"04-01\"", "fiscal_year_start = \"01-01\"")
            .replace("FY2023 = \"1000000\" }", "FY2023 = \"1000000\", FY2024 = \"1000000\" }")
    });
    refused(&mut l, &calendar, "2024-01-01", "fiscal-year start");
    refused(&mut l, "not toml [", "2023-04-01", "not a valid agreement");
    // dropping the labor category while a labor line is dated after the date
    let no_labor = agreement_with(|a| a[..a.find("[categories.labor]").unwrap()].to_string());
    let err = l
        .amend(input("v2.toml", &no_labor), date("2023-04-01"), NOW)
        .unwrap_err();
    let LedgerError::Rows { errors, .. } = &err else {
        panic!("expected Rows, got {err:?}")
    };
    assert_eq!(errors.len(), 1, "{err}");
    assert_eq!(errors[0].id.as_deref(), Some("W-1"));
    assert_eq!(mark(&mut l), m, "a refused amend changed the journal");

    assert_eq!(l.amend(input("v2.toml", &v2), date("2023-04-01"), NOW).unwrap(), 2);
    let st = state(&mut l);
    assert_eq!(st.versions.len(), 2);
    assert_eq!(st.versions[1].effective, date("2023-04-01"));
    assert_eq!(st.version_at(Some(date("2023-03-31"))), 0);
    assert_eq!(st.version_at(Some(date("2023-04-01"))), 1);
    assert_eq!(st.version_at(Some(date("2024-03-31"))), 1);
    // the same date again, or an earlier one, is refused now
    refused(&mut l, &v2, "2023-04-01", "must come after");
    refused(&mut l, &v2, "2022-04-01", "must come after");

    // FY2022 keeps the old cap, FY2023 has the new one
    let fy22 = l.close("FY2022", date("2023-04-30"), NOW).unwrap();
    let fy23 = l.close("FY2023", date("2024-04-30"), NOW).unwrap();
    let jp_util = |rows: &[journal::StatementRow]| {
        rows.iter()
            .find(|r| r.party == "JP" && r.category == "utilities")
            .map(|r| r.amount_minor)
    };
    assert_eq!(jp_util(&fy22), Some(1_000_000));
    assert_eq!(jp_util(&fy23), Some(1_500_000));
    verify_ok(&mut l);
}

/// `verify` on a sound ledger: Ok with the entry count and the head of the
/// state, and the rows in the database are exactly 1..=entries.
fn verify_counts_entries_and_head(target: &str) {
    let mut l = init(target);
    let (entries, head) = verify_ok(&mut l);
    let st = state(&mut l);
    assert_eq!((entries, &head), (3, &st.head));
    assert_ne!(head, journal::GENESIS);

    record(&mut l, "a.csv", &costs_csv("A", 20));
    l.record(
        input(
            "usd.csv",
            "id,date,category,amount,currency\nD-1,2022-06-01,labor,10.50,USD\n",
        ),
        Some(input(
            "rates.csv",
            "date,currency,rate\n2022-04-01,USD,120\n2022-05-01,USD,130\n",
        )),
        NOW,
    )
    .unwrap();
    l.void("A-00003", "duplicate", NOW).unwrap();
    l.close("FY2022", date("2023-04-30"), NOW).unwrap();
    let st = state(&mut l);
    // 3 + (batch + 20) + (rate + batch + 1) + void + close
    assert_eq!(st.entries, 3 + 21 + 3 + 1 + 1);
    assert_eq!(st.lines[st.by_id["D-1"]].body.amount, "10.50");
    let (entries, head) = verify_ok(&mut l);
    assert_eq!(entries, st.entries);
    assert_eq!(head, st.head);
    let seqs = Raw::open(target).seqs();
    assert_eq!(seqs, (1..=entries as i64).collect::<Vec<_>>());
    // a fresh handle sees the same
    let mut other = Ledger::open(target).unwrap();
    assert_eq!(verify_ok(&mut other), (entries, head));
}

/// The database refuses UPDATE and DELETE on the journal; with the guard
/// turned off, an edited body makes verify name that entry.
fn journal_is_append_only_and_edits_are_caught(target: &str) {
    let mut l = init(target);
    record(&mut l, "a.csv", &costs_csv("A", 10));
    let st = state(&mut l);
    let victim = st.lines[4].seq;
    let mut raw = Raw::open(target);

    for sql in [
        "UPDATE journal SET kind = 'x' WHERE seq = 5".to_string(),
        "UPDATE journal SET at = 'x'".to_string(),
        format!("DELETE FROM journal WHERE seq = {}", st.entries),
        "DELETE FROM journal".to_string(),
    ] {
        let err = raw.exec(&sql).expect_err(&sql);
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    if target.starts_with("postgres://") {
        let err = raw.exec("TRUNCATE journal").expect_err("TRUNCATE");
        assert!(err.contains("append-only"), "TRUNCATE: {err}");
    }
    let body = raw.body(victim);
    let err = raw.set_body(victim, &body).expect_err("UPDATE body");
    assert!(err.contains("append-only"), "{err}");
    assert_eq!(mark(&mut l).0, st.entries);
    assert_eq!(verify_ok(&mut l).1, st.head);

    // a saboteur turns the guard off and edits an amount
    raw.disable_guard();
    let text = String::from_utf8(body.clone()).unwrap();
    let amount = &st.lines[4].body.amount;
    let edited = text.replace(&format!("\namount={amount}\n"), "\namount=1\n");
    assert_ne!(edited, text);
    raw.set_body(victim, edited.as_bytes()).unwrap();
    match l.verify().unwrap() {
        Verified::Bad { seq, message } => {
            assert_eq!(seq, victim, "{message}");
            assert!(message.contains("hash"), "{message}");
        }
        ok => panic!("verify missed an edited body: {ok:?}"),
    }
    // re-sealing the edited entry moves the break to the next entry
    let prev_hash = raw.hash(victim - 1);
    raw.set_hash(victim, &journal::chain_hash(&prev_hash, edited.as_bytes()))
        .unwrap();
    match l.verify().unwrap() {
        Verified::Bad { seq, message } => {
            assert_eq!(seq, victim + 1, "{message}");
            assert!(message.contains("previous hash"), "{message}");
        }
        ok => panic!("verify missed a re-sealed entry: {ok:?}"),
    }
    // putting the original back restores the chain
    raw.set_body(victim, &body).unwrap();
    raw.set_hash(victim, &journal::chain_hash(&prev_hash, &body)).unwrap();
    assert_eq!(verify_ok(&mut l), (st.entries, st.head.clone()));
}

/// `verify` reads the journal as a stream, several batches long, checking
/// the chain on one thread and replaying on another: damage in the middle
/// of a long journal is named at its entry, by the check that catches it,
/// and the first damage in journal order is the one named, whichever thread
/// finds it.
fn verify_names_damage_in_the_middle_of_a_long_journal(target: &str) {
    let mut l = init(target);
    // more entries than several of verify's batches (1024 entries each)
    record(&mut l, "a.csv", &costs_csv("A", 3000));
    l.close("FY2022", date("2023-04-30"), NOW).unwrap();
    record(&mut l, "b.csv", &costs_csv("B", 2000));
    let st = state(&mut l);
    let (entries, head) = verify_ok(&mut l);
    assert_eq!((entries, &head), (st.entries, &st.head));
    let close = st.statements[0].seq;
    let victim = st.lines[2500].seq;
    assert!(victim > 2048 && victim < close && close + 1000 < entries);
    let mut raw = Raw::open(target);
    raw.disable_guard();

    // an edited body in the middle: its hash no longer matches
    let body = raw.body(victim);
    let text = String::from_utf8(body.clone()).unwrap();
    let edited = text.replace("\ncategory=", "\ncategory=x");
    assert_ne!(edited, text);
    raw.set_body(victim, edited.as_bytes()).unwrap();
    match l.verify().unwrap() {
        Verified::Bad { seq, message } => {
            assert_eq!(seq, victim, "{message}");
            assert!(message.starts_with("its bytes hash to "), "{message}");
        }
        ok => panic!("verify missed an edited body: {ok:?}"),
    }
    // re-sealed: the next entry's previous hash no longer matches
    let prev_hash = raw.hash(victim - 1);
    raw.set_hash(victim, &journal::chain_hash(&prev_hash, edited.as_bytes()))
        .unwrap();
    match l.verify().unwrap() {
        Verified::Bad { seq, message } => {
            assert_eq!(seq, victim + 1, "{message}");
            assert!(message.contains("previous hash"), "{message}");
        }
        ok => panic!("verify missed a re-sealed entry: {ok:?}"),
    }
    raw.set_body(victim, &body).unwrap();
    raw.set_hash(victim, &journal::chain_hash(&prev_hash, &body)).unwrap();
    assert_eq!(verify_ok(&mut l), (entries, head.clone()));

    // bytes that hash right but do not read as an entry (re-sealed); the
    // entry after it breaks the chain too, but this one comes first
    let garbage = b"seq=1\nnot an entry\n";
    raw.set_body(victim, garbage).unwrap();
    raw.set_hash(victim, &journal::chain_hash(&prev_hash, garbage)).unwrap();
    match l.verify().unwrap() {
        Verified::Bad { seq, message } => {
            assert_eq!(seq, victim, "{message}");
            assert!(message.starts_with("its bytes do not read as an entry"), "{message}");
        }
        ok => panic!("verify read garbage: {ok:?}"),
    }
    raw.set_body(victim, &body).unwrap();
    raw.set_hash(victim, &journal::chain_hash(&prev_hash, &body)).unwrap();

    // a statement changed and re-sealed: its hash checks, the replaying
    // thread finds it differs from the allocation, and that is named, not
    // the broken link after it that the reading thread finds later
    let close_body = raw.body(close);
    let text = String::from_utf8(close_body.clone()).unwrap();
    let row = text.lines().find(|l| l.starts_with("row=")).unwrap().to_string();
    let (lhs, amount) = row.rsplit_once('\t').unwrap();
    let changed = text.replace(&row, &format!("{lhs}\t{}", amount.parse::<i64>().unwrap() + 1));
    let close_prev = raw.hash(close - 1);
    raw.set_body(close, changed.as_bytes()).unwrap();
    raw.set_hash(close, &journal::chain_hash(&close_prev, changed.as_bytes()))
        .unwrap();
    // (re-deriving statements is the deep check's; the default one, which
    // does not, names the broken link after it)
    let deep = VerifyOptions {
        deep: true,
        ..VerifyOptions::default()
    };
    match l.verify_with(&deep).unwrap() {
        Verified::Bad { seq, message } => {
            assert_eq!(seq, close, "{message}");
            assert!(
                message.contains("FY2022 statement differs from the allocation"),
                "{message}"
            );
        }
        ok => panic!("verify missed a changed statement: {ok:?}"),
    }
    match l.verify().unwrap() {
        Verified::Bad { seq, message } => {
            assert_eq!(seq, close + 1, "{message}");
            assert!(message.contains("previous hash"), "{message}");
        }
        ok => panic!("verify missed a re-sealed statement: {ok:?}"),
    }
    // and damage before the statement is named before it
    raw.set_body(victim, edited.as_bytes()).unwrap();
    match l.verify_with(&deep).unwrap() {
        Verified::Bad { seq, message } => assert_eq!(seq, victim, "{message}"),
        ok => panic!("verify missed an edited body: {ok:?}"),
    }
    raw.set_body(victim, &body).unwrap();
    raw.set_body(close, &close_body).unwrap();
    raw.set_hash(close, &journal::chain_hash(&close_prev, &close_body))
        .unwrap();
    assert_eq!(verify_ok(&mut l), (entries, head));
}

/// `verify --expect-head`: the head is compared as the journal streams by,
/// and `at` names the entry whose hash is the expected one, however far
/// back (the hashes are not kept); an unknown hash has no `at`.
fn verify_expect_head_names_the_entry_streamed_past(target: &str) {
    let mut l = init(target);
    record(&mut l, "a.csv", &costs_csv("A", 1500));
    let (mid_seq, mid) = verify_ok(&mut l);
    record(&mut l, "b.csv", &costs_csv("B", 1500));
    let (entries, head) = verify_ok(&mut l);
    assert!(entries > mid_seq + 1024);
    let expect = |h: &str| VerifyOptions {
        expect_head: Some(h.to_string()),
        ..VerifyOptions::default()
    };
    match l.verify_with(&expect(&head)).unwrap() {
        Verified::Ok {
            entries: n, head: h, ..
        } => assert_eq!((n, &h), (entries, &head)),
        other => panic!("{other:?}"),
    }
    // as typed by hand: spaces and capitals
    match l.verify_with(&expect(&format!(" {} \n", mid.to_uppercase()))).unwrap() {
        Verified::HeadMismatch {
            expected,
            entries: n,
            head: h,
            at,
        } => {
            assert_eq!(
                (expected, n, h, at),
                (mid.clone(), entries, head.clone(), Some(mid_seq))
            );
        }
        other => panic!("{other:?}"),
    }
    // the first entry's hash, and one no entry has
    let first = Raw::open(target).hash(1);
    match l.verify_with(&expect(&first)).unwrap() {
        Verified::HeadMismatch { at, .. } => assert_eq!(at, Some(1)),
        other => panic!("{other:?}"),
    }
    let unknown = "ab".repeat(32);
    match l.verify_with(&expect(&unknown)).unwrap() {
        Verified::HeadMismatch { at, expected, .. } => assert_eq!((at, expected), (None, unknown)),
        other => panic!("{other:?}"),
    }
}

/// A column of another type in the middle of the journal is named at its
/// entry; damage before it is named first (the journal is read in order).
fn verify_names_a_changed_column_type_in_the_middle(target: &str) {
    let mut l = init(target);
    record(&mut l, "a.csv", &costs_csv("A", 2500));
    let st = state(&mut l);
    let victim = st.lines[2000].seq;
    let mut raw = Raw::open(target);
    raw.disable_guard();
    let sql = if target.starts_with("postgres://") {
        // a type the whole column takes: the hash of one entry as NULL is
        // the nearest change PostgreSQL allows to one row
        format!(
            "ALTER TABLE journal ALTER COLUMN hash DROP NOT NULL; UPDATE journal SET hash = NULL WHERE seq = {victim}"
        )
    } else {
        format!("UPDATE journal SET hash = CAST(hash AS BLOB) WHERE seq = {victim}")
    };
    raw.exec(&sql).unwrap();
    let found = if target.starts_with("postgres://") {
        "NULL"
    } else {
        "BLOB"
    };
    match l.verify().unwrap() {
        Verified::Bad { seq, message } => {
            assert_eq!(seq, victim, "{message}");
            assert_eq!(message, format!("its `hash` is stored as {found}, not TEXT"));
        }
        ok => panic!("verify missed a changed column type: {ok:?}"),
    }
    let early = st.lines[100].seq;
    let body = raw.body(early);
    let mut edited = body.clone();
    edited.push(b'x');
    raw.set_body(early, &edited).unwrap();
    match l.verify().unwrap() {
        Verified::Bad { seq, message } => {
            assert_eq!(seq, early, "{message}");
            assert!(message.starts_with("its bytes hash to "), "{message}");
        }
        ok => panic!("verify missed an edited body: {ok:?}"),
    }
}

/// Several `init`s of the same target at once: exactly one wins, the ledger
/// it made is sound, and every other is refused. (The losers should all be
/// `Exists`; on SQLite a loser can still see the raw "table journal already
/// exists" from the database, so this only asks for a refusal.)
fn concurrent_inits(target: &str) {
    let barrier = std::sync::Barrier::new(4);
    let results: Vec<Result<(), LedgerError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    Ledger::init(target, agreement(), None, NOW).map(drop)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    let mut l = Ledger::open(target).unwrap();
    let st = state(&mut l);
    assert_eq!((st.entries, st.versions.len()), (2, 1));
    assert_eq!(verify_ok(&mut l).0, 2);
}

/// Writers on separate connections at once: two different files of 2,000
/// lines each and a third writer repeating the first file. Every line ends
/// up there exactly once, each batch's lines are contiguous after it, the
/// seq numbers are 1..=n and verify is Ok.
fn concurrent_writers(target: &str) {
    const N: usize = 2000;
    drop(init(target));
    let a = costs_csv("A", N);
    let b = costs_csv("B", N);
    let barrier = std::sync::Barrier::new(3);
    let outcomes: Vec<(&str, RecordOutcome)> = std::thread::scope(|s| {
        let jobs = [("a.csv", &a), ("b.csv", &b), ("a.csv", &a)];
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(name, text)| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut l = Ledger::open(target).unwrap();
                    barrier.wait();
                    let out = l
                        .record(input(name, text), None, NOW)
                        .unwrap_or_else(|e| panic!("concurrent record {name}: {e}"));
                    (name, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let new = |o: &RecordOutcome| (o.recorded, o.already);
    assert_eq!(new(&outcomes[1].1), (N as u64, 0), "b.csv");
    let mut a_outs = [new(&outcomes[0].1), new(&outcomes[2].1)];
    a_outs.sort();
    assert_eq!(a_outs, [(0, N as u64), (N as u64, 0)], "a.csv recorded by two writers");

    let mut l = Ledger::open(target).unwrap();
    let st = state(&mut l);
    assert_eq!(st.lines.len(), 2 * N);
    assert_eq!(st.by_id.len(), 2 * N);
    let mut ids: Vec<&str> = ids_of(&st);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2 * N, "a line recorded twice");
    for p in ["A", "B"] {
        for i in 0..N {
            assert!(st.by_id.contains_key(&format!("{p}-{i:05}")), "{p}-{i:05} missing");
        }
    }
    assert_eq!(st.batches.len(), 2);
    for batch in &st.batches {
        let lines: Vec<u64> = st
            .lines
            .iter()
            .filter(|l| l.body.batch == batch.seq)
            .map(|l| l.seq)
            .collect();
        assert_eq!(lines.len(), N, "{}", batch.file);
        assert_eq!(
            lines,
            (batch.seq + 1..=batch.seq + N as u64).collect::<Vec<_>>(),
            "the lines of {} are not contiguous after their batch",
            batch.file
        );
    }
    assert_eq!(st.entries, 3 + 2 * (1 + N as u64));
    let seqs = Raw::open(target).seqs();
    assert_eq!(seqs, (1..=st.entries as i64).collect::<Vec<_>>());
    assert_eq!(verify_ok(&mut l), (st.entries, st.head));
}

// --------------------------------------------------------------- targets

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{tag}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh SQLite path, removed (with its WAL files) afterwards.
struct SqliteTarget {
    target: String,
}

impl SqliteTarget {
    fn new(test: &str) -> SqliteTarget {
        let p = std::env::temp_dir().join(format!("costshare-suite-{}.db", unique(test)));
        SqliteTarget {
            target: p.to_string_lossy().into_owned(),
        }
    }
}

impl Drop for SqliteTarget {
    fn drop(&mut self) {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", self.target));
        }
    }
}

#[cfg(feature = "postgres")]
const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test?connect_timeout=10";

/// A fresh PostgreSQL database, dropped afterwards; `None` (after a loud
/// message) when there is no server and it is not required.
#[cfg(feature = "postgres")]
struct PgTarget {
    db: String,
    target: String,
}

#[cfg(feature = "postgres")]
impl PgTarget {
    fn new(test: &str) -> Option<PgTarget> {
        let mut admin = match postgres::Client::connect(PG_ADMIN, postgres::NoTls) {
            Ok(c) => c,
            Err(e) => {
                let e = pg_err(&e);
                if std::env::var("COSTSHARE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!(
                        "COSTSHARE_REQUIRE_POSTGRES=1 but there is no PostgreSQL server on 127.0.0.1:5432 \
                         (user postgres, database test): {e}"
                    );
                }
                // straight to the process's stderr: the test harness captures eprintln!
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: no PostgreSQL server on 127.0.0.1:5432 (postgresql::{test}: {e})"
                );
                return None;
            }
        };
        let db = format!("costshare_t_{}", unique(""));
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {db}: {}", pg_err(&e)));
        Some(PgTarget {
            target: format!("postgres://postgres@127.0.0.1:5432/{db}"),
            db,
        })
    }
}

#[cfg(feature = "postgres")]
impl Drop for PgTarget {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(PG_ADMIN, postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db));
        }
    }
}

/// A journal column changed to another type behind the program's back is
/// named as damage of one entry (`StoreError::ColumnType`), and `verify`
/// names that entry.
fn a_changed_column_type_is_named_as_damage(target: &str) {
    let mut l = init(target);
    record(&mut l, "a.csv", &costs_csv("A", 3));
    let mut raw = Raw::open(target);
    let sql = if target.starts_with("postgres://") {
        "ALTER TABLE journal ALTER COLUMN body TYPE text USING encode(body, 'escape')"
    } else {
        "DROP TRIGGER journal_no_update; UPDATE journal SET body = CAST(body AS TEXT) WHERE seq = 1"
    };
    raw.exec(sql).unwrap();
    drop(raw);
    let mut l = Ledger::open(target).unwrap();
    match l.state() {
        Err(LedgerError::Store(e @ StoreError::ColumnType { .. })) => {
            let (found, expected) = if target.starts_with("postgres://") {
                ("TEXT", "BYTEA")
            } else {
                ("TEXT", "BLOB")
            };
            let m = e.to_string();
            assert!(
                m.contains(&format!(
                    "journal entry 1 has its `body` stored as {found}, not {expected}"
                )) && m.contains("run `costshare verify"),
                "{m}"
            );
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a changed column type went unnoticed"),
    }
    match l.verify().unwrap() {
        Verified::Bad { seq, message } => {
            assert_eq!(seq, 1, "{message}");
            assert!(message.contains("its `body` is stored as TEXT"), "{message}");
        }
        ok => panic!("verify missed a changed column type: {ok:?}"),
    }
}

/// Found by a fresh user: a journal row numbered below 1, or (PostgreSQL)
/// the `seq` column changed to another integer type, behind the program's
/// back. Reading the journal said entry 18446744073709551611, or panicked;
/// now it is [`StoreError::Damaged`] naming the number or the type as stored.
fn a_renumbered_or_retyped_seq_is_named_as_damage(target: &str) {
    let mut l = init(target);
    record(&mut l, "a.csv", &costs_csv("A", 5));
    let mut raw = Raw::open(target);
    raw.disable_guard();
    raw.exec(
        "INSERT INTO journal (seq, kind, at, body, prev_hash, hash) SELECT -5, kind, at, body, prev_hash, hash FROM journal WHERE seq = 3",
    )
    .unwrap();
    let damaged = |r: Result<Verified, LedgerError>, what: &str| match r {
        Err(LedgerError::Store(e @ StoreError::Damaged { .. })) => {
            let m = e.to_string();
            assert!(m.contains(what) && m.contains("run `costshare verify"), "{m}");
        }
        Err(e) => panic!("{e}"),
        Ok(v) => panic!("not named as damage: {v:?}"),
    };
    let numbered = "the journal holds a row numbered -5 (entries are numbered from 1)";
    damaged(l.verify(), numbered);
    damaged(
        Ledger::open(target).and_then(|mut l| {
            l.state().map(|_| Verified::Bad {
                seq: 0,
                message: String::new(),
            })
        }),
        numbered,
    );
    if !target.starts_with("postgres://") {
        raw.exec("DROP TRIGGER journal_no_delete").unwrap();
    }
    raw.exec("DELETE FROM journal WHERE seq = -5").unwrap();
    assert!(matches!(l.verify().unwrap(), Verified::Ok { .. }));
    if target.starts_with("postgres://") {
        // a write's binary COPY names the column rather than "incorrect
        // binary data format"
        raw.exec("ALTER TABLE journal ALTER COLUMN at TYPE timestamptz USING at::timestamptz")
            .unwrap();
        let mut w = Ledger::open(target).unwrap();
        match w.record(input("b.csv", &costs_csv("B", 2)), None, NOW) {
            Err(LedgerError::Store(e @ StoreError::Damaged { .. })) => {
                let m = e.to_string();
                assert!(
                    m.contains("the journal's `at` column is stored as TIMESTAMPTZ, not TEXT"),
                    "{m}"
                );
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a changed column type went unnoticed"),
        }
        raw.exec("ALTER TABLE journal ALTER COLUMN at TYPE text").unwrap();
        raw.exec("ALTER TABLE journal ALTER COLUMN seq TYPE integer").unwrap();
        let retyped = "the journal's `seq` column is stored as INT4, not BIGINT";
        damaged(l.verify(), retyped);
        damaged(
            Ledger::open(target).and_then(|mut l| {
                l.state().map(|_| Verified::Bad {
                    seq: 0,
                    message: String::new(),
                })
            }),
            retyped,
        );
    }
}

/// Batches on both sides of the size a backend may write another way (on
/// PostgreSQL up to 64 rows by one `INSERT` of arrays, more by `COPY`):
/// the journal reads back as written either way, its chain intact, each
/// entry where its seq says.
fn small_and_large_batches_write_the_same_journal(target: &str) {
    let mut l = init(target);
    // batch + 63 lines = 64 rows; batch + 64 lines = 65 rows; then 1, then 200
    let mut entries = 3;
    for (name, n) in [("a.csv", 63), ("b.csv", 64), ("c.csv", 1), ("d.csv", 200)] {
        let prefix = name.trim_end_matches(".csv").to_uppercase();
        let out = record(&mut l, name, &costs_csv(&prefix, n));
        assert_eq!(out.recorded, n as u64);
        entries += 1 + n as u64;
        let (seen, head) = verify_ok(&mut l);
        assert_eq!(seen, entries, "after {name}");
        let st = state(&mut l);
        assert_eq!((st.entries, &st.head), (entries, &head));
    }
    let st = state(&mut l);
    assert_eq!(st.lines.len(), 63 + 64 + 1 + 200);
    assert_eq!(st.lines[st.by_id["B-00063"]].body.description, "line 63 of B");
    assert_eq!(Raw::open(target).seqs(), (1..=entries as i64).collect::<Vec<_>>());
}

/// The derived state's blobs through the backend: a blob written in a
/// transaction reads back as written last in it (a backend that keeps what
/// it read must not hand back the older bytes), several written at once keep
/// the last value of a key given twice, the meta and the head read together
/// are what each reads alone, and a rolled-back write is gone.
fn cache_blobs_read_back_as_last_written(target: &str) {
    let mut l = init(target);
    record(&mut l, "a.csv", &costs_csv("A", 5));
    drop(l);
    let mut b = costshare_store::backend::open(target).unwrap();
    let head = b.head_stored().unwrap().expect("a head");
    let meta = b.cache_get("meta").unwrap().expect("a meta");
    let (both, with) = b.cache_get_and_head("meta").unwrap();
    assert_eq!(both.as_deref(), Some(&meta[..]));
    let with = with.unwrap().expect("a head");
    assert_eq!((with.seq, &with.body, &with.hash), (head.seq, &head.body, &head.hash));
    let (none, _) = b.cache_get_and_head("no such blob").unwrap();
    assert_eq!(none, None);

    b.begin_write().unwrap();
    b.cache_put("t/x", b"one").unwrap();
    assert_eq!(b.cache_get("t/x").unwrap().as_deref(), Some(&b"one"[..]));
    b.cache_put("t/x", b"two").unwrap();
    assert_eq!(b.cache_get("t/x").unwrap().as_deref(), Some(&b"two"[..]));
    b.cache_put_many(&[("t/x", b"three"), ("t/y", b"y1"), ("t/x", b"four")])
        .unwrap();
    assert_eq!(b.cache_get("t/x").unwrap().as_deref(), Some(&b"four"[..]));
    assert_eq!(b.cache_get("t/y").unwrap().as_deref(), Some(&b"y1"[..]));
    let many = b
        .cache_get_many(&["t/y".to_string(), "t/x".to_string(), "t/z".to_string()])
        .unwrap();
    assert_eq!(many, [Some(b"y1".to_vec()), Some(b"four".to_vec()), None]);
    b.commit().unwrap();
    assert_eq!(b.cache_get("t/x").unwrap().as_deref(), Some(&b"four"[..]));

    b.begin_write().unwrap();
    assert_eq!(b.cache_get("t/y").unwrap().as_deref(), Some(&b"y1"[..]));
    b.cache_put_many(&[("t/y", b"y2"), ("t/new", b"n")]).unwrap();
    assert_eq!(b.cache_get("t/y").unwrap().as_deref(), Some(&b"y2"[..]));
    b.rollback();
    assert_eq!(b.cache_get("t/y").unwrap().as_deref(), Some(&b"y1"[..]));
    assert_eq!(b.cache_get("t/new").unwrap(), None);
}

/// A transaction whose start fails (the journal renamed behind the
/// program's back, so PostgreSQL's `LOCK TABLE journal` fails) is that
/// failure at the first statement of the transaction, however the backend
/// sends its `BEGIN`: the error names the journal, not an aborted
/// transaction, and the backend is usable again once it is rolled back.
fn a_failed_transaction_start_is_named(target: &str) {
    let mut l = init(target);
    record(&mut l, "a.csv", &costs_csv("A", 3));
    drop(l);
    let mut b = costshare_store::backend::open(target).unwrap();
    let mut raw = Raw::open(target);
    raw.exec("ALTER TABLE journal RENAME TO journal_moved").unwrap();
    let err = b
        .begin_write()
        .and_then(|_| b.head())
        .map(|_| ())
        .unwrap_err()
        .to_string();
    b.rollback();
    assert!(err.contains("journal") && !err.contains("aborted"), "{err}");
    raw.exec("ALTER TABLE journal_moved RENAME TO journal").unwrap();
    b.begin_write().unwrap();
    assert_eq!(b.head().unwrap().map(|(seq, _)| seq), Some(3 + 1 + 3));
    b.rollback();
    // a transaction in which nothing was read or written ends cleanly
    b.begin_read().unwrap();
    b.end_read();
    b.begin_write().unwrap();
    b.commit().unwrap();
    assert_eq!(b.head().unwrap().map(|(seq, _)| seq), Some(7));
}

/// `sqlite::NAME` and `postgresql::NAME` for each test body.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let t = super::SqliteTarget::new(stringify!($name));
                    super::$name(&t.target);
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgresql {
            $(
                #[test]
                fn $name() {
                    let Some(t) = super::PgTarget::new(stringify!($name)) else {
                        return;
                    };
                    super::$name(&t.target);
                }
            )*
        }
    };
}

/// The derived state follows late lines on both databases (the SQLite-only
/// tests in `derived.rs` go through every example agreement).
fn derived_state_follows_late_lines(target: &str) {
    use common::{check, examples, input, lines_csv};
    let (name, text) = examples().into_iter().find(|(n, _)| n.contains("sma-2022")).unwrap();
    let ag = costshare_core::load(&text).agreement.unwrap();
    let now = "2026-11-27T00:00:00Z";
    let (mut l, _) = Ledger::init(target, input(&name, &text), None, now).unwrap();
    let mut rng = costshare_demo::Rng::new(3);
    let first = lines_csv(&ag, &mut rng, 80, "a");
    l.record_fast(input("a.csv", &first), now).unwrap().expect("fast path");
    check(&mut l, "first file");
    for k in 0..3 {
        let late = lines_csv(&ag, &mut rng, 2, &format!("late{k}-"));
        l.record_fast(input("late.csv", &late), now)
            .unwrap()
            .expect("fast path");
        check(&mut l, &format!("late file {k}"));
    }
    l.void("a0003", "test", now).unwrap();
    check(&mut l, "after a void");
    l.void_fast("a0005", "from the derived state", now)
        .unwrap()
        .expect("fast path");
    check(&mut l, "after a void from the derived state");
    assert_eq!(
        l.void_fast("a0005", "again", now).unwrap(),
        None,
        "already voided: the full path words it"
    );
    // the integrity check ties every blob to the meta; the deep one compares them with a rebuild
    match l.verify().unwrap() {
        Verified::Ok { derived, .. } => assert_eq!(derived, costshare_store::DerivedStatus::Sealed),
        other => panic!("{other:?}"),
    }
    let deep = VerifyOptions {
        deep: true,
        ..VerifyOptions::default()
    };
    match l.verify_with(&deep).unwrap() {
        Verified::Ok { derived, .. } => assert_eq!(derived, costshare_store::DerivedStatus::Consistent),
        Verified::Bad { seq, message } => panic!("verify failed at {seq}: {message}"),
        other => panic!("{other:?}"),
    }
}

/// SPEC section 8: an amendment continues a term envelope (same category and
/// layer id); a renamed layer starts fresh. The statement of a closed year
/// and the version-by-version allocation see the carried use.
fn amend_continues_a_term_envelope(target: &str) {
    let base = r#"[agreement]
id = "e"
currency = "JPY"
start = "2022-04-01"
end = "2024-03-31"
fiscal_year_start = "04-01"
[parties.JP]
[parties.US]
[categories.f]
  [[categories.f.layers]]
  id = "LAYER"
  split = { JP = "100%" }
  cap = 1000
  period = "term"
  [[categories.f.layers]]
  split = { US = "100%" }
"#;
    let v1 = base.replace("LAYER", "envelope");
    let (mut l, _) = Ledger::init(target, input("v1.toml", &v1), None, NOW).unwrap();
    record(
        &mut l,
        "a.csv",
        "id,date,category,amount\na,2022-05-01,f,700\nb,2023-05-01,f,500\n",
    );
    let jp_us = |l: &mut Ledger, id: &str| {
        let st = state(l);
        let parts = costshare_store::state::allocate(&st, date("2026-01-01")).unwrap();
        parts
            .iter()
            .find_map(|p| p.lines.iter().position(|x| x.id == id).map(|i| p.alloc.row(i).to_vec()))
            .unwrap()
    };
    assert_eq!(jp_us(&mut l, "b"), [300, 200, 0]);
    // the same envelope under version 2 (a higher cap): 700 already used
    let v2 = base.replace("LAYER", "envelope").replace("cap = 1000", "cap = 1100");
    l.amend(input("v2.toml", &v2), date("2023-04-01"), NOW).unwrap();
    assert_eq!(jp_us(&mut l, "b"), [400, 100, 0]);
    let st = state(&mut l);
    let parts = costshare_store::state::allocate(&st, date("2026-01-01")).unwrap();
    assert!(parts[0].carry.is_empty());
    let k = &parts[1].carry.entries()[0];
    assert_eq!((k.money, k.from.len(), k.from[0].version), (700, 1, 1));
    let fy23 = l.close("FY2023", date("2024-04-30"), NOW).unwrap();
    let jp = fy23.iter().find(|r| r.party == "JP").map(|r| r.amount_minor);
    assert_eq!(jp, Some(400));
    verify_ok(&mut l);
    // a renamed layer has no counterpart: version 3 starts a fresh envelope
    let v3 = base.replace("LAYER", "new-envelope");
    l.amend(input("v3.toml", &v3), date("2024-04-01"), NOW)
        .expect_err("outside the term");
    let v3 = v3.replace("2024-03-31", "2025-03-31");
    l.amend(input("v3.toml", &v3), date("2024-04-01"), NOW).unwrap();
    record(&mut l, "c.csv", "id,date,category,amount\nc,2024-05-01,f,900\n");
    assert_eq!(jp_us(&mut l, "c"), [900, 0, 0]);
    verify_ok(&mut l);
}

both!(
    a_failed_transaction_start_is_named,
    small_and_large_batches_write_the_same_journal,
    cache_blobs_read_back_as_last_written,
    amend_continues_a_term_envelope,
    a_changed_column_type_is_named_as_damage,
    a_renumbered_or_retyped_seq_is_named_as_damage,
    derived_state_follows_late_lines,
    init_refuses_an_existing_ledger,
    record_is_idempotent,
    bad_rows_record_nothing,
    replaces_voids_the_recorded_line,
    void_refuses_unknown_and_voided_ids,
    close_then_late_line_is_an_adjustment,
    amend_effective_date_rules,
    verify_counts_entries_and_head,
    journal_is_append_only_and_edits_are_caught,
    verify_names_damage_in_the_middle_of_a_long_journal,
    verify_expect_head_names_the_entry_streamed_past,
    verify_names_a_changed_column_type_in_the_middle,
    concurrent_inits,
    concurrent_writers,
);

/// The derived state's values are not compressed with PostgreSQL's default
/// pglz (seconds of server time at a million lines): a new ledger's `cache`
/// column is lz4 (or stored uncompressed where the server has no lz4), and a
/// ledger made by an earlier version, whose column is pglz, is changed by its
/// next write, which still reads the same.
#[cfg(feature = "postgres")]
#[test]
fn postgresql_cache_values_are_not_pglz() {
    let Some(t) = PgTarget::new("postgresql_cache_values_are_not_pglz") else {
        return;
    };
    let mut c = postgres::Client::connect(&t.target, postgres::NoTls).unwrap();
    let method = |c: &mut postgres::Client| -> (i8, i8) {
        let r = c
            .query_one(
                "SELECT attcompression, attstorage FROM pg_attribute WHERE attrelid = 'cache'::regclass AND attname = 'v'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    let fast = |(comp, storage): (i8, i8)| comp == b'l' as i8 || storage == b'e' as i8;
    let mut l = init(&t.target);
    record(&mut l, "a.csv", &costs_csv("A", 40));
    assert!(
        fast(method(&mut c)),
        "a new ledger's cache column: {:?}",
        method(&mut c)
    );
    // as an earlier version left it
    c.batch_execute(
        "ALTER TABLE cache ALTER COLUMN v SET COMPRESSION pglz; ALTER TABLE cache ALTER COLUMN v SET STORAGE EXTENDED",
    )
    .unwrap();
    assert_eq!(method(&mut c), (b'p' as i8, b'x' as i8));
    let before = state(&mut l);
    let mut l = Ledger::open(&t.target).unwrap();
    record(&mut l, "b.csv", &costs_csv("B", 3));
    assert!(fast(method(&mut c)), "the next write changes it: {:?}", method(&mut c));
    assert_eq!(state(&mut l).lines.len(), before.lines.len() + 3);
    verify_ok(&mut l);
}
