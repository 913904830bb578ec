//! Bad inputs named by the contract (SPEC sections 3, 4, 6 and 7) are rejected by the
//! binary the way the contract says: agreement problems as `FILE:LINE:COLUMN` of the key
//! or value to change (exit 1, every problem in one run), bad cost and rate rows by
//! physical line number and id (exit 1, nothing on stdout), usage errors with exit 2.
//! Good-but-messy inputs still pass.

mod common;

use common::{Dir, run};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The small valid agreement every case mutates.
const BASE: &str = r#"[agreement]
id = "base"
title = "Base agreement"
currency = "JPY"
start = "2022-04-01"
end = "2024-03-31"
fiscal_year_start = "04-01"
fiscal_year_label = "start"

[parties.JP]
name = "Government of Japan"

[parties.US]
name = "United States"

[categories.utilities]
name = "Utility costs"

  [[categories.utilities.layers]]
  split = { JP = "100%" }
  cap = { FY2022 = "1000", FY2023 = "1000" }
  period = "fiscal_year"

  [[categories.utilities.layers]]
  split = { JP = "0%", US = "100%" }

[categories.labor]
name = "Labor costs"
unit = "worker"

  [[categories.labor.layers]]
  split = { JP = "60%", US = "40%" }
  cap_units = 10
  period = "month"

  [[categories.labor.layers]]
  split = { US = "100%" }
"#;

/// Replaces the single occurrence of `from` in `src` by `to`.
fn edit(src: &str, from: &str, to: &str) -> String {
    assert_eq!(
        src.matches(from).count(),
        1,
        "test bug: `{from}` must occur exactly once in:\n{src}"
    );
    src.replacen(from, to, 1)
}

/// 1-based (line, column in characters) of byte offset `at` in `src`.
fn line_col(src: &str, at: usize) -> (usize, usize) {
    let before = &src[..at];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, src[start..at].chars().count() + 1)
}

/// Position of the unique text `anchor` in `src`.
fn loc(src: &str, anchor: &str) -> (usize, usize) {
    assert_eq!(
        src.matches(anchor).count(),
        1,
        "test bug: `{anchor}` must occur exactly once in:\n{src}"
    );
    line_col(src, src.find(anchor).unwrap())
}

/// Position of the first `inner` inside the unique text `anchor` in `src`.
fn loc_in(src: &str, anchor: &str, inner: &str) -> (usize, usize) {
    assert_eq!(
        src.matches(anchor).count(),
        1,
        "test bug: `{anchor}` must occur exactly once in:\n{src}"
    );
    let a = src.find(anchor).unwrap();
    let i = anchor
        .find(inner)
        .unwrap_or_else(|| panic!("test bug: `{inner}` not in `{anchor}`"));
    line_col(src, a + i)
}

/// The result of `costshare check` on a file written from a string.
struct Checked {
    _dir: Dir,
    path: String,
    src: String,
    code: i32,
    stdout: String,
    stderr: String,
}

fn check_src(tag: &str, src: &str) -> Checked {
    let dir = Dir::new(tag);
    let path = dir.file("agreement.toml", src);
    let (code, stdout, stderr) = run(&["check", &path]);
    Checked {
        _dir: dir,
        path,
        src: src.to_string(),
        code,
        stdout,
        stderr,
    }
}

/// Source-excerpt lines of a rendered diagnostic (` 12 |   split = ...`, `   |   ^^^`).
fn is_snippet_line(l: &str) -> bool {
    let t = l.trim_start();
    let t = t.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
    t.starts_with('|')
}

/// Splits stderr into diagnostics, each starting at a line `error...` or `warning...`.
fn blocks(stderr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in stderr.lines() {
        let starts = l.starts_with("error") || l.starts_with("warning");
        if starts || out.is_empty() {
            out.push(String::new());
        }
        let b = out.last_mut().unwrap();
        b.push_str(l);
        b.push('\n');
    }
    out
}

/// `text` contains `needle` not followed by another digit (so `:3:1` does not match `:3:12`).
fn contains_exact(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(i, _)| {
        !text[i + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// The message part of a diagnostic (its source excerpt removed), lower-cased.
fn message_text(block: &str) -> String {
    block
        .lines()
        .filter(|l| !is_snippet_line(l))
        .collect::<Vec<_>>()
        .join("\n")
        .to_lowercase()
}

impl Checked {
    /// Exit 1 and one `error` diagnostic located at one of `at` (each an exact
    /// `FILE:LINE:COLUMN`) whose message (not just the quoted source) mentions every
    /// word of `mentions` (case-insensitive).
    fn expect_error(&self, at: &[(usize, usize)], mentions: &[&str]) {
        self.expect_diag("error", at, mentions);
        assert_eq!(
            self.code, 1,
            "`check` must exit 1\n--- file ---\n{}\n--- stderr ---\n{}",
            self.src, self.stderr
        );
    }

    /// Exit 1 and an error at one of `at` whose message names `word` as a whole word.
    fn expect_error_naming_word(&self, at: &[(usize, usize)], word: &str) {
        let want: Vec<String> = at.iter().map(|(l, c)| format!("{}:{}:{}", self.path, l, c)).collect();
        let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let found = blocks(&self.stderr).into_iter().any(|b| {
            let m = message_text(&b);
            b.starts_with("error")
                && want.iter().any(|w| contains_exact(&b, w))
                && m.match_indices(word)
                    .any(|(i, _)| !is_word(m[..i].chars().next_back()) && !is_word(m[i + word.len()..].chars().next()))
        });
        assert!(
            found && self.code == 1,
            "expected exit 1 and an error at {} naming `{word}`\n--- file ---\n{}\n--- exit {} ---\n--- stderr ---\n{}",
            want.join(" or "),
            numbered(&self.src),
            self.code,
            self.stderr
        );
    }

    fn expect_diag(&self, severity: &str, at: &[(usize, usize)], mentions: &[&str]) {
        let want: Vec<String> = at.iter().map(|(l, c)| format!("{}:{}:{}", self.path, l, c)).collect();
        let found = blocks(&self.stderr).into_iter().any(|b| {
            b.starts_with(severity)
                && want.iter().any(|w| contains_exact(&b, w))
                && mentions.iter().all(|m| message_text(&b).contains(&m.to_lowercase()))
        });
        assert!(
            found,
            "expected an `{severity}` at {} mentioning {:?}\n--- file ---\n{}\n--- exit {} ---\n--- stdout ---\n{}\n--- stderr ---\n{}",
            want.join(" or "),
            mentions,
            numbered(&self.src),
            self.code,
            self.stdout,
            self.stderr
        );
    }

    fn expect_ok(&self) {
        assert_eq!(
            self.code,
            0,
            "`check` must accept this file\n--- file ---\n{}\n--- stderr ---\n{}",
            numbered(&self.src),
            self.stderr
        );
        assert!(!self.stdout.trim().is_empty(), "a one-line summary on stdout");
    }

    fn error_lines(&self) -> usize {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    }
}

fn numbered(src: &str) -> String {
    src.lines()
        .enumerate()
        .map(|(i, l)| format!("{:>3} {l}\n", i + 1))
        .collect()
}

/// Adds a valid `gni` key used by the utilities overflow layer, with extra lines.
fn with_key(src: &str, key_body: &str) -> String {
    let s = edit(
        src,
        "split = { JP = \"0%\", US = \"100%\" }",
        "split = { key = \"gni\" }",
    );
    format!("{s}\n[keys.gni]\n{key_body}")
}

// Costs and rates -----------------------------------------------------------------------

const HEADER: &str = "id,date,category,amount,currency,quantity,site,description\n";

const CLEAN_COSTS: &str = "id,date,category,amount,currency,quantity,site,description
u-apr,2022-04-30,utilities,700,JPY,,Okinawa,April power
u-may,2022-05-31,utilities,600,JPY,,Okinawa,May power
l-apr,2022-04-30,labor,5000,JPY,12,Zama,April payroll
";

/// Allocation of CLEAN_COSTS under BASE.
const CLEAN_ALLOCATION: &str = "id,party,amount
l-apr,JP,2500
l-apr,US,2500
u-apr,JP,700
u-may,JP,300
u-may,US,300
";

const RATES: &str = "date,currency,rate
2022-04-01,USD,130
2022-05-01,USD,131.5
";

/// `allocate --format csv` in a fresh directory holding BASE, `costs` and (if given) `rates`.
struct Allocated {
    _dir: Dir,
    costs: String,
    rates: String,
    input: String,
    code: i32,
    stdout: String,
    stderr: String,
}

fn allocate_with(tag: &str, agreement: &str, costs: &str, rates: Option<&str>) -> Allocated {
    let dir = Dir::new(tag);
    let a = dir.file("agreement.toml", agreement);
    let c = dir.file("costs.csv", costs);
    let mut args = vec![
        "allocate".to_string(),
        "--agreement".into(),
        a,
        "--costs".into(),
        c.clone(),
    ];
    let mut r = String::new();
    if let Some(rates) = rates {
        r = dir.file("rates.csv", rates);
        args.push("--rates".into());
        args.push(r.clone());
    }
    args.push("--format".into());
    args.push("csv".into());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = run(&argv);
    Allocated {
        _dir: dir,
        costs: c,
        rates: r,
        input: format!(
            "--- costs ---\n{}--- rates ---\n{}",
            numbered(costs),
            rates.map(numbered).unwrap_or_default()
        ),
        code,
        stdout,
        stderr,
    }
}

fn allocate(tag: &str, costs: &str, rates: Option<&str>) -> Allocated {
    allocate_with(tag, BASE, costs, rates)
}

/// A stderr line names physical line `line` of `file` (as `FILE:LINE` or `line LINE`).
fn names_line(l: &str, file: &str, line: usize) -> bool {
    contains_exact(l, &format!("{file}:{line}")) || contains_exact(l, &format!("line {line}"))
}

impl Allocated {
    fn expect_failure(&self) {
        assert_eq!(
            self.code, 1,
            "must exit 1\n{}--- stdout ---\n{}--- stderr ---\n{}",
            self.input, self.stdout, self.stderr
        );
        assert!(
            self.stdout.is_empty(),
            "nothing on stdout on failure, got:\n{}\n{}",
            self.stdout,
            self.input
        );
        assert!(!self.stderr.contains("panicked"), "a panic is a bug:\n{}", self.stderr);
    }

    /// Exit 1, nothing on stdout, and a stderr line naming each (physical line, id) of
    /// the costs file, with every `mentions` text on that line.
    fn expect_bad_rows(&self, rows: &[(usize, &str)], mentions: &[&str]) {
        self.expect_failure();
        for (line, id) in rows {
            let ok = self.stderr.lines().any(|l| {
                names_line(l, &self.costs, *line)
                    && l.contains(id)
                    && mentions.iter().all(|m| l.to_lowercase().contains(&m.to_lowercase()))
            });
            assert!(
                ok,
                "expected a message naming `{}` line {line} and id `{id}`, mentioning {mentions:?}\n{}--- stderr ---\n{}",
                self.costs, self.input, self.stderr
            );
        }
    }

    /// Exit 1, nothing on stdout, and a stderr line naming physical `line` of the rates
    /// file, with every `mentions` text on it.
    fn expect_bad_rate_row(&self, line: usize, mentions: &[&str]) {
        self.expect_failure();
        let ok = self.stderr.lines().any(|l| {
            names_line(l, &self.rates, line) && mentions.iter().all(|m| l.to_lowercase().contains(&m.to_lowercase()))
        });
        assert!(
            ok,
            "expected a message naming `{}` line {line}, mentioning {mentions:?}\n{}--- stderr ---\n{}",
            self.rates, self.input, self.stderr
        );
    }

    fn expect_output(&self, want: &str) {
        assert_eq!(
            self.code, 0,
            "must succeed\n{}--- stderr ---\n{}",
            self.input, self.stderr
        );
        assert_eq!(self.stdout, want, "allocation differs\n{}", self.input);
    }
}

/// A costs file with a good row, `bad` at physical line 3, and another good row.
fn one_bad_row(bad: &str) -> String {
    format!(
        "{HEADER}u-apr,2022-04-30,utilities,700,JPY,,Okinawa,April power\n{bad}\nl-apr,2022-04-30,labor,5000,JPY,12,Zama,April payroll\n"
    )
}

/// Runs each (bad row, id, mentions) as its own file (bad row at line 3) and collects
/// every failure, so one report lists all of them.
fn bad_row_cases(tag: &str, cases: &[(&str, &str, &[&str])], rates: Option<&str>) {
    let mut failures = Vec::new();
    for (i, (row, id, mentions)) in cases.iter().enumerate() {
        let r = allocate(&format!("{tag}{i}"), &one_bad_row(row), rates);
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.expect_bad_rows(&[(3, id)], mentions)));
        if let Err(e) = res {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("row `{row}`:\n{msg}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows not rejected correctly:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Runs each closure, collecting failures (for tables of agreement cases).
fn all_cases(cases: Vec<(String, Box<dyn Fn()>)>) {
    let n = cases.len();
    let mut failures = Vec::new();
    for (name, f) in cases {
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("[{name}]\n{msg}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------
// The base files are good
// ---------------------------------------------------------------------------------------

#[test]
fn base_agreement_and_costs_are_valid() {
    check_src("base", BASE).expect_ok();
    allocate("base", CLEAN_COSTS, None).expect_output(CLEAN_ALLOCATION);
}

// ---------------------------------------------------------------------------------------
// Section 3: the agreement file
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_top_level_table() {
    let src = format!("{BASE}\n[extras]\nnote = \"x\"\n");
    let c = check_src("top-table", &src);
    c.expect_error(&[loc(&src, "extras")], &["extras"]);
}

#[test]
fn unknown_top_level_key() {
    let src = format!("version = 2\n{BASE}");
    let c = check_src("top-key", &src);
    c.expect_error(&[(1, 1)], &["version"]);
}

#[test]
fn unknown_field_in_agreement() {
    let src = edit(
        BASE,
        "title = \"Base agreement\"\n",
        "title = \"Base agreement\"\nsigned = \"2022-01-07\"\n",
    );
    let c = check_src("agr-field", &src);
    c.expect_error(&[loc(&src, "signed")], &["signed"]);
}

#[test]
fn unknown_field_in_party() {
    let src = edit(
        BASE,
        "name = \"United States\"\n",
        "name = \"United States\"\ncolour = \"blue\"\n",
    );
    let c = check_src("party-field", &src);
    c.expect_error(&[loc(&src, "colour")], &["colour"]);
}

#[test]
fn unknown_field_in_category() {
    let src = edit(BASE, "unit = \"worker\"\n", "unit = \"worker\"\nunits = \"worker\"\n");
    let c = check_src("cat-field", &src);
    c.expect_error(&[loc_in(&src, "\nunits =", "units")], &["units"]);
}

#[test]
fn unknown_field_in_layer() {
    let src = edit(BASE, "  period = \"month\"\n", "  period = \"month\"\n  priority = 1\n");
    let c = check_src("layer-field", &src);
    c.expect_error(&[loc(&src, "priority")], &["priority"]);
}

#[test]
fn duplicate_layer_id() {
    // layer 1 is named "2", which is layer 2's id by position; both labor layers are named "jp"
    let src = edit(
        BASE,
        "  [[categories.utilities.layers]]\n  split = { JP = \"100%\" }\n",
        "  [[categories.utilities.layers]]\n  id = \"2\"\n  split = { JP = \"100%\" }\n",
    );
    let src = edit(
        &src,
        "  [[categories.labor.layers]]\n  split = { JP = \"60%\", US = \"40%\" }\n",
        "  [[categories.labor.layers]]\n  id = \"jp\"\n  split = { JP = \"60%\", US = \"40%\" }\n",
    );
    let src = edit(
        &src,
        "  [[categories.labor.layers]]\n  split = { US = \"100%\" }\n",
        "  [[categories.labor.layers]]\n  id = \"jp\"\n  split = { US = \"100%\" }\n",
    );
    let c = check_src("layer-id", &src);
    c.expect_error(
        &[loc(&src, "[[categories.utilities.layers]]\n  split = { JP = \"0%\"")],
        &["layer id `2` of layer 2 of category `utilities` is already the id of layer 1"],
    );
    c.expect_error(
        &[loc_in(&src, "id = \"jp\"\n  split = { US", "\"jp\"")],
        &["layer id `jp` of layer 2 of category `labor` is already the id of layer 1"],
    );
}

#[test]
fn unknown_party_in_split() {
    let src = edit(
        BASE,
        "split = { JP = \"60%\", US = \"40%\" }",
        "split = { JP = \"60%\", DE = \"40%\" }",
    );
    let c = check_src("split-party", &src);
    c.expect_error(&[loc(&src, "DE =")], &["DE"]);
}

#[test]
fn shares_not_adding_to_100() {
    let anchor = "split = { JP = \"60%\", US = \"30%\" }";
    let src = edit(BASE, "split = { JP = \"60%\", US = \"40%\" }", anchor);
    let c = check_src("shares", &src);
    c.expect_error(&[loc(&src, anchor), loc_in(&src, anchor, "{")], &["90%", "100%"]);
}

#[test]
fn shares_not_adding_to_100_in_one_fiscal_year_of_a_schedule() {
    let anchor = "split = { FY2022 = { JP = \"60%\", US = \"40%\" }, FY2023 = { JP = \"60%\", US = \"30%\" } }";
    let src = edit(BASE, "split = { JP = \"60%\", US = \"40%\" }", anchor);
    let c = check_src("shares-sched", &src);
    c.expect_error(
        &[
            loc_in(&src, anchor, "FY2023"),
            loc_in(&src, anchor, "{ JP = \"60%\", US = \"30%\" }"),
        ],
        &["90%", "FY2023"],
    );
}

#[test]
fn schedule_gap_without_default() {
    let anchor = "cap = { FY2022 = \"1000\" }";
    let src = edit(BASE, "cap = { FY2022 = \"1000\", FY2023 = \"1000\" }", anchor);
    let c = check_src("gap", &src);
    c.expect_error(&[loc(&src, anchor), loc_in(&src, anchor, "{")], &["FY2023"]);
}

#[test]
fn schedule_gap_in_a_split_schedule() {
    let anchor = "split = { FY2023 = { JP = \"60%\", US = \"40%\" } }";
    let src = edit(BASE, "split = { JP = \"60%\", US = \"40%\" }", anchor);
    let c = check_src("gap-split", &src);
    c.expect_error(&[loc(&src, anchor), loc_in(&src, anchor, "{")], &["FY2022"]);
}

#[test]
fn schedule_label_outside_the_term() {
    let anchor = "cap = { FY2022 = \"1000\", FY2023 = \"1000\", FY2024 = \"1000\" }";
    let src = edit(BASE, "cap = { FY2022 = \"1000\", FY2023 = \"1000\" }", anchor);
    let c = check_src("outside", &src);
    c.expect_error(&[loc_in(&src, anchor, "FY2024")], &["FY2024"]);

    let anchor = "cap = { FY2021 = \"1000\", default = \"1000\" }";
    let src = edit(BASE, "cap = { FY2022 = \"1000\", FY2023 = \"1000\" }", anchor);
    let c = check_src("outside-before", &src);
    c.expect_error(&[loc_in(&src, anchor, "FY2021")], &["FY2021"]);
}

#[test]
fn cap_schedule_on_a_term_period() {
    let anchor = "cap = { FY2022 = \"1000\", FY2023 = \"1000\" }";
    let src = edit(BASE, "period = \"fiscal_year\"", "period = \"term\"");
    let c = check_src("term-sched", &src);
    c.expect_error(&[loc(&src, anchor), loc_in(&src, anchor, "{")], &["term"]);
}

#[test]
fn cap_schedule_holding_only_default_on_a_term_period() {
    let anchor = "cap = { default = \"1000\" }";
    let src = edit(BASE, "cap = { FY2022 = \"1000\", FY2023 = \"1000\" }", anchor);
    let src = edit(&src, "period = \"fiscal_year\"", "period = \"term\"");
    let c = check_src("term-default", &src);
    c.expect_error(&[loc(&src, anchor), loc_in(&src, anchor, "{")], &["term"]);
}

#[test]
fn cap_units_schedule_on_a_term_period() {
    let anchor = "cap_units = { default = 10 }";
    let src = edit(BASE, "cap_units = 10", anchor);
    let src = edit(&src, "period = \"month\"", "period = \"term\"");
    let c = check_src("term-units", &src);
    c.expect_error(&[loc(&src, anchor), loc_in(&src, anchor, "{")], &["term"]);
}

#[test]
fn schedules_that_are_fine() {
    // default covers the gap; plain cap on a term period; split and portion schedules.
    let src = edit(
        BASE,
        "cap = { FY2022 = \"1000\", FY2023 = \"1000\" }",
        "cap = { FY2022 = \"1000\", default = \"2000\" }\n  portion = { FY2023 = \"50%\", default = \"61.5%\" }",
    );
    let src = edit(
        &src,
        "split = { JP = \"60%\", US = \"40%\" }",
        "split = { FY2022 = { JP = \"60%\", US = \"40%\" }, default = { JP = \"0%\", US = \"100%\" } }",
    );
    check_src("sched-ok", &src).expect_ok();
    let src = edit(BASE, "cap = { FY2022 = \"1000\", FY2023 = \"1000\" }", "cap = \"1000\"");
    let src = edit(&src, "period = \"fiscal_year\"", "period = \"term\"");
    check_src("term-ok", &src).expect_ok();
}

#[test]
fn cap_and_cap_units_together() {
    let src = edit(BASE, "cap_units = 10\n", "cap_units = 10\n  cap = \"5000\"\n");
    let c = check_src("cap-both", &src);
    c.expect_error(
        &[loc(&src, "cap = \"5000\""), loc(&src, "cap_units")],
        &["cap_units", "cap"],
    );
}

#[test]
fn cap_units_without_category_unit() {
    let src = edit(BASE, "unit = \"worker\"\n", "");
    let c = check_src("no-unit", &src);
    c.expect_error(&[loc(&src, "cap_units")], &["unit"]);
}

#[test]
fn portion_with_cap_units() {
    let src = edit(BASE, "cap_units = 10\n", "cap_units = 10\n  portion = \"50%\"\n");
    let c = check_src("portion-units", &src);
    c.expect_error(&[loc(&src, "portion"), loc(&src, "\"50%\"")], &["portion"]);
}

#[test]
fn toml_float_money_quantity_and_weight() {
    all_cases(vec![
        (
            "float cap".into(),
            Box::new(|| {
                let src = edit(BASE, "cap = { FY2022 = \"1000\", FY2023 = \"1000\" }", "cap = 1000.0");
                check_src("float-cap", &src).expect_error(&[loc(&src, "1000.0")], &["1000.0"]);
            }),
        ),
        (
            "float cap in a schedule".into(),
            Box::new(|| {
                let src = edit(BASE, "FY2023 = \"1000\" }", "FY2023 = 1000.5 }");
                check_src("float-sched", &src).expect_error(&[loc(&src, "1000.5")], &["1000.5"]);
            }),
        ),
        (
            "float cap_units".into(),
            Box::new(|| {
                let src = edit(BASE, "cap_units = 10", "cap_units = 10.5");
                check_src("float-units", &src).expect_error(&[loc(&src, "10.5")], &["10.5"]);
            }),
        ),
        (
            "float weight".into(),
            Box::new(|| {
                let src = with_key(BASE, "weights = { JP = 1.5, US = \"2\" }\n");
                check_src("float-weight", &src).expect_error(&[loc(&src, "1.5")], &["1.5"]);
            }),
        ),
    ]);
}

#[test]
fn negative_integer_money() {
    let src = edit(BASE, "cap = { FY2022 = \"1000\", FY2023 = \"1000\" }", "cap = -5");
    let c = check_src("neg-cap", &src);
    c.expect_error(&[loc(&src, "-5")], &["-5"]);
}

#[test]
fn money_text_that_is_not_a_plain_decimal() {
    let mut cases: Vec<(String, Box<dyn Fn()>)> = Vec::new();
    for bad in [
        "\"5.00\"",
        "\"-5\"",
        "\"+5\"",
        "\"1e3\"",
        "\"1,000\"",
        "\"abc\"",
        "\"9223372036854775808\"",
    ] {
        cases.push((
            format!("cap = {bad} (JPY)"),
            Box::new(move || {
                let src = edit(
                    BASE,
                    "cap = { FY2022 = \"1000\", FY2023 = \"1000\" }",
                    &format!("cap = {{ FY2022 = {bad}, FY2023 = \"1000\" }}"),
                );
                let text = bad.trim_matches('"');
                check_src("money-text", &src).expect_error(&[loc(&src, bad)], &[text]);
            }),
        ));
    }
    // USD allows two decimals, not three.
    cases.push((
        "cap = \"1.234\" (USD)".into(),
        Box::new(|| {
            let src = edit(BASE, "currency = \"JPY\"", "currency = \"USD\"");
            let src = edit(&src, "FY2023 = \"1000\"", "FY2023 = \"1.234\"");
            check_src("money-usd", &src).expect_error(&[loc(&src, "\"1.234\"")], &["1.234"]);
        }),
    ));
    all_cases(cases);
}

#[test]
fn percent_without_percent_sign() {
    let src = edit(BASE, "split = { JP = \"100%\" }", "split = { JP = \"100\" }");
    let c = check_src("pct-sign", &src);
    c.expect_error(&[loc(&src, "\"100\"")], &["100"]);

    let src = edit(BASE, "split = { JP = \"100%\" }", "split = { JP = 100 }");
    let c = check_src("pct-int", &src);
    // The integer itself is underlined in the excerpt; the message says what is expected.
    c.expect_error(&[loc_in(&src, "split = { JP = 100 }", "100")], &["percent"]);
}

#[test]
fn percent_over_100_or_negative_or_too_precise() {
    all_cases(vec![
        (
            "portion 120%".into(),
            Box::new(|| {
                let src = edit(
                    BASE,
                    "period = \"fiscal_year\"",
                    "period = \"fiscal_year\"\n  portion = \"120%\"",
                );
                check_src("pct-over", &src).expect_error(&[loc(&src, "\"120%\"")], &["120%"]);
            }),
        ),
        (
            "share 150%".into(),
            Box::new(|| {
                let src = edit(BASE, "split = { JP = \"100%\" }", "split = { JP = \"150%\" }");
                check_src("pct-share", &src).expect_error(&[loc(&src, "\"150%\"")], &["150%"]);
            }),
        ),
        (
            "share -10%".into(),
            Box::new(|| {
                let src = edit(
                    BASE,
                    "split = { JP = \"60%\", US = \"40%\" }",
                    "split = { JP = \"110%\", US = \"-10%\" }",
                );
                check_src("pct-neg", &src).expect_error(&[loc(&src, "\"-10%\"")], &["-10%"]);
            }),
        ),
        (
            "portion with 19 decimals".into(),
            Box::new(|| {
                let p = "\"50.0000000000000000001%\"";
                let src = edit(
                    BASE,
                    "period = \"fiscal_year\"",
                    &format!("period = \"fiscal_year\"\n  portion = {p}"),
                );
                check_src("pct-prec", &src).expect_error(&[loc(&src, p)], &["50.0000000000000000001%"]);
            }),
        ),
    ]);
}

#[test]
fn invalid_and_reserved_ids() {
    let mut cases: Vec<(String, Box<dyn Fn()>)> = Vec::new();
    for id in [
        "UNALLOCATED",
        "key",
        "default",
        "FY2022",
        "FY7",
        "\"J P\"",
        "\"9JP\"",
        "\"_JP\"",
        "\"JP!\"",
        "\"Jé\"",
    ] {
        cases.push((
            format!("party {id}"),
            Box::new(move || {
                let src = edit(
                    BASE,
                    "[categories.utilities]",
                    &format!("[parties.{id}]\nname = \"Someone\"\n\n[categories.utilities]"),
                );
                let c = check_src("party-id", &src);
                let anchor = format!("[parties.{id}]");
                c.expect_error(&[loc_in(&src, &anchor, id)], &[id.trim_matches('"')]);
            }),
        ));
    }
    cases.push((
        "category \"bad id\"".into(),
        Box::new(|| {
            let src = format!("{BASE}\n[categories.\"bad id\"]\nname = \"x\"\n  [[categories.\"bad id\".layers]]\n  split = {{ US = \"100%\" }}\n");
            let c = check_src("cat-id", &src);
            c.expect_error(&[loc_in(&src, "[categories.\"bad id\"]\n", "\"bad id\"")], &["bad id"]);
        }),
    ));
    cases.push((
        "category UNALLOCATED".into(),
        Box::new(|| {
            let src = format!("{BASE}\n[categories.UNALLOCATED]\nname = \"x\"\n  [[categories.UNALLOCATED.layers]]\n  split = {{ US = \"100%\" }}\n");
            let c = check_src("cat-reserved", &src);
            c.expect_error(&[loc_in(&src, "[categories.UNALLOCATED]\n", "UNALLOCATED")], &["UNALLOCATED"]);
        }),
    ));
    cases.push((
        "key FY2023".into(),
        Box::new(|| {
            let src = format!("{BASE}\n[keys.FY2023]\nweights = {{ JP = \"1\" }}\n");
            let c = check_src("key-id", &src);
            c.expect_error(&[loc_in(&src, "[keys.FY2023]", "FY2023")], &["FY2023"]);
        }),
    ));
    all_cases(cases);
}

#[test]
fn redefining_a_built_in_currency() {
    for ccy in ["USD", "JPY", "EUR", "AUD", "GBP"] {
        let src = format!("{BASE}\n[currencies]\nKRW = 0\n{ccy} = 3\n");
        let c = check_src("builtin-ccy", &src);
        c.expect_error(&[loc(&src, &format!("{ccy} = 3"))], &[ccy]);
    }
    // Declaring a new one is fine, and it can be the agreement currency.
    let src = edit(BASE, "currency = \"JPY\"", "currency = \"KRW\"");
    check_src("krw-ok", &format!("{src}\n[currencies]\nKRW = 0\n")).expect_ok();
}

#[test]
fn unknown_agreement_currency() {
    let src = edit(BASE, "currency = \"JPY\"", "currency = \"XYZ\"");
    let c = check_src("ccy", &src);
    c.expect_error(&[loc(&src, "\"XYZ\"")], &["XYZ"]);
}

#[test]
fn fiscal_year_start_not_the_first_of_a_month() {
    for bad in ["04-15", "13-01", "4-01", "April", "00-01"] {
        let src = edit(
            BASE,
            "fiscal_year_start = \"04-01\"",
            &format!("fiscal_year_start = \"{bad}\""),
        );
        let c = check_src("fys", &src);
        c.expect_error(&[loc(&src, &format!("\"{bad}\""))], &[bad]);
    }
}

#[test]
fn bad_fiscal_year_label() {
    let src = edit(BASE, "fiscal_year_label = \"start\"", "fiscal_year_label = \"middle\"");
    let c = check_src("fyl", &src);
    c.expect_error(&[loc(&src, "\"middle\"")], &["middle"]);
}

#[test]
fn bad_term_dates() {
    let src = edit(BASE, "end = \"2024-03-31\"", "end = \"2022-03-31\"");
    let c = check_src("end-before", &src);
    c.expect_error(&[loc(&src, "\"2022-03-31\"")], &["2022-03-31"]);

    let src = edit(BASE, "start = \"2022-04-01\"", "start = \"2022-02-30\"");
    let c = check_src("bad-start", &src);
    c.expect_error(&[loc(&src, "\"2022-02-30\"")], &["2022-02-30"]);
}

#[test]
fn term_over_100_fiscal_years() {
    let base = edit(BASE, "cap = { FY2022 = \"1000\", FY2023 = \"1000\" }", "cap = \"1000\"");
    // FY2022..FY2121: exactly 100 fiscal years is fine.
    let src = edit(&base, "end = \"2024-03-31\"", "end = \"2122-03-31\"");
    check_src("term-100", &src).expect_ok();
    // One day more starts FY2122: 101 fiscal years.
    let src = edit(&base, "end = \"2024-03-31\"", "end = \"2122-04-01\"");
    let c = check_src("term-101", &src);
    c.expect_error(&[loc(&src, "\"2122-04-01\""), loc(&src, "end =")], &["100"]);
}

#[test]
fn unknown_key_name_in_split() {
    let anchor = "split = { key = \"nokey\" }";
    let src = edit(BASE, "split = { JP = \"0%\", US = \"100%\" }", anchor);
    let c = check_src("nokey", &src);
    c.expect_error(&[loc_in(&src, anchor, "\"nokey\"")], &["nokey"]);
}

#[test]
fn key_mixed_with_parties_in_split() {
    let src = with_key(BASE, "weights = { JP = \"1\", US = \"1\" }\n");
    let anchor = "split = { key = \"gni\", JP = \"50%\" }";
    let src = edit(&src, "split = { key = \"gni\" }", anchor);
    let c = check_src("key-mix", &src);
    c.expect_error(
        &[
            loc(&src, anchor),
            loc_in(&src, anchor, "{"),
            loc_in(&src, anchor, "JP"),
            loc_in(&src, anchor, "key"),
        ],
        &["key"],
    );
}

/// Where an infeasible-bounds error may sensibly point: the key's name, or its
/// `min`/`max` key or value.
fn key_spots(src: &str) -> Vec<(usize, usize)> {
    let mut v = vec![loc_in(src, "[keys.gni]", "gni")];
    for k in ["min = ", "max = "] {
        if src.contains(k) {
            v.push(loc(src, k));
            v.push(loc_in(src, &src[src.find(k).unwrap()..], "{"));
        }
    }
    v
}

#[test]
fn infeasible_key_bounds() {
    all_cases(vec![
        (
            "sum of min over 100%".into(),
            Box::new(|| {
                let src = with_key(
                    BASE,
                    "weights = { JP = \"1\", US = \"1\" }\nmin = { JP = \"60%\", US = \"50%\" }\n",
                );
                check_src("key-min", &src).expect_error(&key_spots(&src), &["gni"]);
            }),
        ),
        (
            "sum of max under 100%".into(),
            Box::new(|| {
                let src = with_key(
                    BASE,
                    "weights = { JP = \"1\", US = \"1\" }\nmax = { JP = \"30%\", US = \"30%\" }\n",
                );
                check_src("key-max", &src).expect_error(&key_spots(&src), &["gni"]);
            }),
        ),
        (
            "max too low: the only weighted party is capped, the other has weight 0".into(),
            Box::new(|| {
                let src = with_key(BASE, "weights = { JP = \"1\" }\nmax = { JP = \"50%\" }\n");
                check_src("key-max0", &src).expect_error(&key_spots(&src), &["gni"]);
            }),
        ),
        (
            "min above max".into(),
            Box::new(|| {
                let src = with_key(
                    BASE,
                    "weights = { JP = \"1\", US = \"1\" }\nmin = { JP = \"60%\" }\nmax = { JP = \"50%\" }\n",
                );
                check_src("key-minmax", &src).expect_error(&key_spots(&src), &["gni", "JP"]);
            }),
        ),
        (
            "infeasible in one fiscal year only".into(),
            Box::new(|| {
                let src = with_key(
                    BASE,
                    "weights = { FY2022 = { JP = \"1\", US = \"1\" }, FY2023 = { JP = \"1\" } }\nmax = { JP = \"50%\" }\n",
                );
                let mut spots = key_spots(&src);
                spots.push(loc_in(&src, "FY2023 = { JP = \"1\" }", "FY2023"));
                spots.push(loc_in(&src, "FY2023 = { JP = \"1\" }", "{"));
                check_src("key-year", &src).expect_error(&spots, &["gni", "FY2023"]);
            }),
        ),
        (
            "feasible bounds are fine".into(),
            Box::new(|| {
                let src = with_key(
                    BASE,
                    "weights = { JP = \"400\", US = \"10\" }\nmax = { JP = \"20%\" }\nmin = { US = \"5%\" }\n",
                );
                check_src("key-ok", &src).expect_ok();
            }),
        ),
    ]);
}

#[test]
fn invalid_toml_syntax() {
    let src = edit(BASE, "title = \"Base agreement\"", "title = = \"Base agreement\"");
    let c = check_src("syntax", &src);
    c.expect_error(&[loc_in(&src, "title = = \"Base", "= \"")], &[]);

    let src = edit(BASE, "id = \"base\"", "id = \"base");
    let c = check_src("syntax2", &src);
    assert_eq!(c.code, 1, "{}", c.stderr);
    assert!(
        c.stderr.contains(&format!("{}:2:", c.path)),
        "an unterminated string on line 2 is reported at line 2:\n{}",
        c.stderr
    );
}

#[test]
fn missing_required_fields() {
    all_cases(vec![
        (
            "agreement id, currency, start, end".into(),
            Box::new(|| {
                let mut src = BASE.to_string();
                for l in [
                    "id = \"base\"\n",
                    "currency = \"JPY\"\n",
                    "start = \"2022-04-01\"\n",
                    "end = \"2024-03-31\"\n",
                ] {
                    src = edit(&src, l, "");
                }
                let c = check_src("missing", &src);
                for f in ["id", "currency", "start", "end"] {
                    c.expect_error_naming_word(&[(1, 1), (1, 2)], f);
                }
            }),
        ),
        (
            "layer split".into(),
            Box::new(|| {
                let src = edit(BASE, "  split = { US = \"100%\" }\n", "  # no split\n");
                let c = check_src("missing-split", &src);
                let header = "  [[categories.labor.layers]]\n  # no split\n";
                c.expect_error(
                    &[loc_in(&src, header, "[["), loc_in(&src, header, "categories")],
                    &["split"],
                );
            }),
        ),
        (
            "no [agreement] table at all".into(),
            Box::new(|| {
                let src = edit(
                    BASE,
                    "[agreement]\nid = \"base\"\ntitle = \"Base agreement\"\ncurrency = \"JPY\"\nstart = \"2022-04-01\"\nend = \"2024-03-31\"\nfiscal_year_start = \"04-01\"\nfiscal_year_label = \"start\"\n",
                    "",
                );
                let c = check_src("missing-agr", &src);
                assert_eq!(c.code, 1, "{}", c.stderr);
                assert!(c.stderr.contains("agreement"), "{}", c.stderr);
                assert!(!c.stderr.contains("panicked"), "{}", c.stderr);
            }),
        ),
    ]);
}

#[test]
fn wrong_types_never_panic() {
    let cases = [
        ("[parties.JP]\nname = \"Government of Japan\"\n", "parties = 5\n"),
        ("  split = { US = \"100%\" }\n", "  split = \"US\"\n"),
        ("cap_units = 10", "cap_units = [10]"),
        ("period = \"month\"", "period = \"week\""),
        (
            "period = \"fiscal_year\"",
            "period = \"fiscal_year\"\n  cap_policy = \"greedy\"",
        ),
        ("unit = \"worker\"", "unit = 3"),
        ("start = \"2022-04-01\"", "start = 20220401"),
        ("split = { JP = \"100%\" }", "split = { }"),
    ];
    let mut failures = Vec::new();
    for (i, (from, to)) in cases.iter().enumerate() {
        let src = edit(BASE, from, to);
        let c = check_src(&format!("types{i}"), &src);
        if c.code != 1 || c.stderr.contains("panicked") || !c.stderr.contains(&format!("{}:", c.path)) {
            failures.push(format!("`{to}`: exit {}\n{}", c.code, c.stderr));
        }
    }
    assert!(
        failures.is_empty(),
        "not rejected with a located error:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_problem_reported_in_one_run() {
    let mut src = BASE.to_string();
    src = edit(
        &src,
        "title = \"Base agreement\"\n",
        "title = \"Base agreement\"\nsigned = \"2022-01-07\"\n",
    );
    src = edit(
        &src,
        "name = \"United States\"\n",
        "name = \"United States\"\ncolour = \"blue\"\n",
    );
    src = edit(&src, "cap = { FY2022 = \"1000\", FY2023 = \"1000\" }", "cap = 1000.0");
    src = edit(
        &src,
        "split = { JP = \"60%\", US = \"40%\" }",
        "split = { JP = \"60%\", DE = \"40%\" }",
    );
    src = edit(&src, "  split = { US = \"100%\" }", "  split = { US = \"100\" }");
    src = edit(&src, "fiscal_year_label = \"start\"", "fiscal_year_label = \"middle\"");
    src.push_str("\n[extras]\nnote = 1\n");
    let c = check_src("many", &src);
    c.expect_error(&[loc(&src, "signed")], &["signed"]);
    c.expect_error(&[loc(&src, "colour")], &["colour"]);
    c.expect_error(&[loc(&src, "1000.0")], &["1000.0"]);
    c.expect_error(&[loc(&src, "DE =")], &["DE"]);
    c.expect_error(&[loc(&src, "\"100\"")], &["100"]);
    c.expect_error(&[loc(&src, "\"middle\"")], &["middle"]);
    c.expect_error(&[loc(&src, "extras")], &["extras"]);
    assert!(
        c.error_lines() >= 7,
        "seven distinct problems, {} `error:` lines:\n{}",
        c.error_lines(),
        c.stderr
    );
}

#[test]
fn period_and_cap_policy_on_an_uncapped_layer_only_warn() {
    let src = edit(
        BASE,
        "  split = { US = \"100%\" }\n",
        "  split = { US = \"100%\" }\n  period = \"quarter\"\n  cap_policy = \"pro_rata\"\n",
    );
    let c = check_src("warn", &src);
    c.expect_ok();
    c.expect_diag("warning", &[loc(&src, "period = \"quarter\"")], &["period"]);
    c.expect_diag("warning", &[loc(&src, "cap_policy")], &["cap_policy"]);
    assert!(!c.stderr.contains("error"), "warnings only:\n{}", c.stderr);
    // Still allocates, with the warning not turning into a failure.
    let r = allocate_with("warn", &src, CLEAN_COSTS, None);
    r.expect_output(CLEAN_ALLOCATION);
}

#[test]
fn allocate_with_a_bad_agreement_fails_with_its_location() {
    let src = edit(
        BASE,
        "split = { JP = \"60%\", US = \"40%\" }",
        "split = { JP = \"60%\", DE = \"40%\" }",
    );
    let r = allocate_with("alloc-bad-agr", &src, CLEAN_COSTS, None);
    r.expect_failure();
    let (l, col) = loc(&src, "DE =");
    assert!(
        contains_exact(&r.stderr, &format!("agreement.toml:{l}:{col}")),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------------------
// Sections 4 and 6: costs and rates
// ---------------------------------------------------------------------------------------

#[test]
fn bad_dates_and_categories() {
    bad_row_cases(
        "dates",
        &[
            (
                "bad-after,2024-04-01,utilities,100,JPY,,,",
                "bad-after",
                &["2024-04-01"],
            ),
            (
                "bad-before,2022-03-31,utilities,100,JPY,,,",
                "bad-before",
                &["2022-03-31"],
            ),
            (
                "bad-feb30,2022-02-30,utilities,100,JPY,,,",
                "bad-feb30",
                &["2022-02-30"],
            ),
            (
                "bad-slash,2022/04/30,utilities,100,JPY,,,",
                "bad-slash",
                &["2022/04/30"],
            ),
            ("bad-short,2022-4-30,utilities,100,JPY,,,", "bad-short", &["2022-4-30"]),
            ("bad-nodate,,utilities,100,JPY,,,", "bad-nodate", &["date"]),
            ("bad-cat,2022-04-30,water,100,JPY,,,", "bad-cat", &["water"]),
            (
                "bad-cat-case,2022-04-30,Utilities,100,JPY,,,",
                "bad-cat-case",
                &["Utilities"],
            ),
        ],
        None,
    );
}

#[test]
fn bad_amounts() {
    bad_row_cases(
        "amounts",
        &[
            ("bad-neg,2022-04-30,utilities,-5,JPY,,,", "bad-neg", &["-5"]),
            ("bad-jpy-dec,2022-04-30,utilities,5.00,JPY,,,", "bad-jpy-dec", &["5.00"]),
            (
                "bad-jpy-dec-default,2022-04-30,utilities,5.5,,,,",
                "bad-jpy-dec-default",
                &["5.5"],
            ),
            (
                "bad-usd-dec,2022-04-30,utilities,1.234,USD,,,",
                "bad-usd-dec",
                &["1.234"],
            ),
            ("bad-plus,2022-04-30,utilities,+5,JPY,,,", "bad-plus", &["+5"]),
            ("bad-exp,2022-04-30,utilities,1e3,JPY,,,", "bad-exp", &["1e3"]),
            (
                "bad-thousands,2022-04-30,utilities,\"1,000\",JPY,,,",
                "bad-thousands",
                &["1,000"],
            ),
            (
                "bad-underscore,2022-04-30,utilities,1_000,JPY,,,",
                "bad-underscore",
                &["1_000"],
            ),
            (
                "bad-inner-space,2022-04-30,utilities,7 00,JPY,,,",
                "bad-inner-space",
                &["7 00"],
            ),
            (
                "bad-two-dots,2022-04-30,utilities,1.2.3,USD,,,",
                "bad-two-dots",
                &["1.2.3"],
            ),
            ("bad-text,2022-04-30,utilities,abc,JPY,,,", "bad-text", &["abc"]),
            ("bad-empty,2022-04-30,utilities,,JPY,,,", "bad-empty", &["amount"]),
            (
                "bad-huge,2022-04-30,utilities,9223372036854775808,JPY,,,",
                "bad-huge",
                &["9223372036854775808"],
            ),
            (
                "bad-huge-usd,2022-04-30,utilities,92233720368547758.08,USD,,,",
                "bad-huge-usd",
                &["92233720368547758.08"],
            ),
        ],
        Some(RATES),
    );
}

#[test]
fn bad_quantities() {
    bad_row_cases(
        "qty",
        &[
            ("bad-noqty,2022-05-31,labor,100,JPY,,,", "bad-noqty", &["quantity"]),
            ("bad-zeroqty,2022-05-31,labor,100,JPY,0,,", "bad-zeroqty", &["quantity"]),
            (
                "bad-zeroqty2,2022-05-31,labor,100,JPY,0.00,,",
                "bad-zeroqty2",
                &["quantity"],
            ),
            ("bad-negqty,2022-05-31,labor,100,JPY,-1,,", "bad-negqty", &["-1"]),
            ("bad-textqty,2022-05-31,labor,100,JPY,many,,", "bad-textqty", &["many"]),
            (
                "bad-precise-qty,2022-05-31,labor,100,JPY,1.0000000000000000001,,",
                "bad-precise-qty",
                &["1.0000000000000000001"],
            ),
        ],
        None,
    );
}

#[test]
fn quantity_is_ignored_where_the_category_has_no_unit() {
    let costs = format!("{CLEAN_COSTS}u-jun,2022-06-30,utilities,0,JPY,,Okinawa,June\n");
    let r = allocate("qty-ignored", &costs.replace("700,JPY,,", "700,JPY,3,"), None);
    r.expect_output(CLEAN_ALLOCATION);
}

#[test]
fn a_quantity_present_is_checked_even_where_the_category_has_no_unit() {
    bad_row_cases(
        "qty-no-unit",
        &[
            (
                "bad-qty-text,2022-04-30,utilities,100,JPY,abc,,",
                "bad-qty-text",
                &["quantity `abc`"],
            ),
            (
                "bad-qty-neg,2022-04-30,utilities,100,JPY,-3,,",
                "bad-qty-neg",
                &["quantity `-3`"],
            ),
        ],
        None,
    );
}

#[test]
fn a_field_over_its_length_limit_is_one_problem_and_is_not_echoed() {
    // limits: 256 bytes for id, replaces and site; 4,096 for the others
    let long_id = "i".repeat(257);
    let desc = "d".repeat(4097);
    let site = "s".repeat(300);
    let cases: Vec<(String, String, Vec<&str>)> = vec![
        (
            format!("{long_id},2022-04-30,utilities,100,JPY,,,"),
            "i".repeat(64),
            vec!["id is 257 bytes", "limit is 256"],
        ),
        (
            format!("long-desc,2022-04-30,utilities,100,JPY,,,{desc}"),
            "long-desc".into(),
            vec!["description is 4097 bytes", "limit is 4096"],
        ),
        (
            format!("long-site,2022-04-30,utilities,100,JPY,,{site},"),
            "long-site".into(),
            vec!["site is 300 bytes"],
        ),
    ];
    for (i, (row, id, mentions)) in cases.iter().enumerate() {
        let r = allocate(&format!("long{i}"), &one_bad_row(row), None);
        r.expect_bad_rows(&[(3, id)], mentions);
        // the oversized text is never written back whole
        assert!(r.stderr.len() < 1000, "stderr echoes the field:\n{}", r.stderr);
    }
    // a field at its limit is fine
    let at_limit = format!(
        "{},2022-04-30,utilities,100,JPY,,,{}",
        "i".repeat(256),
        "d".repeat(4096)
    );
    let r = allocate("long-ok", &format!("{HEADER}{at_limit}\n"), None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // a rate field over 256 bytes names the rates file's line
    let rates = format!(
        "date,currency,rate\n2022-04-01,USD,130\n2022-04-02,USD,{}\n",
        "1".repeat(5000)
    );
    let r = allocate(
        "long-rate",
        &format!("{HEADER}x,2022-04-30,utilities,1.00,USD,,,\n"),
        Some(&rates),
    );
    r.expect_bad_rate_row(3, &["rate is 5000 bytes"]);
    assert!(r.stderr.len() < 1000, "stderr echoes the field:\n{}", r.stderr);
}

#[test]
fn unknown_currency_and_missing_rates() {
    bad_row_cases(
        "ccy",
        &[
            ("bad-ccy,2022-04-30,utilities,100,XYZ,,,", "bad-ccy", &["XYZ"]),
            // The rates start on 2022-04-01.
            ("bad-early,2022-04-01,utilities,100,EUR,,,", "bad-early", &["EUR"]),
        ],
        Some(RATES),
    );
    let rates = "date,currency,rate\n2022-04-02,USD,130\n";
    let r = allocate(
        "norate",
        &one_bad_row("bad-norate,2022-04-01,utilities,1.00,USD,,,"),
        Some(rates),
    );
    r.expect_bad_rows(&[(3, "bad-norate")], &["USD"]);
    // Without a rates file at all.
    let r = allocate(
        "norates",
        &one_bad_row("bad-norates,2022-04-30,utilities,1.00,USD,,,"),
        None,
    );
    r.expect_bad_rows(&[(3, "bad-norates")], &["USD"]);
}

#[test]
fn rates_convert_with_the_latest_rate_on_or_before_the_date() {
    // 12.34 USD at 130 = 1604.2 -> 1604; 0.10 USD at 131.5 = 13.15 -> 13.
    let costs =
        "id,date,category,amount,currency\nx1,2022-04-30,utilities,12.34,USD\nx2,2022-05-01,utilities,0.10,USD\n";
    let rates = "date,currency,rate\n2022-05-01,USD,131.5\n2022-04-01,USD,130\n2022-04-01,JPY,1\n";
    let r = allocate("fx-ok", costs, Some(rates));
    r.expect_output("id,party,amount\nx1,JP,1000\nx1,US,604\nx2,US,13\n");
}

#[test]
fn three_bad_rows_among_good_ones_with_an_embedded_newline() {
    let costs = "id,date,category,amount,currency,quantity,site,description
good-a,2022-04-30,utilities,700,JPY,,Okinawa,\"April
power, two lines\"
bad-x,2024-04-01,utilities,100,JPY,,Okinawa,late
good-b,2022-05-31,utilities,600,JPY,,Okinawa,May power
bad-y,2022-05-31,water,100,JPY,,,unknown category
good-c,2022-04-30,labor,5000,JPY,12,Zama,April payroll
bad-z,2022-05-31,labor,5000,JPY,,Zama,no quantity
";
    let r = allocate("three", costs, None);
    r.expect_bad_rows(&[(4, "bad-x"), (6, "bad-y"), (8, "bad-z")], &[]);
    for good in ["good-a", "good-b", "good-c"] {
        assert!(!r.stderr.contains(good), "good row `{good}` named:\n{}", r.stderr);
    }
    assert!(
        !contains_exact(&r.stderr, &format!("{}:3", r.costs)),
        "record numbers are not physical line numbers:\n{}",
        r.stderr
    );
}

#[test]
fn same_id_twice() {
    // Different values: an error naming the second occurrence.
    let costs = format!(
        "{HEADER}dup-1,2022-04-30,utilities,700,JPY,,Okinawa,April power\nok-2,2022-05-31,utilities,600,JPY,,Okinawa,May power\ndup-1,2022-04-30,utilities,701,JPY,,Okinawa,April power\n"
    );
    let r = allocate("dup-diff", &costs, None);
    r.expect_bad_rows(&[(4, "dup-1")], &[]);

    // Different description is a different value too.
    let costs = format!(
        "{HEADER}dup-2,2022-04-30,utilities,700,JPY,,Okinawa,April power\ndup-2,2022-04-30,utilities,700,JPY,,Okinawa,April power (corrected)\n"
    );
    let r = allocate("dup-desc", &costs, None);
    r.expect_bad_rows(&[(3, "dup-2")], &[]);

    // Same values: one line, allocated once.
    let costs = format!("{CLEAN_COSTS}u-may,2022-05-31,utilities,600,JPY,,Okinawa,May power\n");
    allocate("dup-same", &costs, None).expect_output(CLEAN_ALLOCATION);
}

#[test]
fn same_id_with_equal_parsed_values_is_one_line() {
    // `12.3` and `12.30` USD are the same amount; an empty currency is the agreement's;
    // `12` and `12.0` are the same quantity; surrounding spaces are trimmed.
    let costs = format!(
        "{CLEAN_COSTS}u-apr,2022-04-30,utilities, 700 ,,,Okinawa,April power\nl-apr,2022-04-30,labor,5000,JPY,12.0,Zama,April payroll\n"
    );
    allocate("dup-parsed", &costs, None).expect_output(CLEAN_ALLOCATION);
    let costs = "id,date,category,amount,currency\nx,2022-04-30,utilities,12.3,USD\nx,2022-04-30,utilities,12.30,USD\n";
    allocate("dup-usd", costs, Some(RATES)).expect_output("id,party,amount\nx,JP,1000\nx,US,599\n");
}

#[test]
fn replaces_a_line_not_in_the_file() {
    let costs = "id,date,category,amount,currency,replaces
u-apr,2022-04-30,utilities,700,JPY,
fix-1,2022-04-30,utilities,650,JPY,no-such-line
";
    let r = allocate("replaces-bad", costs, None);
    r.expect_bad_rows(&[(3, "fix-1")], &["no-such-line"]);

    // A correction that names a line in the file drops that line.
    let costs = "id,date,category,amount,currency,replaces
u-apr,2022-04-30,utilities,700,JPY,
fix-1,2022-04-30,utilities,650,JPY,u-apr
";
    allocate("replaces-ok", costs, None).expect_output("id,party,amount\nfix-1,JP,650\n");
}

#[test]
fn missing_required_header_column() {
    let full = ["id", "date", "category", "amount"];
    let values = ["m1", "2022-04-30", "utilities", "700"];
    for (i, col) in full.iter().enumerate() {
        let header: Vec<&str> = full
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| *c)
            .collect();
        let row: Vec<&str> = values
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| *c)
            .collect();
        let costs = format!("{}\n{}\n", header.join(","), row.join(","));
        let r = allocate("header", &costs, None);
        r.expect_failure();
        assert!(
            r.stderr.lines().any(|l| l.contains(&r.costs) && l.contains(col)),
            "missing column `{col}` must be named with the file:\n{}",
            r.stderr
        );
    }
    // An empty file has no header at all.
    let r = allocate("empty", "", None);
    r.expect_failure();
    assert!(r.stderr.contains(&r.costs), "{}", r.stderr);
}

#[test]
fn totals_beyond_i64_are_an_error_not_a_wrap() {
    // One amount at the very limit is fine.
    let costs = "id,date,category,amount\nbig,2022-04-30,utilities,9223372036854775807\n";
    allocate("max", costs, None).expect_output("id,party,amount\nbig,JP,1000\nbig,US,9223372036854774807\n");
    // Two of them overflow the total.
    let costs = "id,date,category,amount\nbig1,2022-04-30,utilities,9223372036854775807\nbig2,2022-05-31,utilities,9223372036854775807\n";
    allocate("sum-over", costs, None).expect_failure();
    let dir = Dir::new("sum-over-report");
    let a = dir.file("agreement.toml", BASE);
    let c = dir.file("costs.csv", costs);
    for extra in [
        &["report", "--by", "party", "--format", "csv"][..],
        &["allocate", "--format", "table"],
        &["allocate", "--format", "json"],
    ] {
        let mut args = vec![extra[0], "--agreement", &a, "--costs", &c];
        args.extend_from_slice(&extra[1..]);
        let (code, out, err) = run(&args);
        assert_eq!(code, 1, "{args:?} must fail: the totals pass the limit\n{out}{err}");
        assert!(out.is_empty(), "{args:?}: nothing on stdout\n{out}");
    }
    // A conversion past the limit names its line.
    let costs = "id,date,category,amount,currency\nok,2022-04-30,utilities,1,JPY\nbig-usd,2022-04-30,utilities,92233720368547758.07,USD\n";
    allocate("fx-over", costs, Some(RATES)).expect_bad_rows(&[(3, "big-usd")], &[]);
}

#[test]
fn bad_rates_files() {
    let costs = "id,date,category,amount,currency\nx1,2022-04-30,utilities,12.34,USD\n";
    let mut failures = Vec::new();
    let cases: &[(&str, usize, &[&str])] = &[
        (
            "date,currency,rate\n2022-04-01,USD,130\n2022-04-01,USD,131\n",
            3,
            &["USD", "2022-04-01"],
        ),
        (
            "date,currency,rate\n2022-04-01,USD,130\n2022-04-01, USD ,130\n",
            3,
            &["USD"],
        ),
        ("date,currency,rate\n2022-04-01,USD,abc\n", 2, &["abc"]),
        (
            "date,currency,rate\n2022-03-01,EUR,140\n2022-04-01,USD,-130\n",
            3,
            &["-130"],
        ),
        ("date,currency,rate\n2022-04-01,USD,1e2\n", 2, &["1e2"]),
        ("date,currency,rate\n2022-04-01,USD,\"1,300\"\n", 2, &["1,300"]),
        ("date,currency,rate\n2022-04-01,USD,0\n", 2, &["0"]),
        ("date,currency,rate\n2022-04-01,USD,0.000\n", 2, &["0.000"]),
        ("date,currency,rate\n2022-04-01,USD,\n", 2, &["rate"]),
        ("date,currency,rate\n2022-04-31,USD,130\n", 2, &["2022-04-31"]),
        (
            "date,currency,rate\n2022-04-01,USD,130.0000000000000000001\n",
            2,
            &["130.0000000000000000001"],
        ),
    ];
    for (i, (rates, line, mentions)) in cases.iter().enumerate() {
        let r = allocate(&format!("rates{i}"), costs, Some(rates));
        if let Err(e) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.expect_bad_rate_row(*line, mentions)))
        {
            let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
            failures.push(msg);
        }
    }
    // A rates file without its header columns.
    let r = allocate("rates-header", costs, Some("date,rate\n2022-04-01,130\n"));
    if r.code != 1 || !r.stdout.is_empty() || !r.stderr.contains("currency") {
        failures.push(format!(
            "rates without `currency` column: exit {}\n{}",
            r.code, r.stderr
        ));
    }
    assert!(
        failures.is_empty(),
        "{} of {} rates files not rejected correctly:\n\n{}",
        failures.len(),
        cases.len() + 1,
        failures.join("\n\n")
    );
}

#[test]
fn bad_rows_fail_report_and_explain_too() {
    let dir = Dir::new("report-bad");
    let a = dir.file("agreement.toml", BASE);
    let c = dir.file("costs.csv", one_bad_row("bad-r,2024-04-01,utilities,100,JPY,,,"));
    let (code, out, err) = run(&[
        "report",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--by",
        "party",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.lines().any(|l| names_line(l, &c, 3) && l.contains("bad-r")),
        "{err}"
    );
    let (code, out, err) = run(&["explain", "--agreement", &a, "--costs", &c, "--id", "u-apr"]);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.lines().any(|l| names_line(l, &c, 3) && l.contains("bad-r")),
        "{err}"
    );
}

#[test]
fn messy_but_valid_costs_give_the_same_allocation() {
    let mut messy: Vec<u8> = vec![0xEF, 0xBB, 0xBF];
    for line in [
        " description , amount,note, id ,quantity,category,site,date,currency",
        " May power , 600 ,x, u-may ,, utilities , Okinawa , 2022-05-31 , JPY ",
        "April payroll, 5000 ,\"y, z\",l-apr, 12 ,labor,Zama,2022-04-30,",
        "\"April power\",700,, u-apr,,utilities,Okinawa,2022-04-30,JPY",
    ] {
        messy.extend_from_slice(line.as_bytes());
        messy.extend_from_slice(b"\r\n");
    }
    let dir = Dir::new("messy");
    let a = dir.file("agreement.toml", BASE);
    let clean = dir.file("clean.csv", CLEAN_COSTS);
    let m = dir.file("messy.csv", &messy);
    let (c1, o1, e1) = run(&["allocate", "--agreement", &a, "--costs", &clean, "--format", "csv"]);
    let (c2, o2, e2) = run(&["allocate", "--agreement", &a, "--costs", &m, "--format", "csv"]);
    assert_eq!(c1, 0, "{e1}");
    assert_eq!(
        c2, 0,
        "BOM, CRLF, shuffled/extra columns and spaces are all allowed:\n{e2}"
    );
    assert_eq!(o1, CLEAN_ALLOCATION);
    assert_eq!(o2, o1, "messy file allocates differently");
    // The same holds for an agreement file with CRLF line ends.
    let a2 = dir.file("crlf.toml", BASE.replace('\n', "\r\n"));
    let (c3, o3, e3) = run(&["allocate", "--agreement", &a2, "--costs", &m, "--format", "csv"]);
    assert_eq!(c3, 0, "{e3}");
    assert_eq!(o3, o1);
}

// ---------------------------------------------------------------------------------------
// Section 7: usage errors and unreadable files
// ---------------------------------------------------------------------------------------

#[test]
fn usage_errors_exit_2() {
    let dir = Dir::new("usage");
    let a = dir.file("agreement.toml", BASE);
    let c = dir.file("costs.csv", CLEAN_COSTS);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "allocate",
                "--agreement",
                &a,
                "--costs",
                &c,
                "--format",
                "csv",
                "--bogus",
            ],
            "--bogus",
        ),
        (
            vec!["allocate", "--agreement", &a, "--costs", &c, "--format", "xml"],
            "xml",
        ),
        (
            vec![
                "report",
                "--agreement",
                &a,
                "--costs",
                &c,
                "--by",
                "party",
                "--format",
                "xml",
            ],
            "xml",
        ),
        (
            vec![
                "report",
                "--agreement",
                &a,
                "--costs",
                &c,
                "--by",
                "party,planet",
                "--format",
                "csv",
            ],
            "planet",
        ),
        (
            vec![
                "report",
                "--agreement",
                &a,
                "--costs",
                &c,
                "--by",
                "party,party",
                "--format",
                "csv",
            ],
            "party",
        ),
        (
            vec![
                "report",
                "--agreement",
                &a,
                "--costs",
                &c,
                "--by",
                "fiscal_year,category,fiscal_year",
                "--format",
                "csv",
            ],
            "fiscal_year",
        ),
        (
            vec![
                "report",
                "--agreement",
                &a,
                "--costs",
                &c,
                "--by",
                "Party",
                "--format",
                "csv",
            ],
            "Party",
        ),
        (
            vec![
                "report",
                "--agreement",
                &a,
                "--costs",
                &c,
                "--by",
                "",
                "--format",
                "csv",
            ],
            "",
        ),
        (
            vec!["report", "--agreement", &a, "--costs", &c, "--format", "csv"],
            "--by",
        ),
        (vec!["allocate", "--costs", &c, "--format", "csv"], "--agreement"),
        (vec!["allocate", "--agreement", &a, "--format", "csv"], "--costs"),
        (vec!["explain", "--agreement", &a, "--costs", &c], "--id"),
        (vec!["check"], ""),
        (vec!["frobnicate"], "frobnicate"),
        (vec![], ""),
    ];
    let mut failures = Vec::new();
    for (args, mention) in &cases {
        let (code, out, err) = run(args);
        if code != 2 || !err.contains(mention) || err.contains("panicked") {
            failures.push(format!(
                "{args:?}: exit {code} (want 2, stderr naming `{mention}`)\nstdout: {out}\nstderr: {err}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn good_dims_are_accepted() {
    let dir = Dir::new("dims");
    let a = dir.file("agreement.toml", BASE);
    let c = dir.file("costs.csv", CLEAN_COSTS);
    let (code, out, err) = run(&[
        "report",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--by",
        "month,site,category,fiscal_year,party",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("month,site,category,fiscal_year,party,amount\n"),
        "{out}"
    );
}

#[test]
fn missing_or_unreadable_files_exit_1_naming_the_file() {
    let dir = Dir::new("missing");
    let a = dir.file("agreement.toml", BASE);
    let c = dir.file("costs.csv", CLEAN_COSTS);
    let missing = dir.path("no-such-file.csv");
    let missing_toml = dir.path("no-such-agreement.toml");
    let a_dir = dir.0.to_string_lossy().into_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["check", &missing_toml], missing_toml.as_str()),
        (vec!["check", &a_dir], &a_dir),
        (
            vec![
                "allocate",
                "--agreement",
                &missing_toml,
                "--costs",
                &c,
                "--format",
                "csv",
            ],
            &missing_toml,
        ),
        (
            vec!["allocate", "--agreement", &a, "--costs", &missing, "--format", "csv"],
            &missing,
        ),
        (
            vec!["allocate", "--agreement", &a, "--costs", &a_dir, "--format", "csv"],
            &a_dir,
        ),
        (
            vec![
                "allocate",
                "--agreement",
                &a,
                "--costs",
                &c,
                "--rates",
                &missing,
                "--format",
                "csv",
            ],
            &missing,
        ),
        (
            vec![
                "report",
                "--agreement",
                &a,
                "--costs",
                &missing,
                "--by",
                "party",
                "--format",
                "csv",
            ],
            &missing,
        ),
        (
            vec!["explain", "--agreement", &a, "--costs", &missing, "--id", "u-apr"],
            &missing,
        ),
    ];
    let mut failures = Vec::new();
    for (args, path) in &cases {
        let (code, out, err) = run(args);
        if code != 1 || !out.is_empty() || !err.contains(path) {
            failures.push(format!(
                "{args:?}: exit {code} (want 1, stderr naming `{path}`)\nstdout: {out}\nstderr: {err}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn crlf_files_report_physical_line_numbers() {
    // BOM and CRLF: the header is line 1, `ok-1` line 2, `bad-3` line 3, `ok-4` spans
    // lines 4-5 (a quoted CRLF), `bad-6` line 6.
    let mut costs = vec![0xEF, 0xBB, 0xBF];
    costs.extend_from_slice(
        "id,date,category,amount,description\r\n\
         ok-1,2022-04-30,utilities,700,plain\r\n\
         bad-3,2024-04-30,utilities,5,late\r\n\
         ok-4,2022-05-31,utilities,600,\"two\r\nlines\"\r\n\
         bad-6,2022-05-31,water,5,unknown category\r\n"
            .as_bytes(),
    );
    let r = allocate("crlf", std::str::from_utf8(&costs).unwrap(), None);
    r.expect_bad_rows(&[(3, "bad-3"), (6, "bad-6")], &[]);

    // The same for a rates file: the second USD rate for 2022-04-01 is on line 3.
    let costs = "id,date,category,amount,currency\nx1,2022-04-30,utilities,12.34,USD\n";
    let rates = "date,currency,rate\r\n2022-04-01,USD,130\r\n2022-04-01,USD,131\r\n";
    allocate("crlf-rates", costs, Some(rates)).expect_bad_rate_row(3, &["USD"]);
}

#[test]
fn unterminated_quoted_field_is_an_error() {
    // The quote opened on line 2 never closes: reading on would swallow `u-may`.
    let costs = format!(
        "{HEADER}u-apr,2022-04-30,utilities,700,JPY,,Okinawa,\"April power\nu-may,2022-05-31,utilities,600,JPY,,Okinawa,May power\n"
    );
    let r = allocate("unterminated", &costs, None);
    r.expect_failure();
    assert!(
        r.stderr.lines().any(|l| names_line(l, &r.costs, 2)),
        "the row whose quote never closes (line 2) is named:\n{}",
        r.stderr
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    let src = "[agreement]
id = \"base\"
currency = \"JPY\"
start = \"2022-04-01\"
end = \"2024-03-31\"

[parties]
JP = { name = \"日本国政府\", colour = \"red\" }
US = { name = \"United States\" }

[categories.utilities]
name = \"光熱水料\"
layers = [ { split = { JP = \"100%\" }, cap = \"1000\" }, { split = { US = \"100%\" } } ]
";
    let c = check_src("utf8-col", src);
    c.expect_error(&[(8, 24)], &["colour"]);
    assert_eq!(loc(src, "colour"), (8, 24));
}
