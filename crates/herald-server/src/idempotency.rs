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
/// died mid-request) is given up, and a retry runs it. A request whose
/// client went away still finishes and answers its key (it runs on a task
/// of its own), so only a crash leaves a claim unanswered.
const ABANDONED_AFTER: Duration = Duration::from_secs(10 * 60);
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
    if request.method() != Method::POST || !keeps_answers(request.uri().path()) {
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
    // Tells this request's claim from a later one that takes the key over
    // (after it was abandoned), so that neither settles the other's.
    let claim = format!("{:032x}", rand::random::<u128>());
    match state
        .store
        .claim_idempotency_key(&scope, &fingerprint, &claim, terms)
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
    let request = Request::from_parts(parts, Body::from(body));
    // On a task of its own: a client that gives up (and drops this future)
    // must not cancel the work half way, nor leave its key unanswered.
    let finished = tokio::spawn(async move {
        let response = next.run(request).await;
        let (parts, body) = response.into_parts();
        let answer = to_bytes(body, usize::MAX).await.unwrap_or_default();
        // The work is done (or not) whatever this bookkeeping comes to: a
        // failure here is logged, and the key frees itself when abandoned.
        let kept = if parts.status.is_server_error() || answer.len() > ANSWER_MAX_BYTES {
            state.store.release_idempotency_key(&scope, &claim).await
        } else {
            state
                .store
                .complete_idempotency_key(&scope, &claim, parts.status.as_u16(), answer.to_vec())
                .await
        };
        if let Err(error) = kept {
            tracing::warn!(%error, "cannot keep the answer of an idempotent request");
        }
        Response::from_parts(parts, Body::from(answer))
    });
    finished
        .await
        .map_err(|error| ApiError::Internal(format!("an idempotent request failed: {error}")))
}

/// Whether a POST's answer is kept for its key. Not for message creation,
/// which keeps its key with the message, and not for answers that carry a
/// credential (portal access tokens, rotated secrets): a copy of the
/// database must not grant access.
fn keeps_answers(path: &str) -> bool {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    !matches!(
        segments.as_slice(),
        ["app", _, "msg"] | ["auth", ..] | [.., "secret", "rotate"]
    )
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
    use super::keeps_answers;

    #[test]
    fn answers_are_kept_except_messages_and_credentials() {
        assert!(keeps_answers("/app"));
        assert!(keeps_answers("/app/acme/endpoint"));
        assert!(keeps_answers("/app/acme/msg/msg_1/endpoint/ep_1/resend"));
        assert!(!keeps_answers("/app/acme/msg"));
        assert!(!keeps_answers("/api/v1/app/app_1/msg"));
        assert!(!keeps_answers("/auth/app-portal-access/acme"));
        assert!(!keeps_answers("/app/acme/endpoint/ep_1/secret/rotate"));
        assert!(!keeps_answers(
            "/operational-webhook/endpoint/ep_1/secret/rotate"
        ));
    }
}
