//! What the engine counts for `/metrics`; the server owns the registry and
//! registers these beside its own.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// One label naming an outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// One label naming a storage operation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from half a millisecond to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The engine's counters and histograms.
#[derive(Debug)]
pub struct EngineMetrics {
    /// HTTP attempts by `success` / `failure`.
    pub attempts: Family<OutcomeLabel, Counter>,
    /// Delivery state changes written after an attempt: `delivered`,
    /// `retrying`, `failed`, or `deferred` (put off without an attempt: an
    /// open circuit, a rate limit, or a claim that waited too long for its
    /// endpoint).
    pub deliveries: Family<OutcomeLabel, Counter>,
    /// How long endpoints took to answer.
    pub attempt_duration: Histogram,
    /// How long storage calls on the delivery path took.
    pub store_latency: Histograms<OperationLabel>,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            attempts: Family::default(),
            deliveries: Family::default(),
            attempt_duration: latency_histogram(),
            store_latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl EngineMetrics {
    /// Adds every metric to `registry` under the `herald_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "herald_attempts",
            "HTTP delivery attempts by outcome",
            self.attempts.clone(),
        );
        registry.register(
            "herald_deliveries",
            "Delivery state changes after an attempt, by outcome",
            self.deliveries.clone(),
        );
        registry.register_with_unit(
            "herald_attempt_duration",
            "Time endpoints took to answer an attempt",
            Unit::Seconds,
            self.attempt_duration.clone(),
        );
        registry.register_with_unit(
            "herald_store_operation_duration",
            "Time storage calls took, by operation",
            Unit::Seconds,
            self.store_latency.clone(),
        );
    }

    /// Records how long a storage call took.
    pub fn observe_store(&self, operation: &'static str, took: Duration) {
        self.store_latency
            .get_or_create(&OperationLabel { operation })
            .observe(took.as_secs_f64());
    }

    pub(crate) fn count(family: &Family<OutcomeLabel, Counter>, outcome: &'static str) {
        family.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}
