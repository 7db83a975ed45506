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
    /// Takes `endpoint`'s next slot at `per_second` if it comes within
    /// `budget`, answering how long to wait for it; otherwise takes
    /// nothing and answers (`Err`) how long until the next slot is free.
    pub(crate) fn take(
        &self,
        endpoint: &EndpointId,
        per_second: u32,
        budget: Duration,
    ) -> Result<Duration, Duration> {
        let interval = Duration::from_secs(1) / per_second.max(1);
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
        let wait = slot - now;
        if wait > budget {
            return Err(wait);
        }
        slots.insert(endpoint.clone(), slot + interval);
        Ok(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn attempts_are_spaced_one_interval_apart_per_endpoint() {
        let limits = RateLimits::default();
        let (fast, slow) = (EndpointId::generate(), EndpointId::generate());
        let budget = Duration::from_secs(10);
        let waits: Vec<_> = (0..5)
            .map(|_| limits.take(&slow, 4, budget).expect("within budget"))
            .collect();
        // Five slots at 4/s: the first at once, the fifth a second later.
        let expected: Vec<_> = (0..5).map(|n| Duration::from_millis(250 * n)).collect();
        assert_eq!(waits, expected);
        assert_eq!(
            limits.take(&fast, 4, budget),
            Ok(Duration::ZERO),
            "endpoints do not share slots"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            limits.take(&slow, 4, budget),
            Ok(Duration::from_millis(250)),
            "the next slot is one interval after the last one taken"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_past_the_budget_is_not_taken() {
        let limits = RateLimits::default();
        let endpoint = EndpointId::generate();
        let budget = Duration::from_millis(500);
        for _ in 0..3 {
            limits.take(&endpoint, 4, budget).expect("within budget");
        }
        // The fourth slot is 750 ms off: over budget, and left free.
        assert_eq!(
            limits.take(&endpoint, 4, budget),
            Err(Duration::from_millis(750))
        );
        assert_eq!(
            limits.take(&endpoint, 4, Duration::from_secs(1)),
            Ok(Duration::from_millis(750))
        );
    }
}
