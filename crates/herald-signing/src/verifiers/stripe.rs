//! Stripe: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, each
//! `v1` a hex HMAC-SHA256 of `"{t}.{body}"` keyed by the endpoint's whole
//! `whsec_…` text (Stripe does not decode it). Several `v1` values appear
//! while a secret is being rolled; any one matching verifies. Other schemes
//! (`v0`) are ignored, as Stripe's libraries do.

use subtle::Choice;

use super::mac::{self, HmacAlgorithm};
use super::timestamp;
use super::{InboundRequest, Secret, VerifyError};

const HEADER: &str = "Stripe-Signature";

/// Configuration of a Stripe source.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// The endpoint's signing secret, `whsec_…` as Stripe shows it.
    pub secret: Secret,
}

/// The parts of a `Stripe-Signature` header this verifier uses.
struct SignatureHeader<'a> {
    timestamp_text: &'a str,
    timestamp: i64,
    /// The `v1` values that are hex; others can never match.
    signatures: Vec<Vec<u8>>,
}

fn parse(value: &str) -> Result<SignatureHeader<'_>, VerifyError> {
    let mut timestamp_text = None;
    let mut signatures = Vec::new();
    let mut has_v1 = false;
    for item in value.split(',') {
        let Some((key, text)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            // The first `t` counts, as in Stripe's libraries.
            "t" if timestamp_text.is_none() => timestamp_text = Some(text),
            "v1" => {
                has_v1 = true;
                signatures.extend(mac::decode_hex(text));
            }
            _ => {}
        }
    }
    let timestamp_text =
        timestamp_text.ok_or_else(|| VerifyError::malformed(HEADER, "no t= timestamp"))?;
    let timestamp = timestamp::parse_unix_seconds(timestamp_text)
        .ok_or_else(|| VerifyError::malformed(HEADER, "t= is not unix seconds"))?;
    if !has_v1 {
        return Err(VerifyError::malformed(HEADER, "no v1= signature"));
    }
    Ok(SignatureHeader {
        timestamp_text,
        timestamp,
        signatures,
    })
}

impl StripeConfig {
    pub(crate) fn verify(
        &self,
        request: &InboundRequest<'_>,
        now_unix_secs: i64,
    ) -> Result<(), VerifyError> {
        let header = parse(request.required_header(HEADER)?)?;
        let expected = mac::hmac(
            HmacAlgorithm::Sha256,
            self.secret.expose(),
            &[header.timestamp_text.as_bytes(), b".", request.body],
        );
        let matched = header
            .signatures
            .iter()
            .fold(Choice::from(0), |matched, candidate| {
                matched | mac::signature_matches(&expected, candidate)
            });
        if !bool::from(matched) {
            return Err(VerifyError::bad_signature(HEADER));
        }
        if !timestamp::is_fresh(header.timestamp, now_unix_secs) {
            return Err(VerifyError::stale(HEADER));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifiers::Verifier;

    // Produced with Stripe's Python SDK (stripe 16.1.0):
    // `stripe.WebhookSignature.generate_signature_header(BODY, SECRET, timestamp=1700000000)`.
    // `OTHER_SIGNATURE` is the same call with secret "whsec_some_other_secret".
    // The SDK's own `verify_header` accepts `t=…,v1=OTHER,v1=SIGNATURE`.
    const SECRET: &str = "whsec_8aZ3VqK5tQ2mHn7Lp4Xc9Rb1";
    const BODY: &[u8] =
        br#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"invoice.paid"}"#;
    const NOW: i64 = 1700000000;
    const SIGNATURE: &str = "bebb74928b415c0ebf54e6f331748ded657a7f56b11f9feab47bb89212eb572e";
    const OTHER_SIGNATURE: &str =
        "71e181d235d7b4a863a1d3522c33636009306a5ddde0d2975a85456075498741";

    fn check_with(
        secret: &str,
        header: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let headers: Vec<(&str, &str)> = header
            .map(|value| ("stripe-signature", value))
            .into_iter()
            .collect();
        let request = InboundRequest {
            body,
            headers: &headers,
            public_url: "https://herald.example/in/src_1",
        };
        Verifier::Stripe(StripeConfig {
            secret: Secret::new(secret).expect("not empty"),
        })
        .verify(&request, now)
    }

    fn check(header: &str, body: &[u8], now: i64) -> Result<(), VerifyError> {
        check_with(SECRET, Some(header), body, now)
    }

    #[test]
    fn the_sdk_generated_header_verifies() {
        let header = format!("t=1700000000,v1={SIGNATURE}");
        assert_eq!(check(&header, BODY, NOW), Ok(()));
    }

    #[test]
    fn with_two_v1_values_the_second_may_be_the_match() {
        let header = format!("t=1700000000,v1={OTHER_SIGNATURE},v1={SIGNATURE},v0=abc");
        assert_eq!(check(&header, BODY, NOW + 10), Ok(()));
    }

    #[test]
    fn a_wrong_secret_fails() {
        let header = format!("t=1700000000,v1={SIGNATURE}");
        assert_eq!(
            check_with("whsec_some_other_secret", Some(&header), BODY, NOW),
            Err(VerifyError::bad_signature(HEADER))
        );
        let header = format!("t=1700000000,v1={OTHER_SIGNATURE}");
        assert_eq!(
            check(&header, BODY, NOW),
            Err(VerifyError::bad_signature(HEADER))
        );
    }

    #[test]
    fn a_tampered_body_or_timestamp_fails() {
        let header = format!("t=1700000000,v1={SIGNATURE}");
        let mut body = BODY.to_vec();
        body[10] ^= 1;
        assert_eq!(
            check(&header, &body, NOW),
            Err(VerifyError::bad_signature(HEADER))
        );
        let header = format!("t=1700000001,v1={SIGNATURE}");
        assert_eq!(
            check(&header, BODY, NOW),
            Err(VerifyError::bad_signature(HEADER))
        );
    }

    #[test]
    fn a_stale_timestamp_fails() {
        let header = format!("t=1700000000,v1={SIGNATURE}");
        assert_eq!(check(&header, BODY, NOW + 300), Ok(()));
        assert_eq!(
            check(&header, BODY, NOW + 301),
            Err(VerifyError::stale(HEADER))
        );
        assert_eq!(
            check(&header, BODY, NOW - 301),
            Err(VerifyError::stale(HEADER))
        );
    }

    #[test]
    fn a_missing_header_is_named() {
        assert_eq!(
            check_with(SECRET, None, BODY, NOW),
            Err(VerifyError::missing(HEADER))
        );
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        let cases = [
            ("", "no t= timestamp"),
            ("v1=abc", "no t= timestamp"),
            ("t=soon,v1=abc", "t= is not unix seconds"),
            ("t=-5,v1=abc", "t= is not unix seconds"),
            ("t=1700000000", "no v1= signature"),
            ("t=1700000000,v0=abc", "no v1= signature"),
        ];
        for (header, reason) in cases {
            assert_eq!(
                check(header, BODY, NOW),
                Err(VerifyError::malformed(HEADER, reason)),
                "{header:?}"
            );
        }
    }

    #[test]
    fn a_v1_value_that_is_not_hex_just_does_not_match() {
        assert_eq!(
            check("t=1700000000,v1=not-hex", BODY, NOW),
            Err(VerifyError::bad_signature(HEADER))
        );
        let header = format!("t=1700000000,v1=not-hex,v1={SIGNATURE}");
        assert_eq!(check(&header, BODY, NOW), Ok(()));
    }
}
