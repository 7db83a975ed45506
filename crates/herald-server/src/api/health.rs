//! `/api/v1/health` (liveness) and `/api/v1/health/ready` (readiness),
//! without authentication, for load balancers and orchestrators.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorOut};
use crate::state::AppState;

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthOut {
    /// Always `ok`.
    status: &'static str,
}

const OK: HealthOut = HealthOut { status: "ok" };

/// Answers 200 while the process serves requests.
#[utoipa::path(
    get,
    operation_id = "v1.health.get",
    path = "/health",
    tag = "health",
    security(()),
    responses((status = 200, body = HealthOut))
)]
pub(crate) async fn health() -> Json<HealthOut> {
    Json(OK)
}

/// Answers 200 when the database answers a query, 503 otherwise: a node
/// that cannot store messages should be taken out of rotation.
#[utoipa::path(
    get,
    operation_id = "v1.health.ready",
    path = "/health/ready",
    tag = "health",
    security(()),
    responses(
        (status = 200, body = HealthOut),
        (status = 503, description = "The database does not answer", body = ErrorOut),
    )
)]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<HealthOut>, ApiError> {
    match state.store.api_token_count().await {
        Ok(_) => Ok(Json(OK)),
        Err(error) => {
            tracing::warn!(%error, "readiness check: the database does not answer");
            Err(ApiError::Unavailable("the database does not answer"))
        }
    }
}
