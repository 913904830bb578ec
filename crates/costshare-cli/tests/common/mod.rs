//! Helpers shared by the CLI integration tests: a temporary directory that
//! cleans up after itself, and running the binary.

#![allow(dead_code)] // each test binary uses its own subset

pub mod serve;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh temporary directory, removed on drop (kept, and named, when the
/// test fails, for inspection).
pub struct Dir(pub PathBuf);

impl Dir {
    /// A fresh directory; `tag` names it for people.
    pub fn new(tag: &str) -> Dir {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("costshare-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
    /// Write a file and return its path.
    pub fn file(&self, name: &str, body: impl AsRef<[u8]>) -> String {
        std::fs::write(self.0.join(name), body).unwrap();
        self.path(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Run `costshare` with `args`: (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    run_in(&std::env::temp_dir(), args)
}

/// [`run`] in the directory `cwd`.
pub fn run_in(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    run_env_in(cwd, args, &[])
}

/// [`run`] with environment variables set.
#[allow(dead_code)]
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    run_env_in(&std::env::temp_dir(), args, env)
}

fn run_env_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_costshare"))
        .current_dir(cwd)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh PostgreSQL database for one test, dropped on drop; `url` is the
/// ledger's `postgres://` URL.
pub struct PgDb {
    admin: postgres::Client,
    name: String,
    pub url: String,
}

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test?connect_timeout=10";

impl PgDb {
    /// A database named after `tag` (letters, digits, `_`), or `None` when no
    /// server answers on 127.0.0.1:5432: the test then prints `SKIPPED` and
    /// returns, unless `COSTSHARE_REQUIRE_POSTGRES=1` (CI), which fails it.
    pub fn new(tag: &str) -> Option<PgDb> {
        let mut admin = match postgres::Client::connect(PG_ADMIN, postgres::NoTls) {
            Ok(c) => c,
            Err(e) => {
                if std::env::var("COSTSHARE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!("COSTSHARE_REQUIRE_POSTGRES=1 but there is no PostgreSQL server on 127.0.0.1:5432: {e}");
                }
                eprintln!("SKIPPED: no PostgreSQL server on 127.0.0.1:5432 ({tag}: {e})");
                return None;
            }
        };
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let name = format!("cs_{tag}_{}_{n}", std::process::id()).to_lowercase();
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Some(PgDb { admin, name, url })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}
