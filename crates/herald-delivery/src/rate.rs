//! Per-endpoint delivery rate limits (`rateLimit`, deliveries per second).
//!
//! Each endpoint has a next free slot; an attempt takes the slot and moves
//! it one interval on, then sleeps until its slot comes. Attempts are thus
//! spaced evenly with no burst, which is what a receiver that asked for
//! "at most N per second" can take. Waiting happens before a worker is
//! taken, so a throttled endpoint holds no worker others could use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use herald_core::EndpointId;
use tokio::time::Instant;

/// Slots kept before past ones are pruned.
const PRUNE_AT: usize = 1024;

#[derive(Default)]
pub(crate) struct RateLimits {
    next_slot: Mutex<HashMap<EndpointId, Instant>>,
}

impl RateLimits {
    /// How long an attempt to `endpoint` taking a slot now would wait: the
    /// slots already handed out ahead of it.
    pub(crate) fn backlog(&self, endpoint: &EndpointId) -> Duration {
        let slots = self
            .next_slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.get(endpoint).map_or(Duration::ZERO, |next| {
            next.saturating_duration_since(Instant::now())
        })
    }

    /// Waits until `endpoint` may be sent to again at `per_second`.
    pub(crate) async fn wait(&self, endpoint: &EndpointId, per_second: u32) {
        let interval = Duration::from_secs(1) / per_second.max(1);
        let slot = {
            let mut slots = self
                .next_slot
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            if slots.len() >= PRUNE_AT {
                slots.retain(|_, next| *next > now);
            }
            let slot = slots
                .get(endpoint)
                .copied()
                .filter(|next| *next > now)
                .unwrap_or(now);
            slots.insert(endpoint.clone(), slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn attempts_are_spaced_one_interval_apart_per_endpoint() {
        let limits = RateLimits::default();
        let (fast, slow) = (EndpointId::generate(), EndpointId::generate());
        let start = Instant::now();
        for _ in 0..5 {
            limits.wait(&slow, 4).await;
        }
        // Five slots at 4/s: the first at once, the fifth a second later.
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(
            limits.backlog(&slow),
            Duration::from_millis(250),
            "the next slot is one interval on"
        );
        assert_eq!(limits.backlog(&fast), Duration::ZERO);
        let other = Instant::now();
        limits.wait(&fast, 4).await;
        assert_eq!(
            other.elapsed(),
            Duration::ZERO,
            "endpoints do not share slots"
        );
    }
}
