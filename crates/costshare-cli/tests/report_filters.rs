//! `report` and `allocate` with date filters (`--from`, `--to`, `--period`)
//! on files and on SQLite and PostgreSQL ledgers; the report table's marks,
//! shares and order; `--pivot party` in three formats; `demo --write`'s
//! refusal to overwrite. Expected figures are computed here from the
//! unfiltered `allocate --format csv` rows and the costs file's dates, never
//! taken from the code under test.

mod common;

use common::{Dir, PgDb, run};
use std::collections::BTreeMap;

const AS_OF: &str = "2024-07-15";

/// The demo's agreement, costs and rates written into a fresh directory.
fn demo(tag: &str) -> (Dir, [String; 3]) {
    let d = Dir::new(tag);
    let out = d.path("demo");
    let (code, _, err) = run(&["demo", "--write", &out, "--as-of", AS_OF]);
    assert_eq!(code, 0, "{err}");
    let files = [
        d.path("demo/agreement.toml"),
        d.path("demo/costs.csv"),
        d.path("demo/rates.csv"),
    ];
    (d, files)
}

fn file_args(f: &[String; 3]) -> Vec<String> {
    vec![
        "--agreement".into(),
        f[0].clone(),
        "--costs".into(),
        f[1].clone(),
        "--rates".into(),
        f[2].clone(),
        "--as-of".into(),
        AS_OF.into(),
    ]
}

fn ok(args: &[String]) -> String {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = run(&a);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

fn with(base: &[String], more: &[&str]) -> Vec<String> {
    base.iter().cloned().chain(more.iter().map(|s| s.to_string())).collect()
}

/// id → (date, category), read from the costs file (the demo quotes no field).
fn line_facts(costs: &str) -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(costs).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), (f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

/// `id,party,amount` rows of `allocate --format csv`.
fn alloc_rows(csv: &str) -> Vec<(String, String, i128)> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("id,party,amount"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
        })
        .collect()
}

/// (party, category) → amount from the whole allocation, lines dated in
/// `from..=to` (dates compare as text: YYYY-MM-DD).
fn expected(
    all: &[(String, String, i128)],
    facts: &BTreeMap<String, (String, String)>,
    from: &str,
    to: &str,
) -> BTreeMap<(String, String), i128> {
    let mut m = BTreeMap::new();
    for (id, party, v) in all {
        let (date, cat) = &facts[id];
        if date.as_str() >= from && date.as_str() <= to {
            *m.entry((party.clone(), cat.clone())).or_insert(0) += v;
        }
    }
    m.retain(|_, v| *v != 0);
    m
}

/// `party,category,amount` CSV rows as a map.
fn report_map(csv: &str) -> BTreeMap<(String, String), i128> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("party,category,amount"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            ((f[0].to_string(), f[1].to_string()), f[2].parse().unwrap())
        })
        .collect()
}

/// The filters tried, with the dates they stand for (FY2023 of a fiscal
/// year starting on 1 April, worked out here by hand).
const FILTERS: [(&[&str], &str, &str); 4] = [
    (&["--period", "FY2023"], "2023-04-01", "2024-03-31"),
    (
        &["--from", "2023-06-15", "--to", "2024-02-10"],
        "2023-06-15",
        "2024-02-10",
    ),
    (&["--from", "2026-01-01"], "2026-01-01", "9999-12-31"),
    (&["--to", "2022-05-31"], "0000-01-01", "2022-05-31"),
];

/// Files: the command's arguments before the subcommand are not allowed, so
/// the subcommand goes first; `with` appends.
fn files_base(f: &[String; 3]) -> Vec<String> {
    file_args(f)
}

fn reorder(args: &[String]) -> Vec<String> {
    // put the subcommand (the first non-option after the inputs) first
    let pos = args.iter().position(|a| a == "report" || a == "allocate").unwrap();
    let mut out = vec![args[pos].clone()];
    out.extend(args[..pos].iter().cloned());
    out.extend(args[pos + 1..].iter().cloned());
    out
}

fn ok_any(args: &[String]) -> String {
    ok(&reorder(args))
}

fn check_any(base: &[String], facts: &BTreeMap<String, (String, String)>, all: &[(String, String, i128)]) {
    for (filter, from, to) in FILTERS {
        let want = expected(all, facts, from, to);
        assert!(!want.is_empty(), "{filter:?}: some lines in range");
        let got = report_map(&ok_any(&with(
            base,
            &[&["report", "--by", "party,category", "--format", "csv"], filter].concat(),
        )));
        assert_eq!(got, want, "{filter:?}");
        let filtered = alloc_rows(&ok_any(&with(
            base,
            &[&["allocate", "--format", "csv"], filter].concat(),
        )));
        let by_hand: Vec<_> = all
            .iter()
            .filter(|(id, _, _)| {
                let d = facts[id].0.as_str();
                d >= from && d <= to
            })
            .cloned()
            .collect();
        assert_eq!(filtered, by_hand, "{filter:?}");
    }
}

#[test]
fn filters_on_files_report_the_whole_allocation_restricted() {
    let (_d, f) = demo("filters-files");
    let base = files_base(&f);
    let facts = line_facts(&f[1]);
    let all = alloc_rows(&ok_any(&with(&base, &["allocate", "--format", "csv"])));
    // the running utilities cap depends on earlier lines: the filtered
    // figures are the whole allocation's, restricted
    check_any(&base, &facts, &all);
}

fn ledger_base(target: &str) -> Vec<String> {
    vec!["--ledger".into(), target.into(), "--as-of".into(), AS_OF.into()]
}

fn fill_ledger(target: &str, f: &[String; 3]) {
    let (code, _, err) = run(&["init", target, "--agreement", &f[0], "--rates", &f[2]]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["record", target, &f[1]]);
    assert_eq!(code, 0, "{err}");
}

fn check_ledger(target: &str, f: &[String; 3]) {
    fill_ledger(target, f);
    let facts = line_facts(&f[1]);
    let files = files_base(f);
    let all = alloc_rows(&ok_any(&with(&files, &["allocate", "--format", "csv"])));
    let base = ledger_base(target);
    // twice: the first report may write the derived state, the second reads it
    for _ in 0..2 {
        check_any(&base, &facts, &all);
        let by = ["report", "--by", "fiscal_year,party"];
        assert_eq!(
            table_rows(&ok_any(&with(&base, &by))),
            table_rows(&ok_any(&with(&files, &by))),
            "the ledger's table (marks included) equals the files'"
        );
    }
    // which path answered: the derived state's totals, also for a table
    // with provisional lines (its marks come from the totals of the lines
    // still open at the as-of date)
    let path_of = |format: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_costshare"))
            .args([
                "report", "--ledger", target, "--as-of", AS_OF, "--by", "party", "--format", format,
            ])
            .env("COSTSHARE_REPORT_PATH", "explain")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(
        path_of("csv").contains("report path: derived state"),
        "{}",
        path_of("csv")
    );
    assert!(
        path_of("table").contains("report path: derived state\n"),
        "{}",
        path_of("table")
    );
    // as of a date when nothing is provisional, the derived state answers;
    // its rows still equal the files'
    let late = ["report", "--by", "category", "--as-of", "2027-06-30", "--format", "csv"];
    let base_late: Vec<String> = vec!["--ledger".into(), target.into()];
    let files_late: Vec<String> = files[..6].to_vec();
    assert_eq!(ok_any(&with(&base_late, &late)), ok_any(&with(&files_late, &late)));
}

#[test]
fn filters_on_a_sqlite_ledger() {
    let (d, f) = demo("filters-sqlite");
    check_ledger(&d.path("sma.ledger"), &f);
}

#[test]
fn filters_on_a_postgres_ledger() {
    let Some(db) = PgDb::new("report_filters") else {
        return;
    };
    let (_d, f) = demo("filters-pg");
    check_ledger(&db.url, &f);
}

fn fail(args: &[String]) -> (i32, String) {
    let a: Vec<String> = reorder(args);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, out, err) = run(&a);
    assert!(out.is_empty(), "{args:?}: nothing on stdout: {out}");
    (code, err)
}

#[test]
fn filter_usage_errors() {
    let (_d, f) = demo("filters-usage");
    let base = files_base(&f);
    let cases: [(&[&str], i32, &str); 6] = [
        (&["--period", "FY2023", "--from", "2023-04-01"], 2, "--period"),
        (&["--period", "FY2023", "--to", "2023-04-01"], 2, "--period"),
        (&["--from", "2023-02-30"], 2, "--from `2023-02-30`"),
        (&["--period", "2023"], 2, "fiscal-year label"),
        (&["--from", "2024-01-02", "--to", "2024-01-01"], 2, "after --to"),
        (
            &["--period", "FY2030"],
            1,
            "outside the agreement's term (FY2022 to FY2026)",
        ),
    ];
    for (filter, code, says) in cases {
        for cmd in [&["report", "--by", "party"][..], &["allocate"][..]] {
            let (c, err) = fail(&with(&base, &[cmd, filter].concat()));
            assert_eq!(c, code, "{filter:?}: {err}");
            assert!(err.contains(says), "{filter:?}: {err}");
        }
    }
}

/// The body rows of a table: the lines between the header rule and the
/// closing rule.
fn table_rows(t: &str) -> Vec<String> {
    let lines: Vec<&str> = t.lines().collect();
    let first = lines.iter().position(|l| l.starts_with("---")).unwrap();
    let last = first + 1 + lines[first + 1..].iter().position(|l| l.starts_with("---")).unwrap();
    lines[first + 1..last].iter().map(|s| s.to_string()).collect()
}

/// Tenths of a percent, half to even, as text (`87.9%`), for `part/whole`.
fn pct(part: i128, whole: i128) -> String {
    let n = part * 1000;
    let (q, r) = (n / whole, n % whole);
    let q = if 2 * r > whole || (2 * r == whole && q % 2 == 1) {
        q + 1
    } else {
        q
    };
    format!("{}.{}%", q / 10, q % 10)
}

fn csv_rows(csv: &str) -> Vec<Vec<String>> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn tables_mark_provisional_rows_share_within_the_group_and_keep_the_agreements_order() {
    let (_d, f) = demo("filters-table");
    let base = files_base(&f);
    let facts = line_facts(&f[1]);
    // provisional lines: those allocate's table marks with `*`
    let alloc_table = ok_any(&with(&base, &["allocate"]));
    let mut prov_fys = std::collections::BTreeSet::new();
    for l in alloc_table.lines() {
        if let Some(id) = l.split_whitespace().next()
            && l.split_whitespace().nth(1) == Some("*")
        {
            let date = &facts[id].0;
            let (y, m): (i32, i32) = (date[..4].parse().unwrap(), date[5..7].parse().unwrap());
            prov_fys.insert(if m >= 4 { y } else { y - 1 });
        }
    }
    assert!(prov_fys.contains(&2024) && !prov_fys.contains(&2022), "{prov_fys:?}");
    let t = ok_any(&with(&base, &["report", "--by", "fiscal_year,party"]));
    assert!(t.contains("share of FY"), "{t}");
    let csv = ok_any(&with(
        &base,
        &["report", "--by", "fiscal_year,party", "--format", "csv"],
    ));
    assert!(!csv.contains('*'));
    let rows = csv_rows(&csv);
    let body = table_rows(&t);
    assert_eq!(body.len(), rows.len());
    for (line, r) in body.iter().zip(&rows) {
        let fy: i32 = r[0][2..].parse().unwrap();
        let marked = line.split_whitespace().nth(1) == Some("*");
        assert_eq!(marked, prov_fys.contains(&fy), "{line}");
        let group: i128 = rows
            .iter()
            .filter(|x| x[0] == r[0])
            .map(|x| x[2].parse::<i128>().unwrap())
            .sum();
        let share = pct(r[2].parse().unwrap(), group);
        assert!(line.ends_with(&share), "{line} should end with {share}");
    }
    // JSON: a flag per row, the same as the marks
    let j: serde_json::Value = serde_json::from_str(&ok_any(&with(
        &base,
        &["report", "--by", "fiscal_year,party", "--format", "json"],
    )))
    .unwrap();
    for (row, line) in j["rows"].as_array().unwrap().iter().zip(&body) {
        assert_eq!(
            row["provisional"].as_bool().unwrap(),
            line.split_whitespace().nth(1) == Some("*")
        );
    }
    // categories: the agreement's order in tables, byte order in CSV
    let agreement_order = [
        "labor",
        "welfare",
        "utilities",
        "training_relocation",
        "facilities",
        "training_equipment",
    ];
    let t = ok_any(&with(&base, &["report", "--by", "category"]));
    let cats: Vec<String> = table_rows(&t)
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(cats, agreement_order);
    let csv = ok_any(&with(&base, &["report", "--by", "category", "--format", "csv"]));
    let cats: Vec<String> = csv_rows(&csv).into_iter().map(|r| r[0].clone()).collect();
    let mut sorted = agreement_order.map(str::to_string).to_vec();
    sorted.sort();
    assert_eq!(cats, sorted);
}

#[test]
fn pivot_party_in_three_formats_adds_up_to_the_unpivoted_rows() {
    let (_d, f) = demo("filters-pivot");
    let base = files_base(&f);
    let flat = csv_rows(&ok_any(&with(
        &base,
        &[
            "report",
            "--by",
            "category,party",
            "--format",
            "csv",
            "--period",
            "FY2024",
        ],
    )));
    let mut want: BTreeMap<(String, String), i128> = BTreeMap::new();
    for r in &flat {
        want.insert((r[0].clone(), r[1].clone()), r[2].parse().unwrap());
    }
    // --by category without party: --pivot party adds it
    let csv = ok_any(&with(
        &base,
        &[
            "report", "--by", "category", "--pivot", "party", "--format", "csv", "--period", "FY2024",
        ],
    ));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("category,JP,US,total"));
    let mut n = 0;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let mut sum = 0i128;
        for (k, party) in ["JP", "US"].iter().enumerate() {
            let v: i128 = f[1 + k].parse().unwrap();
            assert_eq!(
                v,
                want.get(&(f[0].to_string(), party.to_string())).copied().unwrap_or(0),
                "{l}"
            );
            sum += v;
        }
        assert_eq!(f[3].parse::<i128>().unwrap(), sum, "{l}");
        n += 1;
    }
    let cats: std::collections::BTreeSet<&String> = want.keys().map(|k| &k.0).collect();
    assert_eq!(n, cats.len());
    // JSON
    let j: serde_json::Value = serde_json::from_str(&ok_any(&with(
        &base,
        &[
            "report",
            "--by",
            "party,category",
            "--pivot",
            "party",
            "--format",
            "json",
            "--period",
            "FY2024",
        ],
    )))
    .unwrap();
    assert_eq!(j["pivot"], "party");
    assert_eq!(j["by"], serde_json::json!(["category"]));
    let mut grand = 0i128;
    for row in j["rows"].as_array().unwrap() {
        let cat = row["category"].as_str().unwrap().to_string();
        for party in ["JP", "US"] {
            let v: i128 = row["amounts"][party].as_str().unwrap().parse().unwrap();
            assert_eq!(v, want.get(&(cat.clone(), party.to_string())).copied().unwrap_or(0));
        }
        grand += row["total"].as_str().unwrap().parse::<i128>().unwrap();
    }
    assert_eq!(grand, want.values().sum::<i128>());
    assert_eq!(j["total"].as_str().unwrap().parse::<i128>().unwrap(), grand);
    // table: one row per category in the agreement's order, parties as columns
    let t = ok_any(&with(
        &base,
        &["report", "--by", "category", "--pivot", "party", "--period", "FY2024"],
    ));
    let hdr = t.lines().find(|l| l.starts_with("category")).unwrap();
    assert_eq!(
        hdr.split_whitespace().collect::<Vec<_>>(),
        ["category", "JP", "US", "total"]
    );
    let body = table_rows(&t);
    assert_eq!(body.len(), cats.len());
    assert!(body[0].starts_with("labor"), "{t}");
    let last = t.lines().find(|l| l.starts_with("total")).unwrap();
    let grouped = |v: i128| {
        let s = v.to_string();
        let mut o = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                o.push(',');
            }
            o.push(c);
        }
        o
    };
    assert!(last.ends_with(&grouped(grand)), "{last}");
}

#[test]
fn demo_write_refuses_to_overwrite_a_different_file_unless_forced() {
    let (d, f) = demo("filters-demo-write");
    let out = d.path("demo");
    // the same files again: fine
    let (code, _, err) = run(&["demo", "--write", &out, "--as-of", AS_OF]);
    assert_eq!(code, 0, "{err}");
    let original = std::fs::read(&f[1]).unwrap();
    std::fs::write(&f[1], b"id,date,category,amount\nmine,2022-04-01,labor,1\n").unwrap();
    let (code, stdout, err) = run(&["demo", "--write", &out, "--as-of", AS_OF]);
    assert_eq!(code, 1, "{err}");
    assert!(stdout.is_empty());
    assert!(err.contains(&f[1]) && err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read(&f[1]).unwrap(),
        b"id,date,category,amount\nmine,2022-04-01,labor,1\n",
        "nothing overwritten"
    );
    let (code, _, err) = run(&["demo", "--write", &out, "--as-of", AS_OF, "--force"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&f[1]).unwrap(), original);
}

#[test]
fn demo_note_adds_up() {
    let (code, out, err) = run(&["demo", "--as-of", AS_OF, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rc = &j["reconciliation"];
    let n = |v: &serde_json::Value| v.as_str().unwrap().parse::<i128>().unwrap();
    let rows = rc["rows"].as_array().unwrap();
    let generated: i128 = rows.iter().map(|r| n(&r["generated"])).sum();
    let headline: i128 = rows.iter().map(|r| n(&r["headline"])).sum();
    assert_eq!(generated, n(&rc["generated_total"]));
    assert_eq!(headline, 1_055_100_000_000, "the sourced headline");
    assert_eq!(n(&rc["headline_total"]), headline);
    // Japan's generated total is what the report gives JP
    let jp: i128 = j["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["party"] == "JP")
        .map(|r| n(&r["amount"]))
        .sum();
    assert_eq!(jp, generated);
    let welfare = rows.iter().find(|r| r["category"] == "welfare").unwrap();
    assert_eq!(n(&welfare["headline"]), 0, "welfare is outside the headline");
    // the table's ¥bn column adds up to its total
    let (_, t, _) = run(&["demo", "--as-of", AS_OF]);
    let note: Vec<&str> = t.lines().skip_while(|l| !l.starts_with("Five-year total")).collect();
    let body = table_rows(&note.join("\n"));
    let tenths = |s: &str| s.replace([',', '.', '*', '+'], "").parse::<i128>().unwrap();
    let sum: i128 = body.iter().map(|l| tenths(l.split_whitespace().nth(1).unwrap())).sum();
    let total = note.iter().find(|l| l.starts_with("total")).unwrap();
    assert_eq!(sum, tenths(total.split_whitespace().nth(1).unwrap()), "{t}");
}

/// `compare --period`: the rows of FY2023 from the unfiltered comparison by
/// party and fiscal year (every line allocated over the whole history under
/// each agreement, then restricted). `ceilings --from/--to`: exactly the
/// unfiltered rows whose cap period overlaps the range. `forecast --period`:
/// the FY2024 rows of the unfiltered forecast.
#[test]
fn compare_and_ceilings_take_the_filter() {
    let (_d, f) = demo("filters-compare");
    let against = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/us-japan-sma-2016.toml")
        .display()
        .to_string();
    let mut base = vec!["compare".to_string()];
    base.extend(file_args(&f));
    let cmp = with(
        &base,
        &["--against", &against, "--by", "party,fiscal_year", "--format", "csv"],
    );
    let all = ok(&cmp);
    let filtered = ok(&with(&cmp, &["--period", "FY2023"]));
    let mut lines = all.lines();
    let want: String = std::iter::once(lines.next().unwrap())
        .chain(lines.filter(|l| l.split(',').nth(1) == Some("FY2023")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(filtered, want);
    assert!(want.lines().count() >= 3, "{all}");

    let mut base = vec!["ceilings".to_string()];
    base.extend(file_args(&f));
    let ceil = with(&base, &["--format", "csv"]);
    let all = ok(&ceil);
    let filtered = ok(&with(&ceil, &["--from", "2023-06-15", "--to", "2023-07-10"]));
    // monthly labor rows of June and July 2023, yearly FY2023 rows, term rows
    let keep = |l: &&str| {
        let p = l.split(',').nth(2).unwrap_or("");
        ["2023-06", "2023-07", "FY2023", "term", "period"].contains(&p)
    };
    let want: String = all.lines().filter(keep).map(|l| format!("{l}\n")).collect();
    assert_eq!(filtered, want);

    let mut base = vec!["forecast".to_string()];
    base.extend(file_args(&f));
    let fc = with(
        &base,
        &["--until", "2025-03-31", "--by", "party,fiscal_year", "--format", "csv"],
    );
    let all = ok(&fc);
    let filtered = ok(&with(&fc, &["--period", "FY2024"]));
    let mut lines = all.lines();
    let want: String = std::iter::once(lines.next().unwrap())
        .chain(lines.filter(|l| l.split(',').nth(1) == Some("FY2024")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(filtered, want);
}
