//! `costshare compare` and the reporting currency (`--currency`,
//! `--rate-policy`) from the command line, on files, a SQLite ledger and a
//! PostgreSQL ledger. Every expected figure is worked out by hand in the
//! comments.

mod common;
use common::{Dir, PgDb, run};

/// The base: P and Q share x half and half; P pays all of y.
const A: &str = r#"[agreement]
id = "a"
title = "A"
currency = "USD"
start = "2022-01-01"
end = "2022-12-31"
fiscal_year_start = "01-01"
[parties.P]
name = "P"
[parties.Q]
name = "Q"
[categories.x]
name = "X"
  [[categories.x.layers]]
  split = { P = "50%", Q = "50%" }
[categories.y]
name = "Y"
  [[categories.y.layers]]
  split = { P = "100%" }
"#;

/// Parties declared in the other order; no category y; the term ends
/// 2022-06-30.
const B: &str = r#"[agreement]
id = "b"
title = "B"
currency = "USD"
start = "2022-01-01"
end = "2022-06-30"
fiscal_year_start = "01-01"
[parties.Q]
name = "Q"
[parties.P]
name = "P"
[categories.x]
name = "X"
  [[categories.x.layers]]
  split = { P = "25%", Q = "75%" }
"#;

/// P pays all of x; y is 40/60.
const C: &str = r#"[agreement]
id = "c"
title = "C"
currency = "USD"
start = "2022-01-01"
end = "2022-12-31"
fiscal_year_start = "01-01"
[parties.P]
name = "P"
[parties.Q]
name = "Q"
[categories.x]
name = "X"
  [[categories.x.layers]]
  split = { P = "100%" }
[categories.y]
name = "Y"
  [[categories.y.layers]]
  split = { P = "40%", Q = "60%" }
"#;

const COSTS: &str = "id,date,category,amount\n\
1,2022-02-01,x,100.00\n\
2,2022-03-01,y,10.00\n\
3,2022-08-01,x,4.00\n";

// Under A: 1 → P 50, Q 50; 2 → P 10; 3 → P 2, Q 2: P 62.00, Q 52.00.
// Under B: 1 → P 25, Q 75; 2 UNALLOCATED (no y); 3 UNALLOCATED (after its term).
// Under C: 1 → P 100; 2 → P 4, Q 6; 3 → P 4: P 108.00, Q 6.00.
const ONE_BY_PARTY: &str = "party,amount,amount_against,delta\n\
P,62.00,25.00,37.00\n\
Q,52.00,75.00,-23.00\n\
UNALLOCATED,0.00,14.00,-14.00\n";

const TWO_BY_PARTY: &str = "party,amount,amount_b,delta_b,amount_c,delta_c\n\
P,62.00,25.00,37.00,108.00,-46.00\n\
Q,52.00,75.00,-23.00,6.00,46.00\n\
UNALLOCATED,0.00,14.00,-14.00,0.00,0.00\n";

// by category,party: x/P 50+2 vs 25; x/Q 50+2 vs 75; x/UNALLOCATED 0 vs 4;
// y/P 10 vs 0; y/UNALLOCATED 0 vs 10
const ONE_BY_CATEGORY_PARTY: &str = "category,party,amount,amount_against,delta\n\
x,P,52.00,25.00,27.00\n\
x,Q,52.00,75.00,-23.00\n\
x,UNALLOCATED,0.00,4.00,-4.00\n\
y,P,10.00,0.00,10.00\n\
y,UNALLOCATED,0.00,10.00,-10.00\n";

struct Files {
    d: Dir,
    a: String,
    b: String,
    c: String,
    costs: String,
}

fn files(tag: &str) -> Files {
    let d = Dir::new(tag);
    Files {
        a: d.file("a.toml", A),
        b: d.file("b.toml", B),
        c: d.file("c.toml", C),
        costs: d.file("costs.csv", COSTS),
        d,
    }
}

fn ok(args: &[&str]) -> (String, String) {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{args:?}\n{err}");
    (out, err)
}

fn with<'a>(base: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(more).copied().collect()
}

#[test]
fn one_against_exact_csv_with_zero_rows() {
    let f = files("cmp1");
    let base = [
        "compare",
        "--agreement",
        &f.a,
        "--costs",
        &f.costs,
        "--as-of",
        "2023-01-01",
    ];
    let (out, err) = ok(&with(&base, &["--against", &f.b, "--by", "party", "--format", "csv"]));
    assert_eq!(out, ONE_BY_PARTY);
    // the category B lacks and the line after its term are named on stderr
    assert!(err.contains("1 line (10.00 USD) UNALLOCATED under `b`"), "{err}");
    assert!(err.contains("no category `y`"), "{err}");
    assert!(err.contains("outside its term"), "{err}");
    let (out, _) = ok(&with(
        &base,
        &["--against", &f.b, "--by", "category,party", "--format", "csv"],
    ));
    assert_eq!(out, ONE_BY_CATEGORY_PARTY);
    // without the party: every group's total is the same cost under both
    let (out, _) = ok(&with(
        &base,
        &["--against", &f.b, "--by", "category", "--format", "csv"],
    ));
    assert_eq!(
        out,
        "category,amount,amount_against,delta\nx,104.00,104.00,0.00\ny,10.00,10.00,0.00\n"
    );
}

#[test]
fn two_againsts_exact_csv_table_and_json() {
    let f = files("cmp2");
    let base = [
        "compare",
        "--agreement",
        &f.a,
        "--costs",
        &f.costs,
        "--as-of",
        "2023-01-01",
    ];
    let (out, _) = ok(&with(
        &base,
        &["--against", &f.b, "--against", &f.c, "--by", "party", "--format", "csv"],
    ));
    assert_eq!(out, TWO_BY_PARTY);
    let (out, _) = ok(&with(&base, &["--against", &f.b, "--against", &f.c, "--by", "party"]));
    assert!(out.contains("total"), "{out}");
    assert!(out.contains("114.00"), "{out}");
    assert!(out.contains("+37.00"), "{out}");
    assert!(out.contains("UNALLOCATED under b: 1 line of `y`"), "{out}");
    let (out, _) = ok(&with(
        &base,
        &[
            "--against",
            &f.b,
            "--against",
            &f.c,
            "--by",
            "party",
            "--format",
            "json",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rows"][0]["party"], "P");
    assert_eq!(v["rows"][0]["amount"], "62.00");
    assert_eq!(v["rows"][0]["against"]["c"]["delta"], "-46.00");
    assert_eq!(v["totals"]["against"]["b"]["amount"], "114.00");
    assert_eq!(v["unallocated"][0]["reason"], "no_category");
    assert_eq!(v["against"][1]["id"], "c");
}

#[test]
fn ledgers_give_the_files_answer() {
    let f = files("cmpl");
    let l = f.d.path("l.db");
    ok(&["init", &l, "--agreement", &f.a]);
    ok(&["record", &l, &f.costs]);
    let (out, _) = ok(&[
        "compare",
        "--ledger",
        &l,
        "--against",
        &f.b,
        "--by",
        "party",
        "--format",
        "csv",
        "--as-of",
        "2023-01-01",
    ]);
    assert_eq!(out, ONE_BY_PARTY);
    let (out, _) = ok(&[
        "compare",
        "--ledger",
        &l,
        "--against",
        &f.b,
        "--against",
        &f.c,
        "--by",
        "party",
        "--format",
        "csv",
    ]);
    assert_eq!(out, TWO_BY_PARTY);
    let Some(db) = PgDb::new("compare") else { return };
    ok(&["init", &db.url, "--agreement", &f.a]);
    ok(&["record", &db.url, &f.costs]);
    let (out, _) = ok(&[
        "compare",
        "--ledger",
        &db.url,
        "--against",
        &f.b,
        "--by",
        "category,party",
        "--format",
        "csv",
    ]);
    assert_eq!(out, ONE_BY_CATEGORY_PARTY);
    let (out, _) = ok(&[
        "compare",
        "--ledger",
        &db.url,
        "--against",
        &f.b,
        "--against",
        &f.c,
        "--by",
        "party",
        "--format",
        "csv",
    ]);
    assert_eq!(out, TWO_BY_PARTY);
}

#[test]
fn compare_usage_and_input_errors() {
    let f = files("cmpe");
    let base = ["compare", "--agreement", &f.a, "--costs", &f.costs];
    // no --against: clap refuses (usage, 2)
    assert_eq!(run(&with(&base, &["--by", "party"])).0, 2);
    // the same id twice: usage error
    let (code, _, err) = run(&with(&base, &["--against", &f.b, "--against", &f.b, "--by", "party"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`b`"), "{err}");
    // another currency: a typed error, exit 1
    let eur = f.d.file("eur.toml", B.replace("USD", "EUR"));
    let (code, _, err) = run(&with(&base, &["--against", &eur, "--by", "party"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("EUR") && err.contains("USD"), "{err}");
    // other parties: exit 1
    let other = f.d.file(
        "r.toml",
        B.replace("[parties.Q]", "[parties.R]").replace("Q = ", "R = "),
    );
    let (code, _, err) = run(&with(&base, &["--against", &other, "--by", "party"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("parties"), "{err}");
    // bad dimension
    assert_eq!(run(&with(&base, &["--against", &f.b, "--by", "colour"])).0, 2);
}

/// JPY agreement, fiscal years from April; P and Q half and half (an odd yen
/// goes to P, the first-declared party).
const J: &str = r#"[agreement]
id = "j"
title = "J"
currency = "JPY"
start = "2022-04-01"
end = "2024-03-31"
fiscal_year_start = "04-01"
fiscal_year_label = "start"
[parties.P]
name = "P"
[parties.Q]
name = "Q"
[categories.x]
name = "X"
  [[categories.x.layers]]
  split = { P = "50%", Q = "50%" }
"#;

/// P pays everything.
const J2: &str = r#"[agreement]
id = "j2"
title = "J2"
currency = "JPY"
start = "2022-04-01"
end = "2024-03-31"
fiscal_year_start = "04-01"
fiscal_year_label = "start"
[parties.P]
name = "P"
[parties.Q]
name = "Q"
[categories.x]
name = "X"
  [[categories.x.layers]]
  split = { P = "100%" }
"#;

// j1 ¥1001 → P 501, Q 500; j2 ¥3000 → 1500 each; j3 ¥700 → 350 each.
const JCOSTS: &str = "id,date,category,amount\n\
j1,2022-05-01,x,1001\n\
j2,2022-11-01,x,3000\n\
j3,2023-05-01,x,700\n";

// FY2022 has 130 and 150 (mean 140), FY2023 has 140.
const JRATES: &str = "date,currency,rate\n\
2022-04-01,USD,130\n\
2022-10-01,USD,150\n\
2023-04-01,USD,140\n";

fn jfiles(tag: &str) -> (Dir, String, String, String, String) {
    let d = Dir::new(tag);
    let a = d.file("j.toml", J);
    let a2 = d.file("j2.toml", J2);
    let c = d.file("costs.csv", JCOSTS);
    let r = d.file("rates.csv", JRATES);
    (d, a, a2, c, r)
}

/// Sum of a CSV's last column, in minor units (2 decimals), and the rows.
fn last_column_sum(csv: &str) -> i64 {
    csv.lines()
        .skip(1)
        .map(|l| {
            let v = l.rsplit(',').next().unwrap();
            let (i, f) = v.split_once('.').unwrap();
            let s = i.starts_with('-');
            let n = i.trim_start_matches('-').parse::<i64>().unwrap() * 100 + f.parse::<i64>().unwrap();
            if s { -n } else { n }
        })
        .sum()
}

#[test]
fn report_in_usd_under_each_policy() {
    let (_d, a, _, c, r) = jfiles("cur");
    let base = [
        "report",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--rates",
        &r,
        "--currency",
        "USD",
    ];
    // spot: j1 at 130 (2022-04-01): P 501/130 = 3.8538 → 3.85, Q 500/130 = 3.8461 → 3.85;
    // j2 at 150: 10.00 each; j3 at 140: 2.50 each. FY2022 P 13.85, Q 13.85; FY2023 2.50 each.
    let (out, _) = ok(&with(&base, &["--by", "fiscal_year,party", "--format", "csv"]));
    assert_eq!(
        out,
        "fiscal_year,party,amount\nFY2022,P,13.85\nFY2022,Q,13.85\nFY2023,P,2.50\nFY2023,Q,2.50\n"
    );
    // the same with the policy named
    let (named, _) = ok(&with(
        &base,
        &["--rate-policy", "spot", "--by", "fiscal_year,party", "--format", "csv"],
    ));
    assert_eq!(named, out);
    // fiscal-year-average: 140 for every line: j1 P 501/140 = 3.5786 → 3.58, Q 500/140 = 3.5714 → 3.57;
    // j2 1500/140 = 10.714 → 10.71 each; j3 2.50 each: P 16.79, Q 16.78
    let (out, _) = ok(&with(
        &base,
        &[
            "--rate-policy",
            "fiscal-year-average",
            "--by",
            "party",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(out, "party,amount\nP,16.79\nQ,16.78\n");
    // fixed:200: j1 P 501/200 = 2.505 → 2.50 (half to even), Q 2.50; j2 7.50 each; j3 1.75 each:
    // 11.75 each
    let (out, _) = ok(&with(
        &base,
        &["--rate-policy", "fixed:200", "--by", "party", "--format", "csv"],
    ));
    assert_eq!(out, "party,amount\nP,11.75\nQ,11.75\n");
    // rows add up to the total, which is the sum of the converted parts (11.75 + 11.75), not the
    // conversion of ¥4,701 (23.505 → 23.50)
    let (out, _) = ok(&with(
        &base,
        &["--rate-policy", "fixed:200", "--by", "party", "--format", "json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total"], "23.50");
    assert_eq!(v["currency"], "USD");
    assert_eq!(v["conversion"]["policy"], "fixed");
    assert_eq!(v["rows"][0]["rates"][0]["rate"], "200");
    // spot JSON: the rates and their dates, per row
    let (out, _) = ok(&with(&base, &["--by", "fiscal_year", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total"], "32.70");
    let fy22: Vec<(&str, &str)> = v["rows"][0]["rates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["rate"].as_str().unwrap(), r["rate_date"].as_str().unwrap()))
        .collect();
    assert_eq!(fy22, vec![("130", "2022-04-01"), ("150", "2022-10-01")]);
    assert_eq!(v["rows"][1]["rates"][0]["rate_date"], "2023-04-01");
    // every --by: the rows sum to the same total
    for by in ["party", "fiscal_year", "month", "party,month", "category"] {
        let (out, _) = ok(&with(&base, &["--by", by, "--format", "csv"]));
        assert_eq!(last_column_sum(&out), 3270, "{by}\n{out}");
    }
}

#[test]
fn currency_errors() {
    let (d, a, _, c, r) = jfiles("curerr");
    let files = ["report", "--agreement", &a, "--costs", &c, "--by", "party"];
    // no rates: exit 1, saying where rates come from
    let (code, _, err) = run(&with(&files, &["--currency", "USD"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--rates"), "{err}");
    // a bad policy, a bad fixed rate, a policy without a currency: usage errors
    for p in [
        vec!["--currency", "USD", "--rate-policy", "daily"],
        vec!["--currency", "USD", "--rate-policy", "fixed:0"],
        vec!["--rate-policy", "fixed:2"],
    ] {
        let (code, _, err) = run(&with(&files, &p));
        assert_eq!(code, 2, "{p:?}: {err}");
    }
    // an unknown currency: exit 1
    let (code, _, err) = run(&with(&files, &["--rates", &r, "--currency", "XYZ"]));
    assert_eq!(code, 1, "{err}");
    // fiscal-year-average with no rate in FY2023: the error names the year
    let r22 = d.file("r22.csv", "date,currency,rate\n2022-04-01,USD,130\n");
    let (code, _, err) = run(&with(
        &files,
        &[
            "--rates",
            &r22,
            "--currency",
            "USD",
            "--rate-policy",
            "fiscal-year-average",
        ],
    ));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("FY2023"), "{err}");
    // fixed needs no rates at all; the agreement's own currency converts at 1
    let (out, _) = ok(&with(
        &files,
        &["--currency", "USD", "--rate-policy", "fixed:200", "--format", "csv"],
    ));
    assert_eq!(out, "party,amount\nP,11.75\nQ,11.75\n");
    let (out, _) = ok(&with(&files, &["--currency", "JPY", "--format", "csv"]));
    assert_eq!(out, "party,amount\nP,2351\nQ,2350\n");
}

#[test]
fn compare_in_usd_files_and_ledgers() {
    let (d, a, a2, c, r) = jfiles("curcmp");
    // fixed:200. Base: 11.75 each (above). Under J2, P pays all: ¥1001/200 = 5.005 → 5.00 (half to
    // even), ¥3000 → 15.00, ¥700 → 3.50: P 23.50, Q 0.00.
    let want = "party,amount,amount_against,delta\nP,11.75,23.50,-11.75\nQ,11.75,0.00,11.75\n";
    let (out, _) = ok(&[
        "compare",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--against",
        &a2,
        "--by",
        "party",
        "--format",
        "csv",
        "--currency",
        "USD",
        "--rate-policy",
        "fixed:200",
    ]);
    assert_eq!(out, want);
    // spot from the ledger's recorded rates. Base: 16.35 each (13.85 + 2.50). Under J2: j1 ¥1001/130
    // = 7.7 → 7.70, j2 ¥3000/150 = 20.00, j3 ¥700/140 = 5.00: P 32.70.
    let want_spot = "party,amount,amount_against,delta\nP,16.35,32.70,-16.35\nQ,16.35,0.00,16.35\n";
    let l = d.path("j.db");
    ok(&["init", &l, "--agreement", &a, "--rates", &r]);
    ok(&["record", &l, &c]);
    let args = [
        "--against",
        &a2,
        "--by",
        "party",
        "--format",
        "csv",
        "--currency",
        "USD",
    ];
    let (out, _) = ok(&with(&["compare", "--ledger", &l], &args));
    assert_eq!(out, want_spot);
    let (files_out, _) = ok(&with(
        &["compare", "--agreement", &a, "--costs", &c, "--rates", &r],
        &args,
    ));
    assert_eq!(files_out, want_spot);
    // JSON: each column's total is the sum of its converted rows; the row names its rates
    let json_args = [
        "--against",
        &a2,
        "--by",
        "party",
        "--format",
        "json",
        "--currency",
        "USD",
    ];
    let (out, _) = ok(&with(&["compare", "--ledger", &l], &json_args));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["totals"]["amount"], "32.70");
    assert_eq!(v["totals"]["against"]["j2"]["amount"], "32.70");
    assert_eq!(v["rows"][1]["against"]["j2"]["delta"], "16.35");
    assert_eq!(v["rows"][0]["rates"].as_array().unwrap().len(), 3);
    assert_eq!(v["conversion"]["rates"][0]["lines"], 1);
    // report from the ledger in USD equals the files' report
    let rep = [
        "--by",
        "party",
        "--format",
        "csv",
        "--currency",
        "USD",
        "--rate-policy",
        "fiscal-year-average",
    ];
    let (lo, _) = ok(&with(&["report", "--ledger", &l], &rep));
    assert_eq!(lo, "party,amount\nP,16.79\nQ,16.78\n");
    let Some(db) = PgDb::new("compare_usd") else { return };
    ok(&["init", &db.url, "--agreement", &a, "--rates", &r]);
    ok(&["record", &db.url, &c]);
    let (out, _) = ok(&with(&["compare", "--ledger", &db.url], &args));
    assert_eq!(out, want_spot);
    let (lo, _) = ok(&with(&["report", "--ledger", &db.url], &rep));
    assert_eq!(lo, "party,amount\nP,16.79\nQ,16.78\n");
}
