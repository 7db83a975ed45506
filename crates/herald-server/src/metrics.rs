//! `GET /metrics`: the engine's and the edge's figures in the Prometheus
//! text format (OpenMetrics flavour), plus gauges read from the store at
//! scrape time (backlog per endpoint) so they are never stale.

use std::sync::Mutex;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::state::AppState;

/// Endpoints whose backlog is reported, deepest first: bounds the label
/// cardinality whatever the number of endpoints.
const BACKLOG_ENDPOINTS: usize = 100;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    app_id: String,
    endpoint_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InboundLabels {
    source: String,
    outcome: &'static str,
    reason: &'static str,
}

/// Every metric the server exposes.
pub(crate) struct Metrics {
    registry: Registry,
    accepted: Family<SourceLabel, Counter>,
    queue_depth: Family<EndpointLabels, Gauge>,
    backlog_age: Family<EndpointLabels, Gauge>,
    inbound: Family<InboundLabels, Counter>,
    /// Serialises the copy of the gateway's counters into `inbound`.
    inbound_sync: Mutex<()>,
}

impl Metrics {
    pub(crate) fn new(engine: &herald_delivery::metrics::EngineMetrics) -> Self {
        let mut registry = Registry::default();
        let accepted = Family::<SourceLabel, Counter>::default();
        let queue_depth = Family::<EndpointLabels, Gauge>::default();
        let backlog_age = Family::<EndpointLabels, Gauge>::default();
        let inbound = Family::<InboundLabels, Counter>::default();
        registry.register(
            "herald_messages_accepted",
            "Messages accepted, by where they came from (api or inbound)",
            accepted.clone(),
        );
        registry.register(
            "herald_queue_depth",
            "Deliveries waiting for an attempt, per endpoint (deepest endpoints only)",
            queue_depth.clone(),
        );
        registry.register_with_unit(
            "herald_backlog_age",
            "Age of the oldest message waiting for delivery, per endpoint",
            Unit::Seconds,
            backlog_age.clone(),
        );
        registry.register(
            "herald_inbound_requests",
            "Requests to inbound sources, by source, outcome and rejection reason",
            inbound.clone(),
        );
        engine.register(&mut registry);
        Self {
            registry,
            accepted,
            queue_depth,
            backlog_age,
            inbound,
            inbound_sync: Mutex::new(()),
        }
    }

    /// Counts an accepted message (`api` or `inbound`).
    pub(crate) fn accepted(&self, source: &'static str) {
        self.accepted.get_or_create(&SourceLabel { source }).inc();
    }
}

/// Answers the current figures, in the Prometheus text format.
///
/// Behind a token like the API: its labels name apps, endpoints and
/// sources (whose ids are their public URLs). Prometheus sends one with
/// `authorization: {credentials: …}` in its scrape config.
#[utoipa::path(
    get,
    operation_id = "metrics.scrape",
    path = "/metrics",
    tag = "operations",
    responses(
        (
            status = 200,
            description = "Counters, histograms and backlog gauges (Prometheus text format)",
            content_type = "text/plain",
            body = String
        ),
    )
)]
pub(crate) async fn scrape(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    let now = state.clock.now();
    match state.store.queue_depths(BACKLOG_ENDPOINTS, now).await {
        Ok(depths) => {
            metrics.queue_depth.clear();
            metrics.backlog_age.clear();
            for depth in depths {
                let labels = EndpointLabels {
                    app_id: depth.app_id.to_string(),
                    endpoint_id: depth.endpoint_id.to_string(),
                };
                let pending = i64::try_from(depth.pending).unwrap_or(i64::MAX);
                metrics.queue_depth.get_or_create(&labels).set(pending);
                let age = (now.0 - depth.oldest_created_at.0).max(0) / 1000;
                metrics.backlog_age.get_or_create(&labels).set(age);
            }
        }
        Err(error) => tracing::warn!(%error, "cannot read queue depths for /metrics"),
    }
    {
        let _sync = metrics
            .inbound_sync
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for count in state.gateway.counters.snapshot() {
            let counter = metrics.inbound.get_or_create(&InboundLabels {
                source: count.source,
                outcome: count.outcome,
                reason: count.reason,
            });
            counter.inc_by(count.count.saturating_sub(counter.get()));
        }
    }
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &metrics.registry) {
        tracing::error!(%error, "cannot encode metrics");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
