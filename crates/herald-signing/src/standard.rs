//! The Standard Webhooks outbound schemes. Both sign the same content,
//! `"{webhook-id}.{webhook-timestamp}.{body}"`: `v1` is its base64
//! HMAC-SHA256 under a `whsec_` key, `v1a` its base64 ed25519 signature
//! under a `whsk_` key, which receivers check with the `whpk_` public key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use herald_core::{Ed25519PublicKey, HmacKey, SigningKey};
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

impl SignedContent<'_> {
    /// The content as one buffer: ed25519 signs a whole message, it cannot
    /// be fed in pieces as HMAC can.
    fn to_bytes(self) -> Vec<u8> {
        let timestamp = self.timestamp.to_string();
        let mut bytes = Vec::with_capacity(self.id.len() + timestamp.len() + self.body.len() + 2);
        bytes.extend_from_slice(self.id.as_bytes());
        bytes.push(b'.');
        bytes.extend_from_slice(timestamp.as_bytes());
        bytes.push(b'.');
        bytes.extend_from_slice(self.body);
        bytes
    }
}

fn mac(key: &HmacKey, content: SignedContent<'_>) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("hmac takes any key length");
    mac.update(content.id.as_bytes());
    mac.update(b".");
    mac.update(content.timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(content.body);
    mac
}

/// One signature entry: `v1,<base64>` for an HMAC key, `v1a,<base64>` for
/// an ed25519 key.
pub fn sign(key: &SigningKey, content: SignedContent<'_>) -> String {
    match key {
        SigningKey::Hmac(key) => {
            let tag = mac(key, content).finalize().into_bytes();
            format!("v1,{}", STANDARD.encode(tag))
        }
        SigningKey::Ed25519(key) => {
            let signature = key.signing_key().sign(&content.to_bytes());
            format!("v1a,{}", STANDARD.encode(signature.to_bytes()))
        }
    }
}

/// The `webhook-signature` header value: one signature per key, space
/// separated, so receivers holding either side of a rotation can verify —
/// even when the rotation changed the kind of key (`v1` and `v1a` side by
/// side).
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
    /// No entry of the key's version matched the key.
    #[error("no matching signature")]
    NoMatch,
    /// The timestamp is outside the allowed tolerance.
    #[error("timestamp outside tolerance")]
    StaleTimestamp,
}

fn check_timestamp(
    content: SignedContent<'_>,
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    if (now_secs - content.timestamp).abs() > tolerance_secs {
        return Err(SignatureError::StaleTimestamp);
    }
    Ok(())
}

/// The base64 signatures of one version in a `webhook-signature` header.
fn entries<'h>(header: &'h str, version: &'static str) -> impl Iterator<Item = Vec<u8>> + 'h {
    header
        .split(' ')
        .filter_map(move |entry| entry.split_once(',').filter(|(v, _)| *v == version))
        .filter_map(|(_, encoded)| STANDARD.decode(encoded).ok())
}

/// Checks a `webhook-signature` header against `key`; any one matching
/// entry of the key's version (`v1` for HMAC, `v1a` for ed25519, checked
/// with the key's public half) is enough. `now` and `tolerance_secs` bound
/// replay.
pub fn verify(
    key: &SigningKey,
    content: SignedContent<'_>,
    header: &str,
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let key = match key {
        SigningKey::Hmac(key) => key,
        SigningKey::Ed25519(key) => {
            return verify_v1a(&key.public_key(), content, header, now_secs, tolerance_secs)
        }
    };
    check_timestamp(content, now_secs, tolerance_secs)?;
    let expected = mac(key, content).finalize().into_bytes();
    let matched = entries(header, "v1")
        .any(|candidate| bool::from(candidate.as_slice().ct_eq(expected.as_slice())));
    if matched {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

/// Checks a `webhook-signature` header with only the `whpk_` public key, as
/// a receiver does: any one `v1a` entry that is a valid ed25519 signature of
/// the content is enough. Verification is strict (no malleable signatures,
/// no weak keys).
pub fn verify_v1a(
    public_key: &Ed25519PublicKey,
    content: SignedContent<'_>,
    header: &str,
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    check_timestamp(content, now_secs, tolerance_secs)?;
    let message = content.to_bytes();
    let matched = entries(header, "v1a").any(|candidate| {
        ed25519_dalek::Signature::from_slice(&candidate).is_ok_and(|signature| {
            public_key
                .verifying_key()
                .verify_strict(&message, &signature)
                .is_ok()
        })
    });
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

    /// The Standard Webhooks specification publishes no `v1a` vector, so this
    /// one signs the specification's example content with the key pair of
    /// RFC 8032's first Ed25519 test vector; the expected signature was made
    /// by libsodium (PyNaCl 1.6.2), an implementation independent of ours.
    #[test]
    fn matches_an_independent_v1a_vector() {
        let key = SigningKey::parse(
            "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qmIyWvAhpo9wdRGg==",
        )
        .unwrap();
        // RFC 8032, 7.1 TEST 1: the public key.
        assert_eq!(
            key.receiver_key(),
            "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        );
        let content = SignedContent {
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp: 1614265330,
            body: br#"{"test": 2432232314}"#,
        };
        let expected = "v1a,fldxM4gAKugP6nnt1hdz3sgGfZ6d99nzrMFnZOELIxbzEHoVmAb2ADpkJK7zgPePmPsle0zV9jSeGlHFG2NVAw==";
        assert_eq!(sign(&key, content), expected);
        let public = Ed25519PublicKey::parse(&key.receiver_key()).unwrap();
        assert_eq!(
            verify_v1a(&public, content, expected, 1614265330, 300),
            Ok(())
        );
    }

    #[test]
    fn v1a_signatures_verify_with_the_public_key_only() {
        let key = SigningKey::generate_ed25519();
        let public = Ed25519PublicKey::parse(&key.receiver_key()).unwrap();
        let content = SignedContent {
            id: "msg_1",
            timestamp: 100,
            body: br#"{"a":1}"#,
        };
        let header = signature_header([&key], content);
        assert!(header.starts_with("v1a,"));
        assert_eq!(verify_v1a(&public, content, &header, 100, 300), Ok(()));
        assert_eq!(verify(&key, content, &header, 100, 300), Ok(()));

        let tampered = SignedContent {
            body: br#"{"a":2}"#,
            ..content
        };
        assert_eq!(
            verify_v1a(&public, tampered, &header, 100, 300),
            Err(SignatureError::NoMatch)
        );
        let stranger = SigningKey::generate_ed25519();
        let stranger = Ed25519PublicKey::parse(&stranger.receiver_key()).unwrap();
        assert_eq!(
            verify_v1a(&stranger, content, &header, 100, 300),
            Err(SignatureError::NoMatch)
        );
        // A v1a signature offered under the v1 label is not an HMAC, and
        // garbage under v1a is skipped rather than trusted or panicked on.
        let relabelled = header.replacen("v1a,", "v1,", 1);
        assert_eq!(
            verify_v1a(&public, content, &relabelled, 100, 300),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify_v1a(&public, content, "v1a,AAAA v1a,*** v1a", 100, 300),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify_v1a(&public, content, &header, 1000, 300),
            Err(SignatureError::StaleTimestamp)
        );
    }

    #[test]
    fn a_rotation_across_kinds_sends_both_versions() {
        let old = SigningKey::generate();
        let new = SigningKey::generate_ed25519();
        let content = SignedContent {
            id: "msg_1",
            timestamp: 100,
            body: b"{}",
        };
        let header = signature_header([&new, &old], content);
        let versions: Vec<&str> = header
            .split(' ')
            .filter_map(|entry| entry.split_once(',').map(|(version, _)| version))
            .collect();
        assert_eq!(versions, ["v1a", "v1"]);
        assert_eq!(verify(&old, content, &header, 100, 300), Ok(()));
        assert_eq!(verify(&new, content, &header, 100, 300), Ok(()));
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
