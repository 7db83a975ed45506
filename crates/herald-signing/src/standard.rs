//! The `v1` (HMAC-SHA256) scheme: the signed content is
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, the signature its base64 MAC.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use herald_core::SigningKey;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The three things a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedContent<'a> {
    /// The `webhook-id` header value (the message id).
    pub id: &'a str,
    /// The `webhook-timestamp` header value, unix seconds.
    pub timestamp: i64,
    /// The exact request body.
    pub body: &'a [u8],
}

fn mac(key: &SigningKey, content: SignedContent<'_>) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("hmac takes any key length");
    mac.update(content.id.as_bytes());
    mac.update(b".");
    mac.update(content.timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(content.body);
    mac
}

/// One `v1,<base64>` signature.
pub fn sign(key: &SigningKey, content: SignedContent<'_>) -> String {
    let tag = mac(key, content).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// The `webhook-signature` header value: one signature per key, space
/// separated, so receivers holding either side of a rotation can verify.
pub fn signature_header<'k>(
    keys: impl IntoIterator<Item = &'k SigningKey>,
    content: SignedContent<'_>,
) -> String {
    keys.into_iter()
        .map(|key| sign(key, content))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a signature header did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `v1` entry matched the key.
    #[error("no matching signature")]
    NoMatch,
    /// The timestamp is outside the allowed tolerance.
    #[error("timestamp outside tolerance")]
    StaleTimestamp,
}

/// Checks a `webhook-signature` header against `key`; any one matching `v1`
/// entry is enough. `now` and `tolerance_secs` bound replay.
pub fn verify(
    key: &SigningKey,
    content: SignedContent<'_>,
    header: &str,
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    if (now_secs - content.timestamp).abs() > tolerance_secs {
        return Err(SignatureError::StaleTimestamp);
    }
    let expected = mac(key, content).finalize().into_bytes();
    let matched = header
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|candidate| bool::from(candidate.as_slice().ct_eq(expected.as_slice())));
    if matched {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published in the Standard Webhooks specification's
    /// reference libraries.
    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let content = SignedContent {
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp: 1614265330,
            body: br#"{"test": 2432232314}"#,
        };
        assert_eq!(
            sign(&key, content),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn any_listed_signature_verifies() {
        let old = SigningKey::generate();
        let new = SigningKey::generate();
        let content = SignedContent {
            id: "msg_1",
            timestamp: 100,
            body: b"{}",
        };
        let header = signature_header([&new, &old], content);
        assert_eq!(verify(&old, content, &header, 100, 300), Ok(()));
        assert_eq!(verify(&new, content, &header, 100, 300), Ok(()));
        let stranger = SigningKey::generate();
        assert_eq!(
            verify(&stranger, content, &header, 100, 300),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(&new, content, &header, 1000, 300),
            Err(SignatureError::StaleTimestamp)
        );
    }
}
