//! `/api/v1/app/{app}/attempt/…` and resend: the attempt log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use herald_core::model::{Attempt, DeliveryStatus};
use herald_core::AttemptId;
use herald_store::AttemptFilter;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::api::apps::load_app;
use crate::api::endpoints::load_endpoint;
use crate::api::messages::{load_message, status_text};
use crate::api::openapi::paths::{AttemptPath, EndpointPath, MessageEndpointPath, MessagePath};
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::wire::{comma_list, list_response, page_request, query_time, ListResponse};

/// One attempt as answered. `errorKind` (Herald's addition) says why an
/// attempt got no acceptable HTTP answer: `timeout`, `connection_refused`,
/// `ssrf_blocked`…
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageAttemptOut {
    id: String,
    msg_id: String,
    endpoint_id: String,
    url: String,
    response: String,
    response_status_code: i32,
    response_duration_ms: i64,
    status: i64,
    status_text: &'static str,
    trigger_type: i64,
    timestamp: String,
    error_kind: Option<&'static str>,
}

impl MessageAttemptOut {
    fn new(attempt: Attempt, with_content: bool) -> Self {
        Self {
            id: attempt.id.to_string(),
            msg_id: attempt.msg_id.to_string(),
            endpoint_id: attempt.endpoint_id.to_string(),
            url: attempt.url,
            response: if with_content {
                attempt.response
            } else {
                String::new()
            },
            response_status_code: attempt.response_status_code,
            response_duration_ms: attempt.response_duration_ms,
            status: attempt.status.code(),
            status_text: status_text(attempt.status),
            trigger_type: attempt.trigger.code(),
            timestamp: attempt.timestamp.to_rfc3339(),
            error_kind: attempt.error.map(|error| error.as_str()),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Items per page, 1 to 250 (50 by default).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// Where to continue: an answer's `iterator` or `prevIterator`.
    iterator: Option<String>,
    /// Only attempts with this outcome: 0 success, 1 pending, 2 fail, 3 sending.
    status: Option<i64>,
    /// Only attempts to this endpoint (id or uid); the list by endpoint
    /// takes it from its path instead.
    endpoint_id: Option<String>,
    /// Only attempts made before this RFC 3339 time.
    before: Option<String>,
    /// Only attempts made after this RFC 3339 time.
    after: Option<String>,
    /// Answer response bodies (the default), or an empty string in their place.
    with_content: Option<bool>,
    /// Only attempts of messages of these event types, comma-separated.
    event_types: Option<String>,
    /// Only answers in this class: 0 (none), 100, 200, 300, 400 or 500.
    status_code_class: Option<i32>,
    /// Only attempts of messages published on this channel.
    channel: Option<String>,
    /// Only attempts of messages with this tag.
    tag: Option<String>,
}

impl ListParams {
    fn filter(&self) -> Result<AttemptFilter, ApiError> {
        let status = self
            .status
            .map(|code| {
                DeliveryStatus::from_code(code)
                    .ok_or_else(|| ApiError::invalid_query("status", "must be 0, 1, 2 or 3"))
            })
            .transpose()?;
        if let Some(class) = self.status_code_class {
            if !(0..=500).contains(&class) || class % 100 != 0 {
                return Err(ApiError::invalid_query(
                    "status_code_class",
                    "must be 0, 100, 200, 300, 400 or 500",
                ));
            }
        }
        Ok(AttemptFilter {
            msg_id: None,
            endpoint_id: None,
            status,
            status_code_class: self.status_code_class,
            event_types: comma_list(self.event_types.as_deref()),
            channel: self.channel.clone(),
            tag: self.tag.clone(),
            before: query_time("before", self.before.as_deref())?,
            after: query_time("after", self.after.as_deref())?,
        })
    }
}

async fn respond(
    state: &AppState,
    app: &herald_core::AppId,
    filter: AttemptFilter,
    params: &ListParams,
) -> Result<Json<ListResponse<MessageAttemptOut>>, ApiError> {
    let request = page_request(params.limit, params.iterator.as_deref(), None, true)?;
    let with_content = params.with_content.unwrap_or(true);
    let page = state
        .store
        .list_attempts(app, filter, request.clone())
        .await?;
    Ok(Json(list_response(
        page,
        &request,
        |attempt| attempt.id.to_string(),
        |attempt| MessageAttemptOut::new(attempt, with_content),
    )))
}

/// Attempts of one message, newest first (optionally of one endpoint).
#[utoipa::path(
    get,
    operation_id = "v1.message-attempt.list-by-msg",
    path = "/app/{app}/attempt/msg/{msg}",
    tag = "attempts",
    params(MessagePath, ListParams),
    responses((status = 200, body = ListResponse<MessageAttemptOut>))
)]
pub(crate) async fn by_message(
    State(state): State<AppState>,
    Path((app, msg)): Path<(String, String)>,
    Query(params): Query<ListParams>,
) -> Result<Json<ListResponse<MessageAttemptOut>>, ApiError> {
    let app = load_app(&state, &app).await?;
    let message = load_message(&state, &app.id, &msg).await?;
    let mut filter = params.filter()?;
    filter.msg_id = Some(message.id);
    if let Some(endpoint) = &params.endpoint_id {
        let endpoint = state
            .store
            .endpoint_by_ref(&app.id, endpoint)
            .await?
            .ok_or(ApiError::NotFound("endpoint"))?;
        filter.endpoint_id = Some(endpoint.id);
    }
    respond(&state, &app.id, filter, &params).await
}

/// Attempts to one endpoint, newest first.
#[utoipa::path(
    get,
    operation_id = "v1.message-attempt.list-by-endpoint",
    path = "/app/{app}/attempt/endpoint/{endpoint}",
    tag = "attempts",
    params(EndpointPath, ListParams),
    responses((status = 200, body = ListResponse<MessageAttemptOut>))
)]
pub(crate) async fn by_endpoint(
    State(state): State<AppState>,
    Path((app, endpoint)): Path<(String, String)>,
    Query(params): Query<ListParams>,
) -> Result<Json<ListResponse<MessageAttemptOut>>, ApiError> {
    let endpoint = load_endpoint(&state, &app, &endpoint).await?;
    let mut filter = params.filter()?;
    filter.endpoint_id = Some(endpoint.id);
    respond(&state, &endpoint.app_id, filter, &params).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GetParams {
    /// Answer the response body (the default), or an empty string in its place.
    with_content: Option<bool>,
}

/// One attempt of a message.
#[utoipa::path(
    get,
    operation_id = "v1.message-attempt.get",
    path = "/app/{app}/msg/{msg}/attempt/{attempt}",
    tag = "attempts",
    params(AttemptPath, GetParams),
    responses((status = 200, body = MessageAttemptOut))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path((app, msg, attempt)): Path<(String, String, String)>,
    Query(params): Query<GetParams>,
) -> Result<Json<MessageAttemptOut>, ApiError> {
    let app = load_app(&state, &app).await?;
    let message = load_message(&state, &app.id, &msg).await?;
    let id = AttemptId::parse(&attempt).ok_or(ApiError::NotFound("attempt"))?;
    let attempt = state
        .store
        .attempt(&app.id, &message.id, &id)
        .await?
        .ok_or(ApiError::NotFound("attempt"))?;
    Ok(Json(MessageAttemptOut::new(
        attempt,
        params.with_content.unwrap_or(true),
    )))
}

/// Deletes the response body an attempt logged, for an endpoint that
/// answered with content it should not have: the attempt stays, its
/// `response` reads empty.
#[utoipa::path(
    delete,
    operation_id = "v1.message-attempt.expunge-content",
    path = "/app/{app}/msg/{msg}/attempt/{attempt}/content",
    tag = "attempts",
    params(AttemptPath),
    responses((status = 204, description = "Deleted"))
)]
pub(crate) async fn expunge_content(
    State(state): State<AppState>,
    Path((app, msg, attempt)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = load_app(&state, &app).await?;
    let message = load_message(&state, &app.id, &msg).await?;
    let id = AttemptId::parse(&attempt).ok_or(ApiError::NotFound("attempt"))?;
    if !state
        .store
        .expunge_attempt_content(&app.id, &message.id, &id)
        .await?
    {
        return Err(ApiError::NotFound("attempt"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Queues one more (manual) attempt of a message to an endpoint.
#[utoipa::path(
    post,
    operation_id = "v1.message-attempt.resend",
    path = "/app/{app}/msg/{msg}/endpoint/{endpoint}/resend",
    tag = "attempts",
    params(MessageEndpointPath),
    responses((status = 202, description = "Queued", body = Object))
)]
pub(crate) async fn resend(
    State(state): State<AppState>,
    Path((app, msg, endpoint)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let endpoint = load_endpoint(&state, &app, &endpoint).await?;
    let message = load_message(&state, &endpoint.app_id, &msg).await?;
    if message.payload_gone(state.clock.now()) {
        return Err(ApiError::Conflict(
            "the message's content was deleted; it cannot be sent again".into(),
        ));
    }
    state
        .store
        .resend(
            &endpoint.app_id,
            &message.id,
            &endpoint.id,
            state.clock.now(),
        )
        .await?;
    state.engine.wake();
    Ok((StatusCode::ACCEPTED, Json(json!({}))))
}
