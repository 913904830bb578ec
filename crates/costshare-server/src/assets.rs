//! The dashboard: HTML, CSS and JavaScript built into the binary
//! (`include_str!`), served at `/` and `/assets/NAME`. Nothing is fetched
//! from elsewhere: no CDN, no build step, no Node.js.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// Every asset: name, content type, bytes.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../assets/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    ("app.css", "text/css; charset=utf-8", include_str!("../assets/app.css")),
    (
        "util.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/util.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/charts.js"),
    ),
];

fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => (
            [(header::CONTENT_TYPE, *ct), (header::CACHE_CONTROL, "no-cache")],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

pub fn routes() -> Router<Arc<crate::api::Shared>> {
    Router::new().route("/", get(|| async { asset("index.html") })).route(
        "/assets/{name}",
        get(|Path(name): Path<String>| async move { asset(&name) }),
    )
}
