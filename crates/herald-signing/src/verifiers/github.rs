//! GitHub: `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the body
//! keyed by the webhook's secret. The legacy SHA-1 `X-Hub-Signature` is not
//! accepted: GitHub sends both, and the weaker one adds nothing.

use super::hmac::{decode_signature, SignatureEncoding};
use super::mac::{self, HmacAlgorithm};
use super::{InboundRequest, Secret, VerifyError};

const HEADER: &str = "X-Hub-Signature-256";

/// Configuration of a GitHub source.
#[derive(Debug, Clone)]
pub struct GitHubConfig {
    /// The webhook's secret, as entered in GitHub.
    pub secret: Secret,
}

impl GitHubConfig {
    pub(crate) fn verify(&self, request: &InboundRequest<'_>) -> Result<(), VerifyError> {
        let value = request.required_header(HEADER)?;
        let received = value
            .strip_prefix("sha256=")
            .ok_or(VerifyError::malformed(
                HEADER,
                "expected the sha256= prefix",
            ))
            .and_then(|encoded| {
                decode_signature(encoded, SignatureEncoding::Hex)
                    .map_err(|reason| VerifyError::malformed(HEADER, reason))
            })?;
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

    // GitHub's worked example ("Validating webhook deliveries", docs.github.com);
    // Python's `hmac.new(secret, body, hashlib.sha256).hexdigest()` agrees.
    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn check_with(secret: &str, header: Option<&str>, body: &[u8]) -> Result<(), VerifyError> {
        let headers: Vec<(&str, &str)> = header
            .map(|value| ("x-hub-signature-256", value))
            .into_iter()
            .collect();
        let request = InboundRequest {
            body,
            headers: &headers,
            public_url: "https://herald.example/in/src_1",
        };
        Verifier::GitHub(GitHubConfig {
            secret: Secret::new(secret).expect("not empty"),
        })
        .verify(&request, 0)
    }

    #[test]
    fn the_documented_example_verifies() {
        assert_eq!(check_with(SECRET, Some(SIGNATURE), BODY), Ok(()));
        // Hex digits are compared as bytes, so case does not matter.
        let upper = SIGNATURE.replace("757107ea0eb", "757107EA0EB");
        assert_eq!(check_with(SECRET, Some(&upper), BODY), Ok(()));
    }

    #[test]
    fn a_wrong_secret_or_a_tampered_body_fails() {
        assert_eq!(
            check_with("It's a Secret to Nobody", Some(SIGNATURE), BODY),
            Err(VerifyError::bad_signature(HEADER))
        );
        assert_eq!(
            check_with(SECRET, Some(SIGNATURE), b"Hello, World?"),
            Err(VerifyError::bad_signature(HEADER))
        );
        // A truncated signature is well formed but cannot match.
        assert_eq!(
            check_with(SECRET, Some("sha256=757107ea"), BODY),
            Err(VerifyError::bad_signature(HEADER))
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_told_apart() {
        assert_eq!(
            check_with(SECRET, None, BODY),
            Err(VerifyError::missing(HEADER))
        );
        let cases = [
            (
                "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                "expected the sha256= prefix",
            ),
            ("sha1=757107ea", "expected the sha256= prefix"),
            ("sha256=", "empty signature"),
            ("sha256=xyz", "signature is not hex"),
        ];
        for (value, reason) in cases {
            assert_eq!(
                check_with(SECRET, Some(value), BODY),
                Err(VerifyError::malformed(HEADER, reason)),
                "{value:?}"
            );
        }
    }
}
