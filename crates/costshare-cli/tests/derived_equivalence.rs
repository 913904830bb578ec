//! Issue 12: every ledger read prints the same bytes from the derived state
//! as from a replay of the journal (`COSTSHARE_LEDGER_PATH=replay`): stdout,
//! stderr, exit code and the files it writes (xlsx, SVG charts), for every
//! example agreement, with late lines, a replacement, a void, payments, a
//! closed year, rates and lines in another currency, before and after one and
//! two amendments, at as-of dates before, inside and after the term. Then the
//! same commands on a damaged derived state (a flipped byte in the meta, a
//! bucket, a shard; a blob deleted; the cache table dropped; a meta of the
//! previous layout): the replay's output, with at most the damaged-blob
//! warning on stderr, and never other figures.

use rusqlite::Connection;

mod common;
use common::{Dir, run_env};
use costshare_core::agreement::{Agreement, Cap};
use costshare_core::calendar::Date;
use costshare_demo::Rng;
use std::fmt::Write;
use std::path::PathBuf;

const REPLAY: [(&str, &str); 1] = [("COSTSHARE_LEDGER_PATH", "replay")];
const NOW: [(&str, &str); 0] = [];

/// Where a command writes a file: replaced by a path in the test directory.
const OUT: &str = "{out}";

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run_env(args, &NOW);
    assert_eq!(code, 0, "{args:?}\n{out}{err}");
    out
}

/// Random valid lines under `ag`: amounts up to a quarter of the category's
/// smallest money cap and quantities up to half its unit cap (so caps bind);
/// every fifth line in `foreign` (which has rates), every third naming a payer.
fn lines_csv(ag: &Agreement, rng: &mut Rng, n: usize, prefix: &str, foreign: &str) -> String {
    let mut s = String::from("id,date,category,amount,currency,quantity,site,paid_by\n");
    let days = ag.end.to_days() - ag.start.to_days();
    for i in 0..n {
        let c = rng.range(0, ag.categories.len() as i64 - 1) as usize;
        let cat = &ag.categories[c];
        let mut money = i64::MAX;
        let mut units = i64::MAX;
        for l in &cat.layers {
            match &l.cap {
                Some(Cap::Money(m)) => money = money.min(m.values.iter().copied().min().unwrap_or(i64::MAX)),
                Some(Cap::Units(u)) => {
                    for q in &u.values {
                        units = units.min(i64::try_from(q.mul_int_floor_rem(1).floor_u128()).unwrap_or(i64::MAX));
                    }
                }
                None => {}
            }
        }
        let top = if money == i64::MAX {
            10_000_000
        } else {
            (money / 4).max(1)
        };
        let (amount, currency) = if i % 5 == 4 {
            // two decimals in the other currency, converted at the rates
            let minor = rng.range(1, 500_000);
            (costshare_core::money::format_minor(minor as i128, 2), foreign)
        } else {
            let minor = rng.range(1, top);
            (
                costshare_core::money::format_minor(minor as i128, ag.currency.decimals()),
                "",
            )
        };
        let qty = if cat.unit.is_some() {
            let top = if units == i64::MAX { 500 } else { (units / 2).max(1) };
            format!("{}.{}", rng.range(0, top), rng.range(1, 9))
        } else {
            String::new()
        };
        let d = Date::from_days(ag.start.to_days() + rng.range(0, days));
        let site = ["", "North", "South"][rng.range(0, 2) as usize];
        let payer = if i % 3 == 0 {
            ag.parties[rng.range(0, ag.parties.len() as i64 - 1) as usize]
                .id
                .as_str()
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "{prefix}{i:04},{d},{},{amount},{currency},{qty},{site},{payer}",
            cat.id
        );
    }
    s
}

/// One example's ledger and what the commands need to name.
struct Case {
    name: String,
    example: String,
    ag: Agreement,
    ledger: String,
    foreign: &'static str,
    /// Another example with the same currency (or this one again).
    against: String,
    /// Ids: an active line, a voided one, a replaced one, a late one.
    ids: Vec<String>,
    /// Fiscal years the ledger's versions cover.
    fy: Vec<String>,
}

/// Every read command with a `--ledger` form or a ledger argument, at one
/// as-of date (`costshare --help`: allocate, report, explain, export,
/// compare, settle, ceilings, forecast; adjustments, history, verify).
/// `full`: every format and `--by`; else a smaller set.
fn commands(c: &Case, as_of: &str, full: bool) -> Vec<Vec<String>> {
    let l = c.ledger.as_str();
    let mut v: Vec<Vec<&str>> = Vec::new();
    let fy1 = c.fy.get(1).unwrap_or(&c.fy[0]).as_str();
    let fy0 = c.fy[0].as_str();
    let mid = Date::from_days((c.ag.start.to_days() + c.ag.end.to_days()) / 2).to_string();
    let (start, end) = (c.ag.start.to_string(), c.ag.end.to_string());
    let bys: &[&str] = if full {
        &[
            "party",
            "party,fiscal_year",
            "category,site",
            "fiscal_year,month,party",
            "party,fiscal_year,category,site,month",
        ]
    } else {
        &["party,fiscal_year", "category,site,month"]
    };
    let formats: &[&str] = if full {
        &["table", "csv", "json"]
    } else {
        &["table", "csv"]
    };
    for by in bys {
        for f in formats {
            v.push(vec!["report", "--ledger", l, "--by", by, "--format", f]);
        }
    }
    for f in formats {
        v.push(vec![
            "report",
            "--ledger",
            l,
            "--by",
            "party,category",
            "--from",
            &mid,
            "--format",
            f,
        ]);
        v.push(vec![
            "report", "--ledger", l, "--by", "party", "--to", &mid, "--format", f,
        ]);
        v.push(vec![
            "report",
            "--ledger",
            l,
            "--by",
            "category,party",
            "--period",
            fy1,
            "--format",
            f,
        ]);
        v.push(vec![
            "report",
            "--ledger",
            l,
            "--by",
            "fiscal_year",
            "--pivot",
            "party",
            "--format",
            f,
        ]);
        v.push(vec!["allocate", "--ledger", l, "--format", f]);
        v.push(vec!["ceilings", "--ledger", l, "--format", f]);
        v.push(vec!["settle", "--ledger", l, "--format", f]);
    }
    v.push(vec![
        "report", "--ledger", l, "--by", "party", "--from", &start, "--to", &end,
    ]);
    v.push(vec![
        "report",
        "--ledger",
        l,
        "--by",
        "party,fiscal_year",
        "--chart",
        OUT,
    ]);
    v.push(vec![
        "report", "--ledger", l, "--by", "party", "--period", fy0, "--chart", OUT,
    ]);
    v.push(vec![
        "report",
        "--ledger",
        l,
        "--by",
        "party,fiscal_year",
        "--currency",
        c.foreign,
    ]);
    v.push(vec![
        "report",
        "--ledger",
        l,
        "--by",
        "party",
        "--currency",
        c.foreign,
        "--rate-policy",
        "fiscal-year-average",
        "--period",
        fy1,
        "--format",
        "csv",
    ]);
    v.push(vec!["allocate", "--ledger", l, "--period", fy0, "--format", "csv"]);
    v.push(vec!["allocate", "--ledger", l, "--from", &mid]);
    for id in &c.ids {
        v.push(vec!["explain", "--ledger", l, "--id", id]);
    }
    v.push(vec!["explain", "--ledger", l, "--id", &c.ids[0], "--format", "json"]);
    v.push(vec!["explain", "--ledger", l, "--id", "no-such-line"]);
    v.push(vec!["ceilings", "--ledger", l, "--period", fy1, "--chart", OUT]);
    v.push(vec![
        "ceilings",
        "--ledger",
        l,
        "--currency",
        c.foreign,
        "--format",
        "csv",
    ]);
    v.push(vec!["settle", "--ledger", l, "--transfers", "--format", "csv"]);
    v.push(vec!["settle", "--ledger", l, "--period", fy1]);
    v.push(vec![
        "settle",
        "--ledger",
        l,
        "--currency",
        c.foreign,
        "--format",
        "json",
    ]);
    v.push(vec!["compare", "--ledger", l, "--against", &c.against, "--by", "party"]);
    v.push(vec![
        "compare",
        "--ledger",
        l,
        "--against",
        &c.against,
        "--by",
        "party,fiscal_year",
        "--period",
        fy1,
        "--format",
        "csv",
    ]);
    v.push(vec![
        "compare",
        "--ledger",
        l,
        "--against",
        &c.example,
        "--by",
        "category",
        "--format",
        "json",
        "--chart",
        OUT,
    ]);
    v.push(vec![
        "forecast",
        "--ledger",
        l,
        "--until",
        &end,
        "--by",
        "party,fiscal_year",
    ]);
    v.push(vec![
        "forecast", "--ledger", l, "--until", &end, "--by", "category", "--format", "csv",
    ]);
    for f in ["ledger", "beancount", "csv", "json"] {
        v.push(vec!["export", "--ledger", l, "--format", f]);
    }
    v.push(vec!["export", "--ledger", l, "--format", "csv", "--period", fy1]);
    v.push(vec!["export", "--ledger", l, "--format", "xlsx", "-o", OUT]);
    v.push(vec!["adjustments", l]);
    v.push(vec!["adjustments", l, "--format", "json"]);
    let mut out: Vec<Vec<String>> = v
        .into_iter()
        .map(|a| {
            let mut a: Vec<String> = a.into_iter().map(String::from).collect();
            a.extend(["--as-of".into(), as_of.into()]);
            a
        })
        .collect();
    // the commands without an as-of date
    out.push(vec!["history".into(), l.into()]);
    out.push(vec!["history".into(), l.into(), "--format".into(), "json".into()]);
    for id in &c.ids {
        out.push(vec!["history".into(), l.into(), "--id".into(), id.clone()]);
    }
    out.push(vec!["verify".into(), l.into()]);
    out
}

/// What a command printed and wrote: exit code, stdout, stderr, the file's
/// bytes (xlsx: every part but the creation time).
#[derive(Debug, PartialEq)]
struct Outcome {
    code: i32,
    out: String,
    err: String,
    file: Option<Vec<u8>>,
}

fn outcome(d: &Dir, args: &[String], env: &[(&str, &str)]) -> Outcome {
    let file = d.path("out-file");
    let _ = std::fs::remove_file(&file);
    let ext = if args.iter().any(|a| a == "xlsx") {
        "xlsx"
    } else {
        "svg"
    };
    let file = format!("{file}.{ext}");
    let _ = std::fs::remove_file(&file);
    let args: Vec<&str> = args
        .iter()
        .map(|a| if a == OUT { file.as_str() } else { a.as_str() })
        .collect();
    let (code, out, err) = run_env(&args, env);
    let bytes = std::fs::read(&file).ok();
    let file = bytes.map(|b| if ext == "xlsx" { xlsx_parts(&b) } else { b });
    Outcome { code, out, err, file }
}

/// An xlsx workbook's parts, name and bytes, the document's creation time
/// (the one thing two runs may differ in) left out.
fn xlsx_parts(b: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(b)).expect("an xlsx file");
    let mut out = Vec::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let name = f.name().map(|n| n.to_string()).unwrap_or_default();
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        let mut body = Vec::new();
        f.read_to_end(&mut body).unwrap();
        if name == "docProps/core.xml" {
            let t = String::from_utf8_lossy(&body).into_owned();
            let t = strip_between(&t, "<dcterms:created", "</dcterms:created>");
            let t = strip_between(&t, "<dcterms:modified", "</dcterms:modified>");
            body = t.into_bytes();
        }
        out.extend_from_slice(&body);
    }
    out
}

fn strip_between(t: &str, a: &str, b: &str) -> String {
    match (t.find(a), t.find(b)) {
        (Some(i), Some(j)) if j > i => format!("{}{}", &t[..i], &t[j + b.len()..]),
        _ => t.to_string(),
    }
}

/// The derived state reflects the journal's head: a filtered report reads
/// its lines, and `verify` finds it equal to a rebuild.
fn assert_fresh(c: &Case, what: &str) {
    let l = c.ledger.as_str();
    let mid = Date::from_days((c.ag.start.to_days() + c.ag.end.to_days()) / 2).to_string();
    let (code, _, err) = run_env(
        &["report", "--ledger", l, "--by", "party", "--from", &mid],
        &[("COSTSHARE_REPORT_PATH", "explain")],
    );
    assert_eq!(code, 0, "{what}: {err}");
    assert!(err.contains("report path: derived state, every line"), "{what}: {err}");
    let v = ok(&["verify", l, "--deep"]);
    assert!(v.contains("derived state: matches the journal"), "{what}: {v}");
}

/// Every command, at three as-of dates: the same outcome from the derived
/// state and from a replay. Returns how many commands were compared.
fn compare_all(c: &Case, d: &Dir, what: &str, full: bool) -> usize {
    assert_fresh(c, what);
    let before = Date::from_days(c.ag.start.to_days() - 10).to_string();
    let inside = Date::from_days((c.ag.start.to_days() * 2 + c.ag.end.to_days()) / 3).to_string();
    let after = Date::from_days(c.ag.end.to_days() + 40).to_string();
    // every date for the full set; the inside one for the smaller set
    let dates = if full {
        vec![before, inside, after]
    } else {
        vec![inside]
    };
    let (mut n, mut failed) = (0, 0);
    for (k, as_of) in dates.iter().enumerate() {
        let cmds = commands(c, as_of, full);
        for args in &cmds {
            // history and verify do not depend on the date: once
            if k > 0 && (args[0] == "history" || args[0] == "verify") {
                continue;
            }
            let derived = outcome(d, args, &NOW);
            let replay = outcome(d, args, &REPLAY);
            assert_eq!(
                derived,
                replay,
                "{}: {what}: derived state and replay differ: costshare {}",
                c.name,
                args.join(" ")
            );
            if derived.code != 0 {
                // refusals must be the same too (a voided line, no rate to average)
                failed += 1;
            }
            n += 1;
        }
    }
    assert!(failed * 5 < n, "{}: {what}: {failed} of {n} commands failed", c.name);
    // the reads left the derived state as it was
    assert_fresh(c, what);
    n
}

/// Build one example's ledger step by step, comparing every command at
/// each stage; the last stage's commands are then run on damaged derived
/// states.
fn equivalence(file: &str) {
    equivalence_on(file, None);
}

/// [`equivalence`] on the ledger `target` (a `postgres://` URL: the smaller
/// command set at one date per stage), or on a SQLite file; the damage
/// sweep only on SQLite (it edits the cache table with SQLite).
fn equivalence_on(file: &str, target: Option<&str>) {
    let example = examples_dir().join(file).display().to_string();
    let text = std::fs::read_to_string(&example).unwrap();
    let ag = costshare_core::load(&text).agreement.expect("example loads");
    let d = Dir::new(&format!("equiv-{}", file.trim_end_matches(".toml")));
    let foreign = if ag.currency.code() == "USD" { "EUR" } else { "USD" };
    let rate = match ag.currency.code() {
        "JPY" => ["142.5", "151.25"],
        "USD" => ["1.08", "1.1125"],
        _ => ["0.92", "0.9475"],
    };
    let mid = Date::from_days((ag.start.to_days() + ag.end.to_days()) / 2);
    let rates = d.file(
        "rates.csv",
        format!("date,currency,rate\n{},{foreign},{}\n", ag.start, rate[0]),
    );
    let rates2 = d.file(
        "rates2.csv",
        format!("date,currency,rate\n{mid},{foreign},{}\n", rate[1]),
    );
    let l = target.map(str::to_string).unwrap_or_else(|| d.path("l.db"));
    ok(&["init", &l, "--agreement", &example, "--rates", &rates]);
    let mut rng = Rng::new(file.len() as u64 * 31 + 5);
    let first = d.file("first.csv", lines_csv(&ag, &mut rng, 120, "a", foreign));
    ok(&["record", &l, &first]);
    // late lines, one small file at a time (the fast path), with new rates
    // once (the full path)
    for k in 0..3 {
        let late = d.file(
            "late.csv",
            lines_csv(&ag, &mut rng, 1 + k, &format!("late{k}-"), foreign),
        );
        ok(&["record", &l, &late, "--impact"]);
    }
    let more = d.file("more.csv", lines_csv(&ag, &mut rng, 10, "m", foreign));
    ok(&["record", &l, &more, "--rates", &rates2]);
    // a replacement of a0003 and a void of a0007
    let a3 = std::fs::read_to_string(&first)
        .unwrap()
        .lines()
        .find(|r| r.starts_with("a0003,"))
        .unwrap()
        .to_string();
    let mut f: Vec<&str> = a3.split(',').collect();
    f[0] = "r0003";
    let repl = d.file(
        "repl.csv",
        format!(
            "id,date,category,amount,currency,quantity,site,paid_by,replaces\n{},a0003\n",
            f.join(",")
        ),
    );
    ok(&["record", &l, &repl]);
    ok(&["void", &l, "a0007", "--reason", "entered twice"]);
    // payments between the first two parties
    let (p0, p1) = (&ag.parties[0].id, &ag.parties[1 % ag.parties.len()].id);
    let pays = d.file(
        "pay.csv",
        format!(
            "id,date,from,to,amount\np1,{},{p0},{p1},{}\np2,{mid},{p1},{p0},{}\n",
            ag.start,
            costshare_core::money::format_minor(123_456, ag.currency.decimals()),
            costshare_core::money::format_minor(7_890, ag.currency.decimals()),
        ),
    );
    ok(&["pay", &l, &pays]);
    // close the first fiscal year, then a late line in it (an adjustment)
    let (_, fy_end) = ag.calendar.fy_bounds(ag.first_fy);
    let close_as_of = Date::from_days(fy_end.to_days() + 1).to_string();
    let (code, _, _) = run_env(
        &["close", &l, "--period", &ag.fy_label(0), "--as-of", &close_as_of],
        &NOW,
    );
    if code != 0 {
        ok(&[
            "close",
            &l,
            "--period",
            &ag.fy_label(0),
            "--as-of",
            &close_as_of,
            "--force",
        ]);
    }
    let cat = &ag.categories[0];
    let late = d.file(
        "late-closed.csv",
        format!(
            "id,date,category,amount,quantity\nclosed-late,{},{},{},{}\n",
            ag.start,
            cat.id,
            costshare_core::money::format_minor(5_000, ag.currency.decimals()),
            if cat.unit.is_some() { "1.5" } else { "" }
        ),
    );
    ok(&["record", &l, &late]);
    let against = other_with_currency(file, ag.currency.code()).unwrap_or_else(|| example.clone());
    let mut c = Case {
        name: file.to_string(),
        example: example.clone(),
        ag: ag.clone(),
        ledger: l.clone(),
        foreign,
        against,
        ids: vec![
            "a0001".into(),
            "a0007".into(),
            "a0003".into(),
            "late2-0001".into(),
            "r0003".into(),
        ],
        fy: (0..ag.fy_count).map(|k| ag.fy_label(k)).collect(),
    };
    let mut n = compare_all(&c, &d, "one version", target.is_none());
    // one amendment, from the second fiscal year; lines after it
    if ag.fy_count >= 2 {
        let v2 = d.file("v2.toml", version(&text, &ag.id, "v2", (2, 3)));
        let (eff, _) = ag.calendar.fy_bounds(ag.first_fy + 1);
        ok(&["amend", &l, "--agreement", &v2, "--effective", &eff.to_string()]);
        n += compare_all(&c, &d, "one amendment", false);
        let after = d.file("after-v2.csv", lines_csv(&ag, &mut rng, 30, "v2-", foreign));
        ok(&["record", &l, &after]);
        ok(&["void", &l, "v2-0004", "--reason", "wrong site"]);
        c.ids.push("v2-0001".into());
        n += compare_all(
            &c,
            &d,
            "one amendment, lines after it",
            target.is_none() && ag.fy_count < 3,
        );
    }
    if ag.fy_count >= 3 {
        let v3 = d.file("v3.toml", version(&text, &ag.id, "v3", (1, 2)));
        let (eff, _) = ag.calendar.fy_bounds(ag.first_fy + 2);
        ok(&["amend", &l, "--agreement", &v3, "--effective", &eff.to_string()]);
        let after = d.file("after-v3.csv", lines_csv(&ag, &mut rng, 3, "v3-", foreign));
        ok(&["record", &l, &after]);
        c.ids.push("v3-0002".into());
        n += compare_all(&c, &d, "two amendments", target.is_none());
    }
    assert!(n > 150, "{file}: {n} commands compared");
    eprintln!("{file}: {n} commands compared, derived state against replay");
    // the damage sweep on the examples with three versions, a foreign
    // currency in euros or a calendar fiscal year
    if target.is_none() && ["us-japan-sma-2022.toml", "household.toml", "joint-venture.toml"].contains(&file) {
        damage(&c, &d);
    }
}

/// The text of a later version: its id suffixed, and the first quoted cap
/// (`cap = "DIGITS[.DIGITS]"`) scaled by `num/den` (its whole part, rounded
/// down), so the versions' caps differ and the carried use matters.
fn version(text: &str, id: &str, suffix: &str, (num, den): (u128, u128)) -> String {
    let t = text.replacen(&format!("id = \"{id}\""), &format!("id = \"{id}-{suffix}\""), 1);
    let key = "cap = \"";
    let mut from = 0;
    while let Some(i) = t[from..].find(key).map(|i| i + from + key.len()) {
        let whole: String = t[i..].chars().take_while(char::is_ascii_digit).collect();
        let rest = &t[i + whole.len()..];
        let frac: String = rest
            .strip_prefix('.')
            .map(|r| r.chars().take_while(char::is_ascii_digit).collect())
            .unwrap_or_default();
        let end = i + whole.len() + if frac.is_empty() { 0 } else { frac.len() + 1 };
        if !whole.is_empty() && t[end..].starts_with('"') {
            let v: u128 = whole.parse().unwrap();
            return format!("{}{}{}", &t[..i], v * num / den, &t[i + whole.len()..]);
        }
        from = i;
    }
    t
}

/// Another example agreement in the same currency, for `compare --against`.
fn other_with_currency(file: &str, code: &str) -> Option<String> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && !p.ends_with(file))
        .collect();
    v.sort();
    v.into_iter()
        .find(|p| {
            let t = std::fs::read_to_string(p).unwrap();
            costshare_core::load(&t)
                .agreement
                .is_some_and(|a| a.currency.code() == code)
        })
        .map(|p| p.display().to_string())
}

// --- damage ------------------------------------------------------------------

fn blobs(l: &str) -> Vec<(String, Vec<u8>)> {
    let conn = Connection::open(l).unwrap();
    let mut q = conn.prepare("SELECT k, v FROM cache ORDER BY k").unwrap();
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Put the cache table back as it was (created if dropped).
fn restore(l: &str, all: &[(String, Vec<u8>)]) {
    let mut conn = Connection::open(l).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute_batch("CREATE TABLE IF NOT EXISTS cache (k TEXT PRIMARY KEY, v BLOB NOT NULL); DELETE FROM cache;")
        .unwrap();
    for (k, v) in all {
        tx.execute("INSERT INTO cache (k, v) VALUES (?1, ?2)", rusqlite::params![k, v])
            .unwrap();
    }
    tx.commit().unwrap();
}

/// Not SQL: every blob rewritten with the seal of the previous layout
/// (`CSd3`), plus a key of that layout's shape, as a derived state written
/// before layout 4 would be.
const OLD_LAYOUT: &str = "every blob CSd3";

fn sql(l: &str, q: &str, k: &str, v: &[u8]) {
    let conn = Connection::open(l).unwrap();
    if q == OLD_LAYOUT {
        for (k, mut v) in blobs(l) {
            v[..4].copy_from_slice(b"CSd3");
            conn.execute("UPDATE cache SET v = ?1 WHERE k = ?2", rusqlite::params![v, k])
                .unwrap();
        }
        let mut old = b"CSd3".to_vec();
        old.extend_from_slice(&[0; 40]);
        conn.execute("INSERT OR REPLACE INTO cache (k, v) VALUES ('b/0/24267', ?1)", [old])
            .unwrap();
    } else if q.contains("?2") {
        conn.execute(q, rusqlite::params![v, k]).unwrap();
    } else if q.contains("?1") {
        conn.execute(q, [k]).unwrap();
    } else {
        conn.execute_batch(q).unwrap();
    }
}

/// The warning of a damaged blob, named.
fn warning(l: &str, key: &str) -> String {
    format!(
        "costshare: warning: the derived state of {l} is damaged (blob `{key}` is missing, fails its checksum, or is not the one its meta names); it was not used: the journal was replayed and the derived state rewritten\n"
    )
}

/// Each kind of damage, then every command: the replay's stdout, exit code
/// and file; stderr the replay's, after at most the warning naming the
/// damaged blob (required where the command read it: the meta). After a
/// command the derived state is whole again (rewritten, or never touched).
fn damage(c: &Case, d: &Dir) {
    let l = c.ledger.as_str();
    assert_fresh(c, "before damage");
    let all = blobs(l);
    let meta = all.iter().find(|(k, _)| k == "meta").unwrap().1.clone();
    let bucket = all
        .iter()
        .filter(|(k, _)| k.starts_with("b/"))
        .max_by_key(|(_, v)| v.len())
        .unwrap()
        .clone();
    let shard = all
        .iter()
        .filter(|(k, _)| k.starts_with("i/"))
        .max_by_key(|(_, v)| v.len())
        .unwrap()
        .clone();
    let flip = |v: &[u8], at: usize| {
        let mut b = v.to_vec();
        let i = at.min(b.len() - 1);
        b[i] ^= 0x10;
        b
    };
    let old_layout = {
        let mut b = meta.clone();
        b[..4].copy_from_slice(b"CSd3");
        b
    };
    // (what, SQL, key, value, the blob a warning names)
    type Damage<'a> = (&'a str, &'a str, String, Vec<u8>, Option<&'a str>);
    let up = "UPDATE cache SET v = ?1 WHERE k = ?2";
    let del = "DELETE FROM cache WHERE k = ?1";
    let kinds: Vec<Damage<'_>> = vec![
        ("meta header byte", up, "meta".into(), flip(&meta, 6), Some("meta")),
        (
            "meta payload byte",
            up,
            "meta".into(),
            flip(&meta, meta.len() - 9),
            Some("meta"),
        ),
        (
            "bucket payload byte",
            up,
            bucket.0.clone(),
            flip(&bucket.1, bucket.1.len() - 3),
            Some(&bucket.0),
        ),
        (
            "bucket checksum byte",
            up,
            bucket.0.clone(),
            flip(&bucket.1, 80),
            Some(&bucket.0),
        ),
        (
            "shard byte",
            up,
            shard.0.clone(),
            flip(&shard.1, shard.1.len() / 2),
            Some(&shard.0),
        ),
        ("bucket deleted", del, bucket.0.clone(), Vec::new(), Some(&bucket.0)),
        ("shard deleted", del, shard.0.clone(), Vec::new(), Some(&shard.0)),
        ("meta deleted", del, "meta".into(), Vec::new(), None),
        (
            "cache table dropped",
            "DROP TABLE cache",
            String::new(),
            Vec::new(),
            None,
        ),
        ("meta of the previous layout", up, "meta".into(), old_layout, None),
        (
            "every blob of the previous layout",
            OLD_LAYOUT,
            String::new(),
            Vec::new(),
            None,
        ),
    ];
    let as_of = Date::from_days((c.ag.start.to_days() + c.ag.end.to_days()) / 2).to_string();
    // one command of each kind: name, date filter, currency, file written
    let mut kinds_seen = std::collections::HashSet::new();
    let cmds: Vec<Vec<String>> = commands(c, &as_of, false)
        .into_iter()
        .filter(|a| {
            let has = |flags: &[&str]| a.iter().any(|x| flags.contains(&x.as_str()));
            kinds_seen.insert((
                a[0].clone(),
                has(&["--from", "--to", "--period"]),
                has(&["--currency"]),
                has(&[OUT]),
                has(&["--id"]) && a[0] == "history",
            ))
        })
        .collect();
    // the replay's outcomes, once
    let want: Vec<Outcome> = cmds.iter().map(|a| outcome(d, a, &REPLAY)).collect();
    for (what, q, key, value, named) in &kinds {
        let mut warned = 0;
        for (args, want) in cmds.iter().zip(&want) {
            restore(l, &all);
            sql(l, q, key, value);
            let mut got = outcome(d, args, &NOW);
            let cmd = args.join(" ");
            let reads_lines = !matches!(args[0].as_str(), "history" | "verify" | "adjustments");
            if args[0] == "verify" {
                // verify names the damage (exit 1) and does not repair it
                continue;
            }
            if let Some(k) = named {
                let w = warning(l, k);
                if let Some(rest) = got.err.strip_prefix(&w) {
                    got.err = rest.to_string();
                    warned += 1;
                } else if *k == "meta" && reads_lines {
                    panic!("{}: {what}: no warning from costshare {cmd}:\n{}", c.name, got.err);
                }
            }
            assert_eq!(
                &got, want,
                "{}: {what}: costshare {cmd} differs from the replay",
                c.name
            );
        }
        // the warning is said where the damaged blob was read
        if named.is_some_and(|k| !k.starts_with("i/")) {
            assert!(warned > 0, "{}: {what}: no command warned", c.name);
        }
        // and the derived state is whole again after a read that rewrote it
        restore(l, &all);
        sql(l, q, key, value);
        let (code, out, err) = run_env(
            &[
                "report", "--ledger", l, "--by", "party", "--from", &as_of, "--as-of", &as_of,
            ],
            &NOW,
        );
        assert_eq!(code, 0, "{what}: {err}");
        assert_eq!(
            out,
            outcome(
                d,
                &[
                    "report", "--ledger", l, "--by", "party", "--from", &as_of, "--as-of", &as_of
                ]
                .map(String::from),
                &REPLAY
            )
            .out
        );
        // a read that met the damage rewrote the derived state; a shard no
        // read uses stays damaged, and `verify` still says so
        let (code, out, err) = run_env(&["verify", l, "--deep"], &NOW);
        if key.starts_with("i/") {
            assert_eq!(code, 1, "{}: {what}: verify\n{out}{err}", c.name);
            assert!(err.contains(&format!("blob `{key}`")), "{}: {what}: {err}", c.name);
        } else {
            assert_eq!(code, 0, "{}: {what}: verify after a read\n{out}{err}", c.name);
            assert!(
                out.contains("derived state: matches the journal"),
                "{}: {what}: {out}",
                c.name
            );
        }
    }
    restore(l, &all);
    eprintln!(
        "{}: {} commands under each of {} kinds of damage",
        c.name,
        cmds.len(),
        kinds.len()
    );
}

macro_rules! examples {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                equivalence($file);
            }
        )*
        /// Every example agreement has its test above.
        #[test]
        fn every_example_is_covered() {
            let mut have: Vec<String> = std::fs::read_dir(examples_dir())
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".toml"))
                .collect();
            have.sort();
            let mut listed = vec![$($file.to_string()),*];
            listed.sort();
            assert_eq!(have, listed);
        }
    };
}

examples! {
    household => "household.toml",
    joint_venture => "joint-venture.toml",
    nato_common_funding => "nato-common-funding.toml",
    us_japan_fourfold_proposal => "us-japan-fourfold-proposal.toml",
    us_japan_rd_2022 => "us-japan-rd-2022.toml",
    us_japan_sma_2016 => "us-japan-sma-2016.toml",
    us_japan_sma_2022 => "us-japan-sma-2022.toml",
}

/// The same on PostgreSQL (skipped without a server on 127.0.0.1:5432).
#[test]
fn us_japan_sma_2022_on_postgres() {
    let Some(db) = common::PgDb::new("equiv") else { return };
    equivalence_on("us-japan-sma-2022.toml", Some(&db.url));
}

/// A report with a date filter reads every line from the buckets: a damaged
/// bucket (the meta whole) is said on stderr and rewritten, as `allocate`
/// does; it used to be replayed silently on every run and left damaged.
#[test]
fn a_filtered_report_says_and_rewrites_a_damaged_bucket() {
    let d = Dir::new("equiv-bucket");
    let a = d.file(
        "a.toml",
        "[agreement]\nid = \"u\"\ncurrency = \"JPY\"\nstart = \"2022-04-01\"\nend = \"2024-03-31\"\n\
         fiscal_year_start = \"04-01\"\n[parties.JP]\nname = \"JP\"\n[parties.US]\nname = \"US\"\n\
         [categories.u]\nname = \"Utilities\"\n  [[categories.u.layers]]\n  split = { JP = \"100%\" }\n  cap = 1000\n\
         \x20 [[categories.u.layers]]\n  split = { US = \"100%\" }\n",
    );
    let c = d.file(
        "c.csv",
        "id,date,category,amount\na1,2022-04-03,u,400\na2,2022-05-09,u,500\na3,2022-11-20,u,300\na4,2023-06-01,u,1200\n",
    );
    let l = d.path("l.db");
    ok(&["init", &l, "--agreement", &a]);
    ok(&["record", &l, &c]);
    let all = blobs(&l);
    let (k, v) = all
        .iter()
        .filter(|(k, _)| k.starts_with("b/"))
        .max_by_key(|(_, v)| v.len())
        .unwrap();
    let mut bad = v.clone();
    *bad.last_mut().unwrap() ^= 0xff;
    sql(&l, "UPDATE cache SET v = ?1 WHERE k = ?2", k, &bad);
    let args = [
        "report",
        "--ledger",
        &l,
        "--by",
        "party",
        "--from",
        "2022-04-01",
        "--as-of",
        "2025-01-01",
        "--format",
        "csv",
    ];
    let replay = run_env(&args, &REPLAY);
    let (code, out, err) = run_env(&args, &[("COSTSHARE_REPORT_PATH", "explain")]);
    assert_eq!((code, &out), (0, &replay.1), "{err}");
    assert!(err.starts_with(&warning(&l, k)), "{err}");
    assert!(ok(&["verify", &l, "--deep"]).contains("derived state: matches the journal"));
    let (_, again, err) = run_env(&args, &[("COSTSHARE_REPORT_PATH", "explain")]);
    assert_eq!(again, out);
    assert_eq!(err, "costshare: report path: derived state, every line\n");
}
