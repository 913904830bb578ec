//! The application layer's path choices agree: the streaming report on one to
//! four threads, the general path, and (for a ledger) the replay and the
//! derived state give the same rows and counts, capped and uncapped.

use costshare_app::input::{Quiet, ReportPath, Session, Source};
use costshare_app::query::{self, PathTaken};
use costshare_core::Date;
use costshare_core::report::Dim;
use std::path::PathBuf;

/// The demo's categories, uncapped: every layer splits without a ceiling.
const UNCAPPED: &str = r#"
[agreement]
id = "demo-uncapped"
currency = "JPY"
start = "2022-04-01"
end = "2027-03-31"
fiscal_year_start = "04-01"
fiscal_year_label = "start"
[parties.JP]
[parties.US]
[categories.labor]
unit = "worker"
  [[categories.labor.layers]]
  portion = "70%"
  split = { JP = "100%" }
  [[categories.labor.layers]]
  split = { JP = "33.3%", US = "66.7%" }
[categories.welfare]
  [[categories.welfare.layers]]
  split = { US = "100%" }
[categories.utilities]
  [[categories.utilities.layers]]
  split = { JP = "61%", US = "39%" }
[categories.training_relocation]
  [[categories.training_relocation.layers]]
  split = { JP = "50%", US = "50%" }
[categories.facilities]
  [[categories.facilities.layers]]
  split = { JP = "66.6667%", US = "33.3333%" }
[categories.training_equipment]
  [[categories.training_equipment.layers]]
  split = { JP = "14.2857%", US = "85.7143%" }
"#;

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
    std::fs::write(dir.0.join("uncapped.toml"), UNCAPPED).unwrap();
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
