//! `costshare export`: the allocation as a Ledger journal, a Beancount file,
//! a tidy CSV, JSON and an xlsx workbook, checked from outside:
//!
//! - the real `ledger` and `bean-check`/`bean-query` read the journals, and
//!   every party-category account total equals `report --by party,category`
//!   (a small case with awkward ids, and the demo). Missing tools: with
//!   `COSTSHARE_REQUIRE_ORACLES=1` (CI) the test fails; otherwise it prints
//!   `SKIPPED` and passes;
//! - the tidy CSV holds the rows of `allocate` in its order, and the
//!   workbook, read back with calamine, equals the CSV cell by cell and each
//!   report sheet equals `report --format csv`;
//! - no text field of the CSV or the workbook can start a formula;
//! - a SQLite and a PostgreSQL ledger export what the same files export.

mod common;
use common::{Dir, PgDb, run};
use costshare_app::export::account_component;
use std::collections::BTreeMap;
use std::process::Command;

/// USD (two decimals); a party and categories whose ids Beancount cannot take
/// as they are (lower-case, `_`, `-`); caps that leave UNALLOCATED parts.
const SMALL: &str = r#"[agreement]
id = "small"
title = "Small \"export\" case"
currency = "USD"
start = "2022-04-01"
end = "2024-03-31"
fiscal_year_start = "04-01"
[parties.JP]
name = "Japan"
[parties.us_forces]
name = "US forces"
[categories.labor]
name = "Labor"
  [[categories.labor.layers]]
  split = { JP = "33.33%", us_forces = "66.67%" }
[categories.Host_Nation]
name = "Host nation"
  [[categories.Host_Nation.layers]]
  split = { JP = "100%" }
  cap = "1000.00"
[categories.training-equipment]
name = "Training equipment"
  [[categories.training-equipment.layers]]
  split = { us_forces = "100%" }
  cap = "500.00"
"#;

/// Ids, sites and descriptions that start formulas, quotes, a backslash, a
/// line break inside a field, an id Ledger would read as a code.
const SMALL_COSTS: &str = "id,date,category,amount,currency,quantity,site,description\n\
=L1,2022-04-30,labor,1000.01,,,\"=HYPERLINK(\"\"http://x\"\")\",\"payroll \"\"April\"\"; note\"\n\
+L2,2022-05-31,Host_Nation,700.00,,,@site,\"two\nlines\"\n\
-L3,2022-06-30,Host_Nation,500.55,,,-site,\n\
@L4,2022-07-31,training-equipment,800.00,,,,=cmd|' /C calc'!A0\n\
L5,2023-04-30,labor,0.03,,,Okinawa,back\\slash\n\
(L6),2023-05-31,training-equipment,100.00,,,\"a,b\",\n\
L7,2023-06-30,Host_Nation,0.00,,,,zero\n";

const AS_OF: &str = "2030-01-01";

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{args:?}\n{err}");
    out
}

/// Whether an outside tool runs; a missing one fails under
/// `COSTSHARE_REQUIRE_ORACLES=1` and is otherwise skipped loudly.
fn tool(name: &str, install: &str) -> bool {
    let runs = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        return true;
    }
    if std::env::var("COSTSHARE_REQUIRE_ORACLES").is_ok_and(|v| v.trim() == "1") {
        panic!("COSTSHARE_REQUIRE_ORACLES=1 but `{name}` is not installed or does not run ({install})");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n********************************************************************\n\
         SKIPPED: {name} not installed ({install})\n\
         ********************************************************************"
    );
    false
}

fn tool_out(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{cmd} {args:?}\n{err}");
    String::from_utf8(o.stdout).unwrap()
}

/// A decimal (`-1234.5`, `12`) as minor units at `dec` decimals.
fn minor(text: &str, dec: u32) -> i128 {
    let t = text.trim().replace(',', "");
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r.to_string()),
        None => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((&t, ""));
    assert!(frac.len() as u32 <= dec, "{text}");
    let v: i128 = format!("{int}{frac:0<width$}", width = dec as usize).parse().unwrap();
    if neg { -v } else { v }
}

/// Records of a CSV text.
fn records(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// `report --by party,category --format csv` as (party, category) → minor units.
fn report_totals(inputs: &[&str], dec: u32) -> BTreeMap<(String, String), i128> {
    let mut args = vec!["report", "--by", "party,category", "--format", "csv", "--as-of", AS_OF];
    args.extend_from_slice(inputs);
    let rows = records(&ok(&args));
    assert_eq!(rows[0], ["party", "category", "amount"]);
    rows[1..]
        .iter()
        .map(|r| ((r[0].clone(), r[1].clone()), minor(&r[2], dec)))
        .collect()
}

fn export(inputs: &[&str], format: &str, out: &str) {
    let mut args = vec!["export", "--format", format, "-o", out, "--as-of", AS_OF];
    args.extend_from_slice(inputs);
    let said = ok(&args);
    assert!(said.starts_with(&format!("wrote {out}: ")), "{said}");
}

/// The account totals that `ledger` computes, as minor units.
fn ledger_totals(file: &str, code: &str, dec: u32) -> BTreeMap<String, i128> {
    // the journal is read by `balance` too (the form users run)
    tool_out("ledger", &["-f", file, "balance"]);
    let out = tool_out("ledger", &["-f", file, "bal", "--flat", "--no-total"]);
    let mut m = BTreeMap::new();
    for l in out.lines().filter(|l| !l.trim().is_empty()) {
        let (amount, account) = l.trim().rsplit_once("  ").unwrap();
        let amount = amount.trim().strip_suffix(code).unwrap_or_else(|| panic!("{l}"));
        m.insert(account.trim().to_string(), minor(amount, dec));
    }
    m
}

/// The account totals that `bean-query` computes, as minor units.
fn bean_totals(file: &str, code: &str, dec: u32) -> BTreeMap<String, i128> {
    let check = Command::new("bean-check").arg(file).output().unwrap();
    assert!(
        check.status.success() && check.stdout.is_empty() && check.stderr.is_empty(),
        "bean-check {file}\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let out = tool_out(
        "bean-query",
        &["-f", "csv", file, "SELECT account, sum(position) GROUP BY account"],
    );
    let mut m = BTreeMap::new();
    for r in &records(&out)[1..] {
        let amount = r[1].trim().strip_suffix(code).unwrap_or_else(|| panic!("{r:?}"));
        m.insert(r[0].trim().to_string(), minor(amount, dec));
    }
    m
}

/// Every (party, category) of the report is the `Expenses` account total
/// (`name` makes the account name), no other `Expenses` account has a total,
/// and the `Liabilities:Costs` accounts hold minus the category totals.
fn assert_accounts_match(
    accounts: &BTreeMap<String, i128>,
    report: &BTreeMap<(String, String), i128>,
    name: impl Fn(&str, &str, &str) -> String,
    tool: &str,
) {
    let mut expected = BTreeMap::new();
    let mut by_category: BTreeMap<&str, i128> = BTreeMap::new();
    for ((party, cat), v) in report {
        expected.insert(name("Expenses", party, cat), *v);
        *by_category.entry(cat).or_default() += v;
    }
    for (cat, v) in by_category {
        expected.insert(name("Liabilities", "Costs", cat), -v);
    }
    assert!(!report.is_empty());
    assert_eq!(accounts, &expected, "{tool}'s account totals differ from report");
}

fn ledger_name(top: &str, a: &str, b: &str) -> String {
    format!("{top}:{a}:{b}")
}

fn bean_name(top: &str, a: &str, b: &str) -> String {
    format!("{top}:{}:{}", account_component(a), account_component(b))
}

fn small(d: &Dir) -> Vec<String> {
    let a = d.file("small.toml", SMALL);
    let c = d.file("small.csv", SMALL_COSTS);
    vec!["--agreement".into(), a, "--costs".into(), c]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn demo(d: &Dir) -> Vec<String> {
    ok(&["demo", "--as-of", AS_OF, "--write", &d.path("demo")]);
    vec![
        "--agreement".into(),
        d.path("demo/agreement.toml"),
        "--costs".into(),
        d.path("demo/costs.csv"),
        "--rates".into(),
        d.path("demo/rates.csv"),
    ]
}

fn check_journals(d: &Dir, inputs: &[&str], code: &str, dec: u32) {
    let report = report_totals(inputs, dec);
    if tool("ledger", "apt-get install ledger") {
        let f = d.path("out.ledger");
        export(inputs, "ledger", &f);
        assert_accounts_match(&ledger_totals(&f, code, dec), &report, ledger_name, "ledger");
    }
    if tool("bean-check", "pip install beancount") && tool("bean-query", "pip install beanquery") {
        let f = d.path("out.beancount");
        export(inputs, "beancount", &f);
        assert_accounts_match(&bean_totals(&f, code, dec), &report, bean_name, "bean-query");
    }
}

#[test]
fn small_case_journals_total_to_the_report() {
    let d = Dir::new("export-small-oracles");
    let inputs = small(&d);
    let inputs = strs(&inputs);
    let report = report_totals(&inputs, 2);
    // the case exercises what it is for: UNALLOCATED parts and cents
    assert!(report.keys().any(|(p, _)| p == "UNALLOCATED"), "{report:?}");
    assert!(report.values().any(|v| v % 100 != 0), "{report:?}");
    check_journals(&d, &inputs, "USD", 2);
}

#[test]
fn demo_journals_total_to_the_report() {
    let d = Dir::new("export-demo-oracles");
    let inputs = demo(&d);
    check_journals(&d, &strs(&inputs), "JPY", 0);
}

/// The tidy CSV: the header, one row per non-zero part in the order of
/// `allocate --format csv`, amounts with the currency's decimals, and its
/// per party-category sums equal the report.
#[test]
fn tidy_csv_is_the_allocation_row_for_row() {
    let d = Dir::new("export-csv");
    let inputs = small(&d);
    let inputs = strs(&inputs);
    let out = d.path("out.csv");
    export(&inputs, "csv", &out);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n'));
    // `-o -` and no `-o` write the same text to stdout
    let mut args = vec!["export", "--format", "csv", "--as-of", AS_OF];
    args.extend_from_slice(&inputs);
    assert_eq!(ok(&args), text);
    args.extend_from_slice(&["-o", "-"]);
    assert_eq!(ok(&args), text);

    let rows = records(&text);
    assert_eq!(
        rows[0],
        ["id", "date", "category", "site", "party", "amount", "currency"]
    );
    let mut alloc_args = vec!["allocate", "--format", "csv", "--as-of", AS_OF];
    alloc_args.extend_from_slice(&inputs);
    let alloc = records(&ok(&alloc_args));
    assert_eq!(rows.len(), alloc.len());
    let mut sums: BTreeMap<(String, String), i128> = BTreeMap::new();
    for (r, a) in rows[1..].iter().zip(&alloc[1..]) {
        // the id as allocate names it, made safe for a spreadsheet
        let id = if r[0].starts_with('\'') { &r[0][1..] } else { &r[0][..] };
        assert_eq!((id, &r[4], &r[5]), (&a[0][..], &a[1], &a[2]));
        assert_eq!(r[6], "USD");
        assert_eq!(r[5].split_once('.').map(|(_, f)| f.len()), Some(2), "{r:?}");
        *sums.entry((r[4].clone(), r[2].clone())).or_default() += minor(&r[5], 2);
    }
    assert_eq!(sums, report_totals(&inputs, 2));
    // the zero line has no row
    assert!(!text.contains("L7"));
    // the multi-line description is not in the CSV; the site with a comma is quoted
    assert!(text.contains("\"a,b\""), "{text}");
}

/// No text field of the CSV or of the workbook starts a formula; the
/// workbook holds no formula at all.
#[test]
fn no_exported_field_starts_a_formula() {
    let d = Dir::new("export-formula");
    let inputs = small(&d);
    let inputs = strs(&inputs);
    let out = d.path("out.csv");
    export(&inputs, "csv", &out);
    let text = std::fs::read_to_string(&out).unwrap();
    let starts_formula = |s: &str| s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let rows = records(&text);
    for r in &rows {
        for f in r {
            assert!(!starts_formula(f), "{f:?} in {r:?}");
        }
    }
    for id in ["=L1", "+L2", "-L3", "@L4"] {
        assert!(
            rows.iter().any(|r| r[0] == format!("'{id}")),
            "{id} not neutralised\n{text}"
        );
    }
    assert!(rows.iter().any(|r| r[3] == "'=HYPERLINK(\"http://x\")"), "{text}");

    let x = d.path("out.xlsx");
    export(&inputs, "xlsx", &x);
    use calamine::{Data, Reader, Xlsx, open_workbook};
    let mut wb: Xlsx<_> = open_workbook(&x).unwrap();
    let mut strings = 0;
    for name in wb.sheet_names() {
        let range = wb.worksheet_range(&name).unwrap();
        for c in range.used_cells() {
            if let Data::String(s) = c.2 {
                strings += 1;
                assert!(!starts_formula(s), "{s:?} in sheet {name}");
            }
        }
        let formulas = wb.worksheet_formula(&name).unwrap();
        assert!(formulas.used_cells().all(|c| c.2.is_empty()), "a formula in {name}");
    }
    assert!(strings > 20);
}

fn cell_text(c: &calamine::Data, dec: u32) -> String {
    match c {
        calamine::Data::String(s) => s.clone(),
        calamine::Data::Float(f) => format!("{f:.*}", dec as usize),
        calamine::Data::Int(i) => i.to_string(),
        calamine::Data::Empty => String::new(),
        other => panic!("unexpected cell {other:?}"),
    }
}

/// The workbook read back: `allocation` equals the tidy CSV cell by cell
/// (amounts are numbers), each report sheet equals `report --format csv`.
fn check_workbook(d: &Dir, inputs: &[&str], dec: u32) {
    let x = d.path("out.xlsx");
    let c = d.path("out.csv");
    export(inputs, "xlsx", &x);
    export(inputs, "csv", &c);
    use calamine::{Data, Reader, Xlsx, open_workbook};
    let mut wb: Xlsx<_> = open_workbook(&x).unwrap();
    assert_eq!(
        wb.sheet_names(),
        [
            "allocation",
            "by_party",
            "by_party_fiscal_year",
            "by_category",
            "by_party_category",
            "about"
        ]
    );
    let expect = records(&std::fs::read_to_string(&c).unwrap());
    let range = wb.worksheet_range("allocation").unwrap();
    let got: Vec<&[Data]> = range.rows().collect();
    assert_eq!(got.len(), expect.len());
    for (k, (g, e)) in got.iter().zip(&expect).enumerate() {
        let g: Vec<String> = g.iter().map(|c| cell_text(c, dec)).collect();
        assert_eq!(&g, e, "allocation row {k}");
        if k > 0 {
            assert!(
                matches!(got[k][5], Data::Float(_)),
                "amount not a number: {:?}",
                got[k][5]
            );
        }
    }
    for (sheet, by) in [
        ("by_party", "party"),
        ("by_party_fiscal_year", "party,fiscal_year"),
        ("by_category", "category"),
        ("by_party_category", "party,category"),
    ] {
        let mut args = vec!["report", "--by", by, "--format", "csv", "--as-of", AS_OF];
        args.extend_from_slice(inputs);
        let expect = records(&ok(&args));
        let range = wb.worksheet_range(sheet).unwrap();
        let got: Vec<Vec<String>> = range
            .rows()
            .map(|r| r.iter().map(|c| cell_text(c, dec)).collect())
            .collect();
        assert_eq!(got, expect, "sheet {sheet}");
    }
    // amounts carry the currency's decimals as their number format
    let styles = {
        use std::io::Read;
        let mut z = zip::ZipArchive::new(std::fs::File::open(&x).unwrap()).unwrap();
        let mut s = String::new();
        z.by_name("xl/styles.xml").unwrap().read_to_string(&mut s).unwrap();
        s
    };
    let code = if dec == 0 {
        "#,##0".to_string()
    } else {
        format!("#,##0.{}", "0".repeat(dec as usize))
    };
    assert!(styles.contains(&format!("formatCode=\"{code}\"")), "{styles}");
    let about = wb.worksheet_range("about").unwrap();
    let facts: BTreeMap<String, String> = about
        .rows()
        .map(|r| (cell_text(&r[0], dec), cell_text(&r[1], dec)))
        .collect();
    assert_eq!(facts["as_of"], AS_OF);
}

#[test]
fn workbook_reads_back_as_the_csv_and_the_reports() {
    let d = Dir::new("export-xlsx-small");
    let inputs = small(&d);
    check_workbook(&d, &strs(&inputs), 2);
}

#[test]
fn demo_workbook_reads_back_as_the_csv_and_the_reports() {
    let d = Dir::new("export-xlsx-demo");
    let inputs = demo(&d);
    check_workbook(&d, &strs(&inputs), 0);
}

/// JSON: amounts as decimal strings, provenance, the lines of `allocate`.
#[test]
fn json_export_carries_provenance_and_decimal_strings() {
    let d = Dir::new("export-json");
    let inputs = small(&d);
    let inputs = strs(&inputs);
    let mut args = vec!["export", "--format", "json", "--as-of", AS_OF];
    args.extend_from_slice(&inputs);
    let v: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(v["agreement"]["id"], "small");
    assert_eq!(v["agreement"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(v["as_of"], AS_OF);
    assert_eq!(v["currency"], "USD");
    let lines = v["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 7);
    // ids verbatim in JSON (not a spreadsheet)
    assert_eq!(lines[0]["id"], "=L1");
    assert_eq!(lines[0]["allocation"]["JP"], "333.30");
    assert_eq!(lines[0]["allocation"]["us_forces"], "666.71");
}

/// xlsx needs a file; an amount a spreadsheet cannot hold exactly is refused
/// with a message, while CSV exports it.
#[test]
fn xlsx_refusals() {
    let d = Dir::new("export-refuse");
    let inputs = small(&d);
    let mut args = vec!["export", "--format", "xlsx", "--as-of", AS_OF];
    args.extend_from_slice(&strs(&inputs));
    let (code, out, err) = run(&args);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("-o FILE"), "{err}");
    args.extend_from_slice(&["-o", "-"]);
    assert_eq!(run(&args).0, 2);

    // 10^16 cents: 17 significant digits
    let big = "id,date,category,amount\nBIG,2022-04-30,labor,100000000000000.00\n";
    let c = d.file("big.csv", big);
    let a = d.path("small.toml");
    let x = d.path("big.xlsx");
    let (code, _, err) = run(&["export", "--agreement", &a, "--costs", &c, "--format", "xlsx", "-o", &x]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot hold") && err.contains("USD"), "{err}");
    assert!(!std::path::Path::new(&x).exists(), "a refused workbook was written");
    let csv = ok(&["export", "--agreement", &a, "--costs", &c, "--format", "csv"]);
    assert!(csv.contains("BIG,2022-04-30,labor,,JP,33330000000000.00,USD"), "{csv}");
}

/// A ledger exports what the files it recorded export: the same CSV and the
/// same journals (less the provenance comments, which name the journal).
fn ledger_equals_files(target: &str, d: &Dir) {
    let inputs = small(d);
    let (a, c) = (&inputs[1], &inputs[3]);
    ok(&["init", target, "--agreement", a]);
    ok(&["record", target, c]);
    let files = strs(&inputs);
    let ledger = ["--ledger", target];
    let body = |s: String| -> String { s.lines().filter(|l| !l.starts_with(';')).collect::<Vec<_>>().join("\n") };
    for format in ["csv", "ledger", "beancount"] {
        let f = d.path(&format!("files.{format}"));
        let l = d.path(&format!("ledger.{format}"));
        export(&files, format, &f);
        export(&ledger, format, &l);
        let (f, l) = (std::fs::read_to_string(f).unwrap(), std::fs::read_to_string(l).unwrap());
        assert!(f.lines().count() > 8);
        assert_eq!(body(l.clone()), body(f), "{format}");
        if format != "csv" {
            assert!(l.contains("; journal: "), "{l}");
        }
    }
    let mut args = vec!["export", "--format", "json", "--as-of", AS_OF];
    args.extend_from_slice(&ledger);
    let lj: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    let mut args = vec!["export", "--format", "json", "--as-of", AS_OF];
    args.extend_from_slice(&files);
    let fj: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(lj["lines"], fj["lines"]);
    assert_eq!(lj["totals"], fj["totals"]);
    assert_eq!(lj["agreement"], fj["agreement"]);
    assert_eq!(lj["journal"]["head"].as_str().unwrap().len(), 64);
    check_workbook(d, &ledger, 2);
}

#[test]
fn sqlite_ledger_exports_what_its_files_export() {
    let d = Dir::new("export-sqlite");
    let l = d.path("l.db");
    ledger_equals_files(&l, &d);
}

#[test]
fn postgres_ledger_exports_what_its_files_export() {
    let Some(db) = PgDb::new("export") else { return };
    let d = Dir::new("export-pg");
    ledger_equals_files(&db.url, &d);
}

/// A ledger with two agreement versions (the demo, amended from FY2025 with a
/// higher utilities cap): the journals still total to `report`, name both
/// versions, and the workbook's sheets equal the merged reports.
#[test]
fn amended_ledger_exports_total_to_the_report() {
    let d = Dir::new("export-amended");
    let inputs = demo(&d);
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &inputs[1], "--rates", &inputs[5]]);
    ok(&["record", &l, &inputs[3]]);
    let text = std::fs::read_to_string(&inputs[1]).unwrap();
    let old = r#"FY2025 = "13300000000""#;
    assert!(text.contains(old));
    let b = d.file("b.toml", text.replace(old, r#"FY2025 = "14000000000""#));
    ok(&["amend", &l, "--agreement", &b, "--effective", "2025-04-01"]);
    let ledger = ["--ledger", l.as_str()];
    check_journals(&d, &ledger, "JPY", 0);
    let j = d.path("two.ledger");
    export(&ledger, "ledger", &j);
    let j = std::fs::read_to_string(j).unwrap();
    assert!(j.contains("; earlier version: us-japan-sma-2022"), "{}", &j[..400]);
    check_workbook(&d, &ledger, 0);
}
