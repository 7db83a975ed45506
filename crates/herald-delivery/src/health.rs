//! Endpoint health: failure streaks, the circuit breaker and automatic
//! disabling.
//!
//! A streak's start lives in the store (five days of failure must outlast
//! restarts) but is written only when an endpoint changes between healthy
//! and failing, and re-read at most once a minute while it keeps failing,
//! so a dead endpoint costs no extra write per attempt. The breaker is per
//! node and in memory: after `breaker_threshold` consecutive failures the
//! endpoint is left alone for a cool-down that doubles with every failed
//! probe, instead of being hammered by every due retry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use herald_core::{EndpointId, Timestamp};
use herald_store::{Store, StoreError};

use crate::attempt::Verdict;

/// How long a streak start read from the store is trusted before it is
/// read again (another node or an operator may have ended it).
const STREAK_TTL: Duration = Duration::from_secs(60);

/// Settings of endpoint health.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// An endpoint failing without a single success for this long is disabled.
    pub disable_after: Duration,
    /// Consecutive failures that open an endpoint's circuit.
    pub breaker_threshold: u32,
    /// The first cool-down of an open circuit; each failed probe doubles it.
    pub breaker_cooldown: Duration,
    /// The longest cool-down.
    pub breaker_cooldown_max: Duration,
    /// A failure this long after the previous one starts a new streak: an
    /// endpoint that failed once and then had no traffic is not failing all
    /// that time. Longer than the longest retry delay (10 h by default), so
    /// one message's retries keep a streak going.
    pub streak_gap: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            disable_after: Duration::from_secs(5 * 24 * 3600),
            breaker_threshold: 20,
            streak_gap: Duration::from_secs(24 * 3600),
            breaker_cooldown: Duration::from_secs(30),
            breaker_cooldown_max: Duration::from_secs(10 * 60),
        }
    }
}

/// Why an endpoint must be disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Disable {
    /// When its failure streak began.
    pub(crate) fail_since: Timestamp,
}

#[derive(Debug, Default)]
struct EndpointState {
    consecutive_failures: u32,
    /// The streak start as last written or read, and when that was.
    streak: Option<(Option<Timestamp>, Timestamp)>,
    open_until: Option<Timestamp>,
    cooldown: Option<Duration>,
}

/// Health of every endpoint this node has tried.
pub(crate) struct Health {
    config: HealthConfig,
    states: Mutex<HashMap<EndpointId, EndpointState>>,
}

impl Health {
    pub(crate) fn new(config: HealthConfig) -> Self {
        Self {
            config,
            states: Mutex::new(HashMap::new()),
        }
    }

    /// Until when `endpoint`'s circuit is open, if it is at `now`.
    pub(crate) fn open_until(&self, endpoint: &EndpointId, now: Timestamp) -> Option<Timestamp> {
        self.lock()
            .get(endpoint)
            .and_then(|state| state.open_until)
            .filter(|until| *until > now)
    }

    /// Drops what is known of `endpoint` (re-enabled, edited or deleted), so
    /// an operator's fresh start is not judged by the old streak.
    pub(crate) fn forget(&self, endpoint: &EndpointId) {
        self.lock().remove(endpoint);
    }

    /// Takes in how `endpoint` answered at `now` for the breaker, at once:
    /// called as soon as the answer is in (before it is recorded and before
    /// the endpoint's slot is freed), so the next claim for the endpoint
    /// already sees an open circuit instead of sending one more request.
    ///
    /// A failure that comes back while the circuit is open was sent before
    /// it opened (it was in flight): it is not a failed probe, so it neither
    /// extends the cool-down nor doubles it. Otherwise an endpoint with many
    /// attempts in flight would reach the longest cool-down at once.
    pub(crate) fn note(&self, endpoint: &EndpointId, verdict: Verdict, now: Timestamp) {
        let mut states = self.lock();
        let state = states.entry(endpoint.clone()).or_default();
        if verdict == Verdict::Succeeded {
            state.consecutive_failures = 0;
            state.open_until = None;
            state.cooldown = None;
            return;
        }
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        let is_open = state.open_until.is_some_and(|until| until > now);
        if !is_open && state.consecutive_failures >= self.config.breaker_threshold.max(1) {
            let cooldown = state.cooldown.unwrap_or(self.config.breaker_cooldown);
            state.open_until = Some(now.plus(cooldown));
            state.cooldown = Some((cooldown * 2).min(self.config.breaker_cooldown_max));
        }
    }

    /// Keeps `endpoint`'s failure streak up to date with a recorded answer
    /// (the breaker took it in already, see [`Health::note`]); answers
    /// whether the endpoint must now be disabled.
    pub(crate) async fn observe(
        &self,
        store: &dyn Store,
        endpoint: &EndpointId,
        verdict: Verdict,
        now: Timestamp,
    ) -> Result<Option<Disable>, StoreError> {
        if verdict == Verdict::Succeeded {
            let known_healthy = matches!(
                self.lock().get(endpoint).and_then(|state| state.streak),
                Some((None, _))
            );
            if !known_healthy {
                store
                    .set_endpoint_failing(endpoint, None, self.config.streak_gap)
                    .await?;
                self.remember_streak(endpoint, None, now);
            }
            return Ok(None);
        }
        let known_start = match self.lock().get(endpoint).and_then(|state| state.streak) {
            Some((Some(since), read_at)) if now.0 - read_at.0 < STREAK_TTL.as_millis() as i64 => {
                Some(since)
            }
            _ => None,
        };
        let since = match known_start {
            Some(since) => since,
            None => {
                let stored = store
                    .set_endpoint_failing(endpoint, Some(now), self.config.streak_gap)
                    .await?;
                let since = stored.unwrap_or(now);
                self.remember_streak(endpoint, Some(since), now);
                since
            }
        };
        let failing_for = Duration::from_millis(u64::try_from(now.0 - since.0).unwrap_or(0));
        if verdict == Verdict::Gone || failing_for >= self.config.disable_after {
            return Ok(Some(Disable { fail_since: since }));
        }
        Ok(None)
    }

    fn remember_streak(&self, endpoint: &EndpointId, since: Option<Timestamp>, now: Timestamp) {
        self.lock().entry(endpoint.clone()).or_default().streak = Some((since, now));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointId, EndpointState>> {
        // Health is advisory: state left by a panicking holder is still usable.
        self.states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new(HealthConfig {
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(30),
            breaker_cooldown_max: Duration::from_secs(600),
            ..HealthConfig::default()
        })
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp(1_700_000_000_000 + seconds * 1000)
    }

    #[test]
    fn the_circuit_opens_after_the_threshold_and_a_success_closes_it() {
        let health = health();
        let endpoint = EndpointId::generate();
        health.note(&endpoint, Verdict::Failed, at(0));
        health.note(&endpoint, Verdict::Failed, at(0));
        assert_eq!(health.open_until(&endpoint, at(0)), None);
        health.note(&endpoint, Verdict::Gone, at(1));
        assert_eq!(health.open_until(&endpoint, at(1)), Some(at(31)));
        assert_eq!(health.open_until(&endpoint, at(31)), None, "it closes");
        health.note(&endpoint, Verdict::Succeeded, at(32));
        health.note(&endpoint, Verdict::Failed, at(33));
        assert_eq!(
            health.open_until(&endpoint, at(33)),
            None,
            "a success starts the count again"
        );
    }

    #[test]
    fn failures_of_attempts_in_flight_when_it_opened_do_not_lengthen_the_cooldown() {
        let health = health();
        let endpoint = EndpointId::generate();
        for _ in 0..3 {
            health.note(&endpoint, Verdict::Failed, at(0));
        }
        assert_eq!(health.open_until(&endpoint, at(0)), Some(at(30)));
        // Fifteen more attempts were in flight when it opened.
        for _ in 0..15 {
            health.note(&endpoint, Verdict::Failed, at(1));
        }
        assert_eq!(
            health.open_until(&endpoint, at(1)),
            Some(at(30)),
            "answers to requests sent before the circuit opened are not probes"
        );
        // The first probe after the cool-down fails: the cool-down doubles
        // once, however many probes fail with it.
        for _ in 0..4 {
            health.note(&endpoint, Verdict::Failed, at(31));
        }
        assert_eq!(health.open_until(&endpoint, at(31)), Some(at(91)));
        health.note(&endpoint, Verdict::Failed, at(92));
        assert_eq!(health.open_until(&endpoint, at(92)), Some(at(212)));
    }
}
