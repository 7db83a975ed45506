//! How many requests each source answered, by outcome and reason: kept in
//! memory for `/metrics` (a Prometheus counter resets on restart anyway).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// `(source id, outcome, reason)` → count. The source is `unknown` for
/// paths that name no source, so random paths cannot grow the map.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    counts: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
}

impl Counters {
    /// Counts one request.
    pub(crate) fn count(&self, source: &str, outcome: &'static str, reason: &'static str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry((source.to_owned(), outcome, reason))
            .or_insert(0) += 1;
    }

    /// Every counter, sorted by source, outcome and reason.
    pub(crate) fn snapshot(&self) -> Vec<InboundCount> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|((source, outcome, reason), count)| InboundCount {
                source: source.clone(),
                outcome,
                reason,
                count: *count,
            })
            .collect()
    }
}

/// One counter of the inbound gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundCount {
    /// The source id, or `unknown`.
    pub source: String,
    /// `accepted`, `duplicate` or `rejected`.
    pub outcome: &'static str,
    /// Why (`bad_signature`, `rate_limited`, …); empty for accepted ones.
    pub reason: &'static str,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_per_source_outcome_and_reason() {
        let counters = Counters::default();
        counters.count("src_a", "rejected", "bad_signature");
        counters.count("src_a", "rejected", "bad_signature");
        counters.count("src_a", "accepted", "");
        counters.count("src_b", "rejected", "rate_limited");
        let counts: Vec<_> = counters
            .snapshot()
            .into_iter()
            .map(|count| (count.source, count.outcome, count.reason, count.count))
            .collect();
        assert_eq!(
            counts,
            [
                ("src_a".to_owned(), "accepted", "", 1),
                ("src_a".to_owned(), "rejected", "bad_signature", 2),
                ("src_b".to_owned(), "rejected", "rate_limited", 1),
            ]
        );
    }
}
