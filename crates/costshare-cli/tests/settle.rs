//! `paid_by`, `pay` and `settle`, run from outside as a user would: a
//! hand-computed settlement on files and on SQLite and PostgreSQL ledgers,
//! transfers that settle it, `pay` idempotent and atomic, an unknown
//! `paid_by` refused on every path, and line entries without `paid_by`
//! keeping the bytes the journal format documents.

mod common;

use common::{Dir, PgDb, run};

const AGREEMENT: &str = r#"
[agreement]
id = "pair"
title = "Two partners"
currency = "USD"
start = "2025-01-01"
end = "2026-12-31"
fiscal_year_start = "01-01"
fiscal_year_label = "start"

[parties.A]
name = "Alpha"
[parties.B]
name = "Beta"

[categories.ops]
name = "Operations"
  [[categories.ops.layers]]
  split = { A = "60%", B = "40%" }
  cap = "1000.00"
  period = "term"
  cap_policy = "running"

[categories.misc]
name = "Misc"
  [[categories.misc.layers]]
  split = { A = "50%", B = "50%" }
"#;

// L1: A pays 800 (A 480, B 320); L2: B pays 500, of which 200 fits under the
// cap (A 120, B 80) and 300 stays UNALLOCATED; L3: 100 that nobody has paid
// yet (A 50, B 50). Column order shuffled, CRLF, spaces and a BOM on purpose.
const COSTS: &str = "\u{feff}paid_by,id,date,category,amount\r\nA,L1,2025-03-01,ops,800.00\r\n B ,L2,2025-06-01,ops,500.00\r\n,L3,2026-02-01,misc,100.00\r\n";
// B sends A 100.
const PAYMENTS: &str = "id,date,from,to,amount,description\nP1,2025-07-01,B,A,100.00,\"refund, June\"\n";

// obligations A 480+120+50, B 320+80+50, UNALLOCATED 300; paid A 800-100,
// B 500+100, UNPAID 100 (L3).
const EXPECTED: &str = "party,obligation,paid,balance\n\
A,650.00,700.00,50.00\n\
B,450.00,600.00,150.00\n\
UNALLOCATED,300.00,0.00,-300.00\n\
UNPAID,0.00,100.00,100.00\n";

// FY2025 only: L1, L2 and P1; no unpaid line in that year, so no UNPAID row.
const EXPECTED_FY2025: &str = "party,obligation,paid,balance\n\
A,600.00,700.00,100.00\n\
B,400.00,600.00,200.00\n\
UNALLOCATED,300.00,0.00,-300.00\n";

/// Minor units of a USD amount as written (`-12.34`).
fn cents(s: &str) -> i128 {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (w, f) = s.split_once('.').expect("two decimals");
    assert_eq!(f.len(), 2, "{s}");
    let v = w.parse::<i128>().unwrap() * 100 + f.parse::<i128>().unwrap();
    if neg { -v } else { v }
}

/// (party, balance) from settle's CSV.
fn balances(csv: &str) -> Vec<(String, i128)> {
    csv.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 4, "{l}");
            assert_eq!(
                cents(f[2]) - cents(f[1]),
                cents(f[3]),
                "balance = paid - obligation: {l}"
            );
            (f[0].to_string(), cents(f[3]))
        })
        .collect()
}

/// Apply the transfers of `--transfers --format csv` to the balances: all
/// must end at zero, in at most (non-zero balances - 1) transfers.
fn check_transfers(bal: &[(String, i128)], transfers_csv: &str) {
    let mut lines = transfers_csv.lines();
    assert_eq!(lines.next(), Some("from,to,amount"));
    let mut b: Vec<(String, i128)> = bal.to_vec();
    let mut n = 0;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let amount = cents(f[2]);
        assert!(amount > 0, "{l}");
        let from = b.iter().position(|(p, _)| p == f[0]).expect("known from");
        let to = b.iter().position(|(p, _)| p == f[1]).expect("known to");
        b[from].1 += amount;
        b[to].1 -= amount;
        n += 1;
    }
    assert!(b.iter().all(|(_, v)| *v == 0), "not settled: {b:?}");
    let nonzero = bal.iter().filter(|(_, v)| *v != 0).count();
    assert!(n < nonzero.max(1), "{n} transfers for {nonzero} balances");
    assert!(transfers_csv.ends_with('\n'));
}

fn files(d: &Dir) -> (String, String, String) {
    (
        d.file("a.toml", AGREEMENT),
        d.file("costs.csv", COSTS),
        d.file("payments.csv", PAYMENTS),
    )
}

#[test]
fn settle_on_files_by_hand() {
    let d = Dir::new("settle-files");
    let (a, c, p) = files(&d);
    let base = [
        "settle",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--payments",
        &p,
        "--as-of",
        "2027-01-01",
    ];
    let (code, out, err) = run(&[&base[..], &["--format", "csv"]].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, EXPECTED);
    let bal = balances(&out);
    assert_eq!(bal.iter().map(|(_, v)| v).sum::<i128>(), 0);

    let (code, t, err) = run(&[&base[..], &["--transfers", "--format", "csv"]].concat());
    assert_eq!(code, 0, "{err}");
    check_transfers(&bal, &t);

    let (code, out, err) = run(&[&base[..], &["--period", "FY2025", "--format", "csv"]].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, EXPECTED_FY2025);

    // without payments: A paid 800 and B 500, nothing moved between them
    let (code, out, _) = run(&["settle", "--agreement", &a, "--costs", &c, "--format", "csv"]);
    assert_eq!(code, 0);
    assert!(out.contains("A,650.00,800.00,150.00\nB,450.00,500.00,50.00\n"), "{out}");

    // JSON: amounts as decimal strings, the totals balance
    let (code, out, _) = run(&[&base[..], &["--format", "json"]].concat());
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total"]["balance"], "0.00");
    assert_eq!(v["rows"][2]["party"], "UNALLOCATED");
    assert_eq!(v["payments"], 1);

    let (code, _, err) = run(&[&base[..], &["--period", "2025"]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--period `2025`"), "{err}");
}

#[test]
fn bad_payments_file_names_every_row() {
    let d = Dir::new("settle-badpay");
    let (a, c, _) = files(&d);
    let p = d.file(
        "p.csv",
        "id,date,from,to,amount\nP1,2025-07-01,B,Z,1.00\nP2,2025-07-01,A,A,1.00\nP3,2025-07-01,A,B,1.001\nP4,2025-07-01,A,B,0\n",
    );
    let (code, out, err) = run(&["settle", "--agreement", &a, "--costs", &c, "--payments", &p]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains(":2, id P1: to `Z` is not a party of the agreement (the agreement has A, B)"),
        "{err}"
    );
    assert!(err.contains(":3, id P2: from and to are both `A`"), "{err}");
    assert!(err.contains(":4, id P3: amount `1.001`"), "{err}");
    assert!(err.contains(":5, id P4: amount `0` is not positive"), "{err}");
    assert!(err.contains("4 bad rows in payments file"), "{err}");
}

#[test]
fn unknown_paid_by_is_refused_on_every_path() {
    let d = Dir::new("settle-paidby");
    let a = d.file("a.toml", AGREEMENT);
    let c = d.file(
        "c.csv",
        "id,date,category,amount,paid_by\nL1,2025-03-01,ops,1.00,A\nL2,2025-03-02,ops,1.00,JP\n",
    );
    let want = ":3, id L2: paid_by `JP` is not a party of the agreement (the agreement has A, B)";
    // the streaming report, the general path (allocate) and settle
    for args in [
        vec![
            "report",
            "--agreement",
            &a,
            "--costs",
            &c,
            "--by",
            "party",
            "--format",
            "csv",
        ],
        vec!["allocate", "--agreement", &a, "--costs", &c, "--format", "csv"],
        vec!["settle", "--agreement", &a, "--costs", &c],
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, 1, "{args:?}");
        assert!(out.is_empty());
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // a ledger's record: nothing recorded
    let l = d.path("l.db");
    assert_eq!(run(&["init", &l, "--agreement", &a]).0, 0);
    let (code, _, err) = run(&["record", &l, &c]);
    assert_eq!(code, 1);
    assert!(err.contains(want), "{err}");
    let (_, h, _) = run(&["history", &l, "--format", "json"]);
    assert!(!h.contains("L1"), "{h}");
}

/// The whole story on one ledger: record, pay (twice), settle equals the
/// files' settlement, history shows the payment, verify passes; a bad pay
/// file records nothing and names every bad row.
fn ledger_story(l: &str, d: &Dir) {
    let (a, c, p) = files(d);
    assert_eq!(run(&["init", l, "--agreement", &a]).0, 0);
    let (code, _, err) = run(&["record", l, &c]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["pay", l, &p]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 payment recorded, 0 already there"), "{out}");
    let entries = |l: &str| {
        let (_, h, _) = run(&["history", l, "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&h).unwrap();
        v["journal"]["entries"].as_u64().unwrap()
    };
    let before = entries(l);
    // again: nothing added
    let (code, out, _) = run(&["pay", l, &p]);
    assert_eq!(code, 0);
    assert!(out.contains("0 payments recorded, 1 already there"), "{out}");
    assert_eq!(entries(l), before);

    let (code, out, err) = run(&["settle", "--ledger", l, "--as-of", "2027-01-01", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, EXPECTED);
    // the same file given again with --payments counts once
    let (_, again, _) = run(&["settle", "--ledger", l, "--payments", &p, "--format", "csv"]);
    assert_eq!(again, EXPECTED);
    let (_, fy, _) = run(&["settle", "--ledger", l, "--period", "FY2025", "--format", "csv"]);
    assert_eq!(fy, EXPECTED_FY2025);
    let (_, t, _) = run(&["settle", "--ledger", l, "--transfers", "--format", "csv"]);
    check_transfers(&balances(&out), &t);

    let (_, h, _) = run(&["history", l]);
    assert!(h.contains("payment P1 2025-07-01 B to A 100.00 USD"), "{h}");

    // atomic: one good new row and two bad ones: nothing recorded
    let bad = d.file(
        "bad.csv",
        "id,date,from,to,amount\nP2,2025-08-01,A,B,5.00\nP3,2025-08-01,A,X,5.00\nP1,2025-07-01,B,A,99.00\n",
    );
    let (code, _, err) = run(&["pay", l, &bad]);
    assert_eq!(code, 1);
    assert!(err.contains(":3, id P3: to `X`"), "{err}");
    assert!(
        err.contains(":4, id P1: payment id already recorded with different values"),
        "{err}"
    );
    assert!(err.contains("2 bad rows"), "{err}");
    assert_eq!(entries(l), before);

    let (code, out, err) = run(&["verify", l]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn pay_and_settle_on_sqlite() {
    let d = Dir::new("settle-sqlite");
    ledger_story(&d.path("l.db"), &d);
}

#[test]
fn pay_and_settle_on_postgres() {
    let Some(db) = PgDb::new("settle") else { return };
    let d = Dir::new("settle-pg");
    ledger_story(&db.url, &d);
}

#[test]
fn lines_without_paid_by_keep_their_bytes() {
    let d = Dir::new("settle-bytes");
    let a = d.file("a.toml", AGREEMENT);
    let c = d.file("c.csv", "id,date,category,amount,site\nL1,2025-03-01,ops,12.5,Camp\n");
    let l = d.path("l.db");
    assert_eq!(run(&["init", &l, "--agreement", &a]).0, 0);
    assert_eq!(run(&["record", &l, &c]).0, 0);
    let conn = rusqlite::Connection::open(&l).unwrap();
    let (seq, at, body): (i64, String, Vec<u8>) = conn
        .query_row("SELECT seq, at, body FROM journal WHERE kind = 'line'", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    // the format ARCHITECTURE.md documents for a line entry, field by field
    let want = format!(
        "seq={seq}\nat={at}\nkind=line\nbatch={}\nid=L1\ndate=2025-03-01\ncategory=ops\namount=12.50\ncurrency=USD\nquantity=\nsite=Camp\ndescription=\nreplaces=\n",
        seq - 1
    );
    assert_eq!(String::from_utf8(body).unwrap(), want);

    // with paid_by: one more line at the end
    let c2 = d.file("c2.csv", "id,date,category,amount,paid_by\nL2,2025-03-02,ops,1.00,B\n");
    assert_eq!(run(&["record", &l, &c2]).0, 0);
    let body: Vec<u8> = conn
        .query_row(
            "SELECT body FROM journal WHERE kind = 'line' ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let body = String::from_utf8(body).unwrap();
    assert!(body.ends_with("\nreplaces=\npaid_by=B\n"), "{body}");
    // the same id with another payer is a different line
    let c3 = d.file("c3.csv", "id,date,category,amount,paid_by\nL2,2025-03-02,ops,1.00,A\n");
    let (code, _, err) = run(&["record", &l, &c3]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(run(&["verify", &l]).0, 0);
}

#[test]
fn payments_in_another_currency_convert_with_the_rates() {
    let d = Dir::new("settle-fx");
    let (a, c, _) = files(&d);
    let r = d.file("rates.csv", "date,currency,rate\n2025-01-01,EUR,1.10\n");
    // 10.00 EUR at 1.10 = 11.00 USD, from A to B
    let p = d.file(
        "p.csv",
        "id,date,from,to,amount,currency\nP9,2025-08-01,A,B,10.00,EUR\n",
    );
    let (code, out, err) = run(&[
        "settle",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--rates",
        &r,
        "--payments",
        &p,
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("A,650.00,811.00,161.00\nB,450.00,489.00,39.00\n"), "{out}");
    assert_eq!(balances(&out).iter().map(|(_, v)| v).sum::<i128>(), 0);
    // no rate: the row is named, nothing used
    let (code, _, err) = run(&["settle", "--agreement", &a, "--costs", &c, "--payments", &p]);
    assert_eq!(code, 1);
    assert!(err.contains(":2, id P9:"), "{err}");

    // a ledger converts with its recorded rates, and keeps the amount as written
    let l = d.path("l.db");
    assert_eq!(run(&["init", &l, "--agreement", &a, "--rates", &r]).0, 0);
    assert_eq!(run(&["record", &l, &c]).0, 0);
    let (code, _, err) = run(&["pay", &l, &p]);
    assert_eq!(code, 0, "{err}");
    let (_, h, _) = run(&["history", &l]);
    assert!(h.contains("payment P9 2025-08-01 A to B 10.00 EUR"), "{h}");
    let (_, led, _) = run(&["settle", "--ledger", &l, "--format", "csv"]);
    assert_eq!(led, out);
}

/// `settle --currency`: each line's parts are converted as `report
/// --currency` converts them, so every obligation equals that party's
/// converted report amount, and the balances still sum to zero exactly.
#[test]
fn settle_in_a_reporting_currency_agrees_with_report() {
    let d = Dir::new("settle-ccy");
    let (code, _, err) = run(&["demo", "--as-of", "2026-11-27", "--write", d.0.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (a, c, r) = (d.path("agreement.toml"), d.path("costs.csv"), d.path("rates.csv"));
    for policy in ["spot", "fiscal-year-average", "fixed:150"] {
        let files = [
            "--agreement",
            a.as_str(),
            "--costs",
            c.as_str(),
            "--rates",
            r.as_str(),
            "--currency",
            "USD",
            "--rate-policy",
            policy,
            "--format",
            "csv",
        ];
        let mut args = vec!["report", "--by", "party"];
        args.extend_from_slice(&files);
        let (code, report, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        let mut args = vec!["settle"];
        args.extend_from_slice(&files);
        let (code, settle, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        let cents = |t: &str| -> i128 { t.replace('.', "").parse().unwrap() };
        let mut total = 0i128;
        for l in settle.lines().skip(1) {
            let f: Vec<&str> = l.split(',').collect();
            total += cents(f[3]);
            if f[0] == "JP" || f[0] == "US" {
                assert!(
                    report.contains(&format!("{},{}\n", f[0], f[1])),
                    "{policy}: obligation of {} is {} but report says\n{report}",
                    f[0],
                    f[1]
                );
            }
        }
        assert_eq!(total, 0, "{policy}: balances do not sum to zero\n{settle}");
    }
}
