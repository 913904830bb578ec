//! Regression tests, each named after what a review found.

mod common;
use common::{Dir, run, run_env};

const AGREEMENT: &str = r#"[agreement]
id = "r"
title = "Regressions"
currency = "JPY"
start = "2022-04-01"
end = "2022-12-15"
fiscal_year_start = "04-01"

[parties.JP]
name = "JP"
[parties.US]
name = "US"

[categories.u]
name = "Utilities"
  [[categories.u.layers]]
  split = { JP = "100%" }
  cap = 0x3E8
  period = "month"
  cap_policy = "pro_rata"
  [[categories.u.layers]]
  split = { US = "100%" }
"#;

#[test]
fn error_messages_name_ids_verbatim() {
    let d = Dir::new("verbatim");
    let a = d.file("a.toml", AGREEMENT.as_bytes());
    let c = d.file("c.csv", b"id,date,category,amount\n\"r\"\"4850\",2021-01-05,u,1\n");
    let (code, out, err) = run(&["allocate", "--agreement", &a, "--costs", &c, "--format", "csv"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains(":2, id r\"4850: "), "{err}");
    let c = d.file("c2.csv", b"id,date,category,amount\nok,2022-05-01,u,1\n");
    let (code, _, err) = run(&["explain", "--agreement", &a, "--costs", &c, "--id", "no\"pe\\x"]);
    assert_eq!(code, 1);
    assert!(err.contains("no\"pe\\x"), "{err}");
}

#[test]
fn check_accepts_as_of() {
    let d = Dir::new("check-as-of");
    let a = d.file("a.toml", AGREEMENT.as_bytes());
    assert_eq!(run(&["check", &a, "--as-of", "2022-01-01"]).0, 0);
    assert_eq!(run(&["check", &a, "--as-of", "yesterday"]).0, 2);
}

#[test]
fn repeated_extra_columns_are_ignored_but_repeated_known_ones_are_not() {
    let d = Dir::new("extra-cols");
    let a = d.file("a.toml", AGREEMENT.as_bytes());
    let c = d.file("c.csv", b"note,id,date,category,amount,note\nx,l1,2022-05-01,u,10,y\n");
    let (code, out, err) = run(&["allocate", "--agreement", &a, "--costs", &c, "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "id,party,amount\nl1,JP,10\n");
    let c = d.file("c2.csv", b"id,date,category,amount,amount\nl1,2022-05-01,u,10,11\n");
    let (code, _, err) = run(&["allocate", "--agreement", &a, "--costs", &c, "--format", "csv"]);
    assert_eq!(code, 1);
    assert!(err.contains("amount") && err.contains("twice"), "{err}");
}

#[test]
fn bad_rates_do_not_hide_bad_cost_rows() {
    let d = Dir::new("rates-and-costs");
    let a = d.file("a.toml", AGREEMENT.as_bytes());
    let r = d.file("r.csv", b"date,currency,rate\n2022-01-01,EUR,abc\n");
    let c = d.file("c.csv", b"id,date,category,amount\nlate,2023-05-01,u,1\n");
    let (code, _, err) = run(&[
        "allocate",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--rates",
        &r,
        "--format",
        "csv",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("r.csv:2:") && err.contains("abc"), "{err}");
    assert!(err.contains("c.csv:2, id late:"), "{err}");
}

fn error_count(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.starts_with("error:")).count()
}

#[test]
fn one_mistake_one_diagnostic() {
    let d = Dir::new("one-diag");
    // an infeasible key is reported once, not again where a split uses it
    let a = d.file(
        "k.toml",
        AGREEMENT
            .replace("[categories.u]", "[keys.k]\nweights = { JP = \"1\", US = \"1\" }\nmax = { JP = \"10%\", US = \"10%\" }\n\n[categories.u]")
            .replace("split = { US = \"100%\" }", "split = { key = \"k\" }")
            .as_bytes(),
    );
    let (code, _, err) = run(&["check", &a]);
    assert_eq!((code, error_count(&err)), (1, 1), "{err}");
    // a wrong value in one year of a schedule is not also a missing year
    let a = d.file(
        "s.toml",
        AGREEMENT.replace("cap = 0x3E8", "cap = { FY2022 = \"-1\" }").as_bytes(),
    );
    let (code, _, err) = run(&["check", &a]);
    assert_eq!((code, error_count(&err)), (1, 1), "{err}");
    // a declared currency with bad minor units is not also unknown
    let a = d.file(
        "c.toml",
        AGREEMENT
            .replace("currency = \"JPY\"", "currency = \"KRW\"")
            .replace("[parties.JP]", "[currencies]\nKRW = \"0\"\n\n[parties.JP]")
            .as_bytes(),
    );
    let (code, _, err) = run(&["check", &a]);
    assert_eq!((code, error_count(&err)), (1, 1), "{err}");
}

#[test]
fn invalid_utf8_names_the_id() {
    let d = Dir::new("utf8");
    let a = d.file("a.toml", AGREEMENT.as_bytes());
    let c = d.file("c.csv", b"id,date,category,amount,site\nl1,2022-05-01,u,10,\xff\xfe\n");
    let (code, _, err) = run(&["allocate", "--agreement", &a, "--costs", &c, "--format", "csv"]);
    assert_eq!(code, 1);
    assert!(err.contains("c.csv:2, id l1: ") && err.contains("UTF-8"), "{err}");
}

#[test]
fn only_spaces_are_trimmed() {
    let d = Dir::new("trim");
    let a = d.file("a.toml", AGREEMENT.as_bytes());
    let c = d.file(
        "c.csv",
        b"id,date,category,amount,site\n l1 ,2022-05-01, u , 10 ,\ttab\n",
    );
    let (code, out, err) = run(&[
        "report",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--by",
        "site",
        "--format",
        "csv",
    ]);
    // a tab is not trimmed: it stays in the site, where it is refused (an
    // identifier holds no control character)
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("c.csv:2, id l1: site holds the control character U+0009"),
        "{err}"
    );
    let c = d.file(
        "c2.csv",
        b"id,date,category,amount,site\n l1 ,2022-05-01, u , 10 , Oki \n",
    );
    let (code, out, err) = run(&[
        "report",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--by",
        "site",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "site,amount\nOki,10\n");
}

#[test]
fn hex_integers_are_integers_and_provisional_ends_with_the_term() {
    let d = Dir::new("hex");
    let a = d.file("a.toml", AGREEMENT.as_bytes());
    // cap 0x3E8 = 1000 a month, pro rata; December runs past the term's end (12-15)
    let c = d.file(
        "c.csv",
        b"id,date,category,amount\nd1,2022-12-10,u,1500\nd2,2022-12-15,u,500\n",
    );
    let (code, out, err) = run(&[
        "allocate",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--format",
        "csv",
        "--as-of",
        "2022-12-20",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "id,party,amount\nd1,JP,750\nd1,US,750\nd2,JP,250\nd2,US,250\n");
    let (_, out, _) = run(&[
        "allocate",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--format",
        "json",
        "--as-of",
        "2022-12-20",
    ]);
    assert!(!out.contains("\"provisional\": true"), "the term ended on 12-15: {out}");
    let (_, out, _) = run(&[
        "allocate",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--format",
        "json",
        "--as-of",
        "2022-12-14",
    ]);
    assert!(out.contains("\"provisional\": true"), "{out}");
}

/// The streaming report prints what the general path prints in every format,
/// provisional lines and rates included (the demo, as of mid-term).
#[test]
fn streaming_and_general_reports_agree_in_every_format() {
    let d = Dir::new("paths");
    let dir = d.path("demo");
    let (code, _, err) = run(&["demo", "--as-of", "2024-06-30", "--write", &dir]);
    assert_eq!(code, 0, "{err}");
    let (a, c, r) = (
        d.path("demo/agreement.toml"),
        d.path("demo/costs.csv"),
        d.path("demo/rates.csv"),
    );
    let report = |by: &str, format: &str, path: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_costshare"))
            .args([
                "report",
                "--agreement",
                &a,
                "--costs",
                &c,
                "--rates",
                &r,
                "--by",
                by,
                "--format",
                format,
                "--as-of",
                "2024-06-30",
            ])
            .env("COSTSHARE_REPORT_PATH", path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for by in ["party,fiscal_year", "category,site,month"] {
        for format in ["table", "json", "csv"] {
            let (streamed, note) = report(by, format, "explain");
            assert!(note.contains("report path: streaming"), "{note}");
            let (general, _) = report(by, format, "general");
            assert_eq!(streamed, general, "--by {by} --format {format}");
            if format == "table" {
                assert!(streamed.contains("provisional: "), "{streamed}");
            }
        }
    }
}

/// Issue 12: files with replacements or bad rows stay on the streaming path
/// (the workers name the bad rows; replaced lines are dropped) and print what
/// the general path prints: the same stdout, stderr and exit code, capped
/// and uncapped, for a file small enough for one worker and one split
/// between two.
#[test]
fn streaming_and_general_agree_on_replacements_and_bad_rows() {
    let d = Dir::new("issue12");
    let dir = d.path("demo");
    let (code, _, err) = run(&["demo", "--as-of", "2024-06-30", "--write", &dir]);
    assert_eq!(code, 0, "{err}");
    let demo = std::fs::read_to_string(d.path("demo/costs.csv")).unwrap();
    let header = format!("{},replaces", demo.lines().next().unwrap());
    let body: Vec<String> = demo.lines().skip(1).map(str::to_string).collect();
    assert!(demo.len() > 1 << 16, "the full file is cut in two pieces");
    let small: Vec<String> = body[..400].to_vec();
    let agreements = [
        d.path("demo/agreement.toml"),
        d.file("uncapped.toml", costshare_demo::agreements::DEMO_UNCAPPED),
    ];
    let rates = d.path("demo/rates.csv");
    // field `col` of a body line set to `v` (nine fields: `replaces` last)
    let set = |l: &mut [String], k: usize, col: usize, v: &str| {
        let mut f: Vec<String> = l[k].split(',').map(str::to_string).collect();
        f.resize(9, String::new());
        f[col] = v.to_string();
        l[k] = f.join(",");
    };
    let id = |l: &str| l.split(',').next().unwrap().to_string();
    let mut files = Vec::new();
    for (size, lines) in [("small", &small), ("full", &body)] {
        let n = lines.len();
        let write =
            |name: &str, l: &[String]| d.file(&format!("{size}-{name}.csv"), format!("{header}\n{}\n", l.join("\n")));
        // replacements: after and before the replaced line, a chain
        let mut l = lines.clone();
        let mut r = l[3].clone();
        r = r.replacen(&id(&r), "R1", 1);
        l.push(format!("{r},{}", id(&l[3])));
        let mut r0 = l[n - 2].clone();
        r0 = r0.replacen(&id(&r0), "R0", 1);
        l.insert(0, format!("{r0},{}", id(&lines[n - 2])));
        let mut r2 = l[n / 2].clone();
        r2 = r2.replacen(&id(&r2), "R2", 1);
        l.push(format!("{r2},R1"));
        files.push((write("replaced", &l), 0));
        // one bad row in the middle
        let mut l = lines.clone();
        set(&mut l, n / 2, 1, "2023-02-30");
        files.push((write("one-bad", &l), 1));
        // several: a bad category, an empty id, a cycle, a missing id, a double replacement
        let mut l = lines.clone();
        set(&mut l, 1, 2, "nope");
        set(&mut l, n / 3, 0, "");
        let (a, b) = (id(&l[n - 4]), id(&l[n - 3]));
        set(&mut l, n - 4, 8, &b);
        set(&mut l, n - 3, 8, &a);
        set(&mut l, n / 2, 8, "missing");
        let c = id(&l[5]);
        set(&mut l, n - 2, 8, &c);
        set(&mut l, n - 1, 8, &c);
        files.push((write("many-bad", &l), 1));
    }
    let report = |a: &str, c: &str, format: &str, path: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_costshare"))
            .args(["report", "--agreement", a, "--costs", c, "--rates", &rates])
            .args([
                "--by",
                "party,category,fiscal_year",
                "--format",
                format,
                "--as-of",
                "2024-06-30",
            ])
            .env("COSTSHARE_REPORT_PATH", path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for a in &agreements {
        for (c, want_code) in &files {
            for format in ["table", "csv"] {
                let auto = report(a, c, format, "auto");
                let general = report(a, c, format, "general");
                assert_eq!(auto, general, "{a} {c} {format}");
                assert_eq!(auto.0, Some(*want_code), "{a} {c} {format}: {}", auto.2);
                if c.ends_with("many-bad.csv") {
                    for words in [
                        "unknown category",
                        "id is empty",
                        "cycle",
                        "not in this file",
                        "already replaces",
                    ] {
                        assert!(auto.2.contains(words), "{c}: no {words:?} in {}", auto.2);
                    }
                }
                if *want_code == 0 {
                    let (_, _, note) = report(a, c, format, "explain");
                    assert!(note.contains("report path: streaming"), "{a} {c}: {note}");
                }
            }
        }
    }
}

const HALVES: &str = r#"[agreement]
id = "h"
currency = "JPY"
start = "2022-04-01"
end = "2024-03-31"
[parties.JP]
name = "JP"
[parties.US]
name = "US"
[categories.misc]
name = "Misc"
  [[categories.misc.layers]]
  split = { JP = "50%", US = "50%" }
"#;

/// Found by review: a line longer than the streaming reader's 8 MiB block
/// made it loop forever; such a line now goes to the general reader. The
/// long field is an extra column (ignored, so not under the field-length
/// limits); in `description` it is a bad row, named by its line.
#[test]
fn a_line_longer_than_a_block_is_read() {
    let d = Dir::new("long-line");
    let a = d.file("a.toml", HALVES);
    let long = "x".repeat(9 << 20);
    let report = |c: &str| {
        run(&[
            "report",
            "--agreement",
            &a,
            "--costs",
            c,
            "--by",
            "party",
            "--format",
            "csv",
        ])
    };
    let c = d.file(
        "c.csv",
        format!("id,date,category,amount,notes\na,2022-05-01,misc,11,{long}\nb,2022-05-02,misc,10,short\n"),
    );
    let (code, out, err) = report(&c);
    assert_eq!((code, out.as_str()), (0, "party,amount\nJP,11\nUS,10\n"), "{err}");
    let c = d.file(
        "d.csv",
        format!("id,date,category,amount,description\na,2022-05-01,misc,11,{long}\nb,2022-05-02,misc,10,short\n"),
    );
    let (code, out, err) = report(&c);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains(&format!("{c}:2, id a: description is {} bytes long", 9 << 20)),
        "{err}"
    );
}

/// Found by review: a costs file that is a pipe was read by the streaming
/// reader, and after a fallback the general reader found it empty. Pipes go
/// to the general reader.
#[test]
fn costs_from_a_pipe_are_read_once() {
    use std::io::Write;
    let d = Dir::new("pipe");
    let a = d.file("a.toml", HALVES);
    // a repeated row: the streaming reader would fall back
    let csv = "id,date,category,amount\na,2022-05-01,misc,11\na,2022-05-01,misc,11\nb,2022-05-02,misc,6\n";
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_costshare"))
        .args([
            "report",
            "--agreement",
            &a,
            "--costs",
            "/dev/stdin",
            "--by",
            "party",
            "--format",
            "csv",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(csv.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "party,amount\nJP,9\nUS,8\n");
}

/// Issue 9: `check costs.csv` printed 1,461 "invalid TOML" problems. A costs or
/// rates CSV given where an agreement goes is named as such, once; `check
/// --agreement A.toml C.csv` checks the costs against it, recording nothing.
#[test]
fn check_recognises_a_csv_and_checks_costs_against_an_agreement() {
    let d = Dir::new("check-csv");
    let a = d.file("a.toml", AGREEMENT.as_bytes());
    let c = d.file(
        "c.csv",
        b"id,date,category,amount\nok,2022-05-01,u,1\nok2,2022-05-02,u,2\n",
    );
    let r = d.file("r.csv", b"date,currency,rate\n2022-04-01,USD,130\n");
    let (code, out, err) = run(&["check", &c]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert_eq!(err.lines().count(), 1, "one error, not one per line: {err}");
    assert!(
        err.contains("is a costs CSV") && err.contains("check --agreement"),
        "{err}"
    );
    let (code, _, err) = run(&["allocate", "--agreement", &r, "--costs", &c]);
    assert_eq!(code, 1);
    assert!(err.contains("is a rates CSV") && err.contains("--rates"), "{err}");

    let (code, out, err) = run(&["check", "--agreement", &a, &c]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("ok: {c}: 2 lines valid against `r`")), "{out}");
    let bad = d.file(
        "bad.csv",
        b"id,date,category,amount\nok,2022-05-01,u,1\nx,2022-05-01,nope,1\n",
    );
    let (code, out, err) = run(&["check", "--agreement", &a, &bad, "--rates", &r]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.contains(&format!("{bad}:3, id x: unknown category `nope`")),
        "{err}"
    );
}

/// Found by a fresh user: `COSTSHARE_LEDGER_PATH=bogus` was silently taken
/// as the fast path; an unknown value is now named, and ignored.
#[test]
fn an_unknown_ledger_path_setting_is_named() {
    let d = Dir::new("ledger-path-env");
    let a = d.file("a.toml", costshare_demo::agreements::DEMO_UNCAPPED);
    let l = d.path("l.db");
    let (code, _, err) = run_env(&["init", &l, "--agreement", &a], &[("COSTSHARE_LEDGER_PATH", "bogus")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("COSTSHARE_LEDGER_PATH=bogus is not known and is ignored (its one value is `replay`)"),
        "{err}"
    );
    let (code, _, err) = run_env(
        &["report", "--ledger", &l, "--by", "party"],
        &[("COSTSHARE_LEDGER_PATH", "replay")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
}

/// Found by a fresh user: `void` took `" X1 "` as an id no line has (a
/// row's id is recorded without the spaces around it), and an empty
/// `--reason` left a void no one could explain.
#[test]
fn void_trims_the_id_and_needs_a_reason() {
    let d = Dir::new("void-words");
    let a = d.file("a.toml", costshare_demo::agreements::DEMO_UNCAPPED);
    let c = d.file(
        "c.csv",
        "id,date,category,amount,currency\nX1,2023-05-01,welfare,1000,JPY\nX2,2023-05-02,welfare,2000,JPY\n",
    );
    let l = d.path("l.db");
    assert_eq!(run(&["init", &l, "--agreement", &a]).0, 0);
    assert_eq!(run(&["record", &l, &c]).0, 0);
    for reason in ["", "   "] {
        let (code, out, err) = run(&["void", &l, "X1", "--reason", reason]);
        assert_eq!(code, 2, "{out}{err}");
        assert!(err.contains("--reason is empty"), "{err}");
    }
    let (code, out, err) = run(&["void", &l, " X1 ", "--reason", "  duplicate bill "]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["history", &l, "--id", "X1", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("duplicate bill"), "{out}");
    assert!(!out.contains("  duplicate bill "), "{out}");
    let (_, out, _) = run(&["report", "--ledger", &l, "--by", "party", "--format", "csv"]);
    assert!(out.contains("2000"), "X2 stays: {out}");
    assert!(!out.contains("3000"), "X1 is voided: {out}");
}
