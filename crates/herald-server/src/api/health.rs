//! `/api/v1/health` (liveness) and `/api/v1/health/ready` (readiness),
//! without authentication, for load balancers and orchestrators.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AppState;

/// Answers 200 while the process serves requests.
#[utoipa::path(get, operation_id = "v1.health.get", path = "/health", tag = "health", security(()),
    responses((status = 200, description = "`{\"status\": \"ok\"}`")))]
pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Answers 200 when the database answers a query, 503 otherwise: a node
/// that cannot store messages should be taken out of rotation.
#[utoipa::path(get, operation_id = "v1.health.ready", path = "/health/ready", tag = "health", security(()),
    responses(
        (status = 200, description = "`{\"status\": \"ok\"}`"),
        (status = 503, description = "The database does not answer"),
    ))]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match state.store.api_token_count().await {
        Ok(_) => Ok(Json(json!({ "status": "ok" }))),
        Err(error) => {
            tracing::warn!(%error, "readiness check: the database does not answer");
            Err(ApiError::Unavailable("the database does not answer"))
        }
    }
}
