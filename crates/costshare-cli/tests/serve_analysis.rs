//! The analysis endpoints of `costshare serve`, checked from outside: the
//! real binary serving a demo ledger on loopback, asked over plain HTTP/1.1.
//!
//! - `compare` and `forecast` answer byte for byte what the command line
//!   prints for the same ledger and options;
//! - `whatif` re-allocates under an edited agreement (a smaller utilities
//!   cap moves yen from Japan to the United States, nothing is written) and
//!   answers 422 with the loader's diagnostics for a split that no longer
//!   adds up to 100%;
//! - the built-in examples are listed and fetched;
//! - a party-scoped token is refused all three (403).
//!
//! On SQLite always; on PostgreSQL when a server answers on 127.0.0.1:5432
//! (required with COSTSHARE_REQUIRE_POSTGRES=1).

mod common;

use common::{Dir, PgDb, run_in};
use serde_json::{Value, json};

const AS_OF: &str = "2026-11-15";

/// The shared `costshare serve` child (tests/common/serve.rs), with the
/// (status, body) calls these checks are written with.
struct Server(common::serve::Server);

impl Server {
    fn start(ledger: &str) -> Server {
        Server(common::serve::Server::start(ledger, &[]))
    }

    /// One request: (status, body). `body` is sent as `content_type`.
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<(&str, &[u8])>) -> (u16, Vec<u8>) {
        let mut h = common::serve::auth(token.unwrap_or(""));
        let payload: &[u8] = match body {
            Some((ct, b)) => {
                h.push(("Content-Type", common::serve::leak(ct.to_string())));
                b
            }
            None => b"",
        };
        let r = common::serve::request(self.0.port, None, method, path, &h, payload);
        (r.status, r.body)
    }

    fn get(&self, path: &str, token: &str) -> (u16, Vec<u8>) {
        self.call("GET", path, Some(token), None)
    }

    fn post_json(&self, path: &str, token: &str, v: &Value) -> (u16, Vec<u8>) {
        let b = serde_json::to_vec(v).unwrap();
        self.call("POST", path, Some(token), Some(("application/json", &b)))
    }
}

fn utf8(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("UTF-8 answer")
}

fn json_of(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(b)))
}

/// Run the CLI in `dir`; its stdout, or a panic with its stderr.
fn cli(dir: &Dir, args: &[&str]) -> String {
    let (code, out, err) = run_in(&dir.0, args);
    assert_eq!(code, 0, "costshare {args:?} failed: {err}");
    out
}

fn example(file: &str) -> &'static str {
    costshare_demo::agreements::ALL
        .iter()
        .find(|(f, _)| *f == file)
        .map(|(_, t)| *t)
        .expect("a built-in example")
}

/// A demo ledger at `ledger` (a path in `dir`, or a `postgres://` URL), its
/// agreements for comparing written into `dir`, and an admin and a
/// JP-scoped viewer token.
fn setup(dir: &Dir, ledger: &str) -> (String, String) {
    cli(dir, &["demo", "--as-of", AS_OF, "--write", &dir.path("demo")]);
    cli(
        dir,
        &[
            "init",
            ledger,
            "--agreement",
            &dir.path("demo/agreement.toml"),
            "--rates",
            &dir.path("demo/rates.csv"),
        ],
    );
    cli(dir, &["record", ledger, &dir.path("demo/costs.csv")]);
    for f in ["us-japan-sma-2016.toml", "us-japan-fourfold-proposal.toml"] {
        dir.file(f, example(f));
    }
    let token = |args: &[&str]| -> String {
        let out = cli(dir, args);
        out.lines().last().expect("a token line").trim().to_string()
    };
    let admin = token(&["token", "create", ledger, "--role", "admin", "--name", "lead"]);
    let scoped = token(&[
        "token",
        "create",
        ledger,
        "--role",
        "viewer",
        "--party",
        "JP",
        "--name",
        "jp-viewer",
    ]);
    (admin, scoped)
}

fn check_compare(srv: &Server, dir: &Dir, ledger: &str, admin: &str) {
    // built-in examples by name, in each format and with a filter
    for (format, by, extra_q, extra_args) in [
        ("csv", "party", "", vec![]),
        ("json", "party,fiscal_year", "", vec![]),
        ("table", "party,category", "&period=FY2023", vec!["--period", "FY2023"]),
        (
            "csv",
            "party,fiscal_year",
            "&currency=USD&rate_policy=spot&from=2023-01-01&to=2024-06-30",
            vec![
                "--currency",
                "USD",
                "--rate-policy",
                "spot",
                "--from",
                "2023-01-01",
                "--to",
                "2024-06-30",
            ],
        ),
    ] {
        let (st, body) = srv.get(
            &format!("/api/v1/compare?against=us-japan-sma-2016.toml&by={by}&format={format}&as_of={AS_OF}{extra_q}"),
            admin,
        );
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        let mut args = vec![
            "compare",
            "--ledger",
            ledger,
            "--against",
            "us-japan-sma-2016.toml",
            "--by",
            by,
            "--format",
            format,
            "--as-of",
            AS_OF,
        ];
        args.extend(extra_args);
        let want = cli(dir, &args);
        assert_eq!(utf8(&body), want, "compare --format {format} --by {by}");
    }
    // two agreements: one sent in the body, one built-in
    let (st, body) = srv.post_json(
        &format!("/api/v1/compare?format=csv&as_of={AS_OF}"),
        admin,
        &json!({
            "against": [
                {"example": "us-japan-sma-2016.toml"},
                {"name": "us-japan-fourfold-proposal.toml", "toml": example("us-japan-fourfold-proposal.toml")},
            ],
            "by": "party,fiscal_year",
        }),
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let want = cli(
        dir,
        &[
            "compare",
            "--ledger",
            ledger,
            "--against",
            "us-japan-sma-2016.toml",
            "--against",
            "us-japan-fourfold-proposal.toml",
            "--by",
            "party,fiscal_year",
            "--format",
            "csv",
            "--as-of",
            AS_OF,
        ],
    );
    assert_eq!(utf8(&body), want);
    assert!(want.lines().count() > 5, "a comparison with rows: {want}");
    // the chart: the SVG the CLI writes with --chart
    let (st, svg) = srv.get(
        &format!("/api/v1/compare?against=us-japan-sma-2016.toml&by=party,fiscal_year&chart=svg&as_of={AS_OF}"),
        admin,
    );
    assert_eq!(st, 200);
    let chart = dir.path("compare.svg");
    cli(
        dir,
        &[
            "compare",
            "--ledger",
            ledger,
            "--against",
            "us-japan-sma-2016.toml",
            "--by",
            "party,fiscal_year",
            "--as-of",
            AS_OF,
            "--chart",
            &chart,
        ],
    );
    assert_eq!(utf8(&svg), std::fs::read_to_string(&chart).unwrap());
    // a broken agreement: 422 with the loader's diagnostics; an unknown example: 404
    let (st, body) = srv.post_json(
        "/api/v1/compare?by=party",
        admin,
        &json!({"against": [{"name": "broken.toml", "toml": "[agreement]\nid = 1\n"}]}),
    );
    assert_eq!(st, 422, "{}", String::from_utf8_lossy(&body));
    let v = json_of(&body);
    assert!(!v["error"]["diagnostics"].as_array().unwrap().is_empty(), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("broken.toml"), "{v}");
    let (st, _) = srv.get("/api/v1/compare?against=nope.toml&by=party", admin);
    assert_eq!(st, 404);
    let (st, _) = srv.get("/api/v1/compare?against=us-japan-sma-2016.toml", admin);
    assert_eq!(st, 400, "`by` is required");
}

fn check_forecast(srv: &Server, dir: &Dir, ledger: &str, admin: &str) {
    for (format, by) in [("csv", "party,fiscal_year"), ("json", "party"), ("table", "category")] {
        let (st, body) = srv.get(
            &format!("/api/v1/forecast?until=2027-03-31&by={by}&format={format}&as_of={AS_OF}"),
            admin,
        );
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        let want = cli(
            dir,
            &[
                "forecast",
                "--ledger",
                ledger,
                "--until",
                "2027-03-31",
                "--by",
                by,
                "--format",
                format,
                "--as-of",
                AS_OF,
            ],
        );
        assert_eq!(utf8(&body), want, "forecast --format {format} --by {by}");
    }
    // with a budget sent in the body
    let budget = "month,category,amount\n2027-01,utilities,9000000000\n2027-02,facilities,50000000000\n";
    dir.file("budget.csv", budget);
    let (st, body) = srv.post_json(
        &format!("/api/v1/forecast?until=2027-03-31&by=party,fiscal_year&format=csv&as_of={AS_OF}"),
        admin,
        &json!({"budget_csv": budget}),
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let args = [
        "forecast",
        "--ledger",
        ledger,
        "--until",
        "2027-03-31",
        "--by",
        "party,fiscal_year",
        "--format",
        "csv",
        "--as-of",
        AS_OF,
    ];
    let mut with_budget = args.to_vec();
    with_budget.extend(["--budget", "budget.csv"]);
    let want = cli(dir, &with_budget);
    assert_eq!(utf8(&body), want);
    assert_ne!(want, cli(dir, &args), "the budget changes the forecast");
    // a bad budget row: 422 naming the row
    let (st, body) = srv.post_json(
        "/api/v1/forecast?until=2027-03-31&by=party",
        admin,
        &json!({"budget_csv": "month,category,amount\n2027-01,no_such_category,5\n"}),
    );
    assert_eq!(st, 422, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json_of(&body)["error"]["rows"][0]["line"], json!(2));
    let (st, _) = srv.get("/api/v1/forecast?until=someday&by=party", admin);
    assert_eq!(st, 400);
    let (st, _) = srv.get("/api/v1/forecast?by=party", admin);
    assert_eq!(st, 400);
}

/// The total of `party` in `fy` in a what-if answer: (amount, current, delta).
fn total(v: &Value, party: &str, fy: &str) -> (i128, i128, i128) {
    let row = v["totals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["party"] == party && r["fiscal_year"] == fy)
        .unwrap_or_else(|| panic!("no total for {party} {fy}: {v}"));
    let n = |k: &str| row[k].as_str().unwrap().parse::<i128>().unwrap();
    (n("amount"), n("current"), n("delta"))
}

/// Every what-if total is what `compare --against` the edited agreement
/// gives: `current` the base column, `amount` the other one.
fn same_as_compare(v: &Value, dir: &Dir, ledger: &str) {
    let toml = v["agreement_toml"].as_str().unwrap();
    dir.file("whatif.toml", toml);
    let compared = cli(
        dir,
        &[
            "compare",
            "--ledger",
            ledger,
            "--against",
            "whatif.toml",
            "--by",
            "party,fiscal_year",
            "--format",
            "csv",
            "--as-of",
            AS_OF,
        ],
    );
    let rows: Vec<&str> = compared.lines().skip(1).collect();
    assert_eq!(rows.len(), v["totals"].as_array().unwrap().len(), "{compared}");
    for line in rows {
        let c: Vec<&str> = line.split(',').collect();
        let (amount, current, delta) = total(v, c[0], c[1]);
        assert_eq!(c[2].parse::<i128>().unwrap(), current, "{line}");
        assert_eq!(c[3].parse::<i128>().unwrap(), amount, "{line}");
        assert_eq!(c[4].parse::<i128>().unwrap(), -delta, "{line}");
    }
}

fn check_whatif(srv: &Server, dir: &Dir, ledger: &str, admin: &str) {
    let head = |srv: &Server| json_of(&srv.get("/api/v1/whoami", admin).1)["journal"]["head"].clone();
    let before = head(srv);
    // the current JP total per fiscal year, from the report
    let report = cli(
        dir,
        &[
            "report",
            "--ledger",
            ledger,
            "--by",
            "party,fiscal_year",
            "--format",
            "csv",
            "--as-of",
            AS_OF,
        ],
    );
    let jp_fy2023: i128 = report
        .lines()
        .find(|l| l.starts_with("JP,FY2023,"))
        .and_then(|l| l.rsplit(',').next())
        .and_then(|a| a.parse().ok())
        .expect("JP FY2023 in the report");
    // lower Japan's FY2023 utilities cap (23.4 bn) to 15.1 bn
    let edits = json!({"edits": [{
        "category": "utilities", "layer": 1, "field": "cap",
        "fiscal_year": "FY2023", "value": "15100000000",
    }]});
    let (st, body) = srv.post_json(&format!("/api/v1/whatif?as_of={AS_OF}"), admin, &edits);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let v = json_of(&body);
    assert_eq!(v["parties"], json!(["JP", "US"]));
    let (jp, jp_now, jp_delta) = total(&v, "JP", "FY2023");
    assert_eq!(jp_now, jp_fy2023, "current = the report's figure");
    assert_eq!(jp, jp_now + jp_delta);
    assert!(jp_delta < 0, "a lower cap lowers Japan's total: {jp_delta}");
    let (_, _, us_delta) = total(&v, "US", "FY2023");
    assert_eq!(us_delta, -jp_delta, "what Japan no longer pays, the United States does");
    let (_, _, other_year) = total(&v, "JP", "FY2022");
    assert_eq!(other_year, 0, "other years are unchanged");
    let toml = v["agreement_toml"].as_str().unwrap();
    assert!(toml.contains(r#"FY2023 = "15100000000""#), "{toml}");
    assert!(toml.contains("# "), "comments stay");
    let ceiling = v["ceilings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == "utilities" && c["period"] == "FY2023")
        .unwrap_or_else(|| panic!("the utilities FY2023 ceiling: {v}"));
    assert_eq!(ceiling["cap"], "15100000000");
    assert!(v["elapsed_ms"].as_f64().is_some());
    same_as_compare(&v, dir, ledger);
    // its ceilings are `ceilings` of the same costs under the edited agreement
    let cli_ceilings = json_of(
        cli(
            dir,
            &[
                "ceilings",
                "--agreement",
                "whatif.toml",
                "--costs",
                &dir.path("demo/costs.csv"),
                "--rates",
                &dir.path("demo/rates.csv"),
                "--format",
                "json",
                "--as-of",
                AS_OF,
            ],
        )
        .as_bytes(),
    );
    assert_eq!(v["ceilings"], cli_ceilings["ceilings"]);
    // the same agreement sent whole gives the same totals
    let (st, body2) = srv.post_json("/api/v1/whatif", admin, &json!({"agreement_toml": toml, "edits": null}));
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body2));
    let v2 = json_of(&body2);
    assert_eq!(total(&v2, "JP", "FY2023"), (jp, jp_now, jp_delta));
    // a share that leaves the split at 60%: 422 with the loader's diagnostics
    let (st, body) = srv.post_json(
        "/api/v1/whatif",
        admin,
        &json!({"edits": [{"category": "utilities", "layer": 1, "field": "share", "party": "JP", "value": "60%"}]}),
    );
    assert_eq!(st, 422, "{}", String::from_utf8_lossy(&body));
    let e = json_of(&body);
    let diags = e["error"]["diagnostics"].as_array().unwrap();
    assert!(
        diags
            .iter()
            .any(|d| d["message"].as_str().unwrap().contains("not 100%")),
        "{e}"
    );
    // keeping it at 100% across two parties is accepted and moves money
    let (st, body) = srv.post_json(
        "/api/v1/whatif",
        admin,
        &json!({"edits": [
            {"category": "utilities", "layer": 1, "field": "share", "party": "JP", "value": "60%"},
            {"category": "utilities", "layer": 1, "field": "share", "party": "US", "value": "40%"},
        ]}),
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert!(total(&json_of(&body), "JP", "FY2023").2 < 0);
    // another agreement whole: the 2016 rules restated on the same term
    let (st, body) = srv.post_json(
        &format!("/api/v1/whatif?as_of={AS_OF}"),
        admin,
        &json!({"agreement_toml": example("us-japan-sma-2016.toml")}),
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let v16 = json_of(&body);
    assert_ne!(total(&v16, "JP", "FY2026").2, 0);
    same_as_compare(&v16, dir, ledger);
    // an agreement without a category the lines use: those lines are
    // UNALLOCATED, with a warning, as in compare
    let base = example("us-japan-sma-2022.toml");
    let cut = base.find("[categories.training_equipment]").expect("the 2022 category");
    let (st, body) = srv.post_json(
        &format!("/api/v1/whatif?as_of={AS_OF}"),
        admin,
        &json!({"agreement_toml": &base[..cut]}),
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let vcut = json_of(&body);
    let warned = vcut["warnings"].as_array().unwrap();
    assert!(
        warned.iter().any(|w| w.as_str().unwrap().contains("UNALLOCATED")),
        "{warned:?}"
    );
    assert!(total(&vcut, "UNALLOCATED", "FY2023").0 > 0);
    same_as_compare(&vcut, dir, ledger);
    // an agreement of other parties cannot take these lines: 422
    let (st, body) = srv.post_json(
        "/api/v1/whatif",
        admin,
        &json!({"agreement_toml": example("household.toml")}),
    );
    assert_eq!(st, 422, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json_of(&body)["error"]["code"], "cannot_compute");
    // edits that name nothing: 422; malformed bodies: 400
    let (st, _) = srv.post_json(
        "/api/v1/whatif",
        admin,
        &json!({"edits": [{"category": "nope", "layer": 1, "field": "cap", "value": "1"}]}),
    );
    assert_eq!(st, 422);
    let (st, _) = srv.post_json("/api/v1/whatif", admin, &json!({}));
    assert_eq!(st, 400);
    let (st, _) = srv.call(
        "POST",
        "/api/v1/whatif",
        Some(admin),
        Some(("application/json", b"{nope")),
    );
    assert_eq!(st, 400);
    // nothing was written
    assert_eq!(head(srv), before);
}

fn check_examples(srv: &Server, admin: &str, scoped: &str) {
    for token in [admin, scoped] {
        let (st, body) = srv.get("/api/v1/examples", token);
        assert_eq!(st, 200);
        let list = json_of(&body);
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), costshare_demo::agreements::ALL.len());
        let e = list
            .iter()
            .find(|e| e["file"] == "us-japan-sma-2016.toml")
            .expect("the 2016 agreement is listed");
        assert!(!e["id"].as_str().unwrap().is_empty() && !e["title"].as_str().unwrap().is_empty());
    }
    // every example is its own text, whichever was fetched first (a fresh
    // user was once sent the first one fetched for every name)
    for file in [
        "us-japan-sma-2016.toml",
        "us-japan-fourfold-proposal.toml",
        "household.toml",
    ] {
        let (st, body) = srv.get(&format!("/api/v1/examples/{file}"), admin);
        assert_eq!(st, 200);
        assert_eq!(utf8(&body), example(file), "{file}");
    }
    let (st, _) = srv.get("/api/v1/examples/nope.toml", admin);
    assert_eq!(st, 404);
}

fn check_scoped(srv: &Server, scoped: &str) {
    let (st, _) = srv.get("/api/v1/compare?against=us-japan-sma-2016.toml&by=party", scoped);
    assert_eq!(st, 403);
    let (st, _) = srv.post_json(
        "/api/v1/compare?by=party",
        scoped,
        &json!({"against": [{"example": "us-japan-sma-2016.toml"}]}),
    );
    assert_eq!(st, 403);
    let (st, _) = srv.get("/api/v1/forecast?until=2027-03-31&by=party", scoped);
    assert_eq!(st, 403);
    let (st, _) = srv.post_json("/api/v1/forecast?until=2027-03-31&by=party", scoped, &json!({}));
    assert_eq!(st, 403);
    let (st, body) = srv.post_json(
        "/api/v1/whatif",
        scoped,
        &json!({"edits": [{"category": "utilities", "layer": 1, "field": "cap", "value": "1"}]}),
    );
    assert_eq!(st, 403);
    assert!(utf8(&body).contains("scoped to JP"));
    // refused before the body is read
    for path in [
        "/api/v1/compare?by=party",
        "/api/v1/forecast?by=party",
        "/api/v1/whatif",
    ] {
        let (st, _) = srv.call("POST", path, Some(scoped), Some(("application/json", b"{nope")));
        assert_eq!(st, 403, "{path}");
    }
    let (st, _) = srv.get("/api/v1/compare?against=nope.toml&by=party", scoped);
    assert_eq!(st, 403);
    // no token at all: 401
    let (st, _) = srv.call("GET", "/api/v1/examples", None, None);
    assert_eq!(st, 401);
}

/// After an amendment: edits apply to the version in force, the answer
/// warns that one agreement takes every version's lines, and compare still
/// equals the command line's.
fn check_amended(srv: &Server, dir: &Dir, ledger: &str, admin: &str) {
    let text = std::fs::read_to_string(dir.path("demo/agreement.toml")).unwrap();
    let amended = text.replace(r#"FY2024 = "15100000000""#, r#"FY2024 = "16100000000""#);
    assert_ne!(amended, text, "the demo agreement has the FY2024 utilities cap");
    dir.file("amended.toml", &amended);
    cli(
        dir,
        &[
            "amend",
            ledger,
            "--agreement",
            "amended.toml",
            "--effective",
            "2024-04-01",
        ],
    );
    // an edit that changes nothing: only the versions differ
    let (st, body) = srv.post_json(
        &format!("/api/v1/whatif?as_of={AS_OF}"),
        admin,
        &json!({"edits": [{"category": "utilities", "layer": 1, "field": "cap", "fiscal_year": "FY2023", "value": "23400000000"}]}),
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let v = json_of(&body);
    assert!(
        v["agreement_toml"]
            .as_str()
            .unwrap()
            .contains(r#"FY2024 = "16100000000""#)
    );
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("2 agreement versions")),
        "{v}"
    );
    assert_eq!(
        total(&v, "JP", "FY2024").2,
        0,
        "FY2024 is under the amended cap both ways"
    );
    assert_eq!(
        total(&v, "JP", "FY2023").2,
        0,
        "FY2023's cap is the same in both versions"
    );
    let (st, body) = srv.get(
        &format!("/api/v1/compare?against=us-japan-sma-2016.toml&by=party,fiscal_year&format=csv&as_of={AS_OF}"),
        admin,
    );
    assert_eq!(st, 200);
    let want = cli(
        dir,
        &[
            "compare",
            "--ledger",
            ledger,
            "--against",
            "us-japan-sma-2016.toml",
            "--by",
            "party,fiscal_year",
            "--format",
            "csv",
            "--as-of",
            AS_OF,
        ],
    );
    assert_eq!(utf8(&body), want);
}

fn check_all(dir: &Dir, ledger: &str) {
    let (admin, scoped) = setup(dir, ledger);
    let srv = Server::start(ledger);
    check_compare(&srv, dir, ledger, &admin);
    check_forecast(&srv, dir, ledger, &admin);
    check_whatif(&srv, dir, ledger, &admin);
    check_examples(&srv, &admin, &scoped);
    check_scoped(&srv, &scoped);
    check_amended(&srv, dir, ledger, &admin);
}

#[test]
fn analysis_endpoints_on_sqlite() {
    let dir = Dir::new("serve-analysis");
    let ledger = dir.path("sma.ledger");
    check_all(&dir, &ledger);
}

#[test]
fn analysis_endpoints_on_postgres() {
    let Some(db) = PgDb::new("serve_analysis") else {
        return;
    };
    let dir = Dir::new("serve-analysis-pg");
    check_all(&dir, &db.url);
}
