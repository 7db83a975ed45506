//! The inbound gateway: `POST /in/{source}`, public (no token; the source's
//! verifier is the authentication).
//!
//! The checks run cheapest first, each answering on its own: body size
//! (413) → IP allowlist (403) → rate limit (429 with `Retry-After`) →
//! signature over the raw bytes (401) → Slack's URL check (answered with its
//! challenge) → event type and provider event id → dedupe → one store
//! transaction with the raw request, the dedupe key, the message and its
//! fan-out → 200. Nothing is acknowledged before that transaction commits,
//! and forwarding (the delivery engine) is asynchronous, so the answer comes
//! in the time of one group commit.
//!
//! Every request is counted by outcome and reason ([`counters`]) and kept
//! in the source's capped request log, rejected ones included, so nothing
//! is dropped silently.

mod counters;
mod events;
mod request_headers;
pub(crate) mod source_config;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use herald_core::model::{Message, RESERVED_HEADERS};
use herald_core::{InboundRequestId, MessageId, Timestamp};
use herald_signing::verifiers::InboundRequest;
use herald_store::{Accepted, DedupeKey, ReceivedRequest, RequestOutcome, Source, REQUEST_LOG_CAP};
use serde_json::{json, Value};

pub use counters::InboundCount;

use crate::api::openapi::paths::SourcePath;
use crate::digest::sha256_hex;
use crate::error::ErrorOut;
use crate::rate_limit::RateLimiter;
use crate::state::AppState;
use counters::Counters;
use request_headers::{header_pairs, RequestHeaders};
use source_config::SourceSettings;

/// The gateway's in-memory state: rate buckets and counters.
#[derive(Debug, Default)]
pub(crate) struct Gateway {
    pub(crate) limiter: RateLimiter<herald_core::SourceId>,
    pub(crate) counters: Counters,
}

/// The public URL of a source's receiver.
pub(crate) fn ingest_url(state: &AppState, source: &Source) -> String {
    format!(
        "{}/in/{}",
        state.config.public_url.trim_end_matches('/'),
        source.id
    )
}

/// Why a request was refused: its status, a stable reason code (metrics,
/// the log's filter) and the operator-facing detail.
struct Rejection {
    status: StatusCode,
    code: &'static str,
    detail: String,
    retry_after_secs: Option<u64>,
}

impl Rejection {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after_secs: None,
        }
    }

    /// What the sender sees: the code and a generic sentence. The detail
    /// (which header failed, how) is for the operator's request log only.
    fn into_response(self) -> Response {
        let public = match self.code {
            "body_too_large" => "body too large",
            "ip_not_allowed" => "address not allowed",
            "rate_limited" => "too many requests",
            _ => "request could not be verified",
        };
        let mut response = (
            self.status,
            axum::Json(ErrorOut {
                code: self.code,
                detail: Value::from(public),
            }),
        )
            .into_response();
        if let Some(seconds) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// What the receiver knows about the request so far, for its log entry.
struct Arrival {
    id: InboundRequestId,
    received_at: Timestamp,
    remote: Option<SocketAddr>,
    headers: HeaderMap,
}

impl Arrival {
    fn record(
        &self,
        source: &Source,
        settings: &SourceSettings,
        body: &[u8],
        outcome: RequestOutcome,
        status: StatusCode,
        reason: Option<String>,
    ) -> ReceivedRequest {
        ReceivedRequest {
            id: self.id.clone(),
            source_id: source.id.clone(),
            received_at: self.received_at,
            remote_addr: self
                .remote
                .map_or_else(|| "unknown".to_owned(), |address| address.to_string()),
            headers: header_pairs(&self.headers, &source_config::credential_headers(settings)),
            body: body.to_vec(),
            outcome,
            status_code: status.as_u16(),
            reason,
            msg_id: None,
        }
    }
}

/// Receives one webhook for a source (by id or uid).
#[utoipa::path(
    post,
    operation_id = "v1.ingest.receive",
    path = "/in/{source}",
    tag = "ingest",
    security(()),
    params(SourcePath),
    request_body(
        content = Value,
        content_type = "*/*",
        description = "The provider's webhook as it sends it, verified over its raw bytes by \
            the source's type (its signature, token or credentials)"
    ),
    responses(
        (
            status = 200,
            description = "Stored and forwarded: `{msgId, requestId}`, with `duplicate: true` \
                for an event seen before; for Slack's URL check, `{challenge}`",
            body = Object
        ),
        (status = 401, description = "The request did not verify", body = ErrorOut),
        (status = 403, description = "The sender is not in `allowedIps`", body = ErrorOut),
        (status = 404, description = "No such source", body = ErrorOut),
        (status = 413, description = "The body is over the source's limit", body = ErrorOut),
        (status = 429, description = "Over the source's rate; see `Retry-After`", body = ErrorOut),
    )
)]
pub(crate) async fn receive(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let arrival = Arrival {
        id: InboundRequestId::generate(),
        received_at: state.clock.now(),
        remote: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| *address),
        headers: parts.headers,
    };
    let source = match state.store.source_by_ref(&reference).await {
        Ok(Some(source)) => source,
        Ok(None) => {
            state
                .gateway
                .counters
                .count("unknown", "rejected", "unknown_source");
            return (
                StatusCode::NOT_FOUND,
                axum::Json(ErrorOut {
                    code: "not_found",
                    detail: Value::from("source not found"),
                }),
            )
                .into_response();
        }
        Err(error) => return crate::error::ApiError::from(error).into_response(),
    };
    let settings = match source_config::parse(&source.source_type, &source.config) {
        Ok(settings) => settings,
        Err(error) => {
            // Configs are checked before they are stored; this is a bug or
            // a hand-edited database, and the provider should retry later.
            tracing::error!(source = %source.id, field = %error.field, "source config unusable");
            return crate::error::ApiError::Internal("source config unusable".into())
                .into_response();
        }
    };

    let limit = settings
        .max_body_bytes
        .unwrap_or(state.config.max_payload_bytes)
        .min(state.config.max_payload_bytes);
    let declared = arrival
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let too_large = || {
        Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("body exceeds the limit of {limit} bytes"),
        )
    };
    let bytes = if declared.is_some_and(|length| length > limit as u64) {
        Err(too_large())
    } else {
        // Any read failure is answered as too large: the other causes (the
        // client hung up) leave nobody to read the answer.
        axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| too_large())
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(rejection) => {
            return reject(&state, &source, &settings, &arrival, &[], rejection).await
        }
    };

    let guarded = match guard(&settings, &arrival) {
        Ok(()) => rate_guard(&state, &source, &settings).await,
        Err(rejection) => Err(rejection),
    };
    if let Err(rejection) = guarded {
        return reject(&state, &source, &settings, &arrival, &bytes, rejection).await;
    }

    let signed_url = match &settings.signed_url {
        Some(url) => url.clone(),
        None => format!(
            "{}{}",
            state.config.public_url.trim_end_matches('/'),
            parts.uri.path_and_query().map_or("", |path| path.as_str())
        ),
    };
    // Scoped: the verifier's view borrows the headers as `&dyn Headers`,
    // which must not live across an await.
    let verified = {
        let headers = RequestHeaders(&arrival.headers);
        let inbound = InboundRequest {
            body: &bytes,
            headers: &headers,
            public_url: &signed_url,
        };
        settings
            .verifier
            .verify(&inbound, arrival.received_at.unix_seconds())
    };
    if let Err(error) = verified {
        let rejection = Rejection::new(StatusCode::UNAUTHORIZED, error.code(), error.to_string());
        return reject(&state, &source, &settings, &arrival, &bytes, rejection).await;
    }

    let json_body: Option<Value> = serde_json::from_slice(&bytes).ok();
    if settings.provider == source_config::Provider::Slack {
        if let Some(challenge) = slack_challenge(json_body.as_ref()) {
            let record = arrival.record(
                &source,
                &settings,
                &bytes,
                RequestOutcome::Accepted,
                StatusCode::OK,
                Some("url_verification".to_owned()),
            );
            if let Err(error) = state.store.log_request(record, REQUEST_LOG_CAP).await {
                tracing::warn!(source = %source.id, %error, "cannot log a Slack URL check");
            }
            state
                .gateway
                .counters
                .count(source.id.as_str(), "accepted", "url_verification");
            return (
                StatusCode::OK,
                axum::Json(json!({ "challenge": challenge })),
            )
                .into_response();
        }
    }

    accept(&state, &source, &settings, &arrival, &bytes, json_body).await
}

/// The address guard, after the body was read.
fn guard(settings: &SourceSettings, arrival: &Arrival) -> Result<(), Rejection> {
    if !settings.allowed_ips.is_empty() {
        let allowed = arrival.remote.is_some_and(|address| {
            let ip = address.ip().to_canonical();
            settings.allowed_ips.iter().any(|range| range.contains(&ip))
        });
        if !allowed {
            return Err(Rejection::new(
                StatusCode::FORBIDDEN,
                "ip_not_allowed",
                format!(
                    "{} is not in allowedIps",
                    arrival
                        .remote
                        .map_or_else(|| "an unknown address".to_owned(), |a| a.ip().to_string())
                ),
            ));
        }
    }
    Ok(())
}

/// The source's rate guard, after its address guard.
async fn rate_guard(
    state: &AppState,
    source: &Source,
    settings: &SourceSettings,
) -> Result<(), Rejection> {
    if let Some(rate) = settings.rate_limit {
        let shared_key = format!("source:{}", source.id);
        let taken =
            crate::rate_limit::take(state, &state.gateway.limiter, &source.id, &shared_key, rate)
                .await;
        if let Err(wait) = taken {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut rejection = Rejection::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("more than {rate} requests per second"),
            );
            rejection.retry_after_secs = Some(seconds.max(1));
            return Err(rejection);
        }
    }
    Ok(())
}

/// Answers a rejection, after logging and counting it.
async fn reject(
    state: &AppState,
    source: &Source,
    settings: &SourceSettings,
    arrival: &Arrival,
    body: &[u8],
    rejection: Rejection,
) -> Response {
    let record = arrival.record(
        source,
        settings,
        body,
        RequestOutcome::Rejected,
        rejection.status,
        Some(format!("{}: {}", rejection.code, rejection.detail)),
    );
    // The rejection is answered even if it cannot be logged: the sender
    // must hear no either way; the failure goes to the server log.
    if let Err(error) = state.store.log_request(record, REQUEST_LOG_CAP).await {
        tracing::warn!(source = %source.id, %error, "cannot log a rejected request");
    }
    state
        .gateway
        .counters
        .count(source.id.as_str(), "rejected", rejection.code);
    tracing::info!(source = %source.id, reason = rejection.code, "inbound request rejected");
    rejection.into_response()
}

/// Slack's `url_verification` handshake: the challenge to echo back.
fn slack_challenge(body: Option<&Value>) -> Option<&str> {
    let body = body?;
    if body.get("type")?.as_str()? != "url_verification" {
        return None;
    }
    body.get("challenge")?.as_str()
}

/// The payload a verified request is forwarded with. Destinations get JSON
/// objects only (every message payload is one), so a JSON-object body is
/// forwarded byte for byte, and anything else (form posts, XML, text,
/// binary, a JSON array) is wrapped:
/// `{"body": "<the body>", "bodyEncoding": "utf8" | "base64", "contentType": …}`,
/// UTF-8 text as is, other bytes in base64.
fn forwarded_payload(bytes: &[u8], json_body: Option<&Value>, headers: &HeaderMap) -> String {
    if json_body.is_some_and(Value::is_object) {
        if let Ok(text) = std::str::from_utf8(bytes) {
            return text.to_owned();
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let (body, encoding) = match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), "utf8"),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            "base64",
        ),
    };
    json!({ "body": body, "bodyEncoding": encoding, "contentType": content_type }).to_string()
}

/// The original headers named in `config.forwardHeaders`, to be sent with
/// every delivery. Herald's own (signature, content type, …) are never
/// passed through; the delivery engine skips them too.
fn forwarded_headers(settings: &SourceSettings, headers: &HeaderMap) -> BTreeMap<String, String> {
    settings
        .forward_headers
        .iter()
        .filter(|name| !RESERVED_HEADERS.contains(&name.as_str()))
        .filter_map(|name| {
            let value = headers.get(name.as_str())?.to_str().ok()?;
            Some((name.clone(), value.to_owned()))
        })
        .collect()
}

/// Stores a verified request as a message (or a duplicate) and answers 200.
async fn accept(
    state: &AppState,
    source: &Source,
    settings: &SourceSettings,
    arrival: &Arrival,
    bytes: &[u8],
    json_body: Option<Value>,
) -> Response {
    let facts = events::extract(
        settings,
        &RequestHeaders(&arrival.headers),
        json_body.as_ref(),
    );
    let message = Message {
        id: MessageId::generate(),
        app_id: source.app_id.clone(),
        event_type: facts.event_type,
        event_id: facts.event_id.clone(),
        payload: forwarded_payload(bytes, json_body.as_ref(), &arrival.headers),
        channels: Vec::new(),
        tags: Vec::new(),
        headers: forwarded_headers(settings, &arrival.headers),
        created_at: arrival.received_at,
        deliver_at: None,
        content_expunged_at: None,
        payload_expires_at: None,
    };
    // Providers without an event id (Twilio, GitLab, generic senders) retry
    // with the same bytes: the body's digest stands in for the id, so a
    // retried request is still forwarded once.
    let dedupe_id = facts
        .event_id
        .unwrap_or_else(|| format!("sha256:{}", sha256_hex(bytes)));
    let dedupe = Some(DedupeKey {
        event_id: dedupe_id,
        expires_at: arrival.received_at.plus(settings.dedupe_window),
    });
    let record = arrival.record(
        source,
        settings,
        bytes,
        RequestOutcome::Accepted,
        StatusCode::OK,
        None,
    );
    match state
        .store
        .accept_request(record, message, dedupe, REQUEST_LOG_CAP)
        .await
    {
        Ok(Accepted::Forwarded(created)) => {
            state.engine.wake();
            state.metrics.accepted("inbound");
            state
                .gateway
                .counters
                .count(source.id.as_str(), "accepted", "");
            (
                StatusCode::OK,
                axum::Json(json!({ "msgId": created.message.id, "requestId": arrival.id })),
            )
                .into_response()
        }
        Ok(Accepted::Duplicate { msg_id }) => {
            state
                .gateway
                .counters
                .count(source.id.as_str(), "duplicate", "duplicate");
            (
                StatusCode::OK,
                axum::Json(json!({
                    "msgId": msg_id,
                    "requestId": arrival.id,
                    "duplicate": true,
                })),
            )
                .into_response()
        }
        // Not acknowledged: the provider retries, and nothing was stored.
        Err(error) => crate::error::ApiError::from(error).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_are_forwarded_as_sent_and_the_rest_wrapped() {
        let headers = HeaderMap::new();
        let object = br#"{ "id": 1 }"#;
        let parsed: Value = serde_json::from_slice(object).expect("json");
        assert_eq!(
            forwarded_payload(object, Some(&parsed), &headers),
            r#"{ "id": 1 }"#
        );

        let mut form = HeaderMap::new();
        form.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let wrapped: Value =
            serde_json::from_str(&forwarded_payload(b"a=1&b=2", None, &form)).expect("json");
        assert_eq!(
            wrapped,
            json!({"body": "a=1&b=2", "bodyEncoding": "utf8",
                   "contentType": "application/x-www-form-urlencoded"})
        );

        let binary: Value =
            serde_json::from_str(&forwarded_payload(&[0xff, 0x00], None, &headers)).expect("json");
        assert_eq!(binary["bodyEncoding"], "base64");
        assert_eq!(binary["body"], "/wA=");
    }

    #[test]
    fn only_a_url_verification_has_a_challenge() {
        let check = json!({"type": "url_verification", "challenge": "abc"});
        assert_eq!(slack_challenge(Some(&check)), Some("abc"));
        let event = json!({"type": "event_callback", "challenge": "abc"});
        assert_eq!(slack_challenge(Some(&event)), None);
    }
}
