//! The generic HMAC scheme, for providers without a preset: a configured
//! header carries `{prefix}{encoded MAC}`, where the MAC (SHA-1, SHA-256 or
//! SHA-512) covers the body, or `"{timestamp}.{body}"` when a timestamp
//! header is configured, in which case the timestamp must also be fresh.

use std::borrow::Cow;

use super::mac::{self, HmacAlgorithm};
use super::timestamp;
use super::{InboundRequest, Secret, VerifyError};

/// How a MAC is written in a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureEncoding {
    /// Hexadecimal, either case.
    Hex,
    /// Standard base64, padding optional.
    Base64,
}

/// Configuration of a generic HMAC source.
#[derive(Debug, Clone)]
pub struct HmacConfig {
    /// The header carrying the signature, e.g. `X-Signature`.
    pub header: String,
    /// The hash under the HMAC.
    pub algorithm: HmacAlgorithm,
    /// How the MAC is written.
    pub encoding: SignatureEncoding,
    /// Text before the encoded MAC, e.g. `sha256=`; required when set.
    pub prefix: Option<String>,
    /// A header with the unix-seconds timestamp; when set the signed content
    /// is `"{timestamp}.{body}"` and the timestamp must be within
    /// [`TIMESTAMP_TOLERANCE_SECS`](super::TIMESTAMP_TOLERANCE_SECS) of now.
    pub timestamp_header: Option<String>,
    /// The shared secret, used as raw bytes.
    pub secret: Secret,
}

/// Decodes the MAC text of a signature header (its prefix already removed);
/// the error is the reason it is malformed.
pub(crate) fn decode_signature(
    text: &str,
    encoding: SignatureEncoding,
) -> Result<Vec<u8>, &'static str> {
    if text.is_empty() {
        return Err("empty signature");
    }
    match encoding {
        SignatureEncoding::Hex => mac::decode_hex(text).ok_or("signature is not hex"),
        SignatureEncoding::Base64 => mac::decode_base64(text).ok_or("signature is not base64"),
    }
}

impl HmacConfig {
    pub(crate) fn verify(
        &self,
        request: &InboundRequest<'_>,
        now_unix_secs: i64,
    ) -> Result<(), VerifyError> {
        let name = |header: &String| -> Cow<'static, str> { Cow::Owned(header.clone()) };
        let value = request
            .headers
            .get(&self.header)
            .ok_or_else(|| VerifyError::missing(name(&self.header)))?;
        let prefix = self.prefix.as_deref().unwrap_or("");
        let encoded = value.strip_prefix(prefix).ok_or_else(|| {
            VerifyError::malformed(name(&self.header), "expected the configured prefix")
        })?;
        let received = decode_signature(encoded, self.encoding)
            .map_err(|reason| VerifyError::malformed(name(&self.header), reason))?;

        let timestamp = match &self.timestamp_header {
            None => None,
            Some(header) => {
                let text = request
                    .headers
                    .get(header)
                    .ok_or_else(|| VerifyError::missing(name(header)))?;
                let seconds = timestamp::parse_unix_seconds(text)
                    .ok_or_else(|| VerifyError::malformed(name(header), "not unix seconds"))?;
                Some((header, text, seconds))
            }
        };
        let expected = match timestamp {
            None => mac::hmac(self.algorithm, self.secret.expose(), &[request.body]),
            Some((_, text, _)) => mac::hmac(
                self.algorithm,
                self.secret.expose(),
                &[text.as_bytes(), b".", request.body],
            ),
        };
        if !bool::from(mac::signature_matches(&expected, &received)) {
            return Err(VerifyError::bad_signature(name(&self.header)));
        }
        if let Some((header, _, seconds)) = timestamp {
            if !timestamp::is_fresh(seconds, now_unix_secs) {
                return Err(VerifyError::stale(name(header)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifiers::Verifier;

    // Every expected MAC below comes from Python's standard library:
    // `hmac.new(SECRET, content, hashlib.<algorithm>)`, then `.hexdigest()`
    // or `base64.b64encode(.digest())`.
    const SECRET: &str = "generic-shared-secret";
    const BODY: &[u8] = br#"{"event":"build.finished","id":"b_123"}"#;
    const SHA256_HEX: &str = "c683a63ad37a7de2e7ea9f58074ffc0e1f9dc46dc6a5adb9f285f113b9d9bd72";
    const SHA1_HEX: &str = "bd818cc1ec03730b4be5416611b53caf4bc06677";
    /// HMAC-SHA512 of `b"1700000000." + BODY`, base64.
    const SHA512_BASE64_WITH_TIMESTAMP: &str =
        "LqrPb0KgsI2Mm26jUCQSfjIbjyAQeHoF63gw7b0Ge2QQo3QswNqnnhsPuS/E353ebEFPlQVYBh9h8UlIOICq/A==";
    const NOW: i64 = 1700000000;

    fn config(algorithm: HmacAlgorithm, encoding: SignatureEncoding) -> HmacConfig {
        HmacConfig {
            header: "X-Signature".into(),
            algorithm,
            encoding,
            prefix: None,
            timestamp_header: None,
            secret: Secret::new(SECRET).expect("not empty"),
        }
    }

    fn timestamped() -> HmacConfig {
        HmacConfig {
            timestamp_header: Some("X-Timestamp".into()),
            ..config(HmacAlgorithm::Sha512, SignatureEncoding::Base64)
        }
    }

    fn check(
        config: HmacConfig,
        headers: &[(&str, &str)],
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let request = InboundRequest {
            body,
            headers: &headers,
            public_url: "https://herald.example/in/src_1",
        };
        Verifier::Hmac(config).verify(&request, now)
    }

    #[test]
    fn hex_macs_of_each_algorithm_verify() {
        let sha256 = config(HmacAlgorithm::Sha256, SignatureEncoding::Hex);
        assert_eq!(
            check(sha256, &[("x-signature", SHA256_HEX)], BODY, NOW),
            Ok(())
        );
        let sha1 = config(HmacAlgorithm::Sha1, SignatureEncoding::Hex);
        assert_eq!(check(sha1, &[("X-SIGNATURE", SHA1_HEX)], BODY, NOW), Ok(()));
    }

    #[test]
    fn a_configured_prefix_is_required() {
        let prefixed = || HmacConfig {
            prefix: Some("sha256=".into()),
            ..config(HmacAlgorithm::Sha256, SignatureEncoding::Hex)
        };
        let value = format!("sha256={SHA256_HEX}");
        assert_eq!(
            check(prefixed(), &[("X-Signature", &value)], BODY, NOW),
            Ok(())
        );
        assert_eq!(
            check(prefixed(), &[("X-Signature", SHA256_HEX)], BODY, NOW),
            Err(VerifyError::malformed(
                "X-Signature",
                "expected the configured prefix"
            ))
        );
    }

    #[test]
    fn a_timestamped_base64_sha512_mac_verifies() {
        let headers = [
            ("X-Signature", SHA512_BASE64_WITH_TIMESTAMP),
            ("X-Timestamp", "1700000000"),
        ];
        assert_eq!(check(timestamped(), &headers, BODY, NOW + 300), Ok(()));
    }

    #[test]
    fn a_wrong_secret_or_algorithm_fails() {
        let wrong_secret = HmacConfig {
            secret: Secret::new("another-secret").expect("not empty"),
            ..config(HmacAlgorithm::Sha256, SignatureEncoding::Hex)
        };
        assert_eq!(
            check(wrong_secret, &[("X-Signature", SHA256_HEX)], BODY, NOW),
            Err(VerifyError::bad_signature("X-Signature"))
        );
        let sha512 = config(HmacAlgorithm::Sha512, SignatureEncoding::Hex);
        assert_eq!(
            check(sha512, &[("X-Signature", SHA256_HEX)], BODY, NOW),
            Err(VerifyError::bad_signature("X-Signature"))
        );
    }

    #[test]
    fn a_tampered_body_or_timestamp_fails() {
        let sha256 = config(HmacAlgorithm::Sha256, SignatureEncoding::Hex);
        assert_eq!(
            check(sha256, &[("X-Signature", SHA256_HEX)], b"{}", NOW),
            Err(VerifyError::bad_signature("X-Signature"))
        );
        let headers = [
            ("X-Signature", SHA512_BASE64_WITH_TIMESTAMP),
            ("X-Timestamp", "1700000001"),
        ];
        assert_eq!(
            check(timestamped(), &headers, BODY, NOW),
            Err(VerifyError::bad_signature("X-Signature"))
        );
    }

    #[test]
    fn a_stale_timestamp_fails() {
        let headers = [
            ("X-Signature", SHA512_BASE64_WITH_TIMESTAMP),
            ("X-Timestamp", "1700000000"),
        ];
        assert_eq!(
            check(timestamped(), &headers, BODY, NOW + 301),
            Err(VerifyError::stale("X-Timestamp"))
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        assert_eq!(
            check(timestamped(), &[("X-Timestamp", "1700000000")], BODY, NOW),
            Err(VerifyError::missing("X-Signature"))
        );
        assert_eq!(
            check(
                timestamped(),
                &[("X-Signature", SHA512_BASE64_WITH_TIMESTAMP)],
                BODY,
                NOW
            ),
            Err(VerifyError::missing("X-Timestamp"))
        );
        let headers = [
            ("X-Signature", SHA512_BASE64_WITH_TIMESTAMP),
            ("X-Timestamp", "2023-11-14T22:13:20Z"),
        ];
        assert_eq!(
            check(timestamped(), &headers, BODY, NOW),
            Err(VerifyError::malformed("X-Timestamp", "not unix seconds"))
        );
        let hex = config(HmacAlgorithm::Sha256, SignatureEncoding::Hex);
        assert_eq!(
            check(hex, &[("X-Signature", "c683a63ad37a7dg")], BODY, NOW),
            Err(VerifyError::malformed(
                "X-Signature",
                "signature is not hex"
            ))
        );
    }
}
