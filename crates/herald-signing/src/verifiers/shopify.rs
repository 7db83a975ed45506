//! Shopify: `X-Shopify-Hmac-Sha256: <base64>`, the HMAC-SHA256 of the body
//! keyed by the app's client secret. Shopify signs no timestamp, so there is
//! no replay window to check; deduplication by `X-Shopify-Webhook-Id`
//! happens later in the gateway.

use super::hmac::{decode_signature, SignatureEncoding};
use super::mac::{self, HmacAlgorithm};
use super::{InboundRequest, Secret, VerifyError};

const HEADER: &str = "X-Shopify-Hmac-Sha256";

/// Configuration of a Shopify source.
#[derive(Debug, Clone)]
pub struct ShopifyConfig {
    /// The app's client secret (or the store's webhook signing secret).
    pub secret: Secret,
}

impl ShopifyConfig {
    pub(crate) fn verify(&self, request: &InboundRequest<'_>) -> Result<(), VerifyError> {
        let value = request.required_header(HEADER)?;
        let received = decode_signature(value, SignatureEncoding::Base64)
            .map_err(|reason| VerifyError::malformed(HEADER, reason))?;
        let expected = mac::hmac(HmacAlgorithm::Sha256, self.secret.expose(), &[request.body]);
        if bool::from(mac::signature_matches(&expected, &received)) {
            Ok(())
        } else {
            Err(VerifyError::bad_signature(HEADER))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifiers::Verifier;

    // Shopify publishes no vector with its secret; this one is Python's
    // `base64.b64encode(hmac.new(SECRET, BODY, hashlib.sha256).digest())`.
    const SECRET: &str = "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";
    const BODY: &[u8] =
        br#"{"id":820982911946154508,"email":"jon@example.com","total_price":"10.00"}"#;
    const SIGNATURE: &str = "/WiQcEd7VzEacvgGN3tKNSMcn6UBjuhNI/Kyu6HfoIo=";

    fn check_with(secret: &str, header: Option<&str>, body: &[u8]) -> Result<(), VerifyError> {
        let headers: Vec<(&str, &str)> = header
            .map(|value| ("X-Shopify-Hmac-SHA256", value))
            .into_iter()
            .collect();
        let request = InboundRequest {
            body,
            headers: &headers,
            public_url: "https://herald.example/in/src_1",
        };
        Verifier::Shopify(ShopifyConfig {
            secret: Secret::new(secret).expect("not empty"),
        })
        .verify(&request, 0)
    }

    #[test]
    fn a_python_computed_signature_verifies() {
        assert_eq!(check_with(SECRET, Some(SIGNATURE), BODY), Ok(()));
    }

    #[test]
    fn a_wrong_secret_or_a_tampered_body_fails() {
        assert_eq!(
            check_with("shpss_another", Some(SIGNATURE), BODY),
            Err(VerifyError::bad_signature(HEADER))
        );
        assert_eq!(
            check_with(SECRET, Some(SIGNATURE), &BODY[1..]),
            Err(VerifyError::bad_signature(HEADER))
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_told_apart() {
        assert_eq!(
            check_with(SECRET, None, BODY),
            Err(VerifyError::missing(HEADER))
        );
        assert_eq!(
            check_with(SECRET, Some("not base64!"), BODY),
            Err(VerifyError::malformed(HEADER, "signature is not base64"))
        );
        assert_eq!(
            check_with(SECRET, Some(""), BODY),
            Err(VerifyError::malformed(HEADER, "empty signature"))
        );
    }
}
