//! Slack: `X-Slack-Signature: v0=<hex>`, the HMAC-SHA256 of
//! `"v0:{X-Slack-Request-Timestamp}:{body}"` keyed by the app's signing
//! secret.

use super::hmac::{decode_signature, SignatureEncoding};
use super::mac::{self, HmacAlgorithm};
use super::timestamp;
use super::{InboundRequest, Secret, VerifyError};

const SIGNATURE_HEADER: &str = "X-Slack-Signature";
const TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";

/// Configuration of a Slack source.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// The app's signing secret (not the deprecated verification token).
    pub secret: Secret,
}

impl SlackConfig {
    pub(crate) fn verify(
        &self,
        request: &InboundRequest<'_>,
        now_unix_secs: i64,
    ) -> Result<(), VerifyError> {
        let value = request.required_header(SIGNATURE_HEADER)?;
        let received = value
            .strip_prefix("v0=")
            .ok_or(VerifyError::malformed(
                SIGNATURE_HEADER,
                "expected the v0= prefix",
            ))
            .and_then(|encoded| {
                decode_signature(encoded, SignatureEncoding::Hex)
                    .map_err(|reason| VerifyError::malformed(SIGNATURE_HEADER, reason))
            })?;
        let timestamp_text = request.required_header(TIMESTAMP_HEADER)?;
        let timestamp = timestamp::parse_unix_seconds(timestamp_text)
            .ok_or_else(|| VerifyError::malformed(TIMESTAMP_HEADER, "not unix seconds"))?;
        let expected = mac::hmac(
            HmacAlgorithm::Sha256,
            self.secret.expose(),
            &[b"v0:", timestamp_text.as_bytes(), b":", request.body],
        );
        if !bool::from(mac::signature_matches(&expected, &received)) {
            return Err(VerifyError::bad_signature(SIGNATURE_HEADER));
        }
        if !timestamp::is_fresh(timestamp, now_unix_secs) {
            return Err(VerifyError::stale(TIMESTAMP_HEADER));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifiers::Verifier;

    // Slack's worked example ("Verifying requests from Slack",
    // api.slack.com/authentication/verifying-requests-from-slack); Python's
    // `hmac.new(SECRET, b"v0:1531420618:" + BODY, sha256).hexdigest()` agrees.
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const NOW: i64 = 1531420618;
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow\
&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner\
&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands\
%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN\
&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn check_with(
        secret: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let request = InboundRequest {
            body,
            headers: &headers,
            public_url: "https://herald.example/in/src_1",
        };
        Verifier::Slack(SlackConfig {
            secret: Secret::new(secret).expect("not empty"),
        })
        .verify(&request, now)
    }

    fn check(signature: &str, timestamp: &str, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let headers = [
            ("X-Slack-Signature", signature),
            ("X-Slack-Request-Timestamp", timestamp),
        ];
        check_with(SECRET, &headers, body, now)
    }

    #[test]
    fn the_documented_example_verifies() {
        assert_eq!(check(SIGNATURE, TIMESTAMP, BODY, NOW + 60), Ok(()));
    }

    #[test]
    fn a_wrong_secret_fails() {
        let headers = [
            ("x-slack-signature", SIGNATURE),
            ("x-slack-request-timestamp", TIMESTAMP),
        ];
        assert_eq!(
            check_with("8f742231b10e8888abcd99yyyzzz85a6", &headers, BODY, NOW),
            Err(VerifyError::bad_signature(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn a_tampered_body_or_timestamp_fails() {
        let body = String::from_utf8_lossy(BODY).replace("text=&", "text=hi&");
        assert_eq!(
            check(SIGNATURE, TIMESTAMP, body.as_bytes(), NOW),
            Err(VerifyError::bad_signature(SIGNATURE_HEADER))
        );
        assert_eq!(
            check(SIGNATURE, "1531420619", BODY, NOW),
            Err(VerifyError::bad_signature(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn a_stale_timestamp_fails() {
        assert_eq!(check(SIGNATURE, TIMESTAMP, BODY, NOW + 300), Ok(()));
        assert_eq!(
            check(SIGNATURE, TIMESTAMP, BODY, NOW + 301),
            Err(VerifyError::stale(TIMESTAMP_HEADER))
        );
        assert_eq!(
            check(SIGNATURE, TIMESTAMP, BODY, NOW - 301),
            Err(VerifyError::stale(TIMESTAMP_HEADER))
        );
    }

    #[test]
    fn missing_headers_are_named() {
        assert_eq!(
            check_with(
                SECRET,
                &[("X-Slack-Request-Timestamp", TIMESTAMP)],
                BODY,
                NOW
            ),
            Err(VerifyError::missing(SIGNATURE_HEADER))
        );
        assert_eq!(
            check_with(SECRET, &[("X-Slack-Signature", SIGNATURE)], BODY, NOW),
            Err(VerifyError::missing(TIMESTAMP_HEADER))
        );
    }

    #[test]
    fn malformed_headers_are_named() {
        assert_eq!(
            check(
                "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
                TIMESTAMP,
                BODY,
                NOW
            ),
            Err(VerifyError::malformed(
                SIGNATURE_HEADER,
                "expected the v0= prefix"
            ))
        );
        assert_eq!(
            check(SIGNATURE, "1531420618.5", BODY, NOW),
            Err(VerifyError::malformed(TIMESTAMP_HEADER, "not unix seconds"))
        );
    }
}
