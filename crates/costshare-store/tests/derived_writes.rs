//! `close`, `adjustments` and a no-op `record` from the derived state take
//! their fast path (`Some`) on every example agreement, amended or not, and
//! answer what the full path answers on a copy of the same ledger.

mod common;

use common::{examples, input, lines_csv};
use costshare_core::calendar::Date;
use costshare_demo::Rng;
use costshare_store::ledger::{self, Closed};
use costshare_store::{Ledger, LedgerError};

const NOW: &str = "2026-11-27T00:00:00Z";

fn copy(from: &str, to: &str) {
    std::fs::copy(from, to).unwrap();
    for ext in ["-wal", "-shm"] {
        let f = format!("{from}{ext}");
        if std::path::Path::new(&f).exists() {
            std::fs::copy(&f, format!("{to}{ext}")).unwrap();
        }
    }
}

/// A close's answer as text: its rows and why it was forced, or the refusal.
fn closed(r: Result<Closed, LedgerError>) -> String {
    match r {
        Ok(c) => format!("{:?} {:?}", c.rows, c.forced),
        Err(e) => format!("refused: {e}"),
    }
}

#[test]
fn fast_close_adjustments_and_no_op_record_equal_the_full_path() {
    let dir = std::env::temp_dir().join(format!("costshare-dw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut closes = 0;
    let mut refusals = 0;
    for (n, (name, text)) in examples().into_iter().enumerate() {
        for amend in [false, true] {
            let ag = costshare_core::load(&text).agreement.expect("example loads");
            if amend && ag.fy_count < 2 {
                continue;
            }
            let base = dir.join(format!("l{n}-{amend}.db")).display().to_string();
            let (mut l, _) = Ledger::init(&base, input(&name, &text), None, NOW).unwrap();
            let mut rng = Rng::new(n as u64 + 11);
            let first = lines_csv(&ag, &mut rng, 150, "a");
            l.record(input("first.csv", &first), None, NOW).unwrap();
            if amend {
                let (second, _) = ag.calendar.fy_bounds(ag.first_fy + 1);
                l.amend(input("v2.toml", &text), second, NOW).unwrap();
            }
            let late = lines_csv(&ag, &mut rng, 3, "late");
            l.record(input("late.csv", &late), None, NOW).unwrap();
            drop(l);
            let last_fy = ag.first_fy + ag.fy_count as i32 - 1;
            let mut years = vec![ag.first_fy - 1, ag.first_fy, ag.first_fy + 1, last_fy, last_fy + 1];
            years.sort_unstable();
            years.dedup();
            for fy in years {
                let (_, last) = ag.calendar.fy_bounds(fy);
                for (as_of, force) in [
                    (Date::from_days(last.to_days() - 1), false),
                    (Date::from_days(last.to_days() - 1), true),
                    (Date::from_days(last.to_days() + 1), false),
                    (Date::from_days(last.to_days() + 2000), false),
                ] {
                    let (fast, full) = (format!("{base}.fast-{fy}"), format!("{base}.full-{fy}"));
                    copy(&base, &fast);
                    copy(&base, &full);
                    let period = format!("FY{fy}");
                    let mut a = Ledger::open(&fast).unwrap();
                    let got = match a.close_fast(&period, as_of, force, NOW) {
                        Ok(Some(c)) => {
                            closes += 1;
                            // the entry it names is the one it wrote
                            assert_eq!(a.head().unwrap().map(|h| h.0), Some(c.entries));
                            assert_eq!(c.seq, c.entries);
                            Ok(c.closed)
                        }
                        Ok(None) => panic!("{name} {period}: the derived state was fresh"),
                        Err(e) => {
                            refusals += 1;
                            Err(e)
                        }
                    };
                    let mut b = Ledger::open(&full).unwrap();
                    let want = b.close_with(&period, as_of, force, NOW);
                    assert_eq!(
                        closed(got),
                        closed(want),
                        "{name} {period} as of {as_of}, force {force}"
                    );
                    // adjustments now, and after late lines
                    for l in [&mut a, &mut b] {
                        let late = lines_csv(&ag, &mut Rng::new(fy as u64), 2, "after");
                        l.record(input("after.csv", &late), None, NOW).unwrap();
                    }
                    let fast_adj = a.adjustments_fast().unwrap().expect("fresh derived state");
                    let st = b.state().unwrap();
                    let full_adj = ledger::adjustments(&st, Date::from_days(last.to_days() + 3000)).unwrap();
                    assert_eq!(fast_adj.adjustments, full_adj, "{name} {period}");
                    assert_eq!(
                        fast_adj.closed,
                        st.statements.iter().map(|s| s.period.clone()).collect::<Vec<_>>()
                    );
                    // a no-op record
                    let noop = a
                        .record_noop(input("first.csv", &first))
                        .unwrap()
                        .expect("a recorded file");
                    let again = b.record(input("first.csv", &first), None, NOW).unwrap();
                    assert_eq!(noop, again, "{name}");
                    // verify: the meta rewritten alone equals a rebuild
                    let v = a
                        .verify_with(&costshare_store::VerifyOptions {
                            deep: true,
                            ..Default::default()
                        })
                        .unwrap();
                    assert!(
                        matches!(
                            v,
                            costshare_store::Verified::Ok {
                                derived: costshare_store::DerivedStatus::Consistent,
                                ..
                            }
                        ),
                        "{name} {period}: {v:?}"
                    );
                    drop((a, b));
                    for f in [&fast, &full] {
                        for ext in ["", "-wal", "-shm"] {
                            let _ = std::fs::remove_file(format!("{f}{ext}"));
                        }
                    }
                }
            }
        }
    }
    assert!(closes > 20 && refusals > 10, "closes {closes}, refusals {refusals}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file not recorded, one with a changed row, a rates file: no no-op.
#[test]
fn no_op_only_for_a_recorded_file() {
    let dir = std::env::temp_dir().join(format!("costshare-dw2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (name, text) = examples().into_iter().next().unwrap();
    let ag = costshare_core::load(&text).agreement.unwrap();
    let path = dir.join("l.db").display().to_string();
    let (mut l, _) = Ledger::init(&path, input(&name, &text), None, NOW).unwrap();
    let first = lines_csv(&ag, &mut Rng::new(3), 50, "a");
    assert_eq!(l.record_noop(input("first.csv", &first)).unwrap(), None);
    l.record(input("first.csv", &first), None, NOW).unwrap();
    let out = l.record_noop(input("other-name.csv", &first)).unwrap().unwrap();
    assert_eq!(out.already, 50);
    let changed = first.replacen("a0000,", "a0000x,", 1);
    assert_ne!(changed, first);
    assert_eq!(l.record_noop(input("first.csv", &changed)).unwrap(), None);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `record_small` (what `costshare record` calls first): a recorded file is
/// the no-op, new lines are taken in from the derived state, a file for the
/// full path is `None` with nothing written; each under one write lock and
/// one read of the meta, and the derived state left as a rebuild has it.
#[test]
fn small_record_is_the_no_op_or_the_fast_path() {
    use costshare_store::SmallRecord;
    use costshare_store::ledger::{DerivedStatus, Verified, VerifyOptions};
    let dir = std::env::temp_dir().join(format!("costshare-dw3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (name, text) = examples().into_iter().next().unwrap();
    let ag = costshare_core::load(&text).agreement.unwrap();
    let path = dir.join("l.db").display().to_string();
    let (mut l, _) = Ledger::init(&path, input(&name, &text), None, NOW).unwrap();
    let first = lines_csv(&ag, &mut Rng::new(5), 80, "a");
    l.record(input("first.csv", &first), None, NOW).unwrap();
    let head = l.head().unwrap();
    match l.record_small(input("again.csv", &first), NOW).unwrap() {
        Some(SmallRecord::Noop(out)) => assert_eq!((out.recorded, out.already), (0, 80)),
        other => panic!("a recorded file is the no-op: {other:?}"),
    }
    assert_eq!(l.head().unwrap(), head, "the no-op writes nothing");
    let late = lines_csv(&ag, &mut Rng::new(6), 3, "late-");
    match l.record_small(input("late.csv", &late), NOW).unwrap() {
        Some(SmallRecord::Fast(out, _)) => assert_eq!((out.recorded, out.already), (3, 0)),
        other => panic!("new lines take the fast path: {other:?}"),
    }
    assert_ne!(l.head().unwrap(), head);
    let deep = VerifyOptions {
        deep: true,
        ..VerifyOptions::default()
    };
    match l.verify_with(&deep).unwrap() {
        Verified::Ok { derived, .. } => assert_eq!(derived, DerivedStatus::Consistent),
        other => panic!("{other:?}"),
    }
    // a replacement takes the full path: nothing written here
    let head = l.head().unwrap();
    let st = l.state().unwrap();
    let old = &st.lines[0].body;
    let repl = format!(
        "id,date,category,amount,quantity,site,replaces\nr1,{},{},{},{},{},{}\n",
        old.date, old.category, old.amount, old.quantity, old.site, old.id
    );
    assert!(l.record_small(input("r.csv", &repl), NOW).unwrap().is_none());
    assert_eq!(l.head().unwrap(), head);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A void from the derived state (`void_fast`) on every example agreement:
/// each leaves the derived state equal to a rebuild from the journal, blob
/// for blob (`verify --deep`), and what the replay allocates (`common::check`);
/// it declines (`None`) what the full path must word — an id never
/// recorded, one already voided — and a ledger of several versions.
#[test]
fn fast_void_equals_the_full_path() {
    use costshare_store::{DerivedStatus, Verified, VerifyOptions};
    let dir = std::env::temp_dir().join(format!("costshare-dv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let deep = VerifyOptions {
        deep: true,
        ..VerifyOptions::default()
    };
    let mut voided = 0;
    for (n, (name, text)) in examples().into_iter().enumerate() {
        let ag = costshare_core::load(&text).agreement.expect("example loads");
        let base = dir.join(format!("v{n}.db")).display().to_string();
        let (mut l, _) = Ledger::init(&base, input(&name, &text), None, NOW).unwrap();
        let mut rng = Rng::new(n as u64 + 29);
        let first = lines_csv(&ag, &mut rng, 120, "a");
        l.record(input("first.csv", &first), None, NOW).unwrap();
        let ids: Vec<String> = first
            .lines()
            .skip(1)
            .filter_map(|r| r.split(',').next().map(str::to_string))
            .collect();
        for k in 0..6 {
            let id = &ids[(rng.next_u64() % ids.len() as u64) as usize];
            let before = l.head().unwrap();
            match l.void_fast(id, &format!("test {k}"), NOW).unwrap() {
                Some(()) => voided += 1,
                // voided already by an earlier draw: the full path words it
                None => {
                    assert_eq!(l.head().unwrap(), before, "{name}: a declined void wrote");
                    assert!(
                        matches!(l.void(id, "again", NOW), Err(LedgerError::Refused(_))),
                        "{name} {id}"
                    );
                    continue;
                }
            }
            common::check(&mut l, &format!("{name}: after voiding {id}"));
            match l.verify_with(&deep).unwrap() {
                Verified::Ok { derived, .. } => assert_eq!(derived, DerivedStatus::Consistent, "{name} {id}"),
                other => panic!("{name} {id}: {other:?}"),
            }
            // a late line after it still takes the fast path, onto the moved state
            let late = lines_csv(&ag, &mut rng, 1, &format!("late{k}-"));
            l.record_fast(input("late.csv", &late), NOW)
                .unwrap()
                .expect("fast path");
            common::check(&mut l, &format!("{name}: a late line after voiding {id}"));
        }
        assert_eq!(l.void_fast("never-recorded", "x", NOW).unwrap(), None, "{name}");
        if ag.fy_count >= 2 {
            let (second, _) = ag.calendar.fy_bounds(ag.first_fy + 1);
            l.amend(input("v2.toml", &text), second, NOW).unwrap();
            let before = l.head().unwrap();
            for id in ids.iter().take(10) {
                assert_eq!(
                    l.void_fast(id, "x", NOW).unwrap(),
                    None,
                    "{name}: two versions take the full path"
                );
            }
            assert_eq!(l.head().unwrap(), before, "{name}");
        }
    }
    assert!(voided >= 20, "{voided} voids by the fast path");
    let _ = std::fs::remove_dir_all(&dir);
}
