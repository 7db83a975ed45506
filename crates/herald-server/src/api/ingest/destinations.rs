//! `/ingest/api/v1/source/{source}/endpoint`: where a source's events are
//! forwarded. They are the endpoints of the source's backing app, so these
//! handlers resolve the source and hand over to the app endpoint logic
//! (`api/endpoints.rs`): same fields, same validation, same behaviour.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::load_source;
use crate::api::endpoints::{
    self, EndpointHeadersIn, EndpointHeadersOut, EndpointIn, EndpointOut, EndpointSecretOut,
    EndpointSecretRotateIn,
};
use crate::api::openapi::paths::{SourceEndpointPath, SourcePath};
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::wire::ListParams;
use crate::wire::ListResponse;

/// Lists a source's destinations, oldest first.
#[utoipa::path(
    get,
    operation_id = "v1.ingest.endpoint.list",
    path = "/source/{source}/endpoint",
    tag = "ingest",
    params(SourcePath, ListParams),
    responses((status = 200, body = ListResponse<EndpointOut>))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(source): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<ListResponse<EndpointOut>>, ApiError> {
    let source = load_source(&state, &source).await?;
    endpoints::list_of(&state, &source.app_id, params)
        .await
        .map(Json)
}

/// Adds a destination; without `secret` one is generated.
#[utoipa::path(
    post,
    operation_id = "v1.ingest.endpoint.create",
    path = "/source/{source}/endpoint",
    tag = "ingest",
    params(SourcePath),
    request_body = EndpointIn,
    responses((status = 201, body = EndpointOut))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Path(source): Path<String>,
    Json(input): Json<EndpointIn>,
) -> Result<impl IntoResponse, ApiError> {
    let source = load_source(&state, &source).await?;
    let endpoint = endpoints::create_in(&state, source.app_id, input).await?;
    Ok((StatusCode::CREATED, Json(EndpointOut::from(endpoint))))
}

/// One destination by id or uid.
#[utoipa::path(
    get,
    operation_id = "v1.ingest.endpoint.get",
    path = "/source/{source}/endpoint/{endpoint}",
    tag = "ingest",
    params(SourceEndpointPath),
    responses((status = 200, body = EndpointOut))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path((source, endpoint)): Path<(String, String)>,
) -> Result<Json<EndpointOut>, ApiError> {
    let source = load_source(&state, &source).await?;
    let endpoint = endpoints::endpoint_of(&state, &source.app_id, &endpoint).await?;
    Ok(Json(endpoint.into()))
}

/// Replaces a destination's settings, or creates it with the path's uid.
#[utoipa::path(
    put,
    operation_id = "v1.ingest.endpoint.update",
    path = "/source/{source}/endpoint/{endpoint}",
    tag = "ingest",
    params(SourceEndpointPath),
    request_body = EndpointIn,
    responses(
        (status = 200, description = "Replaced", body = EndpointOut),
        (status = 201, description = "Created", body = EndpointOut),
    )
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    Path((source, endpoint)): Path<(String, String)>,
    Json(input): Json<EndpointIn>,
) -> Result<impl IntoResponse, ApiError> {
    let source = load_source(&state, &source).await?;
    let (status, endpoint) = endpoints::replace_in(&state, source.app_id, &endpoint, input).await?;
    Ok((status, Json(EndpointOut::from(endpoint))))
}

/// Removes a destination; its queued deliveries end as failed.
#[utoipa::path(
    delete,
    operation_id = "v1.ingest.endpoint.delete",
    path = "/source/{source}/endpoint/{endpoint}",
    tag = "ingest",
    params(SourceEndpointPath),
    responses((status = 204, description = "Deleted"))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path((source, endpoint)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let source = load_source(&state, &source).await?;
    let endpoint = endpoints::endpoint_of(&state, &source.app_id, &endpoint).await?;
    endpoints::remove(&state, &endpoint).await
}

/// The destination's signing secret (Herald signs what it forwards).
#[utoipa::path(
    get,
    operation_id = "v1.ingest.endpoint.get-secret",
    path = "/source/{source}/endpoint/{endpoint}/secret",
    tag = "ingest",
    params(SourceEndpointPath),
    responses((status = 200, body = EndpointSecretOut))
)]
pub(crate) async fn secret(
    State(state): State<AppState>,
    Path((source, endpoint)): Path<(String, String)>,
) -> Result<Json<EndpointSecretOut>, ApiError> {
    let source = load_source(&state, &source).await?;
    let endpoint = endpoints::endpoint_of(&state, &source.app_id, &endpoint).await?;
    Ok(Json(EndpointSecretOut::from(&endpoint)))
}

/// Rotates the destination's signing secret, with the same grace period
/// as app endpoints.
#[utoipa::path(
    post,
    operation_id = "v1.ingest.endpoint.rotate-secret",
    path = "/source/{source}/endpoint/{endpoint}/secret/rotate",
    tag = "ingest",
    params(SourceEndpointPath),
    request_body(
        content = Option<EndpointSecretRotateIn>,
        description = "Optional: without a body a new key of the same kind is generated",
    ),
    responses((status = 200, body = EndpointSecretOut))
)]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    Path((source, endpoint)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<EndpointSecretOut>, ApiError> {
    let source = load_source(&state, &source).await?;
    let endpoint = endpoints::endpoint_of(&state, &source.app_id, &endpoint).await?;
    endpoints::rotate(&state, endpoint, &body).await.map(Json)
}

/// The destination's custom headers; sensitive values withheld.
#[utoipa::path(
    get,
    operation_id = "v1.ingest.endpoint.get-headers",
    path = "/source/{source}/endpoint/{endpoint}/headers",
    tag = "ingest",
    params(SourceEndpointPath),
    responses((status = 200, body = EndpointHeadersOut))
)]
pub(crate) async fn headers(
    State(state): State<AppState>,
    Path((source, endpoint)): Path<(String, String)>,
) -> Result<Json<EndpointHeadersOut>, ApiError> {
    let source = load_source(&state, &source).await?;
    let endpoint = endpoints::endpoint_of(&state, &source.app_id, &endpoint).await?;
    Ok(Json(EndpointHeadersOut::from(endpoint)))
}

/// Replaces the destination's custom headers.
#[utoipa::path(
    put,
    operation_id = "v1.ingest.endpoint.update-headers",
    path = "/source/{source}/endpoint/{endpoint}/headers",
    tag = "ingest",
    params(SourceEndpointPath),
    request_body = EndpointHeadersIn,
    responses((status = 204, description = "Replaced"))
)]
pub(crate) async fn put_headers(
    State(state): State<AppState>,
    Path((source, endpoint)): Path<(String, String)>,
    Json(input): Json<EndpointHeadersIn>,
) -> Result<StatusCode, ApiError> {
    let source = load_source(&state, &source).await?;
    let endpoint = endpoints::endpoint_of(&state, &source.app_id, &endpoint).await?;
    endpoints::replace_headers(&state, endpoint, input).await
}
