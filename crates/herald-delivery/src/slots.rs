//! Claims per endpoint: how many are out, the gate that holds an endpoint
//! to its concurrency, and how quickly its attempts have been going.
//!
//! Claiming goes through the store's group commit, so a claim comes back a
//! commit or two after it was asked for. An endpoint that answers in half a
//! millisecond runs through two rounds of its concurrency long before that,
//! and then idles waiting for claims; one that answers in seconds would only
//! hold leases others could use if it had more claimed. So how far ahead an
//! endpoint is claimed follows its pace: deep for fast endpoints, two rounds
//! for slow ones (and for endpoints not seen lately).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_core::EndpointId;
use tokio::sync::Semaphore;

/// Rounds of an endpoint's concurrency claimed ahead at the least, so its
/// next attempts are ready when one finishes.
const MIN_ROUNDS: usize = 2;

/// Rounds claimed ahead at the most: bounds the share of the claim budget
/// one endpoint can hold.
const MAX_ROUNDS: usize = 8;

/// How long the attempts claimed ahead of an endpoint should keep it busy
/// by default: a few group commits under load, the time a claim takes to
/// come back.
pub(crate) const CLAIM_AHEAD: Duration = Duration::from_millis(20);

/// How long an endpoint's pace is remembered once it has no claim out: an
/// endpoint whose claims ran out because claiming fell behind keeps its
/// depth for the next, and one back after a quiet spell starts anew.
const PACE_MEMORY: Duration = Duration::from_secs(60);

/// Most paces of endpoints without claims remembered at once.
const PACES_KEPT: usize = 4096;

/// In-flight bookkeeping per endpoint with claims out, and the pace of
/// endpoints that had some lately.
pub(crate) struct EndpointSlots {
    slots: HashMap<EndpointId, Slot>,
    /// Paces of endpoints without claims out, with when they were put here.
    resting: HashMap<EndpointId, (Duration, Instant)>,
    /// How long claims ahead of an endpoint should keep it busy.
    ahead: Duration,
}

struct Slot {
    /// Claims out: waiting for the gate, sending, or waiting to be recorded.
    claimed: usize,
    /// One permit per attempt the endpoint may have in flight.
    gate: Arc<Semaphore>,
    /// Moving average of an attempt's time, from its gate permit to its
    /// answer; `None` until one finished.
    pace: Option<Duration>,
}

impl EndpointSlots {
    /// Slots that claim `ahead` of each endpoint's pace.
    pub(crate) fn new(ahead: Duration) -> Self {
        Self {
            slots: HashMap::new(),
            resting: HashMap::new(),
            ahead,
        }
    }

    /// Counts a claim against `endpoint`; answers its gate.
    pub(crate) fn reserve(&mut self, endpoint: &EndpointId, concurrency: usize) -> Arc<Semaphore> {
        let resting = &mut self.resting;
        let slot = self.slots.entry(endpoint.clone()).or_insert_with(|| Slot {
            claimed: 0,
            gate: Arc::new(Semaphore::new(concurrency)),
            pace: resting
                .remove(endpoint)
                .filter(|(_, since)| since.elapsed() < PACE_MEMORY)
                .map(|(pace, _)| pace),
        });
        slot.claimed += 1;
        slot.gate.clone()
    }

    /// Counts a claim of `endpoint` out again.
    pub(crate) fn release(&mut self, endpoint: &EndpointId) {
        if let Some(slot) = self.slots.get_mut(endpoint) {
            slot.claimed = slot.claimed.saturating_sub(1);
            if slot.claimed == 0 {
                let pace = slot.pace;
                self.slots.remove(endpoint);
                if let Some(pace) = pace {
                    self.rest(endpoint, pace);
                }
            }
        }
    }

    fn rest(&mut self, endpoint: &EndpointId, pace: Duration) {
        if self.resting.len() >= PACES_KEPT {
            self.resting
                .retain(|_, (_, since)| since.elapsed() < PACE_MEMORY);
            if self.resting.len() >= PACES_KEPT {
                self.resting.clear();
            }
        }
        self.resting
            .insert(endpoint.clone(), (pace, Instant::now()));
    }

    /// Notes that an attempt of `endpoint` took `took`.
    pub(crate) fn note_pace(&mut self, endpoint: &EndpointId, took: Duration) {
        if let Some(slot) = self.slots.get_mut(endpoint) {
            slot.pace = Some(match slot.pace {
                // An eighth of the newest: a few slow answers deepen nothing.
                Some(pace) => (pace * 7 + took) / 8,
                None => took,
            });
        }
    }

    /// Endpoints with as many claims out as their pace allows (`deep`), or
    /// as two rounds allow.
    pub(crate) fn busy(&self, concurrency: usize, deep: bool) -> Vec<EndpointId> {
        let ahead = self.ahead;
        self.slots
            .iter()
            .filter(|(_, slot)| {
                let rounds = if deep {
                    rounds_ahead(slot.pace, ahead)
                } else {
                    MIN_ROUNDS
                };
                slot.claimed >= concurrency * rounds
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Rounds of its concurrency an endpoint whose attempts take `pace` may
/// have claimed at once, to stay busy for `ahead`.
fn rounds_ahead(pace: Option<Duration>, ahead: Duration) -> usize {
    let Some(pace) = pace else {
        return MIN_ROUNDS;
    };
    let rounds = ahead.as_nanos() / pace.as_nanos().max(1);
    usize::try_from(rounds)
        .unwrap_or(MAX_ROUNDS)
        .clamp(MIN_ROUNDS, MAX_ROUNDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str) -> EndpointId {
        EndpointId::from_stored(name.to_owned())
    }

    #[test]
    fn fast_endpoints_are_claimed_deeper_than_slow_ones() {
        assert_eq!(rounds_ahead(None, CLAIM_AHEAD), MIN_ROUNDS);
        assert_eq!(
            rounds_ahead(Some(Duration::from_micros(500)), CLAIM_AHEAD),
            MAX_ROUNDS
        );
        assert_eq!(rounds_ahead(Some(Duration::from_millis(5)), CLAIM_AHEAD), 4);
        assert_eq!(
            rounds_ahead(Some(Duration::from_millis(50)), CLAIM_AHEAD),
            MIN_ROUNDS
        );
        assert_eq!(
            rounds_ahead(Some(Duration::from_secs(2)), CLAIM_AHEAD),
            MIN_ROUNDS
        );
        assert_eq!(rounds_ahead(Some(Duration::ZERO), CLAIM_AHEAD), MAX_ROUNDS);
    }

    #[test]
    fn an_endpoint_is_busy_once_its_pace_allows_no_more_claims() {
        let mut slots = EndpointSlots::new(CLAIM_AHEAD);
        let fast = endpoint("ep_fast");
        let slow = endpoint("ep_slow");
        for _ in 0..2 {
            slots.reserve(&fast, 1);
            slots.reserve(&slow, 1);
        }
        // Nothing finished yet: both have their two rounds out.
        assert_eq!(slots.busy(1, true).len(), 2);
        slots.note_pace(&fast, Duration::from_micros(300));
        slots.note_pace(&slow, Duration::from_secs(1));
        assert_eq!(slots.busy(1, true), vec![slow.clone()]);
        for _ in 2..MAX_ROUNDS {
            slots.reserve(&fast, 1);
        }
        let mut busy = slots.busy(1, true);
        busy.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(busy, vec![fast.clone(), slow]);
        // With half the budget out, two rounds are all anyone gets.
        let mut shallow = slots.busy(1, false);
        shallow.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(shallow.len(), 2);
    }

    #[test]
    fn a_few_slow_answers_move_the_pace_by_an_eighth_each() {
        let mut slots = EndpointSlots::new(CLAIM_AHEAD);
        let ep = endpoint("ep_1");
        slots.reserve(&ep, 4);
        slots.note_pace(&ep, Duration::from_millis(1));
        slots.note_pace(&ep, Duration::from_millis(9));
        assert_eq!(
            slots.slots.get(&ep).and_then(|slot| slot.pace),
            Some(Duration::from_millis(2))
        );
    }

    #[test]
    fn an_endpoint_keeps_its_pace_between_bursts_of_claims() {
        let mut slots = EndpointSlots::new(CLAIM_AHEAD);
        let ep = endpoint("ep_1");
        slots.reserve(&ep, 1);
        slots.note_pace(&ep, Duration::from_micros(100));
        slots.release(&ep);
        assert!(slots.slots.is_empty());
        for _ in 0..MIN_ROUNDS {
            slots.reserve(&ep, 1);
        }
        assert!(
            slots.busy(1, true).is_empty(),
            "its pace allows more than two rounds"
        );
        for _ in MIN_ROUNDS..MAX_ROUNDS {
            slots.reserve(&ep, 1);
        }
        assert_eq!(slots.busy(1, true), vec![ep]);
    }

    #[test]
    fn resting_paces_are_bounded() {
        let mut slots = EndpointSlots::new(CLAIM_AHEAD);
        for n in 0..PACES_KEPT + 10 {
            let ep = endpoint(&format!("ep_{n}"));
            slots.reserve(&ep, 1);
            slots.note_pace(&ep, Duration::from_millis(1));
            slots.release(&ep);
        }
        assert!(slots.resting.len() <= PACES_KEPT);
        assert!(slots.slots.is_empty());
    }
}
