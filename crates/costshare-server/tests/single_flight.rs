//! Concurrent reads of one key at one head are computed once: the first
//! request computes, the others wait and answer from the cache (after a
//! write, every dashboard asks again at once).

use costshare_app::tokens::{Principal, Role};
use costshare_server::Config;
use costshare_server::api::{Params, Shared, Who, read, text};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn who(head: &str) -> Who {
    Who {
        principal: Principal {
            name: "t".into(),
            role: Role::Viewer,
            party: None,
        },
        head: head.into(),
        entries: 1,
    }
}

async fn body(r: axum::response::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&b).into_owned())
}

#[test]
fn concurrent_reads_of_one_key_compute_once() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let s = Arc::new(Shared::new(Config::new("/nonexistent/ledger.db", "127.0.0.1:0")));
        let computed = Arc::new(AtomicUsize::new(0));
        let run = |head: &'static str| {
            let (s, computed) = (s.clone(), computed.clone());
            tokio::spawn(async move {
                let r = read(s, &who(head), "test", Params::default(), move |_, w, _| {
                    let n = computed.fetch_add(1, Ordering::SeqCst) + 1;
                    std::thread::sleep(Duration::from_millis(150));
                    Ok(text(costshare_app::Format::Csv, format!("{} {n}\n", w.head)))
                })
                .await;
                body(r).await
            })
        };
        let tasks: Vec<_> = (0..12).map(|_| run("h1")).collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.expect("task"));
        }
        assert_eq!(
            computed.load(Ordering::SeqCst),
            1,
            "one key at one head was computed more than once"
        );
        for (st, b) in &answers {
            assert_eq!(*st, 200);
            assert_eq!(b, "h1 1\n", "every request gets the one answer");
        }
        // a new head is a new key: computed again, once
        let tasks: Vec<_> = (0..6).map(|_| run("h2")).collect();
        for t in tasks {
            let (st, b) = t.await.expect("task");
            assert_eq!((st, b.as_str()), (200, "h2 2\n"));
        }
        assert_eq!(computed.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn a_failed_read_is_not_shared_and_not_kept() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let s = Arc::new(Shared::new(Config::new("/nonexistent/ledger.db", "127.0.0.1:0")));
        let computed = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (s, computed) = (s.clone(), computed.clone());
            tasks.push(tokio::spawn(async move {
                let r = read(s, &who("h"), "fails", Params::default(), move |_, _, _| {
                    computed.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    Err(costshare_server::error::ApiError::bad_request("no"))
                })
                .await;
                body(r).await.0
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), 400);
        }
        // an error is not cached: each waiting request tried for itself
        assert_eq!(computed.load(Ordering::SeqCst), 4);
    });
}
