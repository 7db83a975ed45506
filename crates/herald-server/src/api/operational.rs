//! `/api/v1/operational-webhook/endpoint`: the operator's own endpoints,
//! which receive events about the platform (`endpoint.disabled`,
//! `message.attempt.exhausted`, …) — Svix's paths, so the SDKs'
//! `operational_webhook` modules work unchanged.
//!
//! They are endpoints of the application the engine keeps for operational
//! events, so these handlers resolve that app and hand over to the app
//! endpoint logic (`api/endpoints.rs`): same fields, same validation, same
//! signing and retries. Only the event types they may subscribe to differ.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use herald_core::AppId;
use herald_delivery::operational::{OperationalEvent, OPERATIONAL_EVENT_TYPES};

use crate::api::endpoints::{
    self, EndpointHeadersIn, EndpointHeadersOut, EndpointIn, EndpointOut, EndpointSecretOut,
    EndpointSecretRotateIn,
};
use crate::api::openapi::paths::OperationalEndpointPath;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::wire::{ListParams, ListResponse};

/// Raises `event` after the change it reports was committed: an event that
/// cannot be stored is logged, and the caller still hears of its success.
pub(crate) async fn raise(state: &AppState, event: OperationalEvent) {
    match state.engine.operational().emit(&event).await {
        Ok(true) => state.engine.wake(),
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(%error, event = event.event_type(), "cannot raise an operational event")
        }
    }
}

/// The operational app, created on first use.
async fn operational_app(state: &AppState) -> Result<AppId, ApiError> {
    Ok(state.engine.operational().app().await?)
}

/// Operational endpoints may only subscribe to operational event types.
fn check_event_types(input: &EndpointIn) -> Result<(), ApiError> {
    for (field, types) in input.subscriptions() {
        if let Some(unknown) = types
            .iter()
            .find(|name| !OPERATIONAL_EVENT_TYPES.contains(&name.as_str()))
        {
            return Err(ApiError::invalid(
                field,
                format!(
                    "{unknown} is not an operational event type (one of {})",
                    OPERATIONAL_EVENT_TYPES.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Lists operational endpoints, oldest first.
#[utoipa::path(
    get,
    operation_id = "v1.operational-webhook-endpoint.list",
    path = "/operational-webhook/endpoint",
    tag = "operational webhooks",
    params(ListParams),
    responses((status = 200, body = ListResponse<EndpointOut>))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<ListResponse<EndpointOut>>, ApiError> {
    let app = operational_app(&state).await?;
    endpoints::list_of(&state, &app, params).await.map(Json)
}

/// Adds an operational endpoint; without `secret` one is generated.
#[utoipa::path(
    post,
    operation_id = "v1.operational-webhook-endpoint.create",
    path = "/operational-webhook/endpoint",
    tag = "operational webhooks",
    request_body = EndpointIn,
    responses((status = 201, body = EndpointOut))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Json(input): Json<EndpointIn>,
) -> Result<impl IntoResponse, ApiError> {
    check_event_types(&input)?;
    let app = operational_app(&state).await?;
    let endpoint = endpoints::create_in(&state, app, input).await?;
    Ok((StatusCode::CREATED, Json(EndpointOut::from(endpoint))))
}

/// One operational endpoint by id or uid.
#[utoipa::path(
    get,
    operation_id = "v1.operational-webhook-endpoint.get",
    path = "/operational-webhook/endpoint/{endpoint}",
    tag = "operational webhooks",
    params(OperationalEndpointPath),
    responses((status = 200, body = EndpointOut))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
) -> Result<Json<EndpointOut>, ApiError> {
    let app = operational_app(&state).await?;
    let endpoint = endpoints::endpoint_of(&state, &app, &endpoint).await?;
    Ok(Json(endpoint.into()))
}

/// Replaces an operational endpoint's settings, or creates it with the
/// path's uid.
#[utoipa::path(
    put,
    operation_id = "v1.operational-webhook-endpoint.update",
    path = "/operational-webhook/endpoint/{endpoint}",
    tag = "operational webhooks",
    params(OperationalEndpointPath),
    request_body = EndpointIn,
    responses(
        (status = 200, description = "Replaced", body = EndpointOut),
        (status = 201, description = "Created", body = EndpointOut),
    )
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
    Json(input): Json<EndpointIn>,
) -> Result<impl IntoResponse, ApiError> {
    check_event_types(&input)?;
    let app = operational_app(&state).await?;
    let (status, endpoint) = endpoints::replace_in(&state, app, &endpoint, input).await?;
    Ok((status, Json(EndpointOut::from(endpoint))))
}

/// Removes an operational endpoint.
#[utoipa::path(
    delete,
    operation_id = "v1.operational-webhook-endpoint.delete",
    path = "/operational-webhook/endpoint/{endpoint}",
    tag = "operational webhooks",
    params(OperationalEndpointPath),
    responses((status = 204, description = "Deleted"))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
) -> Result<StatusCode, ApiError> {
    let app = operational_app(&state).await?;
    let endpoint = endpoints::endpoint_of(&state, &app, &endpoint).await?;
    endpoints::remove(&state, &endpoint).await
}

/// The operational endpoint's signing secret.
#[utoipa::path(
    get,
    operation_id = "v1.operational-webhook-endpoint.get-secret",
    path = "/operational-webhook/endpoint/{endpoint}/secret",
    tag = "operational webhooks",
    params(OperationalEndpointPath),
    responses((status = 200, body = EndpointSecretOut))
)]
pub(crate) async fn secret(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
) -> Result<Json<EndpointSecretOut>, ApiError> {
    let app = operational_app(&state).await?;
    let endpoint = endpoints::endpoint_of(&state, &app, &endpoint).await?;
    Ok(Json(EndpointSecretOut::from(&endpoint)))
}

/// Rotates the operational endpoint's signing secret.
#[utoipa::path(
    post,
    operation_id = "v1.operational-webhook-endpoint.rotate-secret",
    path = "/operational-webhook/endpoint/{endpoint}/secret/rotate",
    tag = "operational webhooks",
    params(OperationalEndpointPath),
    request_body(
        content = Option<EndpointSecretRotateIn>,
        description = "Optional: without a body a new key of the same kind is generated",
    ),
    responses((status = 200, body = EndpointSecretOut))
)]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<EndpointSecretOut>, ApiError> {
    let app = operational_app(&state).await?;
    let endpoint = endpoints::endpoint_of(&state, &app, &endpoint).await?;
    endpoints::rotate(&state, endpoint, &body).await.map(Json)
}

/// The operational endpoint's custom headers; sensitive values withheld.
#[utoipa::path(
    get,
    operation_id = "v1.operational-webhook-endpoint.get-headers",
    path = "/operational-webhook/endpoint/{endpoint}/headers",
    tag = "operational webhooks",
    params(OperationalEndpointPath),
    responses((status = 200, body = EndpointHeadersOut))
)]
pub(crate) async fn headers(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
) -> Result<Json<EndpointHeadersOut>, ApiError> {
    let app = operational_app(&state).await?;
    let endpoint = endpoints::endpoint_of(&state, &app, &endpoint).await?;
    Ok(Json(EndpointHeadersOut::from(endpoint)))
}

/// Replaces the operational endpoint's custom headers.
#[utoipa::path(
    put,
    operation_id = "v1.operational-webhook-endpoint.update-headers",
    path = "/operational-webhook/endpoint/{endpoint}/headers",
    tag = "operational webhooks",
    params(OperationalEndpointPath),
    request_body = EndpointHeadersIn,
    responses((status = 204, description = "Replaced"))
)]
pub(crate) async fn put_headers(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
    Json(input): Json<EndpointHeadersIn>,
) -> Result<StatusCode, ApiError> {
    let app = operational_app(&state).await?;
    let endpoint = endpoints::endpoint_of(&state, &app, &endpoint).await?;
    endpoints::replace_headers(&state, endpoint, input).await
}
