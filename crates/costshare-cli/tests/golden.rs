//! Golden tests: the exact text people read (`demo`, `explain`, `check`
//! diagnostics). Each expected file under `tests/golden/` was reviewed by eye.
//! To regenerate after a deliberate change, run with `UPDATE_GOLDEN=1` and
//! review the diff before committing it.

mod common;

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The binary, run from the repository root (the golden texts name files
/// relative to it).
fn run(args: &[&str]) -> (i32, String, String) {
    common::run_in(&root(), args)
}

fn golden(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing golden file {}", path.display()));
    if want != actual {
        let diff: Vec<String> = want
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(5)
            .map(|(i, (a, b))| format!("line {}:\n  want: {a}\n  got:  {b}", i + 1))
            .collect();
        panic!(
            "{name} differs from {} ({} vs {} lines)\n{}",
            path.display(),
            want.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// The demo's generated files, written once per test into a fresh directory.
fn demo_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("costshare-golden-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (code, _, err) = run(&["demo", "--as-of", "2026-11-27", "--write", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    dir
}

#[test]
fn demo_report() {
    let (code, out, err) = run(&["demo", "--as-of", "2026-11-27"]);
    assert_eq!(code, 0, "{err}");
    golden("demo.txt", &out);
}

#[test]
fn demo_is_the_same_for_the_same_seed() {
    let (_, a, _) = run(&["demo", "--as-of", "2026-11-27", "--format", "csv"]);
    let (_, b, _) = run(&["demo", "--as-of", "2026-11-27", "--format", "csv"]);
    assert_eq!(a, b);
    let (_, c, _) = run(&["demo", "--as-of", "2026-11-27", "--format", "csv", "--seed", "7"]);
    assert_ne!(a, c);
}

#[test]
fn explain_demo_lines() {
    let dir = demo_dir("explain");
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    for (id, name) in [
        ("L-2022-04-OKI", "explain-labor-pro-rata.txt"),
        ("U-2022-11-OKI", "explain-utilities-crossing-cap.txt"),
        ("E-2022-05", "explain-fx-equipment.txt"),
        ("F-2026-10-1", "explain-facilities-envelope.txt"),
    ] {
        let (code, out, err) = run(&[
            "explain",
            "--agreement",
            &p("agreement.toml"),
            "--costs",
            &p("costs.csv"),
            "--rates",
            &p("rates.csv"),
            "--id",
            id,
            "--as-of",
            "2026-11-27",
        ]);
        assert_eq!(code, 0, "{id}: {err}");
        golden(name, &out.replace(&dir.to_string_lossy().into_owned(), "DEMO"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn explain_conformance_lines() {
    for (case, id, name) in [
        ("01-split-rounding", "r3", "explain-split-rounding.txt"),
        ("03-pro-rata-cap", "c", "explain-pro-rata-leftover.txt"),
        ("04-running-unit-cap", "p2", "explain-running-unit-cap.txt"),
        ("06-portion", "u2", "explain-portion.txt"),
        ("07-key-bounds", "k1", "explain-key.txt"),
        ("10-overrun", "f2", "explain-overrun.txt"),
        ("11-zero-lines", "z0", "explain-zero-line.txt"),
    ] {
        let d = format!("tests/conformance/{case}");
        let (code, out, err) = run(&[
            "explain",
            "--agreement",
            &format!("{d}/agreement.toml"),
            "--costs",
            &format!("{d}/costs.csv"),
            "--rates",
            &format!("{d}/rates.csv"),
            "--id",
            id,
            "--as-of",
            "2026-11-27",
        ]);
        assert_eq!(code, 0, "{case}/{id}: {err}");
        golden(name, &out);
    }
}

#[test]
fn explain_json_carries_the_hash_and_layers() {
    let d = "tests/conformance/05-pro-rata-unit-cap";
    let (code, out, err) = run(&[
        "explain",
        "--agreement",
        &format!("{d}/agreement.toml"),
        "--costs",
        &format!("{d}/costs.csv"),
        "--id",
        "OKI",
        "--as-of",
        "2026-11-27",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["result"]["JP"], "4011576924");
    assert_eq!(v["result"]["US"], "488423077");
    assert_eq!(v["layers"][0]["cap"]["policy"], "pro_rata");
    assert_eq!(v["layers"][0]["cap"]["fraction"], "11589/13000");
    assert_eq!(v["agreement"]["sha256"].as_str().map(str::len), Some(64));
}

#[test]
fn check_examples() {
    let mut out_all = String::new();
    let mut names: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 6);
    for n in names {
        let (code, out, err) = run(&["check", &format!("examples/{n}")]);
        assert_eq!(code, 0, "examples/{n}: {err}");
        assert!(err.is_empty(), "examples/{n} has warnings: {err}");
        out_all.push_str(&out);
    }
    golden("check-examples.txt", &out_all);
}

#[test]
fn check_diagnostics() {
    let (code, out, err) = run(&["check", "tests/golden/bad-agreement.toml"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    golden("check-bad-agreement.txt", &err);
}
