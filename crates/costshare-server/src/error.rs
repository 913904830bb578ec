//! Errors as HTTP answers: a status and a JSON body
//! `{"error": {"code", "message", ...}}`. The words come from
//! `costshare_app::words`, the one place errors are worded; this module only
//! chooses the status. Bad input is always a 4xx.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use costshare_app::AppError;
use costshare_app::error::BadFile;
use costshare_store::ledger::Refusal;
use costshare_store::{LedgerError, StoreError};
use serde_json::{Value, json};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// More fields of the error object (`rows`, `diagnostics`).
    pub extra: Option<Box<(&'static str, Value)>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

/// The ledger this process serves, as configured (a path or a URL that may
/// hold a password): never shown to a client.
static LEDGER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Remember the ledger's name, so that answers never show it.
pub fn set_ledger(target: &str) {
    let _ = LEDGER.set(target.to_string());
}

/// `text` with the served ledger's path or URL replaced by "this ledger":
/// a client learns neither the server's file layout nor a database's
/// address, user or password.
pub fn redact(text: &str) -> String {
    let Some(target) = LEDGER.get().filter(|t| !t.is_empty()) else {
        return text.to_string();
    };
    text.replace(&format!("the ledger `{target}`"), "this ledger")
        .replace(&format!("`{target}`"), "this ledger")
        .replace(target.as_str(), "this ledger")
}

/// The words of an app error without the command line's `costshare: error: ` prefix.
pub fn words(e: &AppError) -> String {
    let text = redact(&costshare_app::words::error(e));
    let mut out = String::with_capacity(text.len());
    for line in text.trim_end().lines() {
        if !out.is_empty() {
            out.push('\n');
        }
        let l = line
            .strip_prefix("costshare: error: ")
            .or_else(|| line.strip_prefix("costshare: usage error: "))
            .unwrap_or(line);
        out.push_str(l);
    }
    out
}

fn rows_json(files: &[BadFile]) -> Value {
    let mut rows = Vec::new();
    for b in files {
        for e in &b.errors {
            rows.push(json!({
                "file": b.path,
                "line": e.line,
                "id": e.id,
                "message": e.message,
            }));
        }
    }
    Value::Array(rows)
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        let message = words(&e);
        let (status, code, extra) = match &e {
            AppError::Usage(_) => (StatusCode::BAD_REQUEST, "usage", None),
            AppError::Read { .. } | AppError::NotUtf8 { .. } | AppError::NotAnAgreement { .. } => {
                (StatusCode::BAD_REQUEST, "bad_input", None)
            }
            AppError::Agreement { diagnostics, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "agreement",
                Some((
                    "diagnostics",
                    Value::Array(
                        diagnostics
                            .iter()
                            .map(|d| {
                                json!({
                                    "severity": format!("{:?}", d.severity).to_lowercase(),
                                    "message": d.message,
                                    "span": [d.span.start, d.span.end],
                                })
                            })
                            .collect(),
                    ),
                )),
            ),
            AppError::BadRows(files) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_rows",
                Some(("rows", rows_json(files))),
            ),
            AppError::Ledger(LedgerError::Rows { file, errors }) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_rows",
                Some((
                    "rows",
                    rows_json(&[BadFile {
                        path: file.clone(),
                        kind: costshare_app::error::FileKind::Costs,
                        errors: errors.clone(),
                    }]),
                )),
            ),
            // voiding an id the ledger does not hold: not found, like explain's
            AppError::Ledger(LedgerError::Refused(Refusal::NoSuchLine { .. })) => {
                (StatusCode::NOT_FOUND, "not_found", None)
            }
            AppError::Ledger(LedgerError::Refused(_)) => (StatusCode::CONFLICT, "refused", None),
            AppError::Ledger(LedgerError::Store(StoreError::Db(_))) => {
                // the details (host, user, the driver's words) go to the log only
                eprintln!("costshare serve: {}", costshare_app::words::error(&e).trim_end());
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database",
                    "the ledger's database is unavailable; the server's log has the details",
                );
            }
            AppError::Ledger(LedgerError::Store(StoreError::CommitUnknown(_))) => {
                eprintln!("costshare serve: {}", costshare_app::words::error(&e).trim_end());
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "commit_unknown",
                    "the connection to the database was lost while committing, so the write may or may not have been made; send the same request again: it is idempotent, and completes the write or says it is already there",
                );
            }
            AppError::Ledger(LedgerError::Store(StoreError::NotFound(_))) => (StatusCode::NOT_FOUND, "no_ledger", None),
            AppError::Ledger(LedgerError::Store(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "ledger_damaged", None),
            AppError::NoLine { .. } | AppError::Voided { .. } | AppError::NoHistory { .. } => {
                (StatusCode::NOT_FOUND, "not_found", None)
            }
            AppError::TotalTooLarge { .. }
            | AppError::Convert(_)
            | AppError::AgainstCurrency { .. }
            | AppError::AgainstParties { .. }
            | AppError::ExportInexact { .. }
            | AppError::ExportTooManyRows { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "cannot_compute", None),
            AppError::PeriodOutsideTerm { .. } => (StatusCode::BAD_REQUEST, "usage", None),
            AppError::Token(_) => (StatusCode::CONFLICT, "token", None),
            AppError::NoToken(_) => (StatusCode::NOT_FOUND, "not_found", None),
            AppError::DerivedDamaged { .. } | AppError::HeadMismatch { .. } | AppError::VerifyFailed { .. } => {
                (StatusCode::CONFLICT, "verify_failed", None)
            }
            AppError::CreateDir { .. }
            | AppError::Write { .. }
            | AppError::ExplainDisagrees { .. }
            | AppError::Demo { .. }
            | AppError::Xlsx { .. }
            | AppError::WouldOverwrite { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        };
        ApiError {
            status,
            code,
            message,
            extra: extra.map(Box::new),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({"code": self.code, "message": self.message});
        if let (Some(e), Some(obj)) = (self.extra, err.as_object_mut()) {
            let (k, v) = *e;
            obj.insert(k.to_string(), v);
        }
        let body = serde_json::to_string_pretty(&json!({ "error": err })).unwrap_or_default() + "\n";
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response()
    }
}
