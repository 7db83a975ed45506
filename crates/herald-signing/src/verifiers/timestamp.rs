//! Signed timestamps: their syntax and the replay window.

/// How far a signed timestamp may be from now, either way: five minutes, as
/// Standard Webhooks, Stripe and Slack recommend.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// Unix seconds written as plain ASCII digits. Signs, spaces and fractions
/// are refused: the signed text is the header text, so it must have one
/// spelling.
pub(crate) fn parse_unix_seconds(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Whether `timestamp` lies within the tolerance of `now` (in the past or
/// the future, to allow for clock skew); never overflows.
pub(crate) fn is_fresh(timestamp: i64, now_unix_secs: i64) -> bool {
    timestamp.abs_diff(now_unix_secs) <= TIMESTAMP_TOLERANCE_SECS.unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_digits_are_timestamps() {
        assert_eq!(parse_unix_seconds("1614265330"), Some(1614265330));
        for junk in ["", "+1", "-1", " 1", "1.5", "1e9", "99999999999999999999"] {
            assert_eq!(parse_unix_seconds(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn freshness_allows_five_minutes_either_way() {
        assert!(is_fresh(1000, 1300));
        assert!(is_fresh(1300, 1000));
        assert!(!is_fresh(1000, 1301));
        assert!(!is_fresh(1301, 1000));
        assert!(!is_fresh(i64::MAX, i64::MIN));
    }
}
