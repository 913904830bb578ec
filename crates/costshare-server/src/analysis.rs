//! The analysis reads that take more than query parameters: `compare`
//! (against built-in examples or agreement files sent in the body),
//! `forecast` (optionally with a budget CSV sent in the body), and the
//! built-in example agreements.
//!
//! Each answer is the command line's: `compare` is
//! `costshare_app::compare::compare_loaded` (the body of `costshare compare`)
//! and `forecast` is `costshare_app::forecast::forecast_budget_bytes` (the
//! body of `costshare forecast`), rendered by the same renderers, so the
//! bytes equal `costshare compare --ledger L --against FILE… --by …` and
//! `costshare forecast --ledger L --until … --by …`. Both cover every
//! party's lines, so a party-scoped token is refused (403).

use crate::api::{Params, Shared, Who, json_body, read, respond, text};
use crate::auth;
use crate::cache::Answer;
use crate::error::ApiError;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use costshare_app::input::{LoadedAgreement, Quiet, Session, Source, load_agreement_bytes};
use costshare_app::{AppError, UsageError, render};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

type Q = Query<Vec<(String, String)>>;
type W = axum::Extension<Who>;

/// The analysis routes (under `/api/v1`).
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/compare", get(compare_get).post(compare_post))
        .route("/forecast", get(forecast_get).post(forecast_post))
        .route("/examples", get(examples))
        .route("/examples/{file}", get(example))
}

// ---------------------------------------------------------------- examples

/// One built-in example agreement: its file name, `[agreement] id` and title.
pub struct Example {
    pub file: &'static str,
    pub id: String,
    pub title: String,
    pub toml: &'static str,
}

/// The built-in example agreements (costshare-demo's), loaded once to read
/// their ids and titles.
pub fn examples_list() -> &'static [Example] {
    static LIST: OnceLock<Vec<Example>> = OnceLock::new();
    LIST.get_or_init(|| {
        costshare_demo::agreements::ALL
            .iter()
            .map(|(file, toml)| {
                let (id, title) = match load_agreement_bytes(file, toml.as_bytes()) {
                    Ok(la) => (la.agreement.id, la.agreement.title),
                    Err(_) => (String::new(), String::new()),
                };
                Example { file, id, title, toml }
            })
            .collect()
    })
}

fn find_example(file: &str) -> Result<&'static Example, ApiError> {
    examples_list().iter().find(|e| e.file == file).ok_or_else(|| {
        ApiError::not_found(format!(
            "no built-in example `{file}` (examples: {})",
            examples_list().iter().map(|e| e.file).collect::<Vec<_>>().join(", ")
        ))
    })
}

async fn examples(State(s): State<Arc<Shared>>, axum::Extension(who): W) -> Response {
    read(s, &who, "examples", Params::default(), |_, _, _| {
        let v: Vec<Value> = examples_list()
            .iter()
            .map(|e| json!({"file": e.file, "id": e.id, "title": e.title}))
            .collect();
        Ok(crate::api::json_answer(&Value::Array(v)))
    })
    .await
}

async fn example(State(s): State<Arc<Shared>>, axum::Extension(who): W, Path(file): Path<String>) -> Response {
    let e = match find_example(&file) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    // a built-in text: nothing to compute or cache (the cache is keyed by
    // query parameters, and the file is in the path: a fresh user was sent
    // the first example fetched for every other name)
    let _ = (s, who);
    respond(Answer {
        content_type: "application/toml; charset=utf-8",
        body: Arc::new(e.toml.as_bytes().to_vec()),
        download: Some(e.file.to_string()),
    })
}

// ---------------------------------------------------------------- compare

/// An agreement to compare against, before loading: the name its output
/// calls it by, and its bytes.
type Against = (String, Vec<u8>);

/// A name for a file sent in a body: 1-256 characters, no control characters.
fn file_name(n: &str, what: &str) -> Result<String, ApiError> {
    if n.is_empty() || n.len() > 256 || n.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{what}: 1-256 characters, no control characters"
        )));
    }
    Ok(n.to_string())
}

/// The cache key of a request with a body: the body's hash joins the
/// parameters (a key a query string cannot hold).
fn with_body_key(mut p: Params, body: &[u8]) -> Params {
    p.0.insert("\u{0}body".into(), vec![costshare_app::input::sha256_hex(body)]);
    p
}

async fn compare_get(State(s): State<Arc<Shared>>, axum::Extension(who): W, Query(q): Q) -> Response {
    let p = Params::of(q);
    if let Err(e) = auth::unscoped(&who.principal, "compare") {
        return e.into_response();
    }
    let against: Result<Vec<Against>, ApiError> = p
        .all("against")
        .iter()
        .map(|f| find_example(f).map(|e| (e.file.to_string(), e.toml.as_bytes().to_vec())))
        .collect();
    compare(s, who, p, against).await
}

async fn compare_post(
    State(s): State<Arc<Shared>>,
    axum::Extension(who): W,
    Query(q): Q,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::of(q);
    if let Err(e) = auth::unscoped(&who.principal, "compare") {
        return e.into_response();
    }
    let parsed = (|| {
        let o = json_body(&headers, &body)?;
        let list = match o.get("against") {
            Some(Value::Array(a)) => a,
            None | Some(Value::Null) => {
                return Err(ApiError::bad_request("`against` is required: a list of agreements"));
            }
            Some(_) => return Err(ApiError::bad_request("`against` must be a list")),
        };
        let mut out: Vec<Against> = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let Some(obj) = item.as_object() else {
                return Err(ApiError::bad_request(format!(
                    "against[{i}] must be {{\"name\", \"toml\"}} or {{\"example\"}}"
                )));
            };
            match (crate::api::field(obj, "example")?, crate::api::field(obj, "toml")?) {
                (Some(f), None) => {
                    let e = find_example(f)?;
                    out.push((e.file.to_string(), e.toml.as_bytes().to_vec()));
                }
                (None, Some(t)) => {
                    let name = file_name(crate::api::field(obj, "name")?.unwrap_or("against.toml"), "`name`")?;
                    out.push((name, t.as_bytes().to_vec()));
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "against[{i}]: give either `toml` (with `name`) or `example`"
                    )));
                }
            }
        }
        let by = crate::api::field(&o, "by")?.map(str::to_string);
        Ok((out, by))
    })();
    let (against, by) = match parsed {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let mut p = with_body_key(p, &body);
    if let Some(by) = by {
        p.0.insert("by".into(), vec![by]);
    }
    compare(s, who, p, Ok(against)).await
}

async fn compare(s: Arc<Shared>, who: Who, p: Params, against: Result<Vec<Against>, ApiError>) -> Response {
    if let Err(e) = auth::unscoped(&who.principal, "compare") {
        return e.into_response();
    }
    let against = match against {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    read(s, &who, "compare", p, move |s, _, p| {
        let format = p.format()?;
        let dims = p.dims()?;
        let (as_of, filter, req) = (p.as_of()?, p.filter()?, p.currency()?);
        let chart = match p.get("chart") {
            None => false,
            Some("svg") => true,
            Some(v) => return Err(ApiError::bad_request(format!("`chart={v}`: only chart=svg"))),
        };
        let mut others: Vec<(String, LoadedAgreement)> = Vec::with_capacity(against.len());
        for (name, bytes) in &against {
            others.push((name.clone(), load_agreement_bytes(name, bytes)?));
        }
        let source = Source::Ledger(s.cfg.ledger.clone());
        let mut quiet = Quiet;
        let mut sess = Session::new(&mut quiet);
        let r =
            costshare_app::compare::compare_loaded(&source, &others, &dims, as_of, req.as_ref(), &filter, &mut sess)?;
        if chart {
            let svg = costshare_app::chart::compare_svg_loaded(
                &source,
                &others,
                as_of,
                req.as_ref(),
                &filter,
                &r,
                &mut sess,
            )?;
            return Ok(Answer {
                content_type: "image/svg+xml",
                body: Arc::new(svg.into_bytes()),
                download: None,
            });
        }
        Ok(text(format, render::compare::compare(&r, format)))
    })
    .await
}

// ---------------------------------------------------------------- forecast

async fn forecast_get(State(s): State<Arc<Shared>>, axum::Extension(who): W, Query(q): Q) -> Response {
    forecast(s, who, Params::of(q), None).await
}

async fn forecast_post(
    State(s): State<Arc<Shared>>,
    axum::Extension(who): W,
    Query(q): Q,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::of(q);
    if let Err(e) = auth::unscoped(&who.principal, "forecast") {
        return e.into_response();
    }
    let parsed = (|| {
        let o = json_body(&headers, &body)?;
        let csv = crate::api::field(&o, "budget_csv")?.map(|t| t.as_bytes().to_vec());
        let name = file_name(
            crate::api::field(&o, "budget_name")?.unwrap_or("budget.csv"),
            "`budget_name`",
        )?;
        let mut extra: Vec<(&str, String)> = Vec::new();
        for k in ["until", "by"] {
            if let Some(v) = crate::api::field(&o, k)? {
                extra.push((k, v.to_string()));
            }
        }
        Ok::<_, ApiError>((csv.map(|c| (name, c)), extra))
    })();
    let (budget, extra) = match parsed {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let mut p = with_body_key(p, &body);
    for (k, v) in extra {
        p.0.insert(k.to_string(), vec![v]);
    }
    forecast(s, who, p, budget).await
}

async fn forecast(s: Arc<Shared>, who: Who, p: Params, budget: Option<(String, Vec<u8>)>) -> Response {
    if let Err(e) = auth::unscoped(&who.principal, "forecast") {
        return e.into_response();
    }
    read(s, &who, "forecast", p, move |s, _, p| {
        let format = p.format()?;
        let dims = p.dims()?;
        let until_text = p
            .get("until")
            .ok_or_else(|| ApiError::bad_request("`until` is required: YYYY-MM-DD, the last day to project"))?;
        let until = costshare_core::calendar::Date::parse(until_text)
            .ok_or_else(|| AppError::from(UsageError::Until(until_text.to_string())))?;
        let (as_of, filter) = (p.as_of()?, p.filter()?);
        let source = Source::Ledger(s.cfg.ledger.clone());
        let b = budget.as_ref().map(|(n, c)| (n.as_str(), c.as_slice()));
        let r = costshare_app::forecast::forecast_budget_bytes(&source, until, &dims, b, as_of, &filter, &mut Quiet)?;
        Ok(text(format, render::forecast::forecast(&r, format)))
    })
    .await
}
