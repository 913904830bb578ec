//! Every journal entry records who wrote it: on the command line, the user
//! (`COSTSHARE_USER`, else `USER`/`LOGNAME`); `history` shows it. Tokens
//! are created, listed and revoked from the command line, and the ledger
//! keeps only their hashes.

use std::process::Command;

mod common;
use common::Dir;

fn run_as(user: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_costshare"));
    c.args(args)
        .env_remove("COSTSHARE_USER")
        .env_remove("USER")
        .env_remove("LOGNAME");
    if let Some(u) = user {
        c.env("COSTSHARE_USER", u);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(user: Option<&str>, args: &[&str]) -> String {
    let (code, out, err) = run_as(user, args);
    assert_eq!(code, 0, "{args:?}\n{err}");
    out
}

const AGREEMENT: &str = r#"[agreement]
id = "w"
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
  split = { JP = "50%", US = "50%" }
"#;

#[test]
fn history_says_who_wrote_each_entry() {
    let d = Dir::new("who");
    let a = d.path("a.toml");
    std::fs::write(&a, AGREEMENT).unwrap();
    let c1 = d.path("c1.csv");
    std::fs::write(
        &c1,
        "id,date,category,amount\nL1,2022-05-01,u,100\nL2,2022-06-01,u,200\n",
    )
    .unwrap();
    let l = d.path("l.db");
    ok(Some("alice"), &["init", &l, "--agreement", &a]);
    ok(Some("bob"), &["record", &l, &c1]);
    ok(None, &["void", &l, "L2", "--reason", "twice"]);
    let csv = ok(None, &["history", &l, "--format", "csv"]);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("seq,at,kind,id,summary,source,who"));
    let who: Vec<(String, String)> = lines
        .map(|r| {
            let kind = r.split(',').nth(2).unwrap().to_string();
            let who = r.rsplit(',').next().unwrap().to_string();
            (kind, who)
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("init", "alice"),
        ("agreement", "alice"),
        ("batch", "bob"),
        ("line", "bob"),
        ("line", "bob"),
        ("void", ""),
    ]
    .iter()
    .map(|(k, w)| (k.to_string(), w.to_string()))
    .collect();
    assert_eq!(who, want, "{csv}");
    let json = ok(None, &["history", &l, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["entries"][2]["who"], "bob");
    // the chain still verifies with and without `who` lines
    assert!(ok(None, &["verify", &l]).starts_with("ok: 6 journal entries"));
}

#[test]
fn tokens_are_created_once_listed_and_revoked() {
    let d = Dir::new("tokens");
    let a = d.path("a.toml");
    std::fs::write(&a, AGREEMENT).unwrap();
    let l = d.path("l.db");
    ok(None, &["init", &l, "--agreement", &a]);
    let out = ok(
        None,
        &[
            "token", "create", &l, "--role", "viewer", "--party", "JP", "--name", "jp",
        ],
    );
    let token = out.lines().last().unwrap().to_string();
    assert!(token.starts_with("cs_") && token.len() == 67, "{out}");
    // a second token gets a name of its own; the same name is refused
    let out2 = ok(None, &["token", "create", &l, "--role", "admin"]);
    assert!(out2.contains("`admin-1`"), "{out2}");
    let (code, _, err) = run_as(None, &["token", "create", &l, "--role", "viewer", "--name", "jp"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = run_as(None, &["token", "create", &l, "--role", "viewer", "--party", "XX"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run_as(None, &["token", "create", &l, "--role", "viewer", "--name", "a b"]);
    assert_eq!(code, 2, "{err}");
    // the ledger keeps the hash, never the token
    let conn = rusqlite::Connection::open(&l).unwrap();
    let stored: Vec<String> = conn
        .prepare("SELECT hash FROM tokens")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(stored.len(), 2);
    assert!(!stored.iter().any(|h| h.contains(&token[3..])));
    let raw = std::fs::read(&l).unwrap();
    assert!(
        !raw.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token is in the file"
    );
    let list = ok(None, &["token", "list", &l]);
    assert!(
        list.contains("jp\tviewer\tJP\t") && list.contains("admin-1\tadmin\t-\t"),
        "{list}"
    );
    assert!(!list.contains(&token));
    ok(None, &["token", "revoke", &l, "jp"]);
    let list = ok(None, &["token", "list", &l]);
    let jp = list.lines().find(|r| r.starts_with("jp\t")).unwrap();
    assert!(!jp.ends_with("\t-"), "revoked time shown: {jp}");
    let (code, _, err) = run_as(None, &["token", "revoke", &l, "jp"]);
    assert_eq!(code, 1, "revoking twice: {err}");
    assert!(err.contains("was revoked before"), "{err}");
    let (code, _, err) = run_as(None, &["token", "revoke", &l, "nobody"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no token named `nobody`"), "{err}");
}
