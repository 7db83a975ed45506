//! A relay that stores nothing: the ceiling the end-to-end scenario is
//! compared with besides the baseline.
//!
//! It answers the few API calls the scenarios make the way Herald does
//! (bearer token, JSON body parsed and echoed in a `202`), then signs each
//! message (Standard Webhooks `v1`) and posts it to every endpoint of its
//! app with the same HTTP client Herald uses and the same per-endpoint
//! concurrency (16) — but it writes nothing anywhere, keeps no attempt log
//! and retries nothing. Whatever share of the baseline it reaches is what
//! any design that also has to store each message can hope for on the
//! machine: the cost of the two HTTP exchanges a delivered message takes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_core::{HmacKey, SigningKey};
use herald_signing::{sign, SignedContent};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The first argument that makes `herald-bench` the relay (the scenario
/// starts its own binary with it, as a process apart like Herald).
pub(crate) const SUBCOMMAND: &str = "relay";

/// Concurrent requests per endpoint, Herald's default.
const PER_ENDPOINT: usize = 16;

/// What the relay knows: endpoints by app, nothing per message.
struct Relay {
    token: String,
    key: SigningKey,
    next_id: AtomicU64,
    endpoints: Mutex<HashMap<String, Vec<Arc<Target>>>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// One endpoint: where it is and how many requests it may have open.
struct Target {
    url: hyper::Uri,
    slots: Semaphore,
}

/// Serves until killed, on an ephemeral loopback port; prints the line the
/// scenarios wait for, as `herald serve` does.
pub(crate) async fn serve() -> anyhow::Result<()> {
    let token = std::env::var("HERALD_ADMIN_TOKEN").context("HERALD_ADMIN_TOKEN")?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = router(&token, SigningKey::Hmac(HmacKey::generate()));
    println!("herald listening on http://{address}");
    axum::serve(listener, app).await?;
    Ok(())
}

/// The relay's routes, answering callers that present `token` and signing
/// with `key`.
fn router(token: &str, key: SigningKey) -> Router {
    let relay = Arc::new(Relay {
        token: format!("Bearer {token}"),
        key,
        next_id: AtomicU64::new(1),
        endpoints: Mutex::new(HashMap::new()),
        client: Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(PER_ENDPOINT)
            .build_http(),
    });
    Router::new()
        .route("/api/v1/app", post(create_app))
        .route("/api/v1/app/{app}/endpoint", post(create_endpoint))
        .route("/api/v1/app/{app}/msg", post(create_message))
        .route_layer(middleware::from_fn_with_state(relay.clone(), authorise))
        .route("/api/v1/health", get(|| async { StatusCode::NO_CONTENT }))
        .with_state(relay)
}

/// Every API call but the health check needs the token, as in Herald.
async fn authorise(State(relay): State<Arc<Relay>>, request: Request, next: Next) -> Response {
    let presented = request.headers().get(header::AUTHORIZATION);
    if presented.is_some_and(|value| value.as_bytes() == relay.token.as_bytes()) {
        next.run(request).await
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

impl Relay {
    fn endpoints(&self) -> MutexGuard<'_, HashMap<String, Vec<Arc<Target>>>> {
        self.endpoints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn id(&self, prefix: &str) -> String {
        format!("{prefix}_{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

async fn create_app(State(relay): State<Arc<Relay>>) -> Response {
    let id = relay.id("app");
    relay.endpoints().insert(id.clone(), Vec::new());
    (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
}

async fn create_endpoint(
    State(relay): State<Arc<Relay>>,
    Path(app): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let Some(url) = body["url"].as_str().and_then(|url| url.parse().ok()) else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    let id = relay.id("ep");
    let mut endpoints = relay.endpoints();
    let Some(targets) = endpoints.get_mut(&app) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    targets.push(Arc::new(Target {
        url,
        slots: Semaphore::new(PER_ENDPOINT),
    }));
    (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
}

async fn create_message(
    State(relay): State<Arc<Relay>>,
    Path(app): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let (Some(event_type), Some(payload)) = (body["eventType"].as_str(), body.get("payload"))
    else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    let Some(targets) = relay.endpoints().get(&app).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let id = relay.id("msg");
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64);
    let message = json!({
        "id": id,
        "eventType": event_type,
        "payload": payload,
        "timestamp": timestamp,
    });
    let delivered = Bytes::from(payload.to_string());
    for target in targets {
        tokio::spawn(deliver(
            relay.clone(),
            target,
            id.clone(),
            timestamp,
            delivered.clone(),
        ));
    }
    (StatusCode::ACCEPTED, Json(message)).into_response()
}

/// One attempt, its answer read and dropped.
async fn deliver(relay: Arc<Relay>, target: Arc<Target>, id: String, timestamp: i64, body: Bytes) {
    let Ok(_slot) = target.slots.acquire().await else {
        return;
    };
    let signature = sign(
        &relay.key,
        SignedContent {
            id: &id,
            timestamp,
            body: &body,
        },
    );
    let request = hyper::Request::post(target.url.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(Full::new(body));
    let Ok(request) = request else {
        return;
    };
    if let Ok(response) = relay.client.request(request).await {
        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::future::IntoFuture;

    use axum::http::HeaderMap;
    use std::time::Duration;

    use herald_signing::verify;
    use tokio::sync::mpsc;

    use super::*;

    /// The ceiling is only a fair comparison if the relay does what Herald
    /// does per message: a delivered body is the payload, signed so that
    /// a Standard Webhooks receiver accepts it.
    #[tokio::test]
    async fn relays_each_message_signed_to_its_endpoint() -> anyhow::Result<()> {
        let key = SigningKey::Hmac(HmacKey::generate());
        let relay = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", relay.local_addr()?);
        tokio::spawn(axum::serve(relay, router("t", key.clone())).into_future());

        let (arrived, mut arrivals) = mpsc::unbounded_channel();
        let receiver = TcpListener::bind("127.0.0.1:0").await?;
        let receiver_url = format!("http://{}/hook", receiver.local_addr()?);
        let hook = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| async move {
                let _ = arrived.send((headers, body));
                StatusCode::NO_CONTENT
            }),
        );
        tokio::spawn(axum::serve(receiver, hook).into_future());

        let http = reqwest::Client::new();
        let call = |path: &str, body: Value| {
            http.post(format!("{base}{path}"))
                .bearer_auth("t")
                .json(&body)
                .send()
        };
        let app: Value = call("/api/v1/app", json!({ "name": "a" }))
            .await?
            .json()
            .await?;
        let app = app["id"].as_str().context("app id")?;
        call(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({ "url": receiver_url }),
        )
        .await?
        .error_for_status()?;
        let unauthorised = http
            .post(format!("{base}/api/v1/app/{app}/msg"))
            .json(&json!({ "eventType": "a.b", "payload": {} }))
            .send()
            .await?;
        assert_eq!(unauthorised.status(), StatusCode::UNAUTHORIZED);
        let accepted = call(
            &format!("/api/v1/app/{app}/msg"),
            json!({ "eventType": "a.b", "payload": { "seq": 7 } }),
        )
        .await?;
        assert_eq!(accepted.status(), StatusCode::ACCEPTED);
        let message: Value = accepted.json().await?;

        let (headers, body) = tokio::time::timeout(Duration::from_secs(10), arrivals.recv())
            .await?
            .context("the receiver is gone")?;
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        assert_eq!(header("webhook-id"), message["id"].as_str());
        assert_eq!(serde_json::from_slice::<Value>(&body)?, json!({ "seq": 7 }));
        let timestamp: i64 = header("webhook-timestamp").context("timestamp")?.parse()?;
        let content = SignedContent {
            id: header("webhook-id").context("id")?,
            timestamp,
            body: &body,
        };
        let signature = header("webhook-signature").context("signature")?;
        verify(&key, content, signature, timestamp, 300)?;
        // Nothing else was sent: the unauthorised call delivered nothing.
        assert!(arrivals.try_recv().is_err());
        Ok(())
    }
}
