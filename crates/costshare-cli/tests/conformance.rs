//! Every case under `tests/conformance/` (copied from the shared contract),
//! byte for byte: `allocate --format csv` and `report --by DIMS --format csv`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/conformance exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    assert!(v.len() >= 52, "expected the 52 shared cases, found {}", v.len());
    v
}

fn run(args: &[&str]) -> (i32, Vec<u8>, String) {
    run_env(args, "explain")
}

/// `path`: the value of COSTSHARE_REPORT_PATH (`general` forces the general path).
fn run_env(args: &[&str], path: &str) -> (i32, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_costshare"))
        .args(args)
        .env("COSTSHARE_REPORT_PATH", path)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn conformance_cases_byte_for_byte() {
    let mut failures = Vec::new();
    let mut streamed = 0;
    for dir in cases() {
        let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let case = std::fs::read_to_string(dir.join("case.txt")).unwrap();
        let dims = case
            .lines()
            .find_map(|l| l.strip_prefix("report dims: "))
            .expect("case.txt names its report dims")
            .trim()
            .to_string();
        let (code, out, err) = run(&[
            "allocate",
            "--agreement",
            &p("agreement.toml"),
            "--costs",
            &p("costs.csv"),
            "--rates",
            &p("rates.csv"),
            "--format",
            "csv",
        ]);
        let want = std::fs::read(dir.join("allocate.csv")).unwrap();
        if code != 0 || out != want {
            failures.push(format!("{}: allocate (exit {code}) {err}", dir.display()));
        }
        // the report, by whichever path the input takes, then by the general one
        let args = [
            "report",
            "--agreement",
            &p("agreement.toml"),
            "--costs",
            &p("costs.csv"),
            "--rates",
            &p("rates.csv"),
            "--by",
            &dims,
            "--format",
            "csv",
        ];
        let want = std::fs::read(dir.join("report.csv")).unwrap();
        for path in ["explain", "general"] {
            let (code, out, err) = run_env(&args, path);
            if code != 0 || out != want {
                failures.push(format!("{}: report, {path} path (exit {code}) {err}", dir.display()));
            }
            if err.contains("report path: streaming") {
                streamed += 1;
            }
        }
    }
    assert!(failures.is_empty(), "conformance failures:\n{}", failures.join("\n"));
    // every case takes the streaming path (quoted fields included); the
    // general path was checked against the same bytes
    assert!(streamed >= 50, "only {streamed} cases took the streaming path");
}
