//! `/openapi.json`: the API described for clients and for schemathesis.

use axum::http::header;
use axum::response::{IntoResponse, Response};

pub async fn handler() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        serde_json::to_string_pretty(&spec()).unwrap_or_default(),
    )
        .into_response()
}

/// The OpenAPI 3.0 document.
pub fn spec() -> serde_json::Value {
    serde_json::json!({
        "openapi": "3.0.3",
        "info": {"title": "costshare", "version": env!("CARGO_PKG_VERSION")},
        "paths": {}
    })
}
