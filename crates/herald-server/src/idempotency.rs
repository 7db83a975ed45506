//! `idempotency-key` on the API's POSTs: a retried request gets the first
//! one's answer instead of doing the work twice. The Svix SDKs send a key
//! with every POST and retry after a timeout, when the first attempt may
//! well have done its work. Message creation keeps its key with the
//! message, in the message's own commit, and is left to that.

use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use herald_core::Timestamp;
use herald_store::{IdempotencyClaim, IdempotencyTerms};

use crate::digest::sha256_hex;
use crate::error::ApiError;
use crate::state::AppState;

/// Longest key accepted.
const KEY_MAX: usize = 256;
/// How long an answer is given again (Svix and Stripe keep keys a day).
const ANSWER_KEPT: Duration = Duration::from_secs(24 * 3600);
/// After this a request that claimed a key without answering (its server
/// died) is given up, and a retry runs it.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);
/// Largest answer kept; a larger one frees its key instead.
const ANSWER_MAX_BYTES: usize = 1024 * 1024;

/// Runs a POST with an `idempotency-key` at most once per key and path.
pub(crate) async fn idempotent(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(value) = request.headers().get("idempotency-key") else {
        return Ok(next.run(request).await);
    };
    if request.method() != Method::POST || creates_a_message(request.uri().path()) {
        return Ok(next.run(request).await);
    }
    let key = value
        .to_str()
        .ok()
        .filter(|key| !key.is_empty() && key.len() <= KEY_MAX)
        .ok_or_else(|| {
            ApiError::invalid_header(
                "idempotency-key",
                format!("must be 1 to {KEY_MAX} visible ASCII characters"),
            )
        })?
        .to_owned();
    let (parts, body) = request.into_parts();
    let limit = state.config.max_payload_bytes.saturating_add(64 * 1024);
    let body = to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })?;
    let target = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |target| target.as_str());
    let scope = format!("{} {key}", parts.uri.path());
    let fingerprint = sha256_hex(&[target.as_bytes(), b"\n", &body].concat());
    let now = state.clock.now();
    let terms = IdempotencyTerms {
        now,
        expired_before: earlier(now, ANSWER_KEPT),
        abandoned_before: earlier(now, ABANDONED_AFTER),
    };
    match state
        .store
        .claim_idempotency_key(&scope, &fingerprint, terms)
        .await?
    {
        IdempotencyClaim::Fresh => {}
        IdempotencyClaim::Replay { status, body } => return Ok(replayed(status, body)),
        IdempotencyClaim::InProgress => {
            return Err(ApiError::Conflict(
                "a request with this idempotency-key is still running; retry later".into(),
            ))
        }
        IdempotencyClaim::Mismatch => {
            return Err(ApiError::invalid_header(
                "idempotency-key",
                "was used for a different request",
            ))
        }
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (parts, body) = response.into_parts();
    let answer = to_bytes(body, usize::MAX).await.unwrap_or_default();
    // The work is done (or not) whatever the bookkeeping below comes to: a
    // failure there is logged, and the key frees itself when abandoned.
    let kept = if parts.status.is_server_error() || answer.len() > ANSWER_MAX_BYTES {
        state.store.release_idempotency_key(&scope).await
    } else {
        state
            .store
            .complete_idempotency_key(&scope, parts.status.as_u16(), answer.to_vec())
            .await
    };
    if let Err(error) = kept {
        tracing::warn!(%error, "cannot keep the answer of an idempotent request");
    }
    Ok(Response::from_parts(parts, Body::from(answer)))
}

/// `POST /app/{app}/msg` (under `/api/v1`).
fn creates_a_message(path: &str) -> bool {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(segments.as_slice(), ["app", _, "msg"])
}

fn earlier(now: Timestamp, by: Duration) -> Timestamp {
    Timestamp(
        now.0
            .saturating_sub(i64::try_from(by.as_millis()).unwrap_or(i64::MAX)),
    )
}

/// The first request's answer again, marked as such (as Stripe does).
fn replayed(status: u16, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::creates_a_message;

    #[test]
    fn only_message_creation_keeps_its_own_key() {
        assert!(creates_a_message("/app/acme/msg"));
        assert!(creates_a_message("/api/v1/app/app_1/msg"));
        assert!(!creates_a_message("/app/acme/endpoint"));
        assert!(!creates_a_message(
            "/app/acme/msg/msg_1/endpoint/ep_1/resend"
        ));
        assert!(!creates_a_message("/app"));
    }
}
