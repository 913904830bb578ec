//! A large write keeps SQLite's locks on the ledger. Closing any descriptor
//! of a file drops every POSIX lock the process holds on it, so a descriptor
//! of the ledger opened and closed beside SQLite's (as a first version of the
//! writeback thread of large writes did) would drop the connection's lock,
//! and another process could then checkpoint and delete the WAL under it.
//! Linux: the locks are read from `/proc/locks`.

#![cfg(target_os = "linux")]

mod common;

use common::{input, lines_csv, sma_fresh};
use costshare_demo::Rng;
use std::os::unix::fs::MetadataExt;

/// This process's POSIX locks on the file `path` (`/proc/locks` lines).
fn my_locks(path: &str) -> Vec<String> {
    let ino = std::fs::metadata(path).unwrap().ino();
    let pid = std::process::id().to_string();
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"POSIX")
                && f.get(4) == Some(&pid.as_str())
                && f.get(5)
                    .is_some_and(|dev_ino| dev_ino.rsplit(':').next() == Some(ino.to_string().as_str()))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn a_large_record_leaves_the_connections_lock_on_the_ledger() {
    let now = "2026-11-30T00:00:00Z";
    let (dir, path, ag, mut l) = sma_fresh("locks", now);
    // a read takes the connection's shared lock, held while it stays open
    l.state().unwrap();
    let before = my_locks(&path);
    assert!(
        !before.is_empty(),
        "no lock of this process on the ledger to begin with"
    );
    // more rows than the write that starts the writeback thread
    let csv = lines_csv(&ag, &mut Rng::new(30), 10_000, "k");
    let out = l.record(input("k.csv", &csv), None, now).unwrap();
    assert_eq!(out.recorded, 10_000);
    l.state().unwrap();
    assert!(
        !my_locks(&path).is_empty(),
        "the large write dropped this process's locks on the ledger (before: {before:?})"
    );
    drop(l);
    let _ = std::fs::remove_dir_all(&dir);
}
