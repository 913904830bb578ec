//! The `/api/v1` handlers and the router.
//!
//! Every read is the command line's: the same `costshare-app` call on
//! `Source::Ledger` and the same renderer, so `GET /api/v1/report?by=…&format=csv`
//! is byte for byte `costshare report --ledger L --by … --format csv`. A
//! party-scoped token reads a run narrowed to the lines its party shares in
//! (see [`scoped_run`]). Writes are the command line's too, recorded as
//! written by the token's name.
//!
//! The database is reached only from blocking threads (`spawn_blocking`):
//! the ledger's drivers are synchronous.

use crate::auth::{self, Failures};
use crate::cache::{Answer, Cache};
use crate::error::ApiError;
use crate::{Config, assets, openapi};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use costshare_app::input::{Quiet, Session, Source};
use costshare_app::run::Run;
use costshare_app::tokens::{Principal, Role};
use costshare_app::{AppError, Format, UsageError, query, render};
use costshare_core::calendar::Date;
use costshare_store::{Ledger, TokenRow};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What every handler shares: the ledger, the cache, the failure counts and
/// a few open ledger handles for the small reads of every request.
pub struct Shared {
    pub cfg: Config,
    pub cache: Cache,
    pub failures: Failures,
    handles: Mutex<Vec<Ledger>>,
    /// Writes take turns here, in arrival order (see [`Shared::write_turn`]).
    writes: Arc<tokio::sync::Mutex<()>>,
    /// One permit per pooled handle (see [`Shared::handle_permit`]).
    handle_permits: Arc<tokio::sync::Semaphore>,
    /// Reads being computed, by head and cache key (see [`Shared::flight`]).
    flights: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Ledger handles kept open for the small reads of every request.
pub const POOL: usize = 8;

impl Shared {
    pub fn new(cfg: Config) -> Shared {
        Shared {
            cfg,
            cache: Cache::default(),
            failures: Failures::default(),
            handles: Mutex::new(Vec::new()),
            writes: Arc::new(tokio::sync::Mutex::new(())),
            handle_permits: Arc::new(tokio::sync::Semaphore::new(POOL)),
            flights: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The gate of one read (a head and a cache key): the first request
    /// that misses the cache computes the answer, the others wait for it and
    /// then find it in the cache. Without it, a write (which moves the head)
    /// sent every client that asked meanwhile to compute the same report at
    /// once (BENCHMARKS.md, "Server (issue 11)", the mixed run).
    pub fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.flights.lock() {
            Ok(mut m) => {
                // gates left by requests dropped while they waited
                if m.len() > 256 {
                    m.retain(|_, g| Arc::strong_count(g) > 1);
                }
                m.entry(key.to_string()).or_default().clone()
            }
            // a poisoned map: no sharing, every request computes its own
            Err(_) => Arc::default(),
        }
    }

    /// Forget a gate nobody else holds (its read is done).
    pub fn flight_done(&self, key: &str, gate: Arc<tokio::sync::Mutex<()>>) {
        if let Ok(mut m) = self.flights.lock()
            && m.get(key).is_some_and(|g| Arc::ptr_eq(g, &gate))
            && Arc::strong_count(&gate) <= 2
        {
            m.remove(key);
        }
    }

    /// A permit to use a pooled handle, waited for in turn. Without it, 32
    /// concurrent requests found the 8 pooled handles taken, each opened a
    /// connection of its own and closed it after one query (the pool keeps
    /// 8): on PostgreSQL a new backend per request, which held the report at
    /// about 3,200 requests a second with p99 near 400 ms (BENCHMARKS.md,
    /// "Server (issue 11)"). `None` only if the semaphore were closed, which
    /// it never is; the request then goes on without waiting.
    pub async fn handle_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.handle_permits.clone().acquire_owned().await.ok()
    }

    /// This process's turn to write, first come first served. The ledger
    /// serializes writers anyway (SQLite's write lock, PostgreSQL's journal
    /// lock), but a writer that finds SQLite's lock taken sleeps and polls
    /// (the busy handler), so under 32 concurrent writers the unlucky ones
    /// waited seconds while others got through in milliseconds
    /// (BENCHMARKS.md, "Server (issue 11)"). Queued here, in order, every
    /// writer waits only for those ahead of it. The guard is moved into the
    /// blocking work, so the turn lasts until the write is done even when
    /// the client has gone away meanwhile.
    pub async fn write_turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.writes.clone().lock_owned().await
    }

    /// Run `f` on a pooled ledger handle (opened when none is free). A
    /// handle that failed is dropped, not returned to the pool.
    fn with_handle<T>(&self, f: impl FnOnce(&mut Ledger) -> Result<T, AppError>) -> Result<T, AppError> {
        let pooled = self.handles.lock().ok().and_then(|mut v| v.pop());
        let mut l = match pooled {
            Some(l) => l,
            None => Ledger::open(&self.cfg.ledger)?,
        };
        let out = f(&mut l);
        if out.is_ok()
            && let Ok(mut v) = self.handles.lock()
            && v.len() < POOL
        {
            v.push(l);
        }
        out
    }

    /// The journal's head now and the tokens, in one visit to the database.
    fn peek(&self) -> Result<(String, u64, Vec<TokenRow>), AppError> {
        self.with_handle(|l| {
            let (seq, head) = l.head()?.unwrap_or((0, String::new()));
            let rows = l.backend_mut().tokens_read()?;
            Ok((head, seq, rows))
        })
    }

    /// Every line allocated at `as_of`, kept per journal head.
    pub fn run_at(&self, head: &str, as_of: Date) -> Result<Arc<Run>, AppError> {
        let key = as_of.to_string();
        if let Some(r) = self.cache.run(head, &key) {
            return Ok(r);
        }
        let r = Arc::new(costshare_app::run::run(
            &Source::Ledger(self.cfg.ledger.clone()),
            as_of,
            &mut Quiet,
        )?);
        // only kept if no write landed meanwhile (the run may include it)
        if r.journal.as_ref().is_some_and(|j| j.head == head) {
            self.cache.put_run(head, &key, r.clone());
        }
        Ok(r)
    }
}

/// The request's principal, set by [`authenticate`] for the handlers and
/// the log.
#[derive(Clone)]
pub struct Who {
    pub principal: Principal,
    /// The journal head when the request was authenticated.
    pub head: String,
    pub entries: u64,
}

/// Query parameters, every value kept (a key may repeat).
#[derive(Clone, Debug, Default)]
pub struct Params(pub BTreeMap<String, Vec<String>>);

impl Params {
    /// The query's pairs, every value of a repeated key kept in order.
    pub fn of(q: Vec<(String, String)>) -> Params {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in q {
            m.entry(k).or_default().push(v);
        }
        Params(m)
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.last()).map(String::as_str)
    }
    pub fn all(&self, k: &str) -> &[String] {
        self.0.get(k).map(Vec::as_slice).unwrap_or(&[])
    }
    fn flag(&self, k: &str) -> Result<bool, ApiError> {
        match self.get(k) {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") | Some("") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!("`{k}={v}`: use true or false"))),
        }
    }
    /// The cache key of a read: the command, the scope and every parameter.
    fn key(&self, cmd: &str, scope: Option<&str>, as_of: Date) -> String {
        let mut k = format!("{cmd}\u{1}{}\u{1}{as_of}", scope.unwrap_or("*"));
        for (name, vs) in &self.0 {
            for v in vs {
                k.push('\u{1}');
                k.push_str(name);
                k.push('=');
                k.push_str(v);
            }
        }
        k
    }
    /// 400 for a parameter `cmd` does not take, or one given twice that
    /// takes one value: a misspelt `asof=` or a second `by=` would otherwise
    /// be ignored and the answer look right. Keys beginning with NUL are the
    /// server's own (a body's hash in the cache key).
    pub fn check(&self, cmd: &str) -> Result<(), ApiError> {
        let Some(allowed) = allowed_params(cmd) else {
            return Ok(());
        };
        for (k, vs) in &self.0 {
            if k.starts_with('\u{0}') {
                continue;
            }
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad_request(if allowed.is_empty() {
                    format!("`{k}`: {cmd} takes no query parameter")
                } else {
                    format!("`{k}` is not a parameter of {cmd}; it takes {}", allowed.join(", "))
                }));
            }
            if vs.len() > 1 && k != "against" {
                return Err(ApiError::bad_request(format!(
                    "`{k}` is given {} times; give it once",
                    vs.len()
                )));
            }
        }
        Ok(())
    }
    pub fn format(&self) -> Result<Format, ApiError> {
        match self.get("format").unwrap_or("json") {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "table" => Ok(Format::Table),
            other => Err(ApiError::bad_request(format!(
                "`format={other}`: use json, csv or table"
            ))),
        }
    }
    pub fn as_of(&self) -> Result<Date, AppError> {
        Ok(costshare_app::input::as_of(self.get("as_of"))?)
    }
    pub fn filter(&self) -> Result<costshare_app::filter::DateFilter, AppError> {
        Ok(costshare_app::filter::DateFilter::parse(
            self.get("from"),
            self.get("to"),
            self.get("period"),
        )?)
    }
    pub fn currency(&self) -> Result<Option<costshare_app::currency::CurrencyRequest>, AppError> {
        Ok(costshare_app::currency::CurrencyRequest::from_options(
            self.get("currency"),
            self.get("rate_policy"),
        )?)
    }
    pub fn dims(&self) -> Result<Vec<costshare_core::report::Dim>, AppError> {
        let by = self
            .get("by")
            .ok_or_else(|| AppError::from(UsageError::Dims("`by` is required, e.g. by=party,fiscal_year".into())))?;
        Ok(query::dims(by)?)
    }
}

/// The options of the command line's reads, as query parameters.
const FILTERS: [&str; 4] = ["as_of", "from", "to", "period"];

/// The query parameters each read takes (`None`: not checked here).
fn allowed_params(cmd: &str) -> Option<&'static [&'static str]> {
    const REPORT: &[&str] = &[
        "by",
        "pivot",
        "format",
        "as_of",
        "from",
        "to",
        "period",
        "currency",
        "rate_policy",
    ];
    const ALLOCATE: &[&str] = &["format", FILTERS[0], FILTERS[1], FILTERS[2], FILTERS[3]];
    const EXPLAIN: &[&str] = &["id", "format", "as_of", "from", "to", "period"];
    const CEILINGS: &[&str] = &[
        "format",
        "as_of",
        "from",
        "to",
        "period",
        "currency",
        "rate_policy",
        "chart",
    ];
    const SETTLE: &[&str] = &[
        "format",
        "as_of",
        "from",
        "to",
        "period",
        "currency",
        "rate_policy",
        "transfers",
    ];
    const COMPARE: &[&str] = &[
        "against",
        "by",
        "format",
        "as_of",
        "from",
        "to",
        "period",
        "currency",
        "rate_policy",
        "chart",
    ];
    const FORECAST: &[&str] = &["until", "by", "format", "as_of", "from", "to", "period"];
    Some(match cmd {
        "info" => &["as_of"],
        "agreement" | "examples" | "example" => &[],
        "report" => REPORT,
        "allocate" | "export" => ALLOCATE,
        "explain" => EXPLAIN,
        "ceilings" => CEILINGS,
        "settle" => SETTLE,
        "history" => &["id", "format"],
        "compare" => COMPARE,
        "forecast" => FORECAST,
        _ => return None,
    })
}

/// 400 unless the object has only the given keys.
pub fn only_keys(o: &serde_json::Map<String, Value>, keys: &[&str], what: &str) -> Result<(), ApiError> {
    match o.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!(
            "`{k}` is not a field of {what}; it takes {}",
            keys.join(", ")
        ))),
        None => Ok(()),
    }
}

/// 400 unless the query has only the given parameters, each once.
fn only_params(p: &Params, keys: &[&str], what: &str) -> Result<(), ApiError> {
    for (k, vs) in &p.0 {
        if !keys.contains(&k.as_str()) {
            return Err(ApiError::bad_request(if keys.is_empty() {
                format!("`{k}`: {what} takes no query parameter")
            } else {
                format!("`{k}` is not a parameter of {what}; it takes {}", keys.join(", "))
            }));
        }
        if vs.len() > 1 {
            return Err(ApiError::bad_request(format!(
                "`{k}` is given {} times; give it once",
                vs.len()
            )));
        }
    }
    Ok(())
}

pub fn content_type(f: Format) -> &'static str {
    match f {
        Format::Json => "application/json; charset=utf-8",
        Format::Csv => "text/csv; charset=utf-8",
        Format::Table => "text/plain; charset=utf-8",
    }
}

pub fn text(f: Format, body: String) -> Answer {
    Answer {
        content_type: content_type(f),
        body: Arc::new(body.into_bytes()),
        download: None,
    }
}

pub fn json_answer(v: &Value) -> Answer {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    text(Format::Json, s)
}

pub(crate) fn respond(a: Answer) -> Response {
    let mut r = (StatusCode::OK, a.body.as_ref().clone()).into_response();
    if let Ok(v) = HeaderValue::from_str(a.content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if let Some(name) = a.download
        && let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
    {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// A write's JSON answer, or its error.
fn answer(out: Result<Value, ApiError>) -> Response {
    match out {
        Ok(v) => respond(json_answer(&v)),
        Err(e) => e.into_response(),
    }
}

/// A write: its turn in the write queue (arrival order), then `f` on the
/// blocking pool holding the turn.
async fn written(
    s: Arc<Shared>,
    f: impl FnOnce() -> Result<Value, ApiError> + Send + 'static,
) -> Result<Value, ApiError> {
    let turn = s.write_turn().await;
    blocking(move || {
        let _turn = turn;
        f()
    })
    .await
}

/// Run blocking work on the blocking pool; a panic there is a 500, never a
/// dead process.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the request failed inside the server: {e}")))?
}

/// A read: answered from the cache when the head has not moved, else
/// computed on the blocking pool by `compute` and kept.
pub async fn read(
    s: Arc<Shared>,
    who: &Who,
    cmd: &'static str,
    params: Params,
    compute: impl FnOnce(&Shared, &Who, &Params) -> Result<Answer, ApiError> + Send + 'static,
) -> Response {
    if let Err(e) = params.check(cmd) {
        return e.into_response();
    }
    let as_of = match params.as_of() {
        Ok(d) => d,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let key = params.key(cmd, who.principal.party.as_deref(), as_of);
    if let Some(a) = s.cache.get(&who.head, &key) {
        return respond(a);
    }
    // one computation per head and key at a time; the others wait for it
    let fkey = format!("{}\u{2}{key}", who.head);
    let gate = s.flight(&fkey);
    let turn = gate.clone().lock_owned().await;
    if let Some(a) = s.cache.get(&who.head, &key) {
        drop(turn);
        s.flight_done(&fkey, gate);
        return respond(a);
    }
    let who = who.clone();
    let s2 = s.clone();
    let out = blocking(move || {
        // the turn lasts until the answer is kept, even if this request is dropped
        let _turn = turn;
        let a = compute(&s2, &who, &params)?;
        s2.cache.put(&who.head, key, a.clone());
        Ok(a)
    })
    .await;
    s.flight_done(&fkey, gate);
    match out {
        Ok(a) => respond(a),
        Err(e) => e.into_response(),
    }
}

/// The party-scoped view: every line allocated, then only the lines the
/// token's party bears a non-zero part of (see the README, "Party-scoped
/// tokens").
pub fn scoped_run(s: &Shared, who: &Who, party: &str, as_of: Date) -> Result<Run, ApiError> {
    let full = s.run_at(&who.head, as_of)?;
    let k = party_index(&full, party)?;
    Ok(clone_run(&full).retain(|row, _| row[k] != 0))
}

fn party_index(r: &Run, party: &str) -> Result<usize, ApiError> {
    r.main()
        .la
        .agreement
        .parties
        .iter()
        .position(|p| p.id == party)
        .ok_or_else(|| ApiError::forbidden(format!("the token's party `{party}` is not a party of the agreement")))
}

/// A copy of a run (the cached one stays whole).
pub fn clone_run(r: &Run) -> Run {
    Run {
        parts: r
            .parts
            .iter()
            .map(|p| costshare_app::run::RunPart {
                la: p.la.clone(),
                costs: costshare_core::costs::Costs {
                    lines: p.costs.lines.clone(),
                    duplicates: p.costs.duplicates,
                    replaced: p.costs.replaced,
                },
                alloc: p.alloc.clone(),
                carry: p.carry.clone(),
                effective: p.effective,
                version: p.version,
            })
            .collect(),
        as_of: r.as_of,
        journal: r.journal.clone(),
    }
}

fn source(s: &Shared) -> Source {
    Source::Ledger(s.cfg.ledger.clone())
}

// ---------------------------------------------------------------- middleware

/// Security headers on every answer, and one log line per request on
/// stderr: time, address, method, path, status, milliseconds and the
/// token's name (never the token).
async fn log_and_headers(
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let log = req.extensions().get::<LogOn>().is_some_and(|l| l.0);
    let mut res = json_errors(next.run(req).await).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if log {
        let name = res.extensions().get::<TokenName>().map(|t| t.0.as_str()).unwrap_or("-");
        eprintln!(
            "{} {} {method} {path} {} {:.1}ms token={name}",
            costshare_store::ledger::now_utc(),
            addr.ip(),
            res.status().as_u16(),
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    res
}

/// An error answered by the HTTP layer itself (a body over the limit, a
/// method a path does not take, a query that does not parse) in plain text
/// or with no body: the same JSON error shape as every other error.
async fn json_errors(res: Response) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "too_large",
            "the request body is larger than this server takes (serve --max-body-mib)".to_string(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this path does not take this method".to_string()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", text),
        _ if status.is_client_error() => (
            "bad_request",
            if text.is_empty() {
                "the request is malformed".to_string()
            } else {
                text
            },
        ),
        _ => (
            "internal",
            if text.is_empty() {
                "the server failed".to_string()
            } else {
                text
            },
        ),
    };
    let mut out = ApiError::new(status, code, message).into_response();
    // keep what the HTTP layer said about the method (Allow)
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

#[derive(Clone, Copy)]
struct LogOn(bool);

/// The token's name, for the log.
#[derive(Clone)]
struct TokenName(String);

/// Check the bearer token of every `/api/v1` request; 401 (answered
/// slowly after repeated failures from one address) or the request with
/// its [`Who`].
async fn authenticate(
    State(s): State<Arc<Shared>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut req: axum::extract::Request,
    next: Next,
) -> Response {
    let s2 = s.clone();
    let permit = s.handle_permit().await;
    let peek = blocking(move || {
        let _permit = permit;
        s2.peek().map_err(ApiError::from)
    })
    .await;
    let (head, entries, rows) = match peek {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match auth::check(&rows, req.headers()) {
        Ok(principal) => {
            let name = principal.name.clone();
            req.extensions_mut().insert(Who {
                principal,
                head,
                entries,
            });
            let mut res = next.run(req).await;
            res.extensions_mut().insert(TokenName(name));
            res
        }
        Err(e) => {
            // only failures wait: a valid token is never slowed by another
            // client's failures from the same address (an office behind NAT)
            s.failures.fail(addr.ip());
            let delay = s.failures.delay(addr.ip());
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            e.into_response()
        }
    }
}

async fn fallback(method: Method) -> Response {
    if method == Method::GET || method == Method::HEAD {
        ApiError::not_found("no such page; the API is under /api/v1 (see /openapi.json)").into_response()
    } else {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "no such endpoint for this method",
        )
        .into_response()
    }
}

/// The whole application.
pub fn router(s: Arc<Shared>) -> Router {
    let limit = s.cfg.body_limit;
    let log = s.cfg.log;
    let api = Router::new()
        .route("/whoami", get(whoami))
        .route("/info", get(info))
        .route("/agreement", get(agreement))
        .route("/report", get(report))
        .route("/allocate", get(allocate))
        .route("/explain", get(explain))
        .route("/ceilings", get(ceilings))
        .route("/settle", get(settle))
        .route("/history", get(history))
        .route("/verify", get(verify))
        .route("/export", get(export))
        .route("/costs", post(record))
        .route("/void", post(void))
        .route("/payments", post(payments))
        .route("/amend", post(amend))
        .route("/close", post(close))
        .route("/tokens", get(tokens_list).post(tokens_create))
        .route("/tokens/{name}", delete(tokens_revoke))
        .merge(crate::whatif::routes())
        .merge(crate::analysis::routes())
        .route_layer(middleware::from_fn_with_state(s.clone(), authenticate));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi::handler))
        .merge(assets::routes())
        .nest("/api/v1", api)
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(log_and_headers))
        .layer(axum::Extension(LogOn(log)))
        .with_state(s)
}

// ---------------------------------------------------------------- reads

/// `/healthz`: 200 when the ledger's database answers (one small query),
/// 503 otherwise, so a load balancer stops sending traffic to a process
/// whose database is gone. No token, and nothing about the ledger.
async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    let ok = blocking(move || s.with_handle(|l| Ok(l.head()?.is_some())).map_err(ApiError::from)).await;
    match ok {
        Ok(true) => (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            "{\"status\":\"ok\"}\n",
        )
            .into_response(),
        Ok(false) | Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database",
            "the ledger's database is unavailable",
        )
        .into_response(),
    }
}

async fn whoami(axum::Extension(who): axum::Extension<Who>) -> Response {
    let p = &who.principal;
    respond(json_answer(&json!({
        "name": p.name,
        "role": p.role.as_str(),
        "party": p.party,
        "journal": {"entries": who.entries, "head": who.head},
    })))
}

type Q = Query<Vec<(String, String)>>;
type W = axum::Extension<Who>;

async fn info(State(s): State<Arc<Shared>>, axum::Extension(who): W, Query(q): Q) -> Response {
    read(s, &who, "info", Params::of(q), |s, who, p| {
        let as_of = p.as_of()?;
        // an unscoped view of a ledger with a fresh derived state needs no
        // allocation: the agreement and the line count are read from it
        if who.principal.party.is_none()
            && let Some((meta, ver)) = s.with_handle(|l| Ok(l.derived()?))?
            && let Some(latest) = ver.last()
        {
            // every version, as a run lists its parts
            let versions = ver
                .iter()
                .map(|v| {
                    json!({
                        "version": v.version,
                        "effective": v.effective.to_string(),
                        "id": v.agreement.id,
                        "sha256": v.sha256,
                    })
                })
                .collect();
            return Ok(info_json(
                s,
                who,
                &latest.agreement,
                versions,
                as_of,
                meta.lines as usize,
            ));
        }
        let run = s.run_at(&who.head, as_of)?;
        let lines = match &who.principal.party {
            Some(party) => scoped_run(s, who, party, as_of)?.line_count(),
            None => run.line_count(),
        };
        let versions = run
            .parts
            .iter()
            .map(|p| {
                json!({
                    "version": p.version,
                    "effective": p.effective.to_string(),
                    "id": p.la.agreement.id,
                    "sha256": p.la.sha256,
                })
            })
            .collect();
        Ok(info_json(s, who, &run.main().la.agreement, versions, run.as_of, lines))
    })
    .await
}

fn info_json(
    s: &Shared,
    who: &Who,
    a: &costshare_core::Agreement,
    versions: Vec<Value>,
    as_of: Date,
    lines: usize,
) -> Answer {
    json_answer(&json!({
        "agreement": {
            "id": a.id,
            "title": a.title,
            "currency": a.currency.code(),
            "start": a.start.to_string(),
            "end": a.end.to_string(),
            "fiscal_years": (0..a.fy_count).map(|k| costshare_core::calendar::FiscalYear(a.first_fy + k as i32).to_string()).collect::<Vec<_>>(),
            "parties": a.parties.iter().map(|p| json!({"id": p.id, "name": p.name})).collect::<Vec<_>>(),
            "categories": a.categories.iter().map(|c| json!({
                "id": c.id, "name": c.name, "unit": c.unit,
                "layers": c.layers.iter().map(|l| json!({
                    "id": l.id,
                    "capped": l.cap.is_some(),
                    "portion": l.portion.is_some(),
                    "period": format!("{:?}", l.period).to_lowercase(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        },
        "versions": versions,
        "journal": {"entries": who.entries, "head": who.head},
        "as_of": as_of.to_string(),
        "lines": lines,
        "ledger_kind": if costshare_store::backend::is_postgres(&s.cfg.ledger) { "postgresql" } else { "sqlite" },
    }))
}

async fn agreement(State(s): State<Arc<Shared>>, axum::Extension(who): W, Query(q): Q) -> Response {
    read(s, &who, "agreement", Params::of(q), |s, _, _| {
        let (content, id) = match s.with_handle(|l| Ok(l.summary()?))? {
            Some((costshare_store::journal::Body::Agreement { content, .. }, _)) => {
                let id = costshare_app::input::load_agreement_bytes("", content.as_bytes())?
                    .agreement
                    .id;
                (content, id)
            }
            _ => {
                let (_, st) = costshare_app::run::open_state(&s.cfg.ledger)?;
                let v = st.latest();
                (v.content.clone(), v.agreement.id.clone())
            }
        };
        Ok(Answer {
            content_type: "application/toml; charset=utf-8",
            body: Arc::new(content.into_bytes()),
            download: Some(format!("{id}.toml")),
        })
    })
    .await
}

async fn report(State(s): State<Arc<Shared>>, axum::Extension(who): W, Query(q): Q) -> Response {
    read(s, &who, "report", Params::of(q), |s, who, p| {
        let format = p.format()?;
        let pivot = match p.get("pivot") {
            None => false,
            Some("party") => true,
            Some(v) => return Err(ApiError::bad_request(format!("`pivot={v}`: only pivot=party"))),
        };
        let mut dims = p.dims()?;
        if pivot {
            dims = query::pivot_dims(&dims);
        }
        let (as_of, filter) = (p.as_of()?, p.filter()?);
        if let Some(party) = &who.principal.party {
            if p.currency()?.is_some() {
                return Err(ApiError::forbidden(
                    "a party-scoped token reports in the agreement currency only",
                ));
            }
            let run = scoped_run(s, who, party, as_of)?;
            let range = filter.resolve(&run.main().la.agreement)?;
            let mut r = query::report_of_run(&run.restrict(&range), &dims)?;
            r.range = range;
            r.pivot = pivot;
            return Ok(text(format, render::report(&r, format)));
        }
        let source = source(s);
        let mut quiet = Quiet;
        let mut sess = Session::new(&mut quiet);
        if let Some(req) = p.currency()? {
            if pivot {
                return Err(AppError::from(UsageError::PivotWithCurrency).into());
            }
            let r = costshare_app::currency::report(&source, &dims, as_of, &req, &filter, &mut sess)?;
            return Ok(text(format, render::currency::report(&r, format)));
        }
        sess.row_flags = format != Format::Csv;
        let mut r = query::report_filtered(&source, &dims, as_of, &filter, &mut sess)?;
        r.pivot = pivot;
        Ok(text(format, render::report(&r, format)))
    })
    .await
}

async fn allocate(State(s): State<Arc<Shared>>, axum::Extension(who): W, Query(q): Q) -> Response {
    read(s, &who, "allocate", Params::of(q), |s, who, p| {
        let (format, as_of, filter) = (p.format()?, p.as_of()?, p.filter()?);
        let run = match &who.principal.party {
            Some(party) => {
                let run = scoped_run(s, who, party, as_of)?;
                let range = filter.resolve(&run.main().la.agreement)?;
                run.restrict(&range)
            }
            None => {
                let mut quiet = Quiet;
                let mut sess = Session::new(&mut quiet);
                query::allocate_filtered(&source(s), as_of, &filter, &mut sess)?
            }
        };
        Ok(text(format, render::allocation(&run, format)))
    })
    .await
}

async fn explain(State(s): State<Arc<Shared>>, axum::Extension(who): W, Query(q): Q) -> Response {
    read(s, &who, "explain", Params::of(q), |s, who, p| {
        let format = p.format()?;
        if format == Format::Csv {
            return Err(AppError::from(UsageError::ExplainCsv).into());
        }
        let id = p
            .get("id")
            .ok_or_else(|| ApiError::bad_request("`id` is required: the line to explain"))?;
        let mut quiet = Quiet;
        let mut sess = Session::new(&mut quiet);
        let r = match query::explain(&source(s), id, p.as_of()?, &mut sess) {
            Ok(r) => r,
            // under a scope, a line that does not exist, was voided, or is not
            // shared gets one answer: nothing tells them apart
            Err(AppError::NoLine { .. } | AppError::Voided { .. }) if who.principal.party.is_some() => {
                return Err(not_shared(id, who));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(party) = &who.principal.party {
            let k = r
                .agreement
                .agreement
                .parties
                .iter()
                .position(|x| &x.id == party)
                .ok_or_else(|| ApiError::forbidden("the token's party is not a party of the agreement"))?;
            if r.explanation.final_parts().get(k).copied().unwrap_or(0) == 0 {
                return Err(not_shared(id, who));
            }
        }
        Ok(text(format, render::explanation(&r, format)))
    })
    .await
}

/// The one answer a party-scoped token gets for a line it may not see,
/// whether it exists or not.
fn not_shared(id: &str, who: &Who) -> ApiError {
    let party = who.principal.party.as_deref().unwrap_or("");
    ApiError::not_found(format!(
        "no line `{}` that {party} shares in (the token `{}` is scoped to {party})",
        costshare_core::costs::shown_id(id),
        who.principal.name
    ))
}

async fn ceilings(State(s): State<Arc<Shared>>, axum::Extension(who): W, Query(q): Q) -> Response {
    read(s, &who, "ceilings", Params::of(q), |s, who, p| {
        let (format, as_of, filter) = (p.format()?, p.as_of()?, p.filter()?);
        let chart = p.get("chart") == Some("svg");
        let mut r = match p.currency()? {
            None => costshare_app::ceilings::ceilings_filtered(&source(s), as_of, &filter, &mut Quiet)?,
            Some(req) => costshare_app::ceilings::ceilings_converted(&source(s), as_of, &filter, &req, &mut Quiet)?,
        };
        if let Some(party) = &who.principal.party {
            // only the ceilings of layers the party takes a share in
            let a = r.agreement.clone();
            let k = a
                .parties
                .iter()
                .position(|x| &x.id == party)
                .ok_or_else(|| ApiError::forbidden("the token's party is not a party of the agreement"))?;
            r.rows.retain(|row| {
                a.categories
                    .iter()
                    .find(|c| c.id == row.category)
                    .and_then(|c| c.layers.iter().find(|l| l.id == row.layer))
                    .is_some_and(|l| {
                        l.split
                            .values
                            .iter()
                            .any(|sh| sh.shares.get(k).is_some_and(|x| !x.is_zero()))
                    })
            });
            // `lines` counts only the lines the party shares in
            let run = scoped_run(s, who, party, as_of)?;
            for row in &mut r.rows {
                let (first, last) = (row.period.first_day(a.start), row.period.last_day(a.end));
                row.lines = run
                    .parts
                    .iter()
                    .flat_map(|part| part.costs.lines.iter())
                    .filter(|l| {
                        a.categories.get(l.category).is_some_and(|c| c.id == row.category)
                            && l.date >= first
                            && l.date <= last
                    })
                    .count();
            }
        }
        if chart {
            return Ok(Answer {
                content_type: "image/svg+xml",
                body: Arc::new(costshare_app::chart::ceilings_svg(&r).into_bytes()),
                download: None,
            });
        }
        Ok(text(format, render::ceilings::ceilings(&r, format)))
    })
    .await
}

async fn settle(State(s): State<Arc<Shared>>, axum::Extension(who): W, Query(q): Q) -> Response {
    if let Err(e) = auth::unscoped(&who.principal, "settle") {
        return e.into_response();
    }
    read(s, &who, "settle", Params::of(q), |s, _, p| {
        let (format, as_of, filter) = (p.format()?, p.as_of()?, p.filter()?);
        let transfers = p.flag("transfers")?;
        let r = costshare_app::settle::settle(&source(s), None, &filter, as_of, p.currency()?.as_ref(), &mut Quiet)?;
        Ok(text(
            format,
            costshare_app::render::settle::settle(&r, transfers, format),
        ))
    })
    .await
}

async fn history(State(s): State<Arc<Shared>>, axum::Extension(who): W, Query(q): Q) -> Response {
    let params = Params::of(q);
    if who.principal.party.is_some() && params.get("id").is_none() {
        return ApiError::forbidden(format!(
            "the whole history covers every party's lines; the token `{}` is scoped to a party: ask for one line with id=",
            who.principal.name
        ))
        .into_response();
    }
    read(s, &who, "history", params, |s, who, p| {
        let format = p.format()?;
        let id = p.get("id");
        if let (Some(party), Some(id)) = (&who.principal.party, id) {
            let run = scoped_run(s, who, party, p.as_of()?)?;
            if !run.parts.iter().any(|part| part.costs.lines.iter().any(|l| l.id == id)) {
                return Err(not_shared(id, who));
            }
        }
        let r = costshare_app::ledger::history(&s.cfg.ledger, id)?;
        Ok(text(format, render::history(&r, format)))
    })
    .await
}

async fn verify(State(s): State<Arc<Shared>>, axum::Extension(who): W, Query(q): Q) -> Response {
    let params = Params::of(q);
    if let Err(e) = only_params(&params, &["expect_head"], "verify") {
        return e.into_response();
    }
    let expect = params.get("expect_head").map(str::to_string);
    let _ = who;
    let out = blocking(move || {
        // the integrity check: a viewer's request does not replay the
        // journal into memory (`costshare verify --deep` does, from a shell)
        let opts = costshare_store::VerifyOptions {
            deep: false,
            repair: false,
            expect_head: expect,
        };
        match costshare_app::ledger::verify(&s.cfg.ledger, &opts) {
            Ok(r) => Ok(json!({
                "ok": true,
                "entries": r.entries,
                "head": r.head,
                "deep": r.deep,
                "text": render::verify(&r),
            })),
            Err(
                e @ (AppError::VerifyFailed { .. } | AppError::DerivedDamaged { .. } | AppError::HeadMismatch { .. }),
            ) => Ok(json!({"ok": false, "message": crate::error::words(&e)})),
            Err(e) => Err(e.into()),
        }
    })
    .await;
    match out {
        Ok(v) => respond(json_answer(&v)),
        Err(e) => e.into_response(),
    }
}

async fn export(State(s): State<Arc<Shared>>, axum::Extension(who): W, Query(q): Q) -> Response {
    read(s, &who, "export", Params::of(q), |s, who, p| {
        use costshare_app::export::{ExportFormat, Exported};
        let (fmt, ct, ext) = match p.get("format").unwrap_or("csv") {
            "ledger" => (ExportFormat::Ledger, "text/plain; charset=utf-8", "ledger"),
            "beancount" => (ExportFormat::Beancount, "text/plain; charset=utf-8", "beancount"),
            "csv" => (ExportFormat::Csv, "text/csv; charset=utf-8", "csv"),
            "json" => (ExportFormat::Json, "application/json; charset=utf-8", "json"),
            "xlsx" => (
                ExportFormat::Xlsx,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "xlsx",
            ),
            other => {
                return Err(ApiError::bad_request(format!(
                    "`format={other}`: use ledger, beancount, csv, json or xlsx"
                )));
            }
        };
        let (as_of, filter) = (p.as_of()?, p.filter()?);
        let r = match &who.principal.party {
            Some(party) => {
                let run = scoped_run(s, who, party, as_of)?;
                let range = filter.resolve(&run.main().la.agreement)?;
                costshare_app::export::export_run(&run.restrict(&range), fmt)?
            }
            None => {
                let mut quiet = Quiet;
                let mut sess = Session::new(&mut quiet);
                costshare_app::export::export(&source(s), as_of, fmt, &filter, &mut sess)?
            }
        };
        let body = match r.output {
            Exported::Text(t) => t.into_bytes(),
            Exported::Binary(b) => b,
        };
        Ok(Answer {
            content_type: ct,
            body: Arc::new(body),
            download: Some(format!("costshare-export.{ext}")),
        })
    })
    .await
}

// ---------------------------------------------------------------- writes

fn journal_json(j: &costshare_app::run::JournalInfo) -> Value {
    json!({"entries": j.entries, "head": j.head})
}

/// An upload turned into the CSV the command line reads.
pub struct Upload {
    pub csv: Vec<u8>,
    /// For a JSON upload: the CSV line each row starts on (header = 1), so
    /// that a bad row is named by its place in the JSON array.
    pub json_rows: Option<Vec<usize>>,
}

impl Upload {
    /// A 422's rows named by their JSON row (1-based) instead of the CSV
    /// line the server wrote them to.
    pub fn name_rows(&self, mut e: ApiError) -> ApiError {
        let (Some(starts), Some(extra)) = (&self.json_rows, e.extra.as_mut()) else {
            return e;
        };
        if let (_, Value::Array(rows)) = extra.as_mut() {
            for r in rows.iter_mut() {
                if let Some(o) = r.as_object_mut()
                    && let Some(line) = o.get("line").and_then(Value::as_u64)
                {
                    let k = starts.partition_point(|&st| st as u64 <= line);
                    if k > 0 {
                        o.remove("line");
                        o.insert("row".into(), json!(k));
                    }
                }
            }
        }
        e
    }
}

/// The body of a costs or payments upload as CSV: `text/csv` as it is, or
/// `application/json` (an array of objects whose values are strings)
/// written as CSV with the given columns. Every row of a JSON upload that
/// is not an object of strings is named in one 400.
pub fn upload_csv(headers: &HeaderMap, body: &[u8], columns: &[&str]) -> Result<Upload, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("application/json") {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
        let rows = match &v {
            Value::Array(a) => a,
            Value::Object(o) => match o.get("rows") {
                Some(Value::Array(a)) => a,
                _ => {
                    return Err(ApiError::bad_request(
                        "a JSON body is an array of rows, or {\"rows\": [...]}",
                    ));
                }
            },
            _ => {
                return Err(ApiError::bad_request(
                    "a JSON body is an array of rows, or {\"rows\": [...]}",
                ));
            }
        };
        let mut out = String::new();
        out.push_str(&columns.join(","));
        out.push('\n');
        let mut line = 2usize;
        let mut starts = Vec::with_capacity(rows.len());
        let mut problems = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let Some(obj) = r.as_object() else {
                problems.push(json!({"row": i + 1, "message": "not an object"}));
                continue;
            };
            if let Some(k) = obj.keys().find(|k| !columns.contains(&k.as_str())) {
                problems.push(json!({
                    "row": i + 1,
                    "message": format!("unknown field `{k}` (fields: {})", columns.join(", ")),
                }));
                continue;
            }
            let mut cells = Vec::with_capacity(columns.len());
            for c in columns {
                match obj.get(*c) {
                    None | Some(Value::Null) => cells.push(String::new()),
                    Some(Value::String(s)) => cells.push(format!("\"{}\"", s.replace('"', "\"\""))),
                    Some(_) => problems.push(json!({
                        "row": i + 1,
                        "column": c,
                        "message": format!("`{c}` must be a string (amounts are exact decimal strings, e.g. \"1234.50\")"),
                    })),
                }
            }
            starts.push(line);
            let row = cells.join(",");
            line += 1 + row.matches('\n').count();
            out.push_str(&row);
            out.push('\n');
        }
        if !problems.is_empty() {
            let mut e = ApiError::bad_request(format!(
                "{} row{} of the JSON body cannot be read; nothing was used",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            ));
            e.extra = Some(Box::new(("rows", Value::Array(problems))));
            return Err(e);
        }
        Ok(Upload {
            csv: out.into_bytes(),
            json_rows: Some(starts),
        })
    } else if ct.is_empty() || ct.starts_with("text/csv") || ct.starts_with("text/plain") {
        Ok(Upload {
            csv: body.to_vec(),
            json_rows: None,
        })
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send text/csv or application/json, not `{ct}`"),
        ))
    }
}

pub const COSTS_COLUMNS: &[&str] = &[
    "id",
    "date",
    "category",
    "amount",
    "currency",
    "quantity",
    "site",
    "description",
    "replaces",
    "paid_by",
];
pub const PAYMENTS_COLUMNS: &[&str] = &["id", "date", "from", "to", "amount", "currency", "description"];

/// The name an upload is recorded under: `?file=NAME`, else `api-upload.csv`.
fn upload_name(p: &Params, default: &str) -> Result<String, ApiError> {
    let n = p.get("file").unwrap_or(default);
    if n.is_empty() || n.len() > 256 || n.chars().any(char::is_control) {
        return Err(ApiError::bad_request("`file`: 1-256 characters, no control characters"));
    }
    Ok(n.to_string())
}

async fn record(
    State(s): State<Arc<Shared>>,
    axum::Extension(who): W,
    Query(q): Q,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::of(q);
    let out = async {
        auth::require(&who.principal, Role::Recorder, "recording costs")?;
        only_params(&p, &["dry_run", "file"], "costs")?;
        let dry = p.flag("dry_run")?;
        let name = upload_name(&p, "api-upload.csv")?;
        let up = upload_csv(&headers, &body, COSTS_COLUMNS)?;
        written(s.clone(), move || {
            let input = costshare_store::Input {
                name: &name,
                bytes: &up.csv,
            };
            let named = |e: AppError| up.name_rows(ApiError::from(e));
            if dry {
                let o = costshare_app::ledger::record_dry_run(&s.cfg.ledger, input).map_err(named)?;
                return Ok(json!({
                    "dry_run": true, "file": name, "recorded": o.recorded, "already": o.already,
                    "voided": o.voided, "dropped": o.dropped,
                    "journal": {"entries": who.entries, "head": who.head},
                }));
            }
            let r =
                costshare_app::ledger::record_input(&s.cfg.ledger, &who.principal.name, input, None, false, &mut Quiet)
                    .map_err(named)?;
            let o = &r.outcome;
            Ok(json!({
                "dry_run": false, "file": r.file, "recorded": o.recorded, "already": o.already,
                "voided": o.voided, "dropped": o.dropped, "journal": journal_json(&r.journal),
            }))
        })
        .await
    }
    .await;
    answer(out)
}

/// A JSON request body as an object, or 400.
pub fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send application/json, not `{ct}`"),
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("the body is not JSON: {e}"))),
    }
}

/// A string field of a JSON body (`None` when absent or null).
pub fn field<'a>(o: &'a serde_json::Map<String, Value>, k: &str) -> Result<Option<&'a str>, ApiError> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_request(format!("`{k}` must be a string"))),
    }
}

pub fn required<'a>(o: &'a serde_json::Map<String, Value>, k: &str) -> Result<&'a str, ApiError> {
    field(o, k)?.ok_or_else(|| ApiError::bad_request(format!("`{k}` is required")))
}

async fn void(
    State(s): State<Arc<Shared>>,
    axum::Extension(who): W,
    Query(q): Q,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::of(q);
    let out = async {
        auth::require(&who.principal, Role::Recorder, "voiding a line")?;
        only_params(&p, &[], "void")?;
        let o = json_body(&headers, &body)?;
        only_keys(&o, &["id", "reason"], "void")?;
        let id = required(&o, "id")?.to_string();
        let reason = required(&o, "reason")?.to_string();
        written(s.clone(), move || {
            let r = costshare_app::ledger::void_by(&s.cfg.ledger, &who.principal.name, &id, &reason)?;
            Ok(json!({"id": r.id, "reason": r.reason, "journal": journal_json(&r.journal)}))
        })
        .await
    }
    .await;
    answer(out)
}

async fn payments(
    State(s): State<Arc<Shared>>,
    axum::Extension(who): W,
    Query(q): Q,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::of(q);
    let out = async {
        auth::require(&who.principal, Role::Recorder, "recording payments")?;
        only_params(&p, &["file"], "payments")?;
        let name = upload_name(&p, "api-payments.csv")?;
        let up = upload_csv(&headers, &body, PAYMENTS_COLUMNS)?;
        written(s.clone(), move || {
            let r = costshare_app::settle::pay_input(&s.cfg.ledger, &who.principal.name, &name, &up.csv)
                .map_err(|e| up.name_rows(ApiError::from(e)))?;
            Ok(json!({
                "file": r.file,
                "recorded": r.outcome.recorded,
                "already": r.outcome.already,
                "text": costshare_app::render::settle::pay(&r),
                "journal": journal_json(&r.journal),
            }))
        })
        .await
    }
    .await;
    answer(out)
}

async fn amend(
    State(s): State<Arc<Shared>>,
    axum::Extension(who): W,
    Query(q): Q,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::of(q);
    let out = async {
        auth::require(&who.principal, Role::Admin, "amending the agreement")?;
        only_params(&p, &[], "amend")?;
        let o = json_body(&headers, &body)?;
        only_keys(&o, &["agreement_toml", "effective", "file"], "amend")?;
        let toml = required(&o, "agreement_toml")?.to_string();
        let effective = costshare_app::ledger::effective(required(&o, "effective")?).map_err(AppError::from)?;
        let name = field(&o, "file")?.unwrap_or("api-amendment.toml").to_string();
        written(s.clone(), move || {
            let r = costshare_app::ledger::amend_input(
                &s.cfg.ledger,
                &who.principal.name,
                &name,
                toml.as_bytes(),
                effective,
                &mut Quiet,
            )?;
            Ok(json!({
                "version": r.version,
                "agreement": {"id": r.agreement.id, "sha256": r.agreement.sha256},
                "effective": r.effective.to_string(),
                "journal": journal_json(&r.journal),
            }))
        })
        .await
    }
    .await;
    answer(out)
}

async fn close(
    State(s): State<Arc<Shared>>,
    axum::Extension(who): W,
    Query(q): Q,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::of(q);
    let out = async {
        auth::require(&who.principal, Role::Admin, "closing a period")?;
        only_params(&p, &[], "close")?;
        let o = json_body(&headers, &body)?;
        only_keys(&o, &["period", "as_of", "force"], "close")?;
        let period = required(&o, "period")?.to_string();
        let as_of = costshare_app::input::as_of(field(&o, "as_of")?).map_err(AppError::from)?;
        let force = match o.get("force") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ApiError::bad_request("`force` must be true or false")),
        };
        written(s.clone(), move || {
            let r = costshare_app::ledger::close_by(&s.cfg.ledger, &who.principal.name, &period, as_of, force)?;
            let v: Value = serde_json::from_str(&render::statement(&r, Format::Json))
                .map_err(|e| ApiError::internal(format!("statement JSON: {e}")))?;
            Ok(v)
        })
        .await
    }
    .await;
    answer(out)
}

// ---------------------------------------------------------------- tokens

fn token_json(t: &TokenRow) -> Value {
    json!({
        "name": t.name, "role": t.role, "party": t.party,
        "created_at": t.created_at, "revoked_at": t.revoked_at,
    })
}

async fn tokens_list(State(s): State<Arc<Shared>>, axum::Extension(who): W) -> Response {
    let out = async {
        auth::require(&who.principal, Role::Admin, "managing tokens")?;
        blocking(move || {
            let rows = costshare_app::tokens::list(&s.cfg.ledger)?;
            Ok(json!({"tokens": rows.iter().map(token_json).collect::<Vec<_>>()}))
        })
        .await
    }
    .await;
    answer(out)
}

async fn tokens_create(
    State(s): State<Arc<Shared>>,
    axum::Extension(who): W,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let out = async {
        auth::require(&who.principal, Role::Admin, "managing tokens")?;
        let o = json_body(&headers, &body)?;
        only_keys(&o, &["role", "party", "name"], "a token")?;
        let role_text = required(&o, "role")?;
        let role = Role::parse(role_text)
            .ok_or_else(|| ApiError::bad_request(format!("`role={role_text}`: use viewer, recorder or admin")))?;
        let party = field(&o, "party")?.map(str::to_string);
        let name = field(&o, "name")?.map(str::to_string);
        blocking(move || {
            let c = costshare_app::tokens::create(&s.cfg.ledger, role, party.as_deref(), name.as_deref())?;
            Ok(json!({"name": c.name, "role": c.role.as_str(), "party": c.party, "token": c.token}))
        })
        .await
    }
    .await;
    match out {
        Ok(v) => {
            let mut r = respond(json_answer(&v));
            *r.status_mut() = StatusCode::CREATED;
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn tokens_revoke(State(s): State<Arc<Shared>>, axum::Extension(who): W, Path(name): Path<String>) -> Response {
    let out = async {
        auth::require(&who.principal, Role::Admin, "managing tokens")?;
        blocking(move || {
            costshare_app::tokens::revoke(&s.cfg.ledger, &name)?;
            Ok(json!({"revoked": name}))
        })
        .await
    }
    .await;
    answer(out)
}
