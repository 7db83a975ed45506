//! Herald's HTTP edge: the Svix-compatible REST API.
//!
//! Invariants: only this crate knows JSON wire shapes (`…In`, `…Out`,
//! `…Patch`); every failure leaves through one mapping ([`ApiError`]); a
//! write answers only after the store committed it.

mod api;
pub mod auth;
mod console;
mod digest;
mod error;
mod extract;
mod gateway;
mod idempotency;
mod listen;
mod metrics;
mod rate_limit;
mod state;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use herald_core::Clock;
use herald_delivery::{DeliveryConfig, Engine};
use herald_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use gateway::source_config::{source_verifier, ConfigError};
pub use gateway::InboundCount;
pub use state::{AppState, ServerConfig};

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    // Leave room for the JSON envelope around a payload of the maximum size;
    // the payload itself is checked against the exact limit.
    let body_limit = state.config.max_payload_bytes.saturating_add(64 * 1024);
    // Route layers run last-added first: the token is checked before an
    // idempotency key is looked at.
    let (rest, _) = api::rest(|routes| {
        routes
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                idempotency::idempotent,
            ))
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::require_token,
            ))
    })
    .split_for_parts();
    Router::new()
        .merge(console::routes(&state))
        .merge(rest)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Why the server stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The delivery engine could not start.
    #[error(transparent)]
    Delivery(#[from] herald_delivery::DeliveryError),
    /// The listener failed.
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the API on `listener` and the delivery engine until `shutdown` is
/// cancelled: then stops accepting requests, lets in-flight ones finish, and
/// gives attempts in flight `drain` to complete.
pub async fn serve(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    server: ServerConfig,
    delivery: DeliveryConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
    drain: Duration,
) -> Result<(), ServeError> {
    let delivery_allowlist = delivery.ssrf_allowlist.clone();
    let engine = Engine::new(store.clone(), clock.clone(), delivery)?;
    let state = AppState::new(
        store,
        clock,
        engine.handle(),
        server,
        herald_delivery::ssrf::Guard::new(delivery_allowlist),
    );
    let engine_task = tokio::spawn(engine.run(shutdown.clone(), drain));
    // Long polls of listen sessions would hold the graceful shutdown up.
    let listen = state.listen.clone();
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        listen.end_all();
    });
    let stop = shutdown.clone();
    // The peer address reaches handlers (the gateway's IP allowlist).
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    shutdown.cancel();
    if let Err(error) = engine_task.await {
        tracing::error!(%error, "delivery engine task failed");
    }
    served.map_err(ServeError::Io)
}
