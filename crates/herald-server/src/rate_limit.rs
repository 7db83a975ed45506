//! Request rate limits: one token bucket per key (an inbound source, an
//! application's message API).
//!
//! On one node the buckets live in memory: forgetting them on restart only
//! lets one extra burst through. Nodes sharing a store take their tokens
//! from buckets in it ([`take`]), so N nodes together keep to the limit; a
//! node that cannot reach them falls back on its own. A bucket holds
//! `rate` tokens (one second's worth), refilled continuously.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use herald_store::RateToken;

use crate::state::AppState;

/// Takes a token for `key` (`shared_key` in the store) at `rate` per
/// second; when the bucket is empty, answers how long until the next one.
pub(crate) async fn take<K: Hash + Eq + Clone>(
    state: &AppState,
    local: &RateLimiter<K>,
    key: &K,
    shared_key: &str,
    rate: u32,
) -> Result<(), Duration> {
    if state.store.is_shared() {
        let now_micros = state.clock.now().0.saturating_mul(1000);
        match state
            .store
            .take_rate_token(shared_key, rate, now_micros)
            .await
        {
            Ok(Some(RateToken::Taken)) => return Ok(()),
            Ok(Some(RateToken::Empty { wait_micros })) => {
                return Err(Duration::from_micros(
                    u64::try_from(wait_micros).unwrap_or(1),
                ))
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "cannot take a shared rate token; this node's bucket decides");
            }
        }
    }
    local.check(key, rate, Instant::now())
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// The buckets of every key that has a limit.
#[derive(Debug)]
pub(crate) struct RateLimiter<K> {
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K> Default for RateLimiter<K> {
    fn default() -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// Takes one token from `key`'s bucket (`rate` per second) at `now`;
    /// when it is empty, answers how long until the next token.
    pub(crate) fn check(&self, key: &K, rate: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(rate.max(1));
        // A poisoned lock only means another request panicked mid-update;
        // a bucket is valid in every state.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: rate,
            refilled_at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled_at);
        bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * rate).min(rate);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// Forgets a deleted key's bucket.
    pub(crate) fn forget(&self, key: &K) {
        self.buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use herald_core::SourceId;

    use super::*;

    #[test]
    fn a_burst_of_rate_passes_then_one_per_interval() {
        let limiter = RateLimiter::default();
        let source = SourceId::generate();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(&source, 3, start).is_ok());
        }
        let wait = limiter.check(&source, 3, start).expect_err("bucket empty");
        assert!(
            wait <= Duration::from_millis(334) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(limiter
            .check(&source, 3, start + Duration::from_millis(340))
            .is_ok());
        assert!(limiter
            .check(&source, 3, start + Duration::from_millis(340))
            .is_err());
    }

    #[test]
    fn sources_have_their_own_buckets() {
        let limiter = RateLimiter::default();
        let (first, second) = (SourceId::generate(), SourceId::generate());
        let now = Instant::now();
        assert!(limiter.check(&first, 1, now).is_ok());
        assert!(limiter.check(&first, 1, now).is_err());
        assert!(limiter.check(&second, 1, now).is_ok());
    }
}
