//! What every handler can reach.

use std::sync::Arc;
use std::time::Duration;

use herald_core::{AppId, Clock};
use herald_delivery::ssrf::Guard;
use herald_delivery::EngineHandle;
use herald_store::Store;

use crate::auth::Tokens;
use crate::console::ConsoleKeys;
use crate::gateway::{Gateway, InboundCount};
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;

/// Settings of the HTTP edge.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted request body (and message payload), in bytes.
    pub max_payload_bytes: usize,
    /// How long a rotated-out secret keeps signing, so receivers can roll over.
    pub rotation_grace: Duration,
    /// A token given in configuration (`HERALD_ADMIN_TOKEN`), accepted
    /// besides those stored in the database.
    pub admin_token: Option<String>,
    /// The base URL providers reach Herald at (scheme, host, port), for
    /// sources' `ingestUrl` (`{public_url}/in/{source}`) and the URL Twilio
    /// signs.
    pub public_url: String,
    /// Messages per second an application may create through the API when
    /// it sets no `rateLimit` of its own; `None` is unlimited.
    pub app_rate_limit: Option<u32>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1024 * 1024,
            rotation_grace: Duration::from_secs(24 * 3600),
            admin_token: None,
            public_url: "http://127.0.0.1:8071".to_owned(),
            app_rate_limit: None,
        }
    }
}

/// Shared handler state: one pointer, since axum clones it for every
/// extractor of every request (field by field that was a dozen atomic
/// counter updates per request, contended between cores).
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

impl std::ops::Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Parts {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) engine: EngineHandle,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) tokens: Tokens,
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) console: Arc<ConsoleKeys>,
    pub(crate) metrics: Arc<Metrics>,
    /// Refuses endpoint URLs that name a blocked address outright; the
    /// engine's resolver checks hostnames at connect time.
    pub(crate) ssrf: Arc<Guard>,
    /// Message-creation buckets per application.
    pub(crate) app_limiter: Arc<RateLimiter<AppId>>,
    /// Listen sessions served by this node.
    pub(crate) listen: Arc<crate::listen::sessions::Sessions>,
}

impl AppState {
    /// State for a router over `store`, waking `engine` on new work and
    /// refusing endpoint URLs that `ssrf` refuses.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        engine: EngineHandle,
        config: ServerConfig,
        ssrf: Guard,
    ) -> Self {
        let tokens = Tokens::new(store.clone(), config.admin_token.as_deref());
        let metrics = Arc::new(Metrics::new(engine.metrics()));
        Self(Arc::new(Parts {
            store,
            clock,
            engine,
            config: Arc::new(config),
            tokens,
            gateway: Arc::new(Gateway::default()),
            console: Arc::new(ConsoleKeys::default()),
            metrics,
            ssrf: Arc::new(ssrf),
            app_limiter: Arc::new(RateLimiter::default()),
            listen: Arc::default(),
        }))
    }

    /// The inbound gateway's counters by source, outcome and reason (for
    /// `/metrics`).
    pub fn inbound_counts(&self) -> Vec<InboundCount> {
        self.gateway.counters.snapshot()
    }
}
