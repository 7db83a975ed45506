//! Percentiles and rates over recorded samples.

use std::time::Duration;

/// Latency percentiles of a sample set.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Latency {
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
}

impl Latency {
    /// Percentiles of `samples` (nanoseconds); all zero when empty.
    pub(crate) fn of(mut samples: Vec<u64>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |quantile: f64| {
            let index = ((samples.len() as f64 - 1.0) * quantile).round() as usize;
            Duration::from_nanos(samples[index.min(samples.len() - 1)])
        };
        Latency {
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Events per second.
pub(crate) fn rate(count: usize, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        return 0.0;
    }
    count as f64 / elapsed.as_secs_f64()
}

/// `1.23 ms` style formatting for the table.
pub(crate) fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_samples() {
        let latency = Latency::of((1..=100).collect());
        assert_eq!(latency.p50, Duration::from_nanos(51));
        assert_eq!(latency.p99, Duration::from_nanos(99));
        assert_eq!(latency.max, Duration::from_nanos(100));
        assert_eq!(rate(10, Duration::from_secs(2)), 5.0);
    }
}
