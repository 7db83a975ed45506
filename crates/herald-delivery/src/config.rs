//! Settings of the delivery engine.

use std::time::Duration;

use herald_core::RetrySchedule;
use ipnet::IpNet;

use crate::HealthConfig;

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Attempts in flight at once, over all endpoints.
    pub workers: usize,
    /// Attempts in flight at once to a single endpoint, so one slow endpoint
    /// cannot occupy the whole pool.
    pub per_endpoint_concurrency: usize,
    /// When failed deliveries are retried.
    pub retry_schedule: RetrySchedule,
    /// How long an endpoint has to answer (connect + response).
    pub request_timeout: Duration,
    /// Address ranges the SSRF guard lets through although they are private.
    pub ssrf_allowlist: Vec<IpNet>,
    /// Response bodies are logged up to this many bytes.
    pub response_body_cap: usize,
    /// Certificates (DER) trusted besides Mozilla's roots, for endpoints
    /// behind a private authority; see [`crate::certificates_in`].
    pub extra_roots: Vec<Vec<u8>>,
    /// Whether this node is the only one using the store (SQLite): then every
    /// lease found at start is an orphan of a crashed run and is released at
    /// once instead of waiting for it to expire.
    pub exclusive_store: bool,
    /// How often the dispatcher looks for overdue work when nothing woke it.
    pub sweep_interval: Duration,
    /// The longest `Retry-After` (on a `429` or `503`) obeyed.
    pub retry_after_cap: Duration,
    /// Failure streaks, the circuit breaker and automatic disabling.
    pub health: HealthConfig,
    /// Attempts and finished messages older than this are purged; `None`
    /// keeps everything.
    pub retention: Option<Duration>,
    /// How often the retention purge runs.
    pub purge_interval: Duration,
    /// How long the attempts claimed ahead of an endpoint should keep it
    /// busy at its pace (two to eight rounds of its concurrency).
    pub claim_ahead: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            workers: 128,
            per_endpoint_concurrency: 16,
            retry_schedule: RetrySchedule::default(),
            request_timeout: Duration::from_secs(15),
            ssrf_allowlist: Vec::new(),
            response_body_cap: 4096,
            extra_roots: Vec::new(),
            exclusive_store: true,
            sweep_interval: Duration::from_secs(1),
            retry_after_cap: Duration::from_secs(3600),
            health: HealthConfig::default(),
            retention: Some(Duration::from_secs(90 * 24 * 3600)),
            purge_interval: Duration::from_secs(600),
            claim_ahead: crate::slots::CLAIM_AHEAD,
        }
    }
}

impl DeliveryConfig {
    /// A lease outlives the longest a claim can take, so a slow but live
    /// attempt is never taken over: its wait for its endpoint's gate
    /// ([`DeliveryConfig::gate_wait`], after which it hands the delivery
    /// back), at most three rounds waiting for a worker (the engine keeps
    /// no more than four claims per worker, one of them sending), its own
    /// request, and a wide margin for the commit and for the wait for an
    /// endpoint's rate slot (at most about 10 s).
    pub fn lease_duration(&self) -> Duration {
        self.gate_wait() + self.request_timeout * 4 + Duration::from_secs(30)
    }

    /// The longest a claim waits for its endpoint's concurrency: two rounds
    /// of attempts that time out. A fast endpoint has claims queued many
    /// rounds deep; should it turn slow, the claims at the back of its
    /// queue give their deliveries back (due at once, no retry used up)
    /// instead of outwaiting their lease.
    pub fn gate_wait(&self) -> Duration {
        self.request_timeout * 2
    }
}
