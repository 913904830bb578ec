//! `report --chart FILE.svg`: the chart's figures are those of
//! `report --by party,fiscal_year` on files, a SQLite ledger and a
//! PostgreSQL ledger, whatever `--by` the report itself has; the report
//! still prints; a file that cannot be written is an error naming it. The
//! README's `docs/chart-report.svg` is a golden of the demo's chart
//! (`UPDATE_GOLDEN=1` rewrites it).

mod common;

use common::{Dir, PgDb, run};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo's agreement, costs and rates in `dir`.
fn demo(dir: &Dir) -> (String, String, String) {
    let (code, _, err) = run(&["demo", "--as-of", "2026-11-27", "--write", dir.0.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    (dir.path("agreement.toml"), dir.path("costs.csv"), dir.path("rates.csv"))
}

/// (party, fiscal year) → amount, from `report --by party,fiscal_year --format csv`
/// (zero rows left out: the chart draws no bar for them).
fn report_figures(inputs: &[&str]) -> BTreeMap<(String, String), String> {
    let mut args = vec![
        "report",
        "--by",
        "party,fiscal_year",
        "--format",
        "csv",
        "--as-of",
        "2026-11-27",
    ];
    args.extend_from_slice(inputs);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("party,fiscal_year,amount"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            ((f[0].to_string(), f[1].to_string()), f[2].to_string())
        })
        .filter(|(_, a)| a.bytes().any(|b| (b'1'..=b'9').contains(&b)))
        .collect()
}

/// (series, category) → amount of every bar in the chart, which must be a
/// well-formed SVG.
fn chart_figures(svg: &str) -> BTreeMap<(String, String), String> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter_map(|n| {
            Some((
                (
                    n.attribute("data-series")?.to_string(),
                    n.attribute("data-category")?.to_string(),
                ),
                n.attribute("data-amount")?.to_string(),
            ))
        })
        .collect()
}

/// `report --by BY --chart` with `inputs`: the report printed, and the
/// chart's figures equal to the party × fiscal-year report's.
fn check(dir: &Dir, by: &str, inputs: &[&str]) -> String {
    let chart = dir.path(&format!("chart-{}.svg", by.replace(',', "-")));
    let mut args = vec!["report", "--by", by, "--as-of", "2026-11-27", "--chart", &chart];
    args.extend_from_slice(inputs);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("by {}", by.replace(',', ", "))),
        "the report is not printed: {out}"
    );
    let svg = std::fs::read_to_string(&chart).expect("chart written");
    let got = chart_figures(&svg);
    let want = report_figures(inputs);
    assert!(!want.is_empty());
    assert_eq!(got, want, "chart figures differ from report --by party,fiscal_year");
    svg
}

#[test]
fn report_chart_from_files_any_by() {
    let dir = Dir::new("chart-files");
    let (a, c, r) = demo(&dir);
    let inputs = ["--agreement", a.as_str(), "--costs", c.as_str(), "--rates", r.as_str()];
    let by_category = check(&dir, "category", &inputs);
    let by_party_year = check(&dir, "party,fiscal_year", &inputs);
    let by_year_party = check(&dir, "fiscal_year,party", &inputs);
    // the same chart whichever report it came with
    assert_eq!(by_category, by_party_year);
    assert_eq!(by_category, by_year_party);
    assert!(by_category.contains("U.S.-Japan Special Measures Agreement"));
    assert!(by_category.contains("as of 2026-11-27 · agreement us-japan-sma-2022 81c8aefa0b19"));
    // CSV and JSON output unchanged by --chart
    let chart = dir.path("c.svg");
    let plain = run(&[
        "report",
        "--by",
        "month",
        "--format",
        "csv",
        "--as-of",
        "2026-11-27",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--rates",
        &r,
    ]);
    let charted = run(&[
        "report",
        "--by",
        "month",
        "--format",
        "csv",
        "--as-of",
        "2026-11-27",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--rates",
        &r,
        "--chart",
        &chart,
    ]);
    assert_eq!(plain, charted);
}

/// An agreement whose costs can leave something UNALLOCATED (a capped layer
/// with nothing after it).
const CAPPED: &str = r#"
[agreement]
id = "capped"
title = "Capped <test> & co"
currency = "USD"
start = "2023-01-01"
end = "2024-12-31"
fiscal_year_start = "01-01"

[parties.A]
name = "Alpha & Sons"
[parties.B]
name = "Beta"

[categories.ops]
  [[categories.ops.layers]]
  split = { A = "60%", B = "40%" }
  cap = "100.00"
  period = "fiscal_year"
  cap_policy = "running"
"#;

#[test]
fn report_chart_with_unallocated_and_hostile_names() {
    let dir = Dir::new("chart-unalloc");
    let a = dir.file("a.toml", CAPPED);
    let c = dir.file(
        "c.csv",
        "id,date,category,amount\nL1,2023-03-01,ops,80.00\nL2,2023-06-01,ops,50.25\nL3,2024-02-01,ops,10.10\n",
    );
    let (code, _, err) = run(&["check", &a]);
    assert_eq!(code, 0, "{err}");
    let svg = check(&dir, "party", &["--agreement", a.as_str(), "--costs", c.as_str()]);
    // FY2023: 100.00 capped (60/40), 30.25 UNALLOCATED; FY2024: 10.10
    let figures = chart_figures(&svg);
    assert_eq!(figures[&("UNALLOCATED".into(), "FY2023".into())], "30.25");
    assert_eq!(figures[&("A".into(), "FY2024".into())], "6.06");
    assert!(svg.contains("Capped &lt;test&gt; &amp; co"));
    assert!(svg.contains("Alpha &amp; Sons (A)"));
    assert!(svg.contains("url(#hatch)"));
}

#[test]
fn report_chart_from_sqlite_ledger() {
    let dir = Dir::new("chart-sqlite");
    let (a, c, r) = demo(&dir);
    let ledger = dir.path("l.db");
    ledger_check(&dir, &ledger, &a, &c, &r);
}

#[test]
fn report_chart_from_postgres_ledger() {
    let Some(db) = PgDb::new("chart") else { return };
    let dir = Dir::new("chart-pg");
    let (a, c, r) = demo(&dir);
    ledger_check(&dir, &db.url, &a, &c, &r);
}

fn ledger_check(dir: &Dir, ledger: &str, a: &str, c: &str, r: &str) {
    let (code, _, err) = run(&["init", ledger, "--agreement", a, "--rates", r]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["record", ledger, c]);
    assert_eq!(code, 0, "{err}");
    let svg = check(dir, "party", &["--ledger", ledger]);
    assert!(svg.contains(" · journal "), "the note names the journal head");
    // the derived state and a file report agree too
    let from_files = report_figures(&["--agreement", a, "--costs", c, "--rates", r]);
    assert_eq!(chart_figures(&svg), from_files);
}

#[test]
fn unwritable_chart_is_an_error_naming_the_file() {
    let dir = Dir::new("chart-unwritable");
    let (a, c, r) = demo(&dir);
    let bad = dir.path("no-such-dir/chart.svg");
    let (code, out, err) = run(&[
        "report",
        "--by",
        "party",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--rates",
        &r,
        "--chart",
        &bad,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&bad), "{err}");
    assert!(err.starts_with("costshare: error: cannot write"), "{err}");
    // a directory is not a file either
    let (code, _, err) = run(&[
        "report",
        "--by",
        "party",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--rates",
        &r,
        "--chart",
        dir.0.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains(dir.0.to_str().unwrap()), "{err}");
}

/// The README's report chart: the demo, as the README's command makes it.
#[test]
fn docs_report_chart_is_current() {
    let dir = Dir::new("chart-docs");
    let (a, c, r) = demo(&dir);
    let out = dir.path("chart-report.svg");
    let (code, _, err) = run(&[
        "report",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--rates",
        &r,
        "--by",
        "party,fiscal_year",
        "--as-of",
        "2026-11-27",
        "--chart",
        &out,
    ]);
    assert_eq!(code, 0, "{err}");
    let got = std::fs::read_to_string(&out).unwrap();
    let path = root().join("docs/chart-report.svg");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).expect("docs/chart-report.svg");
    assert!(
        want == got,
        "docs/chart-report.svg is not what the README's command makes; rerun with UPDATE_GOLDEN=1"
    );
}

/// `compare --chart`: one bar per (against agreement, party) whose amount is
/// that party's delta in `compare --by party --format csv`, whatever `--by`
/// the comparison itself has; the comparison still prints.
#[test]
fn compare_chart_deltas_equal_compare_by_party() {
    let dir = Dir::new("chart-compare");
    let (a, c, r) = demo(&dir);
    let ex = root().join("examples");
    let b16 = ex.join("us-japan-sma-2016.toml").display().to_string();
    let b4 = ex.join("us-japan-fourfold-proposal.toml").display().to_string();
    let base = [
        "--agreement",
        a.as_str(),
        "--costs",
        c.as_str(),
        "--rates",
        r.as_str(),
        "--against",
        b16.as_str(),
        "--against",
        b4.as_str(),
        "--as-of",
        "2026-11-27",
    ];
    let mut args = vec!["compare", "--by", "party", "--format", "csv"];
    args.extend_from_slice(&base);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut want = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        for (k, h) in header.iter().enumerate() {
            if let Some(id) = h.strip_prefix("delta_") {
                want.insert((id.to_string(), f[0].to_string()), f[k].to_string());
            }
        }
    }
    assert_eq!(want.len(), 4, "{out}");
    let chart = dir.path("compare.svg");
    let mut args = vec!["compare", "--by", "fiscal_year,party", "--chart", chart.as_str()];
    args.extend_from_slice(&base);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("FY2022"), "the comparison is not printed: {out}");
    let svg = std::fs::read_to_string(&chart).expect("chart written");
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("not well-formed: {e}"));
    let got: BTreeMap<(String, String), String> = doc
        .descendants()
        .filter_map(|n| {
            Some((
                (
                    n.attribute("data-against")?.to_string(),
                    n.attribute("data-party")?.to_string(),
                ),
                n.attribute("data-amount")?.to_string(),
            ))
        })
        .collect();
    assert_eq!(got, want, "chart deltas differ from compare --by party");
}

/// `ceilings --chart`: every money ceiling's period is drawn with the cap and
/// the use of `ceilings --format csv` (the last step of its cumulative use).
#[test]
fn ceilings_chart_figures_equal_ceilings_csv() {
    let dir = Dir::new("chart-ceilings");
    let (a, c, r) = demo(&dir);
    let inputs = [
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
    args.extend_from_slice(&inputs);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    // (period, cap, used) of the money ceilings (unit JPY), in the CSV's order
    let want: Vec<(String, String, String)> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|f| f[3] == "JPY")
        .map(|f| (f[2].clone(), f[4].clone(), f[5].clone()))
        .collect();
    assert!(want.len() >= 12, "{out}");
    let chart = dir.path("ceilings.svg");
    let mut args = vec!["ceilings", "--chart", chart.as_str()];
    args.extend_from_slice(&inputs);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Ceiling use"), "the table is not printed: {out}");
    let svg = std::fs::read_to_string(&chart).expect("chart written");
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("not well-formed: {e}"));
    let caps: Vec<(String, String)> = doc
        .descendants()
        .filter_map(|n| {
            Some((
                n.attribute("data-period")?.to_string(),
                n.attribute("data-cap")?.to_string(),
            ))
        })
        .collect();
    let used: Vec<(String, String)> = doc
        .descendants()
        .filter_map(|n| {
            Some((
                n.attribute("data-period")?.to_string(),
                n.attribute("data-used")?.to_string(),
            ))
        })
        .collect();
    for (period, cap, u) in &want {
        assert!(
            caps.contains(&(period.clone(), cap.clone())),
            "cap of {period} ({cap}) not drawn"
        );
        if u != "0" {
            assert!(
                used.contains(&(period.clone(), u.clone())),
                "use of {period} ({u}) not drawn"
            );
        }
    }
}
