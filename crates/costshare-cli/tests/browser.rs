//! The dashboard in a real browser: a demo ledger served by `costshare serve`,
//! driven by `tests/browser/dashboard.mjs` (playwright-core and the system
//! Chromium). The script loads the dashboard with an admin token, checks the
//! overview against the API, filters and drills the costs, runs a what-if edit,
//! records a CSV (a bad row first) and takes screenshots (light, dark, phone).
//!
//! Needs `node`, `/usr/bin/chromium` and `tests/browser/node_modules/playwright-core`
//! (`cd tests/browser && npm ci`); without them the test prints SKIPPED and passes,
//! unless `COSTSHARE_REQUIRE_BROWSER=1`, which fails it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Dir, run};

const CHROMIUM: &str = "/usr/bin/chromium";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why the browser test cannot run here, if it cannot.
fn missing_prerequisite(root: &Path) -> Option<String> {
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Some("`node` is not on PATH".into()),
    }
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is missing (apt-get install chromium)"));
    }
    let pw = root.join("tests/browser/node_modules/playwright-core/package.json");
    if !pw.exists() {
        return Some(format!("{} is missing (cd tests/browser && npm ci)", pw.display()));
    }
    None
}

/// The server, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "costshare {args:?} failed:\n{out}\n{err}");
    out
}

#[test]
fn dashboard_in_chromium() {
    let root = workspace_root();
    if let Some(why) = missing_prerequisite(&root) {
        if std::env::var("COSTSHARE_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("COSTSHARE_REQUIRE_BROWSER=1 but {why}");
        }
        eprintln!("\n*** SKIPPED dashboard_in_chromium: {why} ***\n");
        return;
    }

    // A demo ledger: the five years of generated costs, recorded.
    let dir = Dir::new("browser");
    let demo = dir.path("demo");
    ok(&["demo", "--write", &demo]);
    let ledger = dir.path("sma.ledger");
    let agreement = format!("{demo}/agreement.toml");
    let rates = format!("{demo}/rates.csv");
    let costs = format!("{demo}/costs.csv");
    ok(&["init", &ledger, "--agreement", &agreement, "--rates", &rates]);
    ok(&["record", &ledger, &costs]);

    // An admin token: the last line `token create` prints.
    let out = ok(&["token", "create", &ledger, "--role", "admin", "--name", "t"]);
    let token = out
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string();
    assert!(!token.is_empty() && !token.contains(' '), "no token in:\n{out}");

    // The server on a free port; its first stdout line names the address.
    let log = std::fs::File::create(dir.path("serve.log")).expect("serve log");
    let child = Command::new(env!("CARGO_BIN_EXE_costshare"))
        .args(["serve", &ledger, "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start costshare serve");
    let mut server = Server(child);
    let stdout = server.0.stdout.take().expect("serve stdout");
    let mut lines = BufReader::new(stdout);
    let mut first = String::new();
    let _ = lines.read_line(&mut first);
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| {
            let err = std::fs::read_to_string(dir.path("serve.log")).unwrap_or_default();
            panic!("serve did not say where it listens: {first:?}\n{err}")
        })
        .trim_end_matches('/')
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "unexpected address {base}");
    // keep draining the server's stdout so it never blocks on a full pipe
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = lines.read_to_end(&mut sink);
    });

    let screens = std::env::var("SCREENSHOTS").unwrap_or_else(|_| dir.path("screens"));
    let started = Instant::now();
    let out = Command::new("node")
        .arg(root.join("tests/browser/dashboard.mjs"))
        .current_dir(root.join("tests/browser"))
        .env("BASE_URL", &base)
        .env("TOKEN", &token)
        .env("SCREENSHOTS", &screens)
        .env_remove("DASHBOARD_SKIP")
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("dashboard.mjs ({:.1?}):\n{stdout}{stderr}", started.elapsed());
    assert!(
        out.status.success(),
        "the dashboard checks failed (exit {:?}); screenshots in {screens}; server log:\n{}",
        out.status.code(),
        std::fs::read_to_string(dir.path("serve.log")).unwrap_or_default()
    );
    assert!(
        stdout.contains("ok: dashboard checks passed"),
        "the script did not finish:\n{stdout}"
    );
    assert!(started.elapsed() < Duration::from_secs(600));

    // The server is still healthy after the run (nothing the dashboard did broke it).
    assert!(
        server.0.try_wait().ok().flatten().is_none(),
        "serve exited during the browser run"
    );
}
