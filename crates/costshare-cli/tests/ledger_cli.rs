//! The ledger from the command line (SQLite): the forms of the ledger issue,
//! end to end as a user runs them.

use std::path::Path;
use std::process::Command;

mod common;
use common::{Dir, run};

/// JP pays utilities up to 1,000 a fiscal year; the US pays the rest.
const UTILITIES: &str = r#"[agreement]
id = "u"
currency = "JPY"
start = "2022-04-01"
end = "2024-03-31"
fiscal_year_start = "04-01"
[parties.JP]
name = "JP"
[parties.US]
name = "US"
[categories.u]
name = "Utilities"
  [[categories.u.layers]]
  split = { JP = "100%" }
  cap = 1000
  [[categories.u.layers]]
  split = { US = "100%" }
"#;

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{args:?}\n{err}");
    out
}

fn demo(d: &Dir) -> (String, String, String) {
    ok(&["demo", "--as-of", "2026-11-27", "--write", &d.path("demo")]);
    (
        d.path("demo/agreement.toml"),
        d.path("demo/costs.csv"),
        d.path("demo/rates.csv"),
    )
}

#[test]
fn ledger_outputs_equal_the_file_forms() {
    let d = Dir::new("same");
    let (a, c, r) = demo(&d);
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a, "--rates", &r]);
    let out = ok(&["record", &l, &c]);
    assert!(out.starts_with("recorded 1460 lines"), "{out}");
    // idempotent
    let out = ok(&["record", &l, &c]);
    assert!(
        out.starts_with("recorded 0 lines") && out.contains("1460 already there"),
        "{out}"
    );
    let file = ok(&[
        "allocate",
        "--agreement",
        &a,
        "--costs",
        &c,
        "--rates",
        &r,
        "--format",
        "csv",
        "--as-of",
        "2026-11-27",
    ]);
    let ledger = ok(&["allocate", "--ledger", &l, "--format", "csv", "--as-of", "2026-11-27"]);
    assert_eq!(file, ledger);
    for dims in ["party", "fiscal_year,category,party", "site,month", "category"] {
        let file = ok(&[
            "report",
            "--agreement",
            &a,
            "--costs",
            &c,
            "--rates",
            &r,
            "--by",
            dims,
            "--format",
            "csv",
        ]);
        let ledger = ok(&["report", "--ledger", &l, "--by", dims, "--format", "csv"]);
        assert_eq!(file, ledger, "--by {dims}");
    }
    // human output ends with the journal head and the agreement hash; JSON carries both
    let table = ok(&["report", "--ledger", &l, "--by", "party"]);
    let head_line = table.lines().last().unwrap();
    assert!(head_line.starts_with("journal: 1523 entries, head "), "{table}");
    assert!(table.contains("agreement: us-japan-sma-2022 sha256 "));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["report", "--ledger", &l, "--by", "party", "--format", "json"])).unwrap();
    assert_eq!(json["journal"]["entries"], 1523);
    assert_eq!(json["journal"]["head"].as_str().unwrap().len(), 64);
    assert_eq!(json["agreement"]["sha256"].as_str().unwrap().len(), 64);
    let ex = ok(&[
        "explain",
        "--ledger",
        &l,
        "--id",
        "L-2022-04-OKI",
        "--as-of",
        "2026-11-27",
    ]);
    assert!(ex.contains("journal entry: ") && ex.contains("shared pro rata"), "{ex}");
    let v = ok(&["verify", &l]);
    assert!(v.starts_with("ok: 1523 journal entries verified"), "{v}");
    // the default is the integrity check, and says what it did not do
    assert!(
        v.contains("statements not re-derived (verify --deep re-derives them)")
            && v.contains("derived state: sealed under the head"),
        "{v}"
    );
    let deep = ok(&["verify", &l, "--deep"]);
    assert!(
        deep.starts_with("ok: 1523 journal entries verified; every closed statement re-derived")
            && deep.contains("derived state: matches the journal"),
        "{deep}"
    );
    // usage: --ledger excludes the file inputs
    assert_eq!(
        run(&["allocate", "--ledger", &l, "--costs", &c, "--format", "csv"]).0,
        2
    );
}

#[test]
fn bad_file_records_nothing_and_names_every_row() {
    let d = Dir::new("atomic");
    let (a, _, r) = demo(&d);
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a, "--rates", &r]);
    let c = d.file(
        "bad.csv",
        "id,date,category,amount\ng1,2022-05-01,welfare,100\nb1,2030-01-01,welfare,1\ng2,2022-05-02,welfare,100\nb2,2022-05-01,nope,1\n",
    );
    let (code, out, err) = run(&["record", &l, &c]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("bad.csv:3, id b1:") && err.contains("bad.csv:5, id b2:"),
        "{err}"
    );
    let h = ok(&["history", &l]);
    assert!(!h.contains("g1"), "nothing recorded: {h}");
    // conflicting values for a recorded id
    let c1 = d.file("c1.csv", "id,date,category,amount\nx,2022-05-01,welfare,100\n");
    let c2 = d.file("c2.csv", "id,date,category,amount\nx,2022-05-01,welfare,101\n");
    ok(&["record", &l, &c1]);
    let (code, _, err) = run(&["record", &l, &c2]);
    assert_eq!(code, 1);
    assert!(err.contains("c2.csv:2, id x:") && err.contains("replaces"), "{err}");
}

#[test]
fn corrections_statements_and_adjustments() {
    let d = Dir::new("close");
    let a = d.file("a.toml", UTILITIES);
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a]);
    ok(&[
        "record",
        &l,
        &d.file(
            "c1.csv",
            "id,date,category,amount\na,2022-05-01,u,600\nb,2022-06-01,u,600\n",
        ),
    ]);
    let st = ok(&["close", &l, "--period", "FY2022", "--format", "csv"]);
    assert_eq!(st, "period,party,category,amount\nFY2022,JP,u,1000\nFY2022,US,u,200\n");
    assert_eq!(run(&["close", &l, "--period", "FY2022"]).0, 1, "a year closes once");
    // a late line and a correction change FY2022: the statement stays, adjustments show
    ok(&[
        "record",
        &l,
        &d.file(
            "c2.csv",
            "id,date,category,amount,replaces\nb2,2022-06-01,u,300,b\nc,2022-04-15,u,50,\n",
        ),
    ]);
    let adj = ok(&["adjustments", &l, "--format", "csv"]);
    // a 600, b2 300 (replacing b), c 50: 950 under the cap; JP pays it all
    assert_eq!(
        adj,
        "period,party,category,statement,now,adjustment\nFY2022,JP,u,1000,950,-50\nFY2022,US,u,200,0,-200\n"
    );
    ok(&["void", &l, "c", "--reason", "duplicate invoice"]);
    assert_eq!(run(&["void", &l, "c", "--reason", "again"]).0, 1);
    let hist = ok(&["history", &l, "--id", "b"]);
    assert!(
        hist.contains("line b ") && hist.contains("voided b: replaced by b2"),
        "{hist}"
    );
    let v = ok(&["verify", &l]);
    assert!(v.starts_with("ok: "), "{v}");
}

#[test]
fn amendments_apply_from_their_effective_date() {
    let d = Dir::new("amend");
    let base = r#"[agreement]
id = "u"
currency = "JPY"
start = "2022-04-01"
end = "END"
fiscal_year_start = "04-01"
[parties.JP]
name = "JP"
[parties.US]
name = "US"
[categories.u]
name = "Utilities"
  [[categories.u.layers]]
  split = { JP = "100%" }
  cap = CAP
  [[categories.u.layers]]
  split = { US = "100%" }
"#;
    let a = d.file("a.toml", base.replace("END", "2024-03-31").replace("CAP", "1000"));
    let b = d.file("b.toml", base.replace("END", "2026-03-31").replace("CAP", "500"));
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a]);
    ok(&[
        "record",
        &l,
        &d.file(
            "c.csv",
            "id,date,category,amount\na,2022-05-01,u,800\nb,2023-05-01,u,800\n",
        ),
    ]);
    // not the first day of a fiscal year
    assert_eq!(run(&["amend", &l, "--agreement", &b, "--effective", "2023-05-01"]).0, 1);
    ok(&["amend", &l, "--agreement", &b, "--effective", "2023-04-01"]);
    // a line after the old term's end is now accepted under the new version
    ok(&[
        "record",
        &l,
        &d.file("c2.csv", "id,date,category,amount\nc,2025-05-01,u,800\n"),
    ]);
    let out = ok(&["allocate", "--ledger", &l, "--format", "csv"]);
    assert_eq!(
        out,
        "id,party,amount\na,JP,800\nb,JP,500\nb,US,300\nc,JP,500\nc,US,300\n"
    );
    let out = ok(&["report", "--ledger", &l, "--by", "fiscal_year,party", "--format", "csv"]);
    assert_eq!(
        out,
        "fiscal_year,party,amount\nFY2022,JP,800\nFY2023,JP,500\nFY2023,US,300\nFY2025,JP,500\nFY2025,US,300\n"
    );
    assert!(ok(&["verify", &l]).starts_with("ok: "));
}

#[test]
fn editing_the_journal_behind_the_programs_back_is_caught() {
    let d = Dir::new("tamper");
    let (a, c, r) = demo(&d);
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a, "--rates", &r]);
    ok(&["record", &l, &c]);
    let py = |code: &str| {
        Command::new("python3")
            .args(["-c", code])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !py("import sqlite3") {
        eprintln!("SKIPPED: python3 with sqlite3 is needed to edit the database by hand");
        assert!(
            std::env::var("COSTSHARE_REQUIRE_ORACLES").is_err(),
            "python3 is required in CI"
        );
        return;
    }
    // the database itself refuses updates and deletes
    let refused = py(&format!(
        "import sqlite3,sys\nc=sqlite3.connect({l:?})\ntry:\n  c.execute('delete from journal where seq=100'); c.commit(); sys.exit(1)\nexcept sqlite3.DatabaseError: sys.exit(0)"
    ));
    assert!(refused, "DELETE must be refused by the database");
    // someone drops the trigger and edits an amount: verify names the entry
    assert!(py(&format!(
        "import sqlite3\nc=sqlite3.connect({l:?})\nc.execute('drop trigger journal_no_update')\nb=c.execute('select body from journal where seq=300').fetchone()[0]\nb=bytes(b).replace(b'amount=', b'amount=1')\nc.execute('update journal set body=? where seq=300',(b,))\nc.commit()"
    )));
    let (code, _, err) = run(&["verify", &l]);
    assert_eq!(code, 1);
    assert!(err.contains("journal entry 300"), "{err}");
    let _ = Path::new(&l);
}

/// Found by review: replacements across separate `record` runs.
#[test]
fn replacements_hold_across_files() {
    let d = Dir::new("replaces");
    let a = d.file("a.toml", UTILITIES);
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a]);
    // a line superseded within a file cannot come back from a later file
    let f1 = d.file(
        "f1.csv",
        "id,date,category,amount,replaces\nb,2022-06-01,u,600,\na,2022-06-01,u,300,\nb2,2022-06-01,u,650,b\nb3,2022-06-01,u,700,b2\n",
    );
    let out = ok(&["record", &l, &f1]);
    assert!(out.contains("2 superseded within the file"), "{out}");
    let f2 = d.file(
        "f2.csv",
        "id,date,category,amount\nb,2022-06-01,u,600\nc,2022-09-01,u,500\n",
    );
    let out = ok(&["record", &l, &f2]);
    assert!(
        out.starts_with("recorded 1 line") && out.contains("1 already there"),
        "{out}"
    );
    let alloc = ok(&["allocate", "--ledger", &l, "--format", "csv"]);
    assert_eq!(alloc, "id,party,amount\na,JP,300\nb3,JP,700\nc,US,500\n");
    // a late line: its impact on earlier lines, taken in from the derived
    // state (the fiscal year its yearly cap ties it to: 4 lines)
    let late = d.file("late.csv", "id,date,category,amount\nearly,2022-04-02,u,100\n");
    let out = ok(&["record", &l, &late, "--impact"]);
    assert!(
        out.contains("impact: 1 new line taken in from the derived state: 4 lines re-allocated"),
        "{out}"
    );
    // a 300 and b3 700 filled the cap of 1000; 100 earlier moves 100 of b3 to US
    assert!(
        out.contains("impact: 1 earlier line changed: JP -100, US +100") && out.contains("  b3: JP -100, US +100"),
        "{out}"
    );
    // a line replaced already cannot be replaced again from another file
    ok(&[
        "record",
        &l,
        &d.file("ra.csv", "id,date,category,amount,replaces\na2,2022-06-01,u,1,a\n"),
    ]);
    let (code, _, err) = run(&[
        "record",
        &l,
        &d.file("rb.csv", "id,date,category,amount,replaces\na3,2022-06-01,u,1,a\n"),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("rb.csv:2, id a3:") && err.contains("a2"), "{err}");
    // a recorded id with another `replaces` is a conflict, and voids nothing
    let (code, _, err) = run(&[
        "record",
        &l,
        &d.file("rc.csv", "id,date,category,amount,replaces\na2,2022-06-01,u,1,b3\n"),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        ok(&["allocate", "--ledger", &l, "--format", "csv"]).contains("b3,JP,"),
        "b3 must not be voided"
    );
    // a cycle is refused, in the ledger and in the file form
    let cy = d.file(
        "cy.csv",
        "id,date,category,amount,replaces\np,2022-06-01,u,1,q\nq,2022-06-01,u,1,p\n",
    );
    let (code, _, err) = run(&["record", &l, &cy]);
    assert_eq!(code, 1);
    assert!(err.contains("cy.csv:2, id p:") && err.contains("cycle"), "{err}");
    let (code, _, err) = run(&["allocate", "--agreement", &a, "--costs", &cy, "--format", "csv"]);
    assert_eq!(code, 1);
    assert!(err.contains("cycle"), "{err}");
    // explaining a voided line says so
    let (code, _, err) = run(&["explain", "--ledger", &l, "--id", "b"]);
    assert_eq!(code, 1);
    assert!(err.contains("was voided"), "{err}");
    assert!(ok(&["verify", &l]).starts_with("ok: "));
}

/// A bulk load leaves the derived state stale; the next report replays the
/// journal and writes it, and a late line after that is taken in from it,
/// with the same report as the file form.
#[test]
fn a_report_after_a_bulk_load_rebuilds_the_derived_state() {
    let d = Dir::new("bulk");
    let a = d.file("a.toml", UTILITIES);
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a]);
    // more rows than a write rebuilds the derived state for (10,000)
    let mut csv = String::from("id,date,category,amount\n");
    for i in 0..10_050 {
        csv.push_str(&format!(
            "b{i},2022-{:02}-{:02},u,{}\n",
            4 + i % 9,
            1 + i % 28,
            1 + i % 7
        ));
    }
    let c = d.file("bulk.csv", &csv);
    ok(&["record", &l, &c]);
    let late = d.file("late.csv", "id,date,category,amount\nlate,2022-04-02,u,100\n");
    let before = ok(&["report", "--ledger", &l, "--by", "party,category", "--format", "csv"]);
    let out = ok(&["record", &l, &late, "--impact"]);
    assert!(out.contains("taken in from the derived state"), "{out}");
    let after = ok(&["report", "--ledger", &l, "--by", "party,category", "--format", "csv"]);
    csv.push_str("late,2022-04-02,u,100\n");
    let all = d.file("all.csv", &csv);
    let file = ok(&[
        "report",
        "--agreement",
        &a,
        "--costs",
        &all,
        "--by",
        "party,category",
        "--format",
        "csv",
    ]);
    assert_eq!(after, file);
    assert_ne!(before, after);
    let out = ok(&["verify", &l, "--deep"]);
    assert!(out.contains("derived state: matches the journal"), "{out}");
}

/// Found by review: rates recorded later could make a recorded line convert
/// beyond 64 bits, after which every replay of the ledger failed. Such rates
/// are refused, naming the line, and the ledger stays usable.
#[test]
fn rates_that_would_overflow_a_recorded_line_are_refused() {
    let d = Dir::new("rates-overflow");
    let a = d.file(
        "a.toml",
        "[agreement]\nid = \"t\"\ncurrency = \"JPY\"\nstart = \"2022-01-01\"\nend = \"2023-12-31\"\n\
         [parties.A]\nname = \"A\"\n[parties.B]\nname = \"B\"\n\
         [categories.c]\nname = \"c\"\n  [[categories.c.layers]]\n  split = { A = \"50%\", B = \"50%\" }\n",
    );
    let r0 = d.file("r0.csv", "date,currency,rate\n2021-01-01,USD,1\n");
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a, "--rates", &r0]);
    let c = d.file(
        "c.csv",
        "id,date,category,amount,currency\nL1,2022-06-01,c,1000000000000000.00,USD\n",
    );
    ok(&["record", &l, &c]);
    let empty = d.file("empty.csv", "id,date,category,amount,currency\n");
    let big = d.file("big.csv", "date,currency,rate\n2022-01-01,USD,100000\n");
    let (code, _, err) = run(&["record", &l, &empty, "--rates", &big]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("recorded line L1") && err.contains("nothing was recorded"),
        "{err}"
    );
    // still usable
    ok(&["report", "--ledger", &l, "--by", "party", "--format", "csv"]);
    let out = ok(&["verify", &l, "--deep"]);
    assert!(out.contains("derived state: matches the journal"), "{out}");
}

/// `report --by party,category,fiscal_year` rows of a ledger: key → amount.
fn rows_by_party_category_year(l: &str) -> std::collections::BTreeMap<(String, String, String), i64> {
    let out = ok(&[
        "report",
        "--ledger",
        l,
        "--by",
        "party,category,fiscal_year",
        "--format",
        "csv",
        "--as-of",
        "2026-11-27",
    ]);
    out.lines()
        .skip(1)
        .map(|r| {
            let f: Vec<&str> = r.split(',').collect();
            ((f[0].into(), f[1].into(), f[2].into()), f[3].parse().unwrap())
        })
        .collect()
}

/// The demo ledger, and the demo agreement's text.
fn demo_ledger(d: &Dir) -> (String, String) {
    let (a, c, r) = demo(d);
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a, "--rates", &r]);
    ok(&["record", &l, &c]);
    (l, std::fs::read_to_string(&a).unwrap())
}

/// Issue 9: an amendment that changes only the FY2025 utilities cap changes
/// the FY2025 utilities figures and nothing else (the term envelopes of
/// facilities and training equipment are not reopened).
#[test]
fn a_utilities_only_amendment_moves_only_fy2025_utilities() {
    let d = Dir::new("amend-utilities");
    let (l, text) = demo_ledger(&d);
    let before = rows_by_party_category_year(&l);
    let old = r#"FY2025 = "13300000000""#;
    assert!(text.contains(old));
    let b = d.file("b.toml", text.replace(old, r#"FY2025 = "14000000000""#));
    ok(&["amend", &l, "--agreement", &b, "--effective", "2025-04-01"]);
    let after = rows_by_party_category_year(&l);
    let keys: std::collections::BTreeSet<_> = before.keys().chain(after.keys()).cloned().collect();
    let differ: Vec<_> = keys.into_iter().filter(|k| before.get(k) != after.get(k)).collect();
    assert!(!differ.is_empty(), "the amendment changed nothing");
    for (party, category, fy) in &differ {
        assert_eq!(
            (category.as_str(), fy.as_str()),
            ("utilities", "FY2025"),
            "{party} {category} {fy}: {:?} → {:?}",
            before.get(&(party.clone(), category.clone(), fy.clone())),
            after.get(&(party.clone(), category.clone(), fy.clone()))
        );
    }
    let jp = |cat: &str| -> i64 {
        after
            .iter()
            .filter(|((p, c, _), _)| p == "JP" && c == cat)
            .map(|(_, v)| v)
            .sum()
    };
    assert!(jp("facilities") <= 164_100_000_000, "{}", jp("facilities"));
    assert!(jp("training_equipment") <= 20_000_000_000);
    assert!(ok(&["verify", &l]).starts_with("ok: "));
}

/// An amendment lowering the facilities envelope below what is already used:
/// the rest of the term's facilities go to the U.S.; `explain` names the
/// carried use and its version.
#[test]
fn a_lowered_envelope_sends_the_rest_of_the_term_to_the_us() {
    let d = Dir::new("amend-envelope");
    let (l, text) = demo_ledger(&d);
    let before = rows_by_party_category_year(&l);
    let get = |m: &std::collections::BTreeMap<(String, String, String), i64>, p: &str, fy: &str| {
        m.get(&(p.to_string(), "facilities".to_string(), fy.to_string()))
            .copied()
            .unwrap_or(0)
    };
    let used: i64 = ["FY2022", "FY2023", "FY2024"]
        .iter()
        .map(|fy| get(&before, "JP", fy))
        .sum();
    assert!(used > 2, "JP paid no facilities before FY2025");
    let old = r#"cap = "164100000000""#;
    assert!(text.contains(old));
    let b = d.file("b.toml", text.replace(old, &format!(r#"cap = "{}""#, used / 2)));
    ok(&["amend", &l, "--agreement", &b, "--effective", "2025-04-01"]);
    let after = rows_by_party_category_year(&l);
    for fy in ["FY2022", "FY2023", "FY2024"] {
        for p in ["JP", "US"] {
            assert_eq!(get(&after, p, fy), get(&before, p, fy), "{p} {fy}");
        }
    }
    for fy in ["FY2025", "FY2026"] {
        let total = get(&before, "JP", fy) + get(&before, "US", fy);
        assert!(total > 0, "no facilities in {fy}");
        assert_eq!(get(&after, "JP", fy), 0, "{fy}");
        assert_eq!(get(&after, "US", fy), total, "{fy}");
    }
    // explain a FY2025 facilities line: the carried use and its version
    let csv = ok(&["allocate", "--ledger", &l, "--format", "csv", "--as-of", "2026-11-27"]);
    let costs = std::fs::read_to_string(d.path("demo/costs.csv")).unwrap();
    let id = costs
        .lines()
        .map(|r| r.split(',').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == "facilities" && f[1] >= "2025-04-01")
        .map(|f| f[0].to_string())
        .expect("a FY2025 facilities line");
    assert!(csv.contains(&format!("{id},US,")), "{id}");
    let text = ok(&["explain", "--ledger", &l, "--id", &id, "--as-of", "2026-11-27"]);
    assert!(
        text.contains("  carried over: ")
            && text.contains("of this period's cap was already used under agreement version 1; 0 JPY of the "),
        "{text}"
    );
    let json = ok(&[
        "explain",
        "--ledger",
        &l,
        "--id",
        &id,
        "--format",
        "json",
        "--as-of",
        "2026-11-27",
    ]);
    assert!(
        json.contains("\"carried\"") && json.contains("\"version\": 1"),
        "{json}"
    );
    // a line before the amendment says nothing of carried use
    let early = costs
        .lines()
        .map(|r| r.split(',').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == "facilities" && f[1].starts_with("2023-"))
        .map(|f| f[0].to_string())
        .unwrap();
    let text = ok(&["explain", "--ledger", &l, "--id", &early, "--as-of", "2026-11-27"]);
    assert!(!text.contains("carried"), "{text}");
    assert!(ok(&["verify", &l]).starts_with("ok: "));
}

/// Three versions of a term envelope: the third starts with what the first
/// two used; `explain` names both; a late line under the first version moves
/// the later versions' lines (`record --impact`).
#[test]
fn a_term_envelope_runs_through_three_versions() {
    let d = Dir::new("amend-three");
    let base = r#"[agreement]
id = "e"
currency = "JPY"
start = "2022-04-01"
end = "2025-03-31"
fiscal_year_start = "04-01"
[parties.JP]
name = "JP"
[parties.US]
name = "US"
[categories.f]
name = "Facilities"
  [[categories.f.layers]]
  id = "envelope"
  split = { JP = "100%" }
  cap = CAP
  period = "term"
  [[categories.f.layers]]
  split = { US = "100%" }
"#;
    let l = d.path("l.db");
    ok(&[
        "init",
        &l,
        "--agreement",
        &d.file("v1.toml", base.replace("CAP", "1000")),
    ]);
    ok(&[
        "record",
        &l,
        &d.file("c1.csv", "id,date,category,amount\na,2022-05-01,f,600\n"),
    ]);
    let v2 = d.file(
        "v2.toml",
        base.replace("CAP", "1000").replace("Facilities", "Facilities (v2)"),
    );
    ok(&["amend", &l, "--agreement", &v2, "--effective", "2023-04-01"]);
    ok(&[
        "record",
        &l,
        &d.file("c2.csv", "id,date,category,amount\nb,2023-05-01,f,300\n"),
    ]);
    ok(&[
        "amend",
        &l,
        "--agreement",
        &d.file("v3.toml", base.replace("CAP", "1200")),
        "--effective",
        "2024-04-01",
    ]);
    ok(&[
        "record",
        &l,
        &d.file("c3.csv", "id,date,category,amount\nc,2024-05-01,f,500\n"),
    ]);
    let out = ok(&["allocate", "--ledger", &l, "--format", "csv"]);
    assert_eq!(out, "id,party,amount\na,JP,600\nb,JP,300\nc,JP,300\nc,US,200\n");
    let text = ok(&["explain", "--ledger", &l, "--id", "c"]);
    assert!(
        text.contains(
            "  carried over: 900 JPY of this period's cap were already used under agreement versions 1 (600 JPY) and 2 (300 JPY); 300 JPY of the 1,200 JPY cap left for this version's lines\n"
        ),
        "{text}"
    );
    ok(&["close", &l, "--period", "FY2024"]);
    // a late line under version 1 uses the envelope before versions 2 and 3
    let out = ok(&[
        "record",
        &l,
        &d.file("late.csv", "id,date,category,amount\nz,2022-06-01,f,200\n"),
        "--impact",
    ]);
    assert!(
        out.contains("impact: 2 earlier lines changed: JP -200, US +200")
            && out.contains("  b: JP -100, US +100")
            && out.contains("  c: JP -100, US +100"),
        "{out}"
    );
    let out = ok(&["allocate", "--ledger", &l, "--format", "csv"]);
    assert_eq!(
        out,
        "id,party,amount\na,JP,600\nz,JP,200\nb,JP,200\nb,US,100\nc,JP,200\nc,US,300\n"
    );
    // the closed year's adjustment sees the same envelope
    let adj = ok(&["adjustments", &l, "--format", "csv"]);
    assert_eq!(
        adj,
        "period,party,category,statement,now,adjustment\nFY2024,JP,f,300,200,-100\nFY2024,US,f,200,300,100\n"
    );
    assert!(ok(&["verify", &l]).starts_with("ok: "));
}
