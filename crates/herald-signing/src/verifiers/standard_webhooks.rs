//! Standard Webhooks and Svix: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` (or the same three with the `svix-` prefix). The
//! signature header lists space-separated `version,signature` entries; any
//! `v1` entry that is the base64 HMAC-SHA256 of `"{id}.{timestamp}.{body}"`
//! under the `whsec_` key verifies. Other versions (`v1a`) are skipped.

use herald_core::HmacKey;
use subtle::Choice;

use super::mac::{self, HmacAlgorithm};
use super::timestamp;
use super::{InboundRequest, VerifyError};

/// The names of one header family.
struct Family {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

/// The standard's own names first; Svix's only when the standard's
/// signature header is absent. The three headers always come from one
/// family, so a request cannot mix an id from one with a signature from the
/// other.
const FAMILIES: [Family; 2] = [
    Family {
        id: "webhook-id",
        timestamp: "webhook-timestamp",
        signature: "webhook-signature",
    },
    Family {
        id: "svix-id",
        timestamp: "svix-timestamp",
        signature: "svix-signature",
    },
];

/// Configuration of a Standard Webhooks (or Svix) source.
#[derive(Debug, Clone)]
pub struct StandardWebhooksConfig {
    /// The sender's `whsec_…` key; `Debug` redacts it.
    pub secret: HmacKey,
}

impl StandardWebhooksConfig {
    pub(crate) fn verify(
        &self,
        request: &InboundRequest<'_>,
        now_unix_secs: i64,
    ) -> Result<(), VerifyError> {
        let (family, signatures) = FAMILIES
            .iter()
            .find_map(|family| {
                let value = request.headers.get(family.signature)?;
                Some((family, value))
            })
            .ok_or_else(|| VerifyError::missing(FAMILIES[0].signature))?;
        let id = request.required_header(family.id)?;
        if id.is_empty() {
            return Err(VerifyError::malformed(family.id, "empty message id"));
        }
        let timestamp_text = request.required_header(family.timestamp)?;
        let timestamp = timestamp::parse_unix_seconds(timestamp_text)
            .ok_or_else(|| VerifyError::malformed(family.timestamp, "not unix seconds"))?;

        let expected = mac::hmac(
            HmacAlgorithm::Sha256,
            self.secret.as_bytes(),
            &[
                id.as_bytes(),
                b".",
                timestamp_text.as_bytes(),
                b".",
                request.body,
            ],
        );
        let mut entries = signatures.split_ascii_whitespace().peekable();
        if entries.peek().is_none() {
            return Err(VerifyError::malformed(family.signature, "no signatures"));
        }
        let mut matched = Choice::from(0);
        for entry in entries {
            let (version, encoded) = entry.split_once(',').ok_or_else(|| {
                VerifyError::malformed(family.signature, "expected version,signature entries")
            })?;
            // An undecodable `v1` entry simply does not match; the others in
            // the list may still.
            if version == "v1" {
                if let Some(candidate) = mac::decode_base64(encoded) {
                    matched |= mac::signature_matches(&expected, &candidate);
                }
            }
        }
        if !bool::from(matched) {
            return Err(VerifyError::bad_signature(family.signature));
        }
        if !timestamp::is_fresh(timestamp, now_unix_secs) {
            return Err(VerifyError::stale(family.timestamp));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifiers::Verifier;

    // The Standard Webhooks specification's published test vector (also in
    // `standard.rs`); `standardwebhooks.Webhook.sign` from PyPI (1.1.0)
    // reproduces it.
    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: &str = "1614265330";
    const NOW: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    /// `MgneuxId…` is the same content signed with this other key, by
    /// `standardwebhooks.Webhook(OTHER_KEY).sign(...)`.
    const OTHER_KEY: &str = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY";
    const SIGNATURE_UNDER_OTHER_KEY: &str = "v1,MgneuxIdyx2BA5iLTwGJaPuHo+BBfrNLG+Yvp7hhc38=";

    fn verifier(key: &str) -> Verifier {
        Verifier::StandardWebhooks(StandardWebhooksConfig {
            secret: HmacKey::parse(key).expect("test key is valid"),
        })
    }

    fn check(headers: &[(&str, &str)], body: &[u8], now: i64) -> Result<(), VerifyError> {
        let request = InboundRequest {
            body,
            headers: &headers,
            public_url: "https://herald.example/in/src_1",
        };
        verifier(KEY).verify(&request, now)
    }

    fn standard_headers(signature: &str) -> [(&str, &str); 3] {
        [
            ("webhook-id", ID),
            ("webhook-timestamp", TIMESTAMP),
            ("webhook-signature", signature),
        ]
    }

    #[test]
    fn the_published_vector_verifies() {
        assert_eq!(check(&standard_headers(SIGNATURE), BODY, NOW), Ok(()));
    }

    #[test]
    fn svix_headers_verify_too() {
        // Python: base64(hmac.new(b64decode(KEY[6:]),
        //   b'msg_2b7sVf1XhIt0YQyR8Y7qYf3Jm0K.1735689600.{"type":"invoice.paid","id":42}',
        //   sha256).digest()); `standardwebhooks.Webhook.sign` agrees.
        let headers = [
            ("Svix-Id", "msg_2b7sVf1XhIt0YQyR8Y7qYf3Jm0K"),
            ("Svix-Timestamp", "1735689600"),
            (
                "Svix-Signature",
                "v1,SmzIhZIdSkEG+yIwM/9Ob13ehl/7Z5Z/1Yms34apYLE=",
            ),
        ];
        let body = br#"{"type":"invoice.paid","id":42}"#;
        assert_eq!(check(&headers, body, 1735689600 + 299), Ok(()));
    }

    #[test]
    fn any_v1_entry_in_the_list_may_match() {
        let listed = format!("v1a,bm90LWVkMjU1MTk= {SIGNATURE_UNDER_OTHER_KEY} v1,!!! {SIGNATURE}");
        assert_eq!(check(&standard_headers(&listed), BODY, NOW), Ok(()));
    }

    #[test]
    fn a_signature_under_another_key_fails() {
        let request = InboundRequest {
            body: BODY,
            headers: &standard_headers(SIGNATURE),
            public_url: "",
        };
        assert_eq!(
            verifier(OTHER_KEY).verify(&request, NOW),
            Err(VerifyError::bad_signature("webhook-signature"))
        );
        assert_eq!(
            check(&standard_headers(SIGNATURE_UNDER_OTHER_KEY), BODY, NOW),
            Err(VerifyError::bad_signature("webhook-signature"))
        );
    }

    #[test]
    fn a_tampered_body_fails() {
        assert_eq!(
            check(
                &standard_headers(SIGNATURE),
                br#"{"test": 2432232315}"#,
                NOW
            ),
            Err(VerifyError::bad_signature("webhook-signature"))
        );
    }

    #[test]
    fn a_tampered_id_or_timestamp_fails() {
        let headers = [
            ("webhook-id", "msg_other"),
            ("webhook-timestamp", TIMESTAMP),
            ("webhook-signature", SIGNATURE),
        ];
        assert_eq!(
            check(&headers, BODY, NOW),
            Err(VerifyError::bad_signature("webhook-signature"))
        );
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", "1614265331"),
            ("webhook-signature", SIGNATURE),
        ];
        assert_eq!(
            check(&headers, BODY, NOW),
            Err(VerifyError::bad_signature("webhook-signature"))
        );
    }

    #[test]
    fn a_timestamp_more_than_five_minutes_away_is_stale() {
        let headers = standard_headers(SIGNATURE);
        assert_eq!(check(&headers, BODY, NOW + 300), Ok(()));
        assert_eq!(check(&headers, BODY, NOW - 300), Ok(()));
        assert_eq!(
            check(&headers, BODY, NOW + 301),
            Err(VerifyError::stale("webhook-timestamp"))
        );
        assert_eq!(
            check(&headers, BODY, NOW - 301),
            Err(VerifyError::stale("webhook-timestamp"))
        );
    }

    #[test]
    fn missing_headers_are_named() {
        assert_eq!(
            check(&[("webhook-id", ID)], BODY, NOW),
            Err(VerifyError::missing("webhook-signature"))
        );
        let headers = [
            ("webhook-timestamp", TIMESTAMP),
            ("webhook-signature", SIGNATURE),
        ];
        assert_eq!(
            check(&headers, BODY, NOW),
            Err(VerifyError::missing("webhook-id"))
        );
        // The family is chosen by its signature header: a Svix signature
        // with standard ids is a Svix request missing its id.
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", TIMESTAMP),
            ("svix-signature", SIGNATURE),
        ];
        assert_eq!(
            check(&headers, BODY, NOW),
            Err(VerifyError::missing("svix-id"))
        );
    }

    #[test]
    fn malformed_headers_are_named() {
        let cases: [(&str, &str, &str); 4] = [
            ("soon", SIGNATURE, "webhook-timestamp"),
            (TIMESTAMP, "", "webhook-signature"),
            (TIMESTAMP, "   ", "webhook-signature"),
            (
                TIMESTAMP,
                "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                "webhook-signature",
            ),
        ];
        for (timestamp, signature, header) in cases {
            let headers = [
                ("webhook-id", ID),
                ("webhook-timestamp", timestamp),
                ("webhook-signature", signature),
            ];
            let error = check(&headers, BODY, NOW).expect_err("malformed");
            assert_eq!(error.code(), "malformed_header", "{signature:?}");
            assert_eq!(error.header(), header);
        }
        let headers = [
            ("webhook-id", ""),
            ("webhook-timestamp", TIMESTAMP),
            ("webhook-signature", SIGNATURE),
        ];
        assert_eq!(
            check(&headers, BODY, NOW),
            Err(VerifyError::malformed("webhook-id", "empty message id"))
        );
    }

    #[test]
    fn a_list_without_any_v1_entry_does_not_match() {
        assert_eq!(
            check(&standard_headers("v1a,bm90LWVkMjU1MTk="), BODY, NOW),
            Err(VerifyError::bad_signature("webhook-signature"))
        );
    }
}
