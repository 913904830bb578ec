//! `costshare ceilings`: exact rows on a small agreement computed by hand,
//! the same rows from files, a SQLite and a PostgreSQL ledger, one `term`
//! row across an amendment with the carried use, agreement with `report` on
//! the demo, and usage errors.

mod common;
use common::{Dir, PgDb, run};

const AGREEMENT: &str = r#"
[agreement]
id = "t"
title = "Test"
currency = "USD"
start = "2023-01-01"
end = "2024-12-31"

[parties.A]
name = "A"
[parties.B]
name = "B"

[categories.util]
name = "Utilities"
  [[categories.util.layers]]
  split = { A = "100%" }
  cap = "1000"
  period = "fiscal_year"
  [[categories.util.layers]]
  split = { B = "100%" }

[categories.labor]
name = "Labor"
unit = "worker"
  [[categories.labor.layers]]
  id = "base"
  split = { A = "100%" }
  cap_units = "10"
  period = "month"
  cap_policy = "pro_rata"
  [[categories.labor.layers]]
  split = { B = "100%" }

[categories.fac]
name = "Facilities"
  [[categories.fac.layers]]
  id = "envelope"
  split = { A = "50%", B = "50%" }
  cap = "FAC_CAP"
  period = "term"
  [[categories.fac.layers]]
  split = { B = "100%" }
"#;

const COSTS: &str = "\
id,date,category,amount,quantity
U1,2023-02-10,util,400.00,
U2,2023-05-20,util,500.00,
U3,2023-07-01,util,300.00,
U4,2024-01-15,util,300.00,
U5,2024-03-01,util,57.77,
L1,2023-03-05,labor,600.00,6.5
L2,2023-03-20,labor,900.00,7
L3,2023-04-10,labor,100.00,4
L4,2024-03-02,labor,400.00,4
F1,2023-06-30,fac,3000.00,
F2,2024-02-01,fac,1500.00,
";

const AS_OF: &str = "2024-03-10";

fn agreement(fac_cap: &str) -> String {
    AGREEMENT.replace("FAC_CAP", fac_cap)
}

/// The expected CSV, worked by hand (as of 2024-03-10):
/// - util FY2023, running cap 1000.00: 400 + 500 = 900, then U3 (2023-07-01)
///   brings use to 1,000: bound on 2023-07-01.
/// - util FY2024, open: 300 + 57.77 = 357.77 used (35.777% → 35.8), in
///   E = 31 + 29 + 10 = 70 days; n = ⌈1000·70 / 357.77⌉ = ⌈195.66⌉ = 196 days
///   from 2024-01-01 is 2024-07-14 (day 195 projects 996.6, day 196 1,001.8).
/// - labor, 10 workers a month pro rata: March 2023 has 6.5 + 7 = 13.5
///   workers, so 10 used, reached with the group's last line, L2
///   (2023-03-20); April 2023 4 of 10; March 2024 (open) 4 in 10 days, so
///   ⌈10·10/4⌉ = 25 days: 2024-03-25. The other elapsed months: zero use.
/// - fac, a term envelope of 5,000.00: 3,000 + 1,500 = 4,500 (90.0%) in
///   E = 365 + 70 = 435 days; n = ⌈5000·435/4500⌉ = ⌈483.3⌉ = 484 days from
///   2023-01-01 is 2024-04-28.
fn expected(fac_row: &str) -> String {
    let mut s = String::from(
        "category,layer,period,unit,cap,used,remaining,percent_used,bound_on,forecast_bound_on\n\
         util,1,FY2023,USD,1000.00,1000.00,0.00,100.0,2023-07-01,\n\
         util,1,FY2024,USD,1000.00,357.77,642.23,35.8,,2024-07-14\n",
    );
    let zero = |m: &str| format!("labor,base,{m},worker,10,0,10,0.0,,\n");
    s += &zero("2023-01");
    s += &zero("2023-02");
    s += "labor,base,2023-03,worker,10,10,0,100.0,2023-03-20,\n";
    s += "labor,base,2023-04,worker,10,4,6,40.0,,\n";
    for m in ["05", "06", "07", "08", "09", "10", "11", "12"] {
        s += &zero(&format!("2023-{m}"));
    }
    s += &zero("2024-01");
    s += &zero("2024-02");
    s += "labor,base,2024-03,worker,10,4,6,40.0,,2024-03-25\n";
    s += fac_row;
    s
}

const FAC_ROW: &str = "fac,envelope,term,USD,5000.00,4500.00,500.00,90.0,,2024-04-28\n";

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

#[test]
fn exact_rows_from_files() {
    let d = Dir::new("ceil-files");
    let a = d.file("a.toml", agreement("5000"));
    let c = d.file("c.csv", COSTS);
    let out = ok(&[
        "ceilings",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--as-of",
        AS_OF,
        "--format",
        "csv",
    ]);
    assert_eq!(out, expected(FAC_ROW));
    // JSON has the same figures as strings, and the table names the forecast
    let json = ok(&[
        "ceilings",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--as-of",
        AS_OF,
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = v["ceilings"].as_array().unwrap();
    let fac = rows.iter().find(|r| r["category"] == "fac").unwrap();
    assert_eq!(fac["used"], "4500.00");
    assert_eq!(fac["forecast_bound_on"], "2024-04-28");
    assert!(fac["bound_on"].is_null());
    let table = ok(&["ceilings", "--agreement", &a, "--costs", &c, "--as-of", AS_OF]);
    assert!(
        table.contains("labor layer base") && table.contains("2024-07-14"),
        "{table}"
    );
}

#[test]
fn an_earlier_as_of_forecasts_from_less_use() {
    // the lines recorded by 2023-05-31: util FY2023 has 900.00 in 151 days,
    // ⌈1000·151/900⌉ = ⌈167.8⌉ = 168 days from 2023-01-01 is 2023-06-17;
    // FY2024 has not begun and has no line: no row
    let d = Dir::new("ceil-early");
    let a = d.file("a.toml", agreement("5000"));
    let early: String = COSTS
        .lines()
        .filter(|l| l.starts_with("id,") || l.split(',').nth(1).is_some_and(|dt| dt <= "2023-05-31"))
        .map(|l| format!("{l}\n"))
        .collect();
    let c = d.file("c.csv", early);
    let out = ok(&[
        "ceilings",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--as-of",
        "2023-05-31",
        "--format",
        "csv",
    ]);
    let util: Vec<&str> = out.lines().filter(|l| l.starts_with("util,")).collect();
    assert_eq!(util, ["util,1,FY2023,USD,1000.00,900.00,100.00,90.0,,2023-06-17"]);
    // the envelope: 3,000.00 is not there yet (F1 is dated 2023-06-30): zero use, no forecast
    assert!(
        out.contains("fac,envelope,term,USD,5000.00,0.00,5000.00,0.0,,\n"),
        "{out}"
    );
}

fn ledger_rows(l: &str, d: &Dir) -> String {
    let a = d.file("a.toml", agreement("5000"));
    let c = d.file("c.csv", COSTS);
    ok(&["init", l, "--agreement", &a]);
    ok(&["record", l, &c]);
    ok(&["ceilings", "--ledger", l, "--as-of", AS_OF, "--format", "csv"])
}

#[test]
fn sqlite_ledger_gives_the_same_rows() {
    let d = Dir::new("ceil-sqlite");
    let l = d.path("t.ledger");
    assert_eq!(ledger_rows(&l, &d), expected(FAC_ROW));
}

#[test]
fn postgres_ledger_gives_the_same_rows() {
    let Some(db) = PgDb::new("ceilings") else { return };
    let d = Dir::new("ceil-pg");
    assert_eq!(ledger_rows(&db.url, &d), expected(FAC_ROW));
}

fn amended(l: &str, d: &Dir) -> String {
    // version 2 from 2024-01-01 lowers the facilities envelope to 4,000.00:
    // F1 used 3,000 under version 1, so F2 finds 1,000 left, takes it, and
    // use reaches the cap with F2 (2024-02-01). Without the carried use,
    // version 2 would show 1,500 of 4,000.
    let a = d.file("a.toml", agreement("5000"));
    let b = d.file("b.toml", agreement("4000"));
    let c = d.file("c.csv", COSTS);
    ok(&["init", l, "--agreement", &a]);
    ok(&["record", l, &c]);
    ok(&["amend", l, "--agreement", &b, "--effective", "2024-01-01"]);
    ok(&["ceilings", "--ledger", l, "--as-of", AS_OF, "--format", "csv"])
}

const FAC_AMENDED: &str = "fac,envelope,term,USD,4000.00,4000.00,0.00,100.0,2024-02-01,\n";

#[test]
fn a_term_envelope_across_an_amendment_is_one_row_with_the_carried_use() {
    let d = Dir::new("ceil-amend");
    let l = d.path("t.ledger");
    let out = amended(&l, &d);
    assert_eq!(out.lines().filter(|r| r.starts_with("fac,")).count(), 1, "{out}");
    assert_eq!(out, expected(FAC_AMENDED));
}

#[test]
fn a_term_envelope_across_an_amendment_postgres() {
    let Some(db) = PgDb::new("ceilings_amend") else { return };
    let d = Dir::new("ceil-amend-pg");
    assert_eq!(amended(&db.url, &d), expected(FAC_AMENDED));
}

/// On the demo, every money ceiling's layer gives all it takes to Japan, and
/// no other layer of its category gives Japan anything, so the use of each
/// is Japan's amount for the category in the period from `report` (the term
/// envelopes: the five-year sum).
#[test]
fn demo_ceilings_agree_with_report() {
    let d = Dir::new("ceil-demo");
    let dir = d.path("demo");
    ok(&["demo", "--write", &dir, "--as-of", "2027-06-30"]);
    let (a, c, r) = (
        format!("{dir}/agreement.toml"),
        format!("{dir}/costs.csv"),
        format!("{dir}/rates.csv"),
    );
    let inputs = ["--agreement", a.as_str(), "--costs", c.as_str(), "--rates", r.as_str()];
    let mut args = vec!["report"];
    args.extend(inputs);
    args.extend([
        "--by",
        "party,category,fiscal_year",
        "--format",
        "csv",
        "--as-of",
        "2027-06-30",
    ]);
    let report = ok(&args);
    let jp = |cat: &str, period: &str| -> i128 {
        report
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f[0] == "JP" && f[1] == cat && (period == "term" || f[2] == period))
            .map(|f| f[3].parse::<i128>().unwrap())
            .sum()
    };
    let mut args = vec!["ceilings"];
    args.extend(inputs);
    args.extend(["--format", "csv", "--as-of", "2027-06-30"]);
    let ceilings = ok(&args);
    let mut checked = 0;
    for row in ceilings.lines().skip(1) {
        let f: Vec<&str> = row.split(',').collect();
        if f[3] != "JPY" {
            continue;
        }
        assert_eq!(f[5].parse::<i128>().unwrap(), jp(f[0], f[2]), "{row}");
        checked += 1;
    }
    // utilities and training relocation by year, facilities and equipment for the term
    assert_eq!(checked, 12, "{ceilings}");
}

#[test]
fn usage_errors_exit_2() {
    let d = Dir::new("ceil-usage");
    let a = d.file("a.toml", agreement("5000"));
    let c = d.file("c.csv", COSTS);
    assert_eq!(run(&["ceilings"]).0, 2);
    assert_eq!(
        run(&["ceilings", "--ledger", "x.ledger", "--agreement", &a, "--costs", &c]).0,
        2
    );
    assert_eq!(
        run(&["ceilings", "--agreement", &a, "--costs", &c, "--format", "xml"]).0,
        2
    );
    assert_eq!(
        run(&["ceilings", "--agreement", &a, "--costs", &c, "--as-of", "2024-13-01"]).0,
        2
    );
    // a bad row is bad input (exit 1), named by its line
    let bad = d.file("bad.csv", "id,date,category,amount\nX,2023-01-05,nope,1.00\n");
    let (code, _, err) = run(&["ceilings", "--agreement", &a, "--costs", &bad]);
    assert_eq!(code, 1);
    assert!(err.contains("2") && err.contains("X"), "{err}");
}

// --- forecast ---

const FC_AGREEMENT: &str = r#"
[agreement]
id = "f"
title = "Forecast test"
currency = "USD"
start = "2023-01-01"
end = "2024-12-31"

[parties.A]
name = "A"
[parties.B]
name = "B"

[categories.util]
name = "Utilities"
  [[categories.util.layers]]
  split = { A = "100%" }
  cap = "1000"
  [[categories.util.layers]]
  split = { B = "100%" }
"#;

const FC_COSTS: &str = "\
id,date,category,amount,site
U3,2023-01-05,util,999.00,X
U1,2023-06-10,util,600.00,X
U2,2024-02-01,util,600.05,X
";

/// As of 2024-03-15 the last complete month is 2024-02, so the window is
/// 2023-03..2024-02: U1 + U2 = 1,200.05 (U3 is older), a mean month of
/// 120005/12 = 10000.42 cents → 100.00. March to June 2024 get 100.00 each.
/// FY2024's cap of 1,000.00 for A: U2 took 600.05, March to May 300.00, so
/// June's 100.00 splits 99.95 to A and 0.05 to B. FY2023 (actual only): U3
/// and U1 = 1,599.00, A 1,000.00 and B 599.00.
#[test]
fn forecast_at_the_run_rate_exact() {
    let d = Dir::new("fc-rate");
    let a = d.file("a.toml", FC_AGREEMENT);
    let c = d.file("c.csv", FC_COSTS);
    let base = ["forecast", "--agreement", &a, "--costs", &c, "--as-of", "2024-03-15"];
    let mut args = base.to_vec();
    args.extend(["--until", "2024-06-30", "--by", "party,fiscal_year", "--format", "csv"]);
    assert_eq!(
        ok(&args),
        "party,fiscal_year,actual,forecast,amount\n\
         A,FY2023,1000.00,0.00,1000.00\n\
         A,FY2024,600.05,399.95,1000.00\n\
         B,FY2023,599.00,0.00,599.00\n\
         B,FY2024,0.00,0.05,0.05\n"
    );
    // by month: the projected lines are dated the last day of their months
    let mut args = base.to_vec();
    args.extend(["--until", "2024-06-29", "--by", "month", "--format", "csv"]);
    let out = ok(&args);
    assert!(
        out.ends_with("2024-03,0.00,100.00,100.00\n2024-04,0.00,100.00,100.00\n2024-05,0.00,100.00,100.00\n"),
        "{out}"
    );
    // past the term: not projected, and said so
    let mut args = base.to_vec();
    args.extend(["--until", "2025-02-28", "--by", "party", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(
        v["projection"]["beyond_term"],
        serde_json::json!(["2025-01", "2025-02"])
    );
    assert_eq!(v["projection"]["lines"], 10);
    assert_eq!(v["totals"]["forecast"], "1000.00");
    let mut args = base.to_vec();
    args.extend(["--until", "2025-02-28", "--by", "party"]);
    let table = ok(&args);
    assert!(
        table.contains("forecast*") && table.contains("not projected"),
        "{table}"
    );
}

#[test]
fn forecast_from_a_ledger_matches_files() {
    let d = Dir::new("fc-ledger");
    let a = d.file("a.toml", FC_AGREEMENT);
    let c = d.file("c.csv", FC_COSTS);
    let l = d.path("f.ledger");
    ok(&["init", &l, "--agreement", &a]);
    ok(&["record", &l, &c]);
    let tail = [
        "--as-of",
        "2024-03-15",
        "--until",
        "2024-06-30",
        "--by",
        "party,fiscal_year",
        "--format",
        "csv",
    ];
    let mut files = vec!["forecast", "--agreement", &a, "--costs", &c];
    files.extend(tail);
    let mut ledger = vec!["forecast", "--ledger", &l];
    ledger.extend(tail);
    assert_eq!(ok(&files), ok(&ledger));
}

#[test]
fn forecast_usage_errors() {
    let d = Dir::new("fc-usage");
    let a = d.file("a.toml", FC_AGREEMENT);
    let c = d.file("c.csv", FC_COSTS);
    let (code, _, err) = run(&[
        "forecast",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--until",
        "2024-06",
        "--by",
        "party",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--until"), "{err}");
    assert_eq!(
        run(&[
            "forecast",
            "--agreement",
            &a,
            "--costs",
            &c,
            "--until",
            "2024-06-30",
            "--by",
            "party,party"
        ])
        .0,
        2
    );
    assert_eq!(
        run(&["forecast", "--agreement", &a, "--costs", &c, "--by", "party"]).0,
        2
    );
}

/// The budget replaces the run rate for April (250.00) and May (0: no line)
/// of util; March and June keep the run rate of 100.00. FY2024's A cap:
/// 600.05 + 100 + 250 = 950.05, so June splits 49.95 to A and 50.05 to B.
#[test]
fn forecast_with_a_budget_exact() {
    let d = Dir::new("fc-budget");
    let a = d.file("a.toml", FC_AGREEMENT);
    let c = d.file("c.csv", FC_COSTS);
    let b = d.file(
        "b.csv",
        "month,category,amount,site\n2024-04,util,250.00,X\n2024-05,util,0,X\n",
    );
    let base = [
        "forecast",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--as-of",
        "2024-03-15",
        "--until",
        "2024-06-30",
        "--budget",
        &b,
        "--format",
        "csv",
    ];
    let mut args = base.to_vec();
    args.extend(["--by", "party,fiscal_year"]);
    assert_eq!(
        ok(&args),
        "party,fiscal_year,actual,forecast,amount\n\
         A,FY2023,1000.00,0.00,1000.00\n\
         A,FY2024,600.05,399.95,1000.00\n\
         B,FY2023,599.00,0.00,599.00\n\
         B,FY2024,0.00,50.05,50.05\n"
    );
    let mut args = base.to_vec();
    args.extend(["--by", "month"]);
    let out = ok(&args);
    assert!(out.ends_with("2024-02,600.05,0.00,600.05\n2024-03,0.00,100.00,100.00\n2024-04,0.00,250.00,250.00\n2024-06,0.00,100.00,100.00\n"), "{out}");
}

#[test]
fn a_bad_budget_names_every_bad_row() {
    let d = Dir::new("fc-bad-budget");
    let a = d.file("a.toml", FC_AGREEMENT);
    let c = d.file("c.csv", FC_COSTS);
    let b = d.file(
        "b.csv",
        "month,category,amount\n2024-4,util,1.00\n2024-05,nope,1.00\n2024-05,util,1.234\n2024-06,util,5\n2024-06,util,6\n",
    );
    let (code, out, err) = run(&[
        "forecast",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--until",
        "2024-06-30",
        "--by",
        "party",
        "--budget",
        &b,
    ]);
    assert_eq!(code, 1, "{out}");
    for (line, what) in [(2, "month"), (3, "nope"), (4, "1.234"), (6, "repeat line 5")] {
        assert!(
            err.contains(&format!("{b}:{line}")) && err.contains(what),
            "line {line}: {err}"
        );
    }
    assert!(!err.contains(&format!("{b}:5")), "{err}");
    assert!(err.contains("4 bad rows in budget file"), "{err}");
}

/// The ceilings agreement as of 2024-03-10 (window 2023-03..2024-02),
/// projected through April 2024: fac 3,000 + 1,500 = 4,500 / 12 = 375.00 a
/// month, March and April; labor 600 + 900 + 100 = 1,600 / 12 = 133.33 (with
/// 17.5/12 workers), April only: March's recorded 400.00 (4 workers) is above
/// the rate, so nothing tops it up; util 500 + 300 + 300 = 1,100 / 12 = 91.67
/// (half to even), March topped up from its recorded 57.77 by 33.90, and
/// April 91.67: 125.57.
const FC_BY_CATEGORY: &str = "\
category,actual,forecast,amount
fac,4500.00,750.00,5250.00
labor,2000.00,133.33,2133.33
util,1557.77,125.57,1683.34
";

fn forecast_by_category(inputs: &[&str]) -> String {
    let mut args = vec!["forecast"];
    args.extend(inputs);
    args.extend([
        "--as-of",
        AS_OF,
        "--until",
        "2024-04-30",
        "--by",
        "category",
        "--format",
        "csv",
    ]);
    ok(&args)
}

#[test]
fn forecast_on_files_sqlite_and_postgres() {
    let d = Dir::new("fc-three");
    let a = d.file("a.toml", agreement("5000"));
    let c = d.file("c.csv", COSTS);
    assert_eq!(
        forecast_by_category(&["--agreement", &a, "--costs", &c]),
        FC_BY_CATEGORY
    );
    let l = d.path("t.ledger");
    ok(&["init", &l, "--agreement", &a]);
    ok(&["record", &l, &c]);
    assert_eq!(forecast_by_category(&["--ledger", &l]), FC_BY_CATEGORY);
    let Some(db) = PgDb::new("forecast") else { return };
    ok(&["init", &db.url, "--agreement", &a]);
    ok(&["record", &db.url, &c]);
    assert_eq!(forecast_by_category(&["--ledger", &db.url]), FC_BY_CATEGORY);
}

/// What is recorded in a projected month counts, and the projection tops it
/// up to the rate (a history recorded ahead is not counted twice): with an
/// April utilities line of 10.00 recorded, April is topped up by 81.67 and
/// March by 33.90 (91.67 less its recorded 57.77): 115.57 projected, and
/// every month's actual plus forecast is the rate where the rate is higher.
#[test]
fn forecast_does_not_project_a_month_already_recorded() {
    let d = Dir::new("fc-ahead");
    let a = d.file("a.toml", agreement("5000"));
    let c = d.file("c.csv", format!("{COSTS}U9,2024-04-15,util,10.00,\n"));
    let out = forecast_by_category(&["--agreement", &a, "--costs", &c]);
    let util = out.lines().find(|l| l.starts_with("util,")).unwrap_or_default();
    assert_eq!(util, "util,1567.77,115.57,1683.34", "{out}");
    // a month recorded above its rate is not projected (labor's March)
    assert!(out.contains("labor,2000.00,133.33,2133.33"), "{out}");
    // a month recorded in full is not projected again
    let c = d.file("c2.csv", format!("{COSTS}U9,2024-04-15,util,91.67,\n"));
    let out = forecast_by_category(&["--agreement", &a, "--costs", &c]);
    let util = out.lines().find(|l| l.starts_with("util,")).unwrap_or_default();
    assert_eq!(util, "util,1649.44,33.90,1683.34", "{out}");
}

/// `ceilings --currency USD --rate-policy fixed:150` on the demo: every money
/// row's cap and use are the JPY figures over 150, in cents rounded half to
/// even (worked here with integers), remaining is cap − use, and head-count
/// rows are unchanged.
#[test]
fn ceilings_in_a_reporting_currency() {
    let d = Dir::new("ceil-ccy");
    ok(&["demo", "--as-of", "2024-09-30", "--write", d.0.to_str().unwrap()]);
    let (a, c, r) = (d.path("agreement.toml"), d.path("costs.csv"), d.path("rates.csv"));
    let files = [
        "--agreement",
        a.as_str(),
        "--costs",
        c.as_str(),
        "--rates",
        r.as_str(),
        "--as-of",
        "2024-09-30",
    ];
    let mut args = vec!["ceilings", "--format", "csv"];
    args.extend(files);
    let jpy = ok(&args);
    args.extend(["--currency", "USD", "--rate-policy", "fixed:150"]);
    let usd = ok(&args);
    // yen → cents at 150 yen a dollar: yen·100/150, half to even
    let cents = |yen: i128| -> i128 {
        let (q, r) = (yen * 100 / 150, yen * 100 % 150);
        if 2 * r > 150 || (2 * r == 150 && q % 2 == 1) {
            q + 1
        } else {
            q
        }
    };
    let fmt = |c: i128| format!("{}.{:02}", c / 100, c % 100);
    let (jl, ul): (Vec<&str>, Vec<&str>) = (jpy.lines().collect(), usd.lines().collect());
    assert_eq!(jl.len(), ul.len());
    let mut money = 0;
    for (j, u) in jl.iter().zip(&ul).skip(1) {
        let (j, u): (Vec<&str>, Vec<&str>) = (j.split(',').collect(), u.split(',').collect());
        if j[3] == "JPY" {
            money += 1;
            let (cap, used) = (cents(j[4].parse().unwrap()), cents(j[5].parse().unwrap()));
            assert_eq!(u[3], "USD");
            assert_eq!((u[4], u[5]), (fmt(cap).as_str(), fmt(used).as_str()), "{j:?}");
            assert_eq!(u[6], fmt((cap - used).max(0)), "{j:?}");
        } else {
            assert_eq!(j, u);
        }
    }
    assert!(money >= 12, "{usd}");
}

/// Found by a user trial: after an amendment that leaves the training
/// equipment envelope alone, its `bound_on` moved from the day version 1
/// used it up to the first line of version 2 (which found nothing left).
/// The day stays the day use reached the cap.
#[test]
fn an_amendment_does_not_move_the_day_an_envelope_was_used_up() {
    let d = Dir::new("ceil-amend-bound");
    ok(&["demo", "--as-of", "2027-06-30", "--write", d.0.to_str().unwrap()]);
    let (a, c, r) = (d.path("agreement.toml"), d.path("costs.csv"), d.path("rates.csv"));
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a, "--rates", &r]);
    ok(&["record", &l, &c]);
    let row = |out: &str, cat: &str| -> String {
        out.lines()
            .find(|x| x.starts_with(&format!("{cat},")))
            .unwrap_or_default()
            .to_string()
    };
    let before = ok(&["ceilings", "--ledger", &l, "--as-of", "2027-06-30", "--format", "csv"]);
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(
        text.matches("FY2025 = \"13300000000\"").count(),
        1,
        "test bug: the utilities cap moved"
    );
    let b = d.file(
        "b.toml",
        text.replace("FY2025 = \"13300000000\"", "FY2025 = \"14000000000\""),
    );
    ok(&["amend", &l, "--agreement", &b, "--effective", "2025-04-01"]);
    let after = ok(&["ceilings", "--ledger", &l, "--as-of", "2027-06-30", "--format", "csv"]);
    let te = row(&before, "training_equipment");
    assert!(te.contains(",20000000000,20000000000,0,100.0,2025-"), "{before}");
    assert_eq!(row(&after, "training_equipment"), te, "{after}");
    assert_eq!(row(&after, "facilities"), row(&before, "facilities"), "{after}");
}

/// Found by a user trial: on a ledger amended from FY2024 (only the FY2024
/// utilities cap changed), a forecast made in FY2023 allocated its FY2023
/// projected lines under the new version with a fresh FY2023 cap, so Japan
/// went over the FY2023 cap. Projected lines fall under the version in force
/// at their date: the forecast equals the unamended ledger's.
#[test]
fn forecast_on_an_amended_ledger_uses_the_version_in_force() {
    let d = Dir::new("fc-amended");
    ok(&["demo", "--as-of", "2023-08-31", "--write", d.0.to_str().unwrap()]);
    let (a, c, r) = (d.path("agreement.toml"), d.path("costs.csv"), d.path("rates.csv"));
    let text = std::fs::read_to_string(&c).unwrap();
    let head: String = text.lines().take(400).map(|l| format!("{l}\n")).collect();
    let c400 = d.file("c400.csv", head);
    let (plain, amended) = (d.path("plain.db"), d.path("amended.db"));
    for l in [&plain, &amended] {
        ok(&["init", l, "--agreement", &a, "--rates", &r]);
        ok(&["record", l, &c400]);
    }
    let ag = std::fs::read_to_string(&a).unwrap();
    assert_eq!(
        ag.matches("FY2024 = \"15100000000\"").count(),
        1,
        "test bug: the utilities cap moved"
    );
    let b = d.file(
        "b.toml",
        ag.replace("FY2024 = \"15100000000\"", "FY2024 = \"30000000000\""),
    );
    ok(&["amend", &amended, "--agreement", &b, "--effective", "2024-04-01"]);
    let fc = |l: &str| {
        ok(&[
            "forecast",
            "--ledger",
            l,
            "--as-of",
            "2023-08-31",
            "--until",
            "2024-03-31",
            "--by",
            "category,party,fiscal_year",
            "--format",
            "csv",
        ])
    };
    let want = fc(&plain);
    assert!(want.contains("utilities,JP,FY2023,"), "{want}");
    assert_eq!(fc(&amended), want);
}
