//! `/ingest/api/v1/source/{source}/request`: the source's capped request
//! log, newest first, accepted and rejected alike, filterable by outcome.

use axum::extract::{Path, State};
use base64::Engine as _;
use herald_store::{ReceivedRequest, RequestOutcome};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::load_source;
use crate::api::openapi::paths::SourcePath;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::wire::{list_response, page_request, ListResponse};

/// One logged request. The body is text when it is UTF-8, else base64
/// (`bodyEncoding` says which); credential headers show as `<redacted>`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InboundRequestOut {
    id: String,
    source_id: String,
    received_at: String,
    remote_addr: String,
    outcome: &'static str,
    status_code: u16,
    reason: Option<String>,
    msg_id: Option<String>,
    headers: Vec<(String, String)>,
    body: String,
    body_encoding: &'static str,
}

impl From<ReceivedRequest> for InboundRequestOut {
    fn from(request: ReceivedRequest) -> Self {
        let (body, body_encoding) = match String::from_utf8(request.body) {
            Ok(text) => (text, "utf8"),
            Err(error) => (
                base64::engine::general_purpose::STANDARD.encode(error.into_bytes()),
                "base64",
            ),
        };
        Self {
            id: request.id.to_string(),
            source_id: request.source_id.to_string(),
            received_at: request.received_at.to_rfc3339(),
            remote_addr: request.remote_addr,
            outcome: request.outcome.as_str(),
            status_code: request.status_code,
            reason: request.reason,
            msg_id: request.msg_id.map(|id| id.to_string()),
            headers: request.headers,
            body,
            body_encoding,
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
    /// `ascending` or `descending` (newest first by default).
    order: Option<String>,
    /// `accepted`, `duplicate` or `rejected`.
    outcome: Option<String>,
}

/// Lists the logged requests of a source, newest first.
#[utoipa::path(
    get,
    operation_id = "v1.ingest.source.list-requests",
    path = "/source/{source}/request",
    tag = "ingest",
    params(SourcePath, ListParams),
    responses((status = 200, body = ListResponse<InboundRequestOut>))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(source): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<ListResponse<InboundRequestOut>>, ApiError> {
    let source = load_source(&state, &source).await?;
    let outcome = params
        .outcome
        .as_deref()
        .map(|text| {
            RequestOutcome::parse(text).ok_or_else(|| {
                ApiError::invalid_query("outcome", "must be accepted, duplicate or rejected")
            })
        })
        .transpose()?;
    let request = page_request(
        params.limit,
        params.iterator.as_deref(),
        params.order.as_deref(),
        true,
    )?;
    let page = state
        .store
        .list_requests(&source.id, outcome, request.clone())
        .await?;
    Ok(Json(list_response(
        page,
        &request,
        |logged| logged.id.to_string(),
        InboundRequestOut::from,
    )))
}
