//! Listen sessions: a public relay URL whose requests are answered by a
//! `herald listen` process on a developer's machine, so deliveries (or any
//! provider's webhooks) reach a server on `localhost` without exposing it.
//!
//! The listener holds no connection open to be reached: it long-polls the
//! API for what arrived and posts each local answer back, so it works from
//! behind NAT and any HTTP proxy. The relay answers the sender with the
//! local server's answer, which therefore lands in the attempt log.

pub(crate) mod sessions;

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::error::ErrorOut;
use crate::extract::{Json, Query};
use crate::state::AppState;
use sessions::{OpenError, RelayError, Relayed, Reply};

/// How long the relay waits for the local answer: inside the delivery
/// engine's default timeout (15 s), so a slow local server shows as this
/// relay's `504` in the attempt log rather than as a bare timeout.
const RELAY_WAIT: Duration = Duration::from_secs(10);

/// The longest a poll may wait for a request.
const MAX_POLL_WAIT: u64 = 30;

/// Headers that describe one hop, not the request: not passed on either way.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

fn passes_on(name: &str) -> bool {
    !HOP_BY_HOP.contains(&name) && name != "host"
}

/// A browser's cookies for this origin (the console's session) never
/// reach a listener.
const KEPT_BACK: &str = "cookie";

/// The only headers of a local answer passed back (besides `x-…` ones):
/// the answer is served from this server's origin, the console's too, so
/// nothing that acts on an origin (cookies, `Clear-Site-Data`, redirects,
/// `Link` preloads) may come through.
const ANSWER_HEADERS: [&str; 7] = [
    "content-type",
    "content-language",
    "cache-control",
    "etag",
    "last-modified",
    "retry-after",
    "www-authenticate",
];

fn answer_passes(name: &str) -> bool {
    ANSWER_HEADERS.contains(&name) || name.starts_with("x-") && name != "x-content-type-options"
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ListenIn {
    /// A session this listener had before (after a restart of either
    /// side), to keep its relay URL; a new session when absent.
    id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListenOut {
    id: String,
    /// Where senders post: an endpoint URL for a tenant's deliveries, or a
    /// provider's webhook URL.
    url: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct SessionPath {
    /// The session's id (`lsn_…`).
    session: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ReplyPath {
    /// The session's id (`lsn_…`).
    session: String,
    /// The request's id, as the poll gave it.
    request: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PollParams {
    /// Seconds to wait for a request when none is waiting, 0 to 30 (25 by
    /// default).
    #[param(minimum = 0, maximum = 30)]
    wait: Option<u64>,
    /// Most requests answered at once, 1 to 100 (16 by default).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RelayedOut {
    /// What the answer is posted back under.
    id: String,
    method: String,
    /// The query string the sender used, without `?`.
    query: Option<String>,
    /// Name and value pairs, in the order sent.
    headers: Vec<(String, String)>,
    /// The body, base64-encoded (it may not be text).
    body: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PollOut {
    data: Vec<RelayedOut>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ReplyIn {
    /// The local server's status code, 200 to 599.
    status: u16,
    #[serde(default)]
    headers: Vec<(String, String)>,
    /// The local server's body, base64-encoded.
    #[serde(default)]
    body: String,
}

/// Opens a listen session (or takes back one it had), answering its relay
/// URL.
#[utoipa::path(
    post,
    operation_id = "v1.listen.create",
    path = "/listen",
    tag = "listen",
    request_body = ListenIn,
    responses(
        (status = 201, description = "A new session", body = ListenOut),
        (status = 200, description = "The session asked for, kept", body = ListenOut),
        (status = 422, description = "`id` is not a session id", body = ErrorOut),
        (status = 503, description = "Every session is in use, or the server is stopping", body = ErrorOut),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    body: bytes::Bytes,
) -> Result<(StatusCode, Json<ListenOut>), ApiError> {
    // The body is optional: a bare POST opens a new session.
    let asked: ListenIn = if body.is_empty() {
        ListenIn::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let (id, status) = match asked.id {
        Some(id) if is_session_id(&id) => {
            let status = if state.listen.get(&id).is_some() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            (id, status)
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "id",
                "must be a session id this server gave (lsn_ and 32 letters or digits)",
            ))
        }
        None => (new_session_id(), StatusCode::CREATED),
    };
    // Opened by its listener, which polls next: requests that arrive in
    // between wait for that poll instead of being turned away.
    let session = state.listen.open(&id).map_err(|error| match error {
        OpenError::Full => ApiError::Unavailable("every listen session of this server is in use"),
        OpenError::Stopping => ApiError::Unavailable("the server is stopping"),
    })?;
    session.touch();
    let url = relay_url(&state, &id);
    Ok((status, Json(ListenOut { id, url })))
}

/// Waits for requests that arrived at a session's relay URL and hands them
/// over; each must be answered with `…/reply`.
#[utoipa::path(
    get,
    operation_id = "v1.listen.poll",
    path = "/listen/{session}/request",
    tag = "listen",
    params(SessionPath, PollParams),
    responses(
        (status = 200, description = "Requests (none if the wait ran out)", body = PollOut),
        (status = 404, description = "No such session", body = ErrorOut),
    )
)]
pub(crate) async fn poll(
    State(state): State<AppState>,
    Path(SessionPath { session }): Path<SessionPath>,
    Query(params): Query<PollParams>,
) -> Result<Json<PollOut>, ApiError> {
    let wait = params.wait.unwrap_or(25);
    if wait > MAX_POLL_WAIT {
        return Err(ApiError::invalid_query("wait", "must be 0 to 30 seconds"));
    }
    let limit = params.limit.unwrap_or(16);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_query("limit", "must be 1 to 100"));
    }
    let session = state
        .listen
        .get(&session)
        .ok_or(ApiError::NotFound("listen session"))?;
    let taken = session.poll(limit, Duration::from_secs(wait)).await;
    let engine = base64::engine::general_purpose::STANDARD;
    let data = taken
        .into_iter()
        .map(|(id, request)| RelayedOut {
            id: id.to_string(),
            method: request.method,
            query: request.query,
            headers: request.headers,
            body: engine.encode(&request.body),
        })
        .collect();
    Ok(Json(PollOut { data }))
}

/// Answers a relayed request with what the local server answered.
#[utoipa::path(
    post,
    operation_id = "v1.listen.reply",
    path = "/listen/{session}/request/{request}/reply",
    tag = "listen",
    params(ReplyPath),
    request_body = ReplyIn,
    responses(
        (status = 204, description = "Passed on to the sender"),
        (status = 404, description = "No such session, or the request no longer waits \
            (answered, or its sender was answered 504)", body = ErrorOut),
        (status = 422, description = "A status, header or body that cannot be sent", body = ErrorOut),
    )
)]
pub(crate) async fn reply(
    State(state): State<AppState>,
    Path(ReplyPath { session, request }): Path<ReplyPath>,
    Json(body): Json<ReplyIn>,
) -> Result<StatusCode, ApiError> {
    if !(200..=599).contains(&body.status) {
        return Err(ApiError::invalid("status", "must be 200 to 599"));
    }
    for (index, (name, value)) in body.headers.iter().enumerate() {
        if HeaderName::from_bytes(name.as_bytes()).is_err() || HeaderValue::from_str(value).is_err()
        {
            return Err(ApiError::invalid(
                &format!("headers.{index}"),
                "not a valid header name and value",
            ));
        }
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&body.body)
        .map_err(|_| ApiError::invalid("body", "must be base64"))?;
    let session = state
        .listen
        .get(&session)
        .ok_or(ApiError::NotFound("listen session"))?;
    let id = request
        .parse::<u64>()
        .map_err(|_| ApiError::NotFound("relayed request"))?;
    let reply = Reply {
        status: body.status,
        headers: body.headers,
        body: bytes,
    };
    if session.answer(id, reply) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("relayed request"))
    }
}

/// Closes a session: its relay URL answers `404` from now on.
#[utoipa::path(
    delete,
    operation_id = "v1.listen.delete",
    path = "/listen/{session}",
    tag = "listen",
    params(SessionPath),
    responses(
        (status = 204, description = "Closed"),
        (status = 404, description = "No such session", body = ErrorOut),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(SessionPath { session }): Path<SessionPath>,
) -> Result<StatusCode, ApiError> {
    if state.listen.close(&session) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("listen session"))
    }
}

/// A session's relay URL: what arrives is answered by its listener.
#[utoipa::path(
    post,
    operation_id = "v1.listen.relay",
    path = "/listen/{session}",
    tag = "listen",
    security(()),
    params(SessionPath),
    request_body(content = Value, content_type = "*/*", description = "Passed on as it came"),
    responses(
        (status = 200, description = "Whatever the local server answered, passed back"),
        (status = 404, description = "No such session", body = ErrorOut),
        (status = 413, description = "The body is over the server's limit", body = ErrorOut),
        (status = 503, description = "No `herald listen` polls the session, or too many \
            requests wait for it", body = ErrorOut),
        (status = 504, description = "The listener did not answer within 10 s", body = ErrorOut),
    )
)]
pub(crate) async fn relay(
    State(state): State<AppState>,
    Path(SessionPath { session }): Path<SessionPath>,
    request: Request,
) -> Response {
    let Some(listening) = state.listen.get(&session) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "listen session not found",
        );
    };
    let (parts, body) = request.into_parts();
    let limit = state.config.max_payload_bytes;
    // Any read failure is answered as too large, as the gateway does: the
    // other causes (the sender hung up) leave nobody to read the answer.
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("body exceeds the limit of {limit} bytes"),
        );
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| passes_on(name.as_str()) && name.as_str() != KEPT_BACK)
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let relayed = Relayed {
        method: parts.method.to_string(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body,
    };
    match listening.relay(relayed, RELAY_WAIT).await {
        Ok(reply) => answer(reply),
        Err(RelayError::NoListener) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_listener",
            "no herald listen is connected to this session",
        ),
        Err(RelayError::Full) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "listener_busy",
            "too many requests wait for this session's listener",
        ),
        Err(RelayError::TimedOut) => refuse(
            StatusCode::GATEWAY_TIMEOUT,
            "listener_timeout",
            "the listener did not answer in time",
        ),
    }
}

/// The local server's answer as the relay's. It is served from this
/// server's origin, the console's too, so nothing in it may act there: only
/// harmless headers pass, and a browser must neither run it as a page nor
/// guess its type.
fn answer(reply: Reply) -> Response {
    // Checked to be 200 to 599 when the listener posted it.
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in reply.headers {
        let lower = name.to_ascii_lowercase();
        if !answer_passes(&lower) {
            continue;
        }
        // Checked when the listener posted them.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(lower.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn refuse(status: StatusCode, code: &'static str, detail: &str) -> Response {
    let mut response = (
        status,
        axum::Json(ErrorOut {
            code,
            detail: Value::from(detail),
        }),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

fn relay_url(state: &AppState, id: &str) -> String {
    format!(
        "{}/listen/{id}",
        state.config.public_url.trim_end_matches('/')
    )
}

/// Session ids are unguessable: the relay URL is public, and knowing it is
/// what lets anyone post to a developer's machine.
fn new_session_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let body: String = (0..32)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("lsn_{body}")
}

fn is_session_id(id: &str) -> bool {
    id.strip_prefix("lsn_").is_some_and(|body| {
        body.len() == 32 && body.bytes().all(|byte| byte.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_session_ids_are_accepted_back_and_others_are_not() {
        let id = new_session_id();
        assert!(is_session_id(&id), "{id}");
        assert_ne!(id, new_session_id());
        assert!(!is_session_id("lsn_short"));
        assert!(!is_session_id(&id.replace("lsn_", "src_")));
        assert!(!is_session_id(&format!("{id}/")));
    }
}
