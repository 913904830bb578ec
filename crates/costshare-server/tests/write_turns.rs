//! Writes take turns in arrival order (`Shared::write_turn`), a turn lasts
//! until the write is done even if its request is dropped, requests wait
//! for a pooled ledger handle rather than open their own
//! (`Shared::handle_permit`), and concurrent one-line records through the
//! HTTP API all land, each once.

use costshare_app::Quiet;
use costshare_app::tokens::Role;
use costshare_server::Config;
use costshare_server::api::Shared;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn turns_are_taken_in_arrival_order() {
    let rt = runtime();
    rt.block_on(async {
        let s = Arc::new(Shared::new(Config::new("/nonexistent/ledger.db", "127.0.0.1:0")));
        let first = s.write_turn().await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for k in 0..6 {
            let (s, order) = (s.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _t = s.write_turn().await;
                order.lock().expect("order").push(k);
            }));
            // let task k queue before task k+1 arrives
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            order.lock().expect("order").is_empty(),
            "a turn was given while one was held"
        );
        drop(first);
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(*order.lock().expect("order"), vec![0, 1, 2, 3, 4, 5]);
    });
}

#[test]
fn a_turn_moved_into_blocking_work_outlives_its_dropped_request() {
    let rt = runtime();
    rt.block_on(async {
        let s = Arc::new(Shared::new(Config::new("/nonexistent/ledger.db", "127.0.0.1:0")));
        let done = Arc::new(Mutex::new(false));
        let (s1, d1) = (s.clone(), done.clone());
        // as in the write handlers: the guard goes into the blocking closure
        let request = tokio::spawn(async move {
            let turn = s1.write_turn().await;
            let _ = tokio::task::spawn_blocking(move || {
                let _turn = turn;
                std::thread::sleep(Duration::from_millis(300));
                *d1.lock().expect("done") = true;
            })
            .await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // the client goes away: the request's future is dropped mid-write
        request.abort();
        let _ = request.await;
        let _next = s.write_turn().await;
        assert!(
            *done.lock().expect("done"),
            "the next writer got its turn before the dropped request's write finished"
        );
    });
}

#[test]
fn handle_permits_bound_the_pooled_handles() {
    let rt = runtime();
    rt.block_on(async {
        let s = Arc::new(Shared::new(Config::new("/nonexistent/ledger.db", "127.0.0.1:0")));
        let mut held = Vec::new();
        for k in 0..costshare_server::api::POOL {
            let p = tokio::time::timeout(Duration::from_secs(5), s.handle_permit())
                .await
                .unwrap_or_else(|_| panic!("permit {k} of the pool was not given"));
            held.push(p.expect("the semaphore is open"));
        }
        // one more request waits for a handle instead of opening its own
        let s2 = s.clone();
        let waiting = tokio::spawn(async move { s2.handle_permit().await.is_some() });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "a permit beyond the pool was given");
        held.pop();
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("a released permit goes to the waiting request")
            .expect("task");
        assert!(got);
    });
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    c.read_to_string(&mut out).expect("read");
    let status = out.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn lines(addr: SocketAddr, token: &str) -> u64 {
    let (st, body) = http(addr, "GET", "/api/v1/info", token, "");
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("info is JSON");
    v["lines"].as_u64().expect("lines")
}

#[test]
fn concurrent_one_line_records_all_land_once() {
    let dir = std::env::temp_dir().join(format!("costshare-write-turns-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let ledger = dir.join("l.db").display().to_string();
    costshare_app::ledger::init(&ledger, &example("us-japan-sma-2022.toml"), None, &mut Quiet).expect("init");
    let token = costshare_app::tokens::create(&ledger, Role::Recorder, None, Some("w"))
        .expect("token")
        .token;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut cfg = Config::new(&ledger, "127.0.0.1:0");
    cfg.log = false;
    // the server runs until the test process ends
    std::thread::spawn(move || {
        let _ = costshare_server::serve(cfg, |a| {
            let _ = tx.send(a);
        });
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the server starts");
    assert_eq!(lines(addr, &token), 0);

    const WRITERS: usize = 24;
    let header = "id,date,category,amount,currency,quantity,site,description\n";
    let answers: Vec<(u16, String)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..WRITERS)
            .map(|k| {
                let token = &token;
                sc.spawn(move || {
                    let row = format!(
                        "W{k:03},2023-{:02}-15,welfare,{},JPY,,Okinawa,turns\n",
                        1 + k % 12,
                        1000 + k
                    );
                    http(
                        addr,
                        "POST",
                        &format!("/api/v1/costs?file=w{k}.csv"),
                        token,
                        &format!("{header}{row}"),
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("writer")).collect()
    });
    for (k, (st, body)) in answers.iter().enumerate() {
        assert_eq!(*st, 200, "writer {k}: {body}");
        assert!(body.contains("\"recorded\": 1"), "writer {k}: {body}");
    }
    assert_eq!(lines(addr, &token), WRITERS as u64);
    // the same line again is already there: nothing new
    let (st, body) = http(
        addr,
        "POST",
        "/api/v1/costs?file=w0.csv",
        &token,
        &format!("{header}W000,2023-01-15,welfare,1000,JPY,,Okinawa,turns\n"),
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"recorded\": 0"), "{body}");
    assert_eq!(lines(addr, &token), WRITERS as u64);
    let opts = costshare_store::VerifyOptions {
        deep: true,
        repair: false,
        expect_head: None,
    };
    costshare_app::ledger::verify(&ledger, &opts).expect("the journal verifies");
    let _ = std::fs::remove_dir_all(&dir);
}
