//! The application layer's path choices agree: the streaming report on one to
//! four threads, the general path, and (for a ledger) the replay and the
//! derived state give the same rows and counts, capped and uncapped.

use costshare_app::input::{Quiet, ReportPath, Session, Source};
use costshare_app::query::{self, PathTaken};
use costshare_core::Date;
use costshare_core::report::Dim;
use std::path::PathBuf;

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn demo_inputs(name: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("costshare-app-paths-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let dir = Dir(d);
    // four seeds of history, ids kept apart, so the file spans several blocks' worth of pieces
    let mut costs = String::new();
    let mut rates = String::new();
    for seed in 0..4u64 {
        let data = costshare_demo::generate(seed);
        for (i, line) in data.costs_csv.lines().enumerate() {
            if i == 0 {
                if seed == 0 {
                    costs.push_str(line);
                    costs.push('\n');
                }
                continue;
            }
            costs.push_str(&format!("S{seed}-{line}\n"));
        }
        if seed == 0 {
            rates = data.rates_csv;
        }
    }
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(dir.0.join("costs.csv"), &costs).unwrap();
    std::fs::write(dir.0.join("rates.csv"), &rates).unwrap();
    std::fs::write(dir.0.join("capped.toml"), costshare_demo::agreements::SMA_2022).unwrap();
    std::fs::write(dir.0.join("uncapped.toml"), costshare_demo::agreements::DEMO_UNCAPPED).unwrap();
    assert!(
        costs.len() > 1 << 18,
        "the file is large enough to be cut for several threads"
    );
    dir
}

fn report(source: &Source, threads: usize, path: ReportPath, dims: &[Dim]) -> query::ReportResult {
    let mut quiet = Quiet;
    let mut s = Session::new(&mut quiet);
    s.threads = threads;
    s.report_path = path;
    let as_of = Date::parse("2024-07-15").unwrap();
    match query::report(source, dims, as_of, &mut s) {
        Ok(r) => r,
        Err(e) => panic!("report failed: {e:?}"),
    }
}

#[test]
fn streaming_on_any_number_of_threads_equals_the_general_path() {
    let dir = demo_inputs("threads");
    let dims = [Dim::Party, Dim::FiscalYear, Dim::Category, Dim::Site, Dim::Month];
    for agreement in ["capped.toml", "uncapped.toml"] {
        let source = Source::Files {
            agreement: dir.0.join(agreement),
            costs: dir.0.join("costs.csv"),
            rates: Some(dir.0.join("rates.csv")),
        };
        let general = report(&source, 1, ReportPath::General, &dims);
        assert!(matches!(general.path, PathTaken::General(_)));
        assert!(general.rows.len() > 100, "{agreement}: a real report");
        for threads in 1..=4 {
            let r = report(&source, threads, ReportPath::Auto, &dims);
            assert_eq!(r.path, PathTaken::Streaming, "{agreement}, {threads} threads");
            assert_eq!(r.rows, general.rows, "{agreement}, {threads} threads");
            assert_eq!(r.provenance.lines, general.provenance.lines);
            assert_eq!(r.provenance.provisional, general.provenance.provisional);
        }
        if agreement == "capped.toml" {
            assert!(
                general.provenance.provisional > 0,
                "as of mid-2024 some pro-rata months are open"
            );
        }
    }
}

/// The demo costs of `demo_inputs` rewritten with a `replaces` column:
/// `edit` changes the body lines (each `id,date,category,amount,currency,
/// quantity,site,description`, a ninth field for `replaces`).
fn variant(dir: &Dir, name: &str, edit: impl FnOnce(&mut Vec<String>)) -> PathBuf {
    let costs = std::fs::read_to_string(dir.0.join("costs.csv")).unwrap();
    let mut lines: Vec<String> = costs.lines().skip(1).map(str::to_string).collect();
    edit(&mut lines);
    let header = costs.lines().next().unwrap();
    let path = dir.0.join(format!("{name}.csv"));
    std::fs::write(&path, format!("{header},replaces\n{}\n", lines.join("\n"))).unwrap();
    path
}

/// A copy of body line `k` under a new id, its amount changed, replacing `replaces`.
fn replacing(lines: &[String], k: usize, id: &str, replaces: &str) -> String {
    let mut f: Vec<&str> = lines[k].split(',').collect();
    f[0] = id;
    f[3] = if f[4].is_empty() { "1234567" } else { "12345.67" };
    format!("{},{replaces}", f.join(","))
}

fn id_of(line: &str) -> String {
    line.split(',').next().unwrap().to_string()
}

fn try_report(
    source: &Source,
    threads: usize,
    path: ReportPath,
    dims: &[Dim],
) -> Result<query::ReportResult, costshare_app::AppError> {
    let mut quiet = Quiet;
    let mut s = Session::new(&mut quiet);
    s.threads = threads;
    s.report_path = path;
    query::report(source, dims, Date::parse("2024-07-15").unwrap(), &mut s)
}

/// Issue 12: a file with rows replacing others (the replaced line before or
/// after its replacement, chains, replacements in many blocks' pieces)
/// streams, on one to four threads, and reports what the general path
/// reports: rows, line and provisional counts, capped (replaced lines
/// dropped from the columns) and uncapped (taken back out on a second reading).
#[test]
fn streaming_with_replacements_equals_the_general_path() {
    let dir = demo_inputs("replacements");
    let dims = [Dim::Party, Dim::FiscalYear, Dim::Category, Dim::Site, Dim::Month];
    let files = [
        variant(&dir, "after", |l| {
            let r = replacing(l, 10, "R-after", &id_of(&l[10]));
            l.push(r);
        }),
        variant(&dir, "before", |l| {
            let last = l.len() - 1;
            let r = replacing(l, last, "R-before", &id_of(&l[last]));
            l.insert(0, r);
        }),
        variant(&dir, "chain", |l| {
            let mid = l.len() / 2;
            let r1 = replacing(l, 5, "R-c1", &id_of(&l[5]));
            let r3 = replacing(l, mid + 7, "R-c3", &id_of(&l[l.len() - 3]));
            l.insert(mid, r1);
            l.insert(mid + 1, r3);
            let r2 = replacing(l, 0, "R-c2", "R-c1");
            l.push(r2);
        }),
        variant(&dir, "many", |l| {
            let n = l.len();
            for k in (0..n).step_by(50) {
                let r = replacing(l, k, &format!("R-m{k}"), &id_of(&l[k]));
                l.push(r);
            }
        }),
    ];
    for agreement in ["capped.toml", "uncapped.toml"] {
        for costs in &files {
            let source = Source::Files {
                agreement: dir.0.join(agreement),
                costs: costs.clone(),
                rates: Some(dir.0.join("rates.csv")),
            };
            let general = report(&source, 1, ReportPath::General, &dims);
            let ctx = format!("{agreement}, {}", costs.display());
            for threads in 1..=4 {
                let r = report(&source, threads, ReportPath::Auto, &dims);
                assert_eq!(r.path, PathTaken::Streaming, "{ctx}, {threads} threads");
                assert_eq!(r.rows, general.rows, "{ctx}, {threads} threads");
                assert_eq!(r.provisional_rows, general.provisional_rows, "{ctx}, {threads} threads");
                assert_eq!(r.provenance.lines, general.provenance.lines, "{ctx}");
                assert_eq!(r.provenance.provisional, general.provenance.provisional, "{ctx}");
            }
        }
    }
}

/// Issue 12: a file with bad rows is refused with the general path's error,
/// every bad row named with the same words, lines and order, on one to four
/// threads; capped and uncapped. A repeated id still falls back (the same
/// error, by the general path).
#[test]
fn streaming_with_bad_rows_names_them_as_the_general_path() {
    let dir = demo_inputs("bad-rows");
    let dims = [Dim::Party, Dim::Category];
    let set = |l: &mut Vec<String>, k: usize, col: usize, v: &str| {
        let mut f: Vec<String> = l[k].split(',').map(str::to_string).collect();
        f.resize(9, String::new());
        f[col] = v.to_string();
        l[k] = f.join(",");
    };
    let files = [
        variant(&dir, "one-bad", |l| {
            let mid = l.len() / 2;
            set(l, mid, 1, "2023-13-01");
        }),
        variant(&dir, "many-bad", |l| {
            let n = l.len();
            set(l, 3, 2, "nope"); // unknown category
            set(l, n / 7, 0, ""); // empty id
            set(l, n / 5, 3, "-5"); // negative amount
            set(l, n / 4, 4, "XXX"); // unknown currency
            set(l, n / 3, 1, "2030-01-01"); // outside the term
            set(l, n / 3 + 1, 3, "1.2.3"); // not a decimal
            set(l, n / 2 + 1, 8, "missing-id"); // replaces no line of the file
            let own = id_of(&l[n / 2 + 2]);
            set(l, n / 2 + 2, 8, &own); // replaces itself
            let a = id_of(&l[n - 5]);
            let b = id_of(&l[n - 4]);
            set(l, n - 5, 8, &b); // a cycle of two
            set(l, n - 4, 8, &a);
            let c = id_of(&l[10]);
            set(l, n - 3, 8, &c); // two lines replace one
            set(l, n - 2, 8, &c);
            set(l, n - 1, 1, ""); // empty date, last line
            // labor without its head count (the first labor line)
            let k = l.iter().position(|x| x.contains(",labor,")).unwrap();
            set(l, k, 5, "");
        }),
        variant(&dir, "repeat", |l| {
            let mut r: Vec<String> = l[7].split(',').map(str::to_string).collect();
            r[3] = "99".into();
            l.push(r.join(","));
            set(l, 9, 1, "2022-02-30");
        }),
    ];
    for agreement in ["capped.toml", "uncapped.toml"] {
        for costs in &files {
            let source = Source::Files {
                agreement: dir.0.join(agreement),
                costs: costs.clone(),
                rates: Some(dir.0.join("rates.csv")),
            };
            let ctx = format!("{agreement}, {}", costs.display());
            let general = match try_report(&source, 1, ReportPath::General, &dims) {
                Err(e) => format!("{e:?}"),
                Ok(_) => panic!("{ctx}: the general path took a bad file"),
            };
            if costs.ends_with("many-bad.csv") {
                for words in [
                    "unknown category",
                    "id is empty",
                    "is negative",
                    "XXX",
                    "outside the agreement term",
                    "not a plain decimal",
                    "which is not in this file",
                    "cannot replace itself",
                    "cycle of replacements",
                    "already replaces",
                    "date is empty",
                    "quantity",
                ] {
                    assert!(general.contains(words), "{ctx}: no {words:?} in {general}");
                }
            }
            for threads in 1..=4 {
                match try_report(&source, threads, ReportPath::Auto, &dims) {
                    Err(e) => assert_eq!(format!("{e:?}"), general, "{ctx}, {threads} threads"),
                    Ok(_) => panic!("{ctx}: the streaming path took a bad file"),
                }
            }
        }
    }
}
