//! What-if: an agreement edited in memory, every line re-allocated under it
//! on the fly, nothing saved.

use axum::Router;
use std::sync::Arc;

/// The what-if routes (under `/api/v1`).
pub fn routes() -> Router<Arc<crate::api::Shared>> {
    Router::new()
}
