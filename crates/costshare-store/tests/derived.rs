//! The derived state kept beside the journal equals a replay of the journal:
//! after lines taken in from it (the fast path of `record`), after writes by
//! the full path, and as `verify` sees it. Every example agreement, random
//! lines sized so that the caps bind.

mod common;

use common::{check, examples, input, lines_csv, sma_fresh};
use costshare_demo::Rng;
use costshare_store::{DerivedStatus, Ledger, LedgerError, Verified, VerifyOptions};

#[test]
fn derived_state_equals_a_replay() {
    let dir = std::env::temp_dir().join(format!("costshare-derived-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let now = "2026-11-27T00:00:00Z";
    let mut late_lines = 0;
    let mut moved = 0;
    let mut amended = 0;
    for (n, (name, text)) in examples().into_iter().enumerate() {
        let ag = costshare_core::load(&text).agreement.expect("example loads");
        let toml = text.clone();
        let path = dir.join(format!("l{n}.db")).display().to_string();
        let (mut l, _) = Ledger::init(&path, input(&name, &text), None, now).unwrap();
        let mut rng = Rng::new(n as u64 + 7);
        // a first file, taken in line by line from the derived state
        let first = lines_csv(&ag, &mut rng, 120, "a");
        let (out, _) = l
            .record_fast(input("first.csv", &first), now)
            .unwrap()
            .expect("fast path");
        assert_eq!(out.recorded, 120, "{name}");
        check(&mut l, &format!("{name}: first file"));
        // late lines, one small file at a time
        for k in 0..6 {
            let late = lines_csv(&ag, &mut rng, 1 + k % 3, &format!("late{k}-"));
            let (out, imp) = l
                .record_fast(input("late.csv", &late), now)
                .unwrap()
                .expect("fast path");
            late_lines += out.recorded;
            moved += imp.changed.len();
            check(&mut l, &format!("{name}: late file {k}"));
        }
        // the same file again: nothing new, nothing written
        let again = lines_csv(&ag, &mut Rng::new(n as u64 + 7), 120, "a");
        let (out, _) = l
            .record_fast(input("first.csv", &again), now)
            .unwrap()
            .expect("fast path");
        assert_eq!((out.recorded, out.already), (0, 120), "{name}");
        // the full path (a replacement) keeps the derived state up to date
        let repl = "id,date,category,amount,quantity,site,replaces\n";
        let st = l.state().unwrap();
        let old = &st.lines[3].body;
        let text = format!(
            "{repl}r1,{},{},{},{},{},{}\n",
            old.date, old.category, old.amount, old.quantity, old.site, old.id
        );
        assert!(
            l.record_fast(input("r.csv", &text), now).unwrap().is_none(),
            "replacements take the full path"
        );
        l.record(input("r.csv", &text), None, now).unwrap();
        check(&mut l, &format!("{name}: after a replacement"));
        l.void("a0007", "test", now).unwrap();
        check(&mut l, &format!("{name}: after a void"));
        match l.verify_with(&DEEP).unwrap() {
            Verified::Ok { derived, .. } => assert_eq!(derived, DerivedStatus::Consistent, "{name}"),
            Verified::Bad { seq, message } => panic!("{name}: verify failed at {seq}: {message}"),
            other => panic!("{other:?}"),
        }
        // an amendment from the second fiscal year: the derived state covers
        // both versions (the second continues the first's caps)
        if ag.fy_count >= 2 {
            let (effective, _) = ag.calendar.fy_bounds(ag.first_fy + 1);
            l.amend(input("amended.toml", &toml), effective, now).unwrap();
            amended += 1;
            check(&mut l, &format!("{name}: after an amendment"));
            let more = lines_csv(&ag, &mut rng, 40, "b");
            assert!(
                l.record_fast(input("more.csv", &more), now).unwrap().is_none(),
                "{name}: with two versions, lines take the full path"
            );
            l.record(input("more.csv", &more), None, now).unwrap();
            check(&mut l, &format!("{name}: lines after an amendment"));
            match l.verify_with(&DEEP).unwrap() {
                Verified::Ok { derived, .. } => assert_eq!(derived, DerivedStatus::Consistent, "{name}"),
                Verified::Bad { seq, message } => panic!("{name}: verify failed at {seq}: {message}"),
                other => panic!("{other:?}"),
            }
        }
    }
    assert!(amended >= 3, "amended ledgers: {amended}");
    assert!(late_lines >= 50, "late lines taken in: {late_lines}");
    assert!(moved > 0, "no late line moved an earlier one: the caps never bound");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A ledger of the 2022 SMA in a fresh directory named for `test`, with
/// `n` random lines (ids `prefix0000`…, seeded by `seed`) recorded in one
/// file: the directory, the ledger's path and the open ledger.
fn sma_ledger(test: &str, seed: u64, n: usize, prefix: &str) -> (std::path::PathBuf, String, Ledger) {
    let now = "2026-11-27T00:00:00Z";
    let (dir, path, ag, mut l) = sma_fresh(&format!("derived-{test}"), now);
    let csv = lines_csv(&ag, &mut Rng::new(seed), n, prefix);
    l.record(input(&format!("{prefix}.csv"), &csv), None, now).unwrap();
    (dir, path, l)
}

/// A damaged derived state is caught by `verify`, not used, and rebuilt by
/// `verify --repair`.
#[test]
fn verify_repairs_a_damaged_derived_state() {
    let (dir, path, mut l) = sma_ledger("bad", 1, 50, "x");
    check(&mut l, "before damage");
    // change one report total behind the program's back
    let conn = rusqlite::Connection::open(&path).unwrap();
    let meta: Vec<u8> = conn
        .query_row("SELECT v FROM cache WHERE k = 'meta'", [], |r| r.get(0))
        .unwrap();
    let mut bad = meta.clone();
    let last = bad.len() - 20;
    bad[last] ^= 1;
    conn.execute("UPDATE cache SET v = ?1 WHERE k = 'meta'", [&bad])
        .unwrap();
    drop(conn);
    // reported, not repaired, without --repair; the report does not use it
    let key = "meta".to_string();
    match l.verify().unwrap() {
        Verified::Ok { derived, .. } => assert_eq!(derived, DerivedStatus::Damaged { key: key.clone() }),
        Verified::Bad { seq, message } => panic!("verify failed at {seq}: {message}"),
        other => panic!("{other:?}"),
    }
    assert!(l.derived().unwrap().is_none());
    assert_eq!(l.take_damaged(), Some(key.clone()));
    let repair = VerifyOptions {
        repair: true,
        ..VerifyOptions::default()
    };
    match l.verify_with(&repair).unwrap() {
        Verified::Ok { derived, .. } => assert_eq!(derived, DerivedStatus::Repaired { key }),
        Verified::Bad { seq, message } => panic!("verify failed at {seq}: {message}"),
        other => panic!("{other:?}"),
    }
    check(&mut l, "after repair");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file large enough to be checked on two threads and recorded by the full
/// path, into a ledger with two agreement versions: the derived state built
/// from the cost lines its rows were accepted as (not from a replay of them)
/// is the replay's, and a bad row in each half is named, in line order.
#[test]
fn a_large_file_recorded_in_one_write_gives_the_replays_derived_state() {
    let dir = std::env::temp_dir().join(format!("costshare-derived-large-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let now = "2026-11-27T00:00:00Z";
    let mut checked = 0;
    for (n, (name, text)) in examples().into_iter().enumerate() {
        let ag = costshare_core::load(&text).agreement.expect("example loads");
        if ag.fy_count < 2 || checked == 3 {
            continue;
        }
        checked += 1;
        let path = dir.join(format!("l{n}.db")).display().to_string();
        let (mut l, _) = Ledger::init(&path, input(&name, &text), None, now).unwrap();
        let (effective, _) = ag.calendar.fy_bounds(ag.first_fy + 1);
        l.amend(input("amended.toml", &text), effective, now).unwrap();
        let mut rng = Rng::new(n as u64 + 101);
        let good = lines_csv(&ag, &mut rng, 30_000, "big");
        assert!(good.len() > 1 << 20, "{name}: {} bytes", good.len());
        // one bad row in each half: a date outside every term, an unknown category
        let mut rows: Vec<&str> = good.lines().collect();
        let early = format!("{},1999-01-01,{},1,,", "bad-early", ag.categories[0].id);
        let late = "bad-late,2023-01-01,no-such-category,1,,".to_string();
        rows.insert(1000, &early);
        rows.insert(29_000, &late);
        let bad = rows.join("\n") + "\n";
        match l.record(input("bad.csv", &bad), None, now) {
            Err(LedgerError::Rows { errors, .. }) => {
                let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
                assert_eq!(lines, vec![1001, 29_001], "{name}: {errors:?}");
                assert_eq!(errors[0].id.as_deref(), Some("bad-early"), "{name}");
                assert_eq!(errors[1].id.as_deref(), Some("bad-late"), "{name}");
            }
            other => panic!("{name}: {:?}", other.map(|o| o.recorded)),
        }
        let out = l.record(input("good.csv", &good), None, now).unwrap();
        assert_eq!(out.recorded, 30_000, "{name}");
        check(&mut l, &format!("{name}: a large file"));
    }
    assert_eq!(checked, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A new ledger's pages are 16 KB (a bulk load writes a quarter as many
/// frames), and its buckets and id shards are stored compressed (`CSz6`),
/// its meta not (`CSd6`); a ledger recorded so checks against a replay
/// (`sma_ledger`'s lines are checked by `derived_state_equals_a_replay`).
#[test]
fn a_new_ledger_has_16k_pages_and_compressed_buckets() {
    let (dir, path, mut l) = sma_ledger("pages", 6, 400, "p");
    check(&mut l, "a new ledger");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    assert_eq!(page, 16384);
    let blobs = stored_blobs(&path);
    assert!(blobs.keys().any(|k| k.starts_with("b/")) && blobs.keys().any(|k| k.starts_with("i/")));
    for (k, v) in &blobs {
        let want: &[u8] = if k == "meta" { b"CSd6" } else { b"CSz6" };
        assert_eq!(&v[..4], want, "{k}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The derived state's blobs as stored, by key.
fn stored_blobs(path: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut st = conn.prepare("SELECT k, v FROM cache").unwrap();
    st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn put_blob(path: &str, key: &str, v: Option<&[u8]>) {
    let conn = rusqlite::Connection::open(path).unwrap();
    match v {
        Some(v) => conn
            .execute("UPDATE cache SET v = ?1 WHERE k = ?2", rusqlite::params![v, key])
            .unwrap(),
        None => conn.execute("DELETE FROM cache WHERE k = ?1", [key]).unwrap(),
    };
}

/// A sealed blob's payload: after `CSd6` or `CSz6`, the head's length and
/// bytes and the 16-byte checksum; `CSz6`'s is compressed (LZ4, its length
/// first).
fn payload(stored: &[u8]) -> Vec<u8> {
    let n = u32::from_le_bytes(stored[4..8].try_into().unwrap()) as usize;
    let p = &stored[8 + n + 16..];
    if !stored.starts_with(b"CSz6") {
        return p.to_vec();
    }
    let len = u32::from_le_bytes(p[..4].try_into().unwrap()) as usize;
    lz4_flex::block::decompress(&p[4..], len).unwrap()
}

fn derived_status(l: &mut Ledger, opts: &VerifyOptions) -> (DerivedStatus, bool) {
    match l.verify_with(opts).unwrap() {
        Verified::Ok { derived, deep, .. } => (derived, deep),
        other => panic!("{other:?}"),
    }
}

const DEEP: VerifyOptions = VerifyOptions {
    deep: true,
    repair: false,
    expect_head: None,
};

/// A bucket restored from an earlier copy of the same ledger, sealed by the
/// program itself and holding as many lines as the one it replaces: its own
/// seal checks and the meta's line count is unchanged, so only the meta's
/// record of each blob's seal tells it from the current one. Reads refuse
/// it (commands replay the journal) and the default `verify` reports it.
#[test]
fn a_stale_bucket_restored_from_an_earlier_copy_is_refused() {
    let (dir, path, mut l) = sma_ledger("stale", 3, 60, "x");
    let now = "2026-11-27T00:00:00Z";
    let before = stored_blobs(&path);
    // a line replaced by another of the same date and category: its bucket
    // holds as many lines as before, other ones
    let st = l.state().unwrap();
    let old = &st.lines[5].body;
    let repl = format!(
        "id,date,category,amount,quantity,site,replaces\nr1,{},{},{},{},{},{}\n",
        old.date, old.category, old.amount, old.quantity, old.site, old.id
    );
    l.record(input("r.csv", &repl), None, now).unwrap();
    check(&mut l, "after the replacement");
    assert_eq!(
        derived_status(&mut l, &VerifyOptions::default()),
        (DerivedStatus::Sealed, false)
    );
    let after = stored_blobs(&path);
    let changed: Vec<&String> = after
        .keys()
        .filter(|k| k.starts_with("b/") && payload(&after[*k]) != payload(&before[*k]))
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    let key = changed[0].clone();
    // same line count (the payload's second u32)
    assert_eq!(payload(&after[&key])[4..8], payload(&before[&key])[4..8]);
    put_blob(&path, &key, Some(&before[&key]));
    // reads do not use it
    assert!(l.derived_lines().unwrap().is_none(), "the stale bucket was read");
    assert_eq!(l.take_damaged(), Some(key.clone()));
    // both checks report it
    let damaged = DerivedStatus::Damaged { key: key.clone() };
    assert_eq!(
        derived_status(&mut l, &VerifyOptions::default()),
        (damaged.clone(), false)
    );
    assert_eq!(derived_status(&mut l, &DEEP), (damaged, true));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The default `verify` (no replay) reports each kind of damage to the
/// derived state, naming the blob: a flipped byte in a bucket, a deleted
/// shard, a blob copied over another, a meta flipped; undone, it passes.
#[test]
fn the_default_verify_reports_damage_to_any_blob() {
    let (dir, path, mut l) = sma_ledger("seals", 4, 80, "y");
    let blobs = stored_blobs(&path);
    let bucket = blobs
        .keys()
        .find(|k| k.starts_with("b/") && payload(&blobs[*k])[4..8] != [0, 0, 0, 0])
        .unwrap()
        .clone();
    let other = blobs
        .keys()
        .find(|k| k.starts_with("b/") && **k != bucket)
        .unwrap()
        .clone();
    let shard = "i/7".to_string();
    let mut flipped = blobs[&bucket].clone();
    let at = flipped.len() - 3;
    flipped[at] ^= 0x10;
    let mut meta = blobs["meta"].clone();
    let at = meta.len() - 40;
    meta[at] ^= 1;
    let cases: Vec<(&str, String, Option<Vec<u8>>)> = vec![
        ("a flipped byte in a bucket", bucket.clone(), Some(flipped)),
        ("a deleted shard", shard.clone(), None),
        (
            "a bucket copied over another",
            other.clone(),
            Some(blobs[&bucket].clone()),
        ),
        ("a shard copied over another", shard.clone(), Some(blobs["i/8"].clone())),
        ("a flipped byte in the meta", "meta".to_string(), Some(meta)),
    ];
    for (what, key, bad) in cases {
        if bad.is_none() {
            put_blob(&path, &key, None);
        } else {
            put_blob(&path, &key, bad.as_deref());
        }
        let want = DerivedStatus::Damaged { key: key.clone() };
        assert_eq!(
            derived_status(&mut l, &VerifyOptions::default()),
            (want, false),
            "{what}"
        );
        // undone
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "INSERT OR REPLACE INTO cache (k, v) VALUES (?1, ?2)",
            rusqlite::params![key, blobs[&key]],
        )
        .unwrap();
        drop(conn);
        assert_eq!(
            derived_status(&mut l, &VerifyOptions::default()),
            (DerivedStatus::Sealed, false),
            "{what}: undone"
        );
    }
    assert_eq!(derived_status(&mut l, &DEEP), (DerivedStatus::Consistent, true));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A large file (checked on two threads, its new lines held packed until
/// written) with bad rows in both halves, of each kind `record` finds: rows
/// the one rule refuses, an id repeated with other values across the halves,
/// an id recorded before with other values. Each is named in line order, in
/// the words of its one home, and nothing is written: the journal's head and
/// every blob of the derived state are as they were. The good rows alone are
/// then recorded.
#[test]
fn bad_rows_in_both_halves_of_a_large_file_are_named_and_nothing_is_written() {
    let (dir, path, mut l) = sma_ledger("bad-halves", 11, 50, "old");
    let now = "2026-11-27T00:00:00Z";
    let (_, text) = examples().into_iter().find(|(n, _)| n.contains("sma-2022")).unwrap();
    let ag = costshare_core::load(&text).agreement.unwrap();
    let st = l.state().unwrap();
    let recorded = st.lines[7].clone();
    let head = l.head().unwrap();
    let blobs = stored_blobs(&path);
    let good = lines_csv(&ag, &mut Rng::new(12), 30_000, "big");
    assert!(good.len() > 1 << 20, "{} bytes", good.len());
    let mut rows: Vec<String> = good.lines().map(String::from).collect();
    // rows[k] is on line k + 1 (the header is line 1)
    rows[500] = format!("bad-date,1999-01-01,{},1,,", ag.categories[0].id);
    let first: Vec<&str> = rows[101].split(',').collect();
    let first_id = first[0].to_string();
    let mut again = first.clone();
    let other = format!("{}1", first[3]);
    again[3] = &other;
    rows[20_000] = again.join(",");
    let b = &recorded.body;
    rows[25_000] = format!(
        "{},{},{},{}1,{},{}",
        b.id, b.date, b.category, b.amount, b.quantity, b.site
    );
    rows[29_000] = "bad-category,2023-01-01,no-such-category,1,,".to_string();
    let bad = rows.join("\n") + "\n";
    // the one rule's words for a refused row (the general parser's)
    let refused = |row: &str| {
        let one = format!("{}\n{row}\n", rows[0]);
        match costshare_core::costs::parse_costs(&ag, one.as_bytes(), &Default::default()) {
            Err(e) => e[0].message.clone(),
            Ok(_) => panic!("{row} is accepted"),
        }
    };
    let want: Vec<(usize, String, String)> = vec![
        (501, "bad-date".into(), refused(&rows[500])),
        (
            20_001,
            first_id.clone(),
            "id repeated with different values (first on line 102)".into(),
        ),
        (
            25_001,
            b.id.clone(),
            format!(
                "id already recorded with different values (journal entry {}); record the correction under a new id with `replaces`",
                recorded.seq
            ),
        ),
        (29_001, "bad-category".into(), refused(&rows[29_000])),
    ];
    match l.record(input("bad.csv", &bad), None, now) {
        Err(LedgerError::Rows { file, errors }) => {
            assert_eq!(file, "bad.csv");
            let got: Vec<(usize, String, String)> = errors
                .into_iter()
                .map(|e| (e.line, e.id.unwrap_or_default(), e.message))
                .collect();
            assert_eq!(got, want);
        }
        other => panic!("{:?}", other.map(|o| o.recorded)),
    }
    assert_eq!(l.head().unwrap(), head, "nothing appended");
    assert_eq!(stored_blobs(&path), blobs, "the derived state untouched");
    check(&mut l, "after the refused file");
    let out = l.record(input("good.csv", &good), None, now).unwrap();
    assert_eq!(out.recorded, 30_000);
    check(&mut l, "after the good file");
    let _ = std::fs::remove_dir_all(&dir);
}
