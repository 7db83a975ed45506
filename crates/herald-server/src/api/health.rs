//! `/api/v1/health`: liveness, without authentication.

use axum::Json;
use serde_json::{json, Value};

/// Answers 200 while the process serves requests.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
