//! When a failed delivery is tried again.
//!
//! The first attempt is immediate; each failure `n` (1-based) waits the n-th
//! delay of the schedule, spread by a jitter so that a burst of failures does
//! not come back as a burst of retries. When the delays run out the delivery
//! has failed for good.

use std::time::Duration;

use rand::Rng;

use crate::ValidationError;

/// A list of retry delays with a relative jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: f64,
}

impl Default for RetrySchedule {
    /// Svix's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the
    /// immediate first attempt, ±20 %.
    fn default() -> Self {
        let minute = 60;
        let hour = 60 * minute;
        Self::new(
            [
                5,
                5 * minute,
                30 * minute,
                2 * hour,
                5 * hour,
                10 * hour,
                10 * hour,
            ]
            .into_iter()
            .map(Duration::from_secs)
            .collect(),
            0.2,
        )
    }
}

impl RetrySchedule {
    /// A schedule of `delays`, each varied by up to ±`jitter` (0.0 to 1.0).
    pub fn new(delays: Vec<Duration>, jitter: f64) -> Self {
        Self {
            delays,
            jitter: jitter.clamp(0.0, 1.0),
        }
    }

    /// Parses a comma-separated list such as `"5s, 5m, 30m, 2h"`.
    pub fn parse(text: &str, jitter: f64) -> Result<Self, ValidationError> {
        let delays = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(parse_duration)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| error.at("retrySchedule"))?;
        Ok(Self::new(delays, jitter))
    }

    /// How many attempts a delivery gets in total.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// The delay before the next attempt after `failed_attempts` failures, or
    /// `None` when the schedule is exhausted.
    pub fn delay_after(&self, failed_attempts: u32, rng: &mut impl Rng) -> Option<Duration> {
        let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
        let base = *self.delays.get(index)?;
        if self.jitter == 0.0 || base.is_zero() {
            return Some(base);
        }
        let factor = rng.gen_range((1.0 - self.jitter)..=(1.0 + self.jitter));
        Some(base.mul_f64(factor))
    }
}

/// Parses `250ms`, `5s`, `5m`, `2h`, `1d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, ValidationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| ValidationError::new("duration", format!("'{text}' is not a duration")))?;
    let millis = match unit.trim() {
        "ms" => Some(value),
        "" | "s" => value.checked_mul(1000),
        "m" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        "d" => value.checked_mul(86_400_000),
        other => {
            return Err(ValidationError::new(
                "duration",
                format!("unknown unit '{other}' in '{text}' (use ms, s, m, h or d)"),
            ))
        }
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| ValidationError::new("duration", format!("'{text}' is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::mock::StepRng;

    #[test]
    fn default_schedule_has_eight_attempts() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.max_attempts(), 8);
        let mut rng = rand::thread_rng();
        assert_eq!(schedule.delay_after(8, &mut rng), None);
        assert_eq!(schedule.delay_after(0, &mut rng), None);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let schedule = RetrySchedule::default();
        let mut rng = rand::thread_rng();
        for _ in 0..1000 {
            let delay = schedule.delay_after(2, &mut rng).unwrap();
            assert!(delay >= Duration::from_secs(240) && delay <= Duration::from_secs(360));
        }
    }

    #[test]
    fn schedules_parse_from_text() {
        let schedule = RetrySchedule::parse("10ms, 1s,2m", 0.0).unwrap();
        let mut rng = StepRng::new(0, 1);
        assert_eq!(
            schedule.delay_after(1, &mut rng),
            Some(Duration::from_millis(10))
        );
        assert_eq!(
            schedule.delay_after(3, &mut rng),
            Some(Duration::from_secs(120))
        );
        assert_eq!(schedule.max_attempts(), 4);
        assert_eq!(
            RetrySchedule::parse("5 parsecs", 0.0).unwrap_err().field,
            "retrySchedule"
        );
    }
}
