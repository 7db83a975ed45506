//! Endpoint signing keys in their Standard Webhooks text forms: `whsec_…`
//! (HMAC-SHA256, symmetric) and `whsk_…` (ed25519 secret key, asymmetric),
//! whose public half a receiver gets as `whpk_…`.
//!
//! Secret bytes never appear in `Debug` output, so a stray `{:?}` in a log
//! line cannot leak a key. The text `SigningKey::expose` returns is also the
//! persisted form (`SigningKey::parse` reads it back), so a store keeps one
//! text column for either kind.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;

use crate::ValidationError;

/// An endpoint's signing key: either kind signs the same content; which one
/// decides the signature version (`v1` or `v1a`).
#[derive(Clone, PartialEq, Eq)]
pub enum SigningKey {
    /// `whsec_`: the receiver holds the same secret.
    Hmac(HmacKey),
    /// `whsk_`: the receiver holds only the `whpk_` public key.
    Ed25519(Ed25519Key),
}

impl SigningKey {
    /// A fresh random HMAC key: the kind Svix generates, so clients that know
    /// nothing of asymmetric keys keep working.
    pub fn generate() -> Self {
        Self::Hmac(HmacKey::generate())
    }

    /// A fresh random ed25519 key pair.
    pub fn generate_ed25519() -> Self {
        Self::Ed25519(Ed25519Key::generate())
    }

    /// Parses `whsk_<base64>` as an ed25519 key and anything else as an HMAC
    /// key (`whsec_<base64>`, the prefix optional as in the Standard Webhooks
    /// libraries). A `whpk_` public key is refused by name: it cannot sign.
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if value.starts_with(Ed25519Key::PREFIX) {
            Ed25519Key::parse(value).map(Self::Ed25519)
        } else if value.starts_with(Ed25519PublicKey::PREFIX) {
            Err(ValidationError::new(
                "key",
                "is a whpk_ public key, which cannot sign: give the whsk_ secret key",
            ))
        } else {
            HmacKey::parse(value).map(Self::Hmac)
        }
    }

    /// Whether receivers verify with a public key (`v1a`) rather than the
    /// shared secret (`v1`).
    pub fn is_asymmetric(&self) -> bool {
        matches!(self, Self::Ed25519(_))
    }

    /// The secret text (`whsec_…` or `whsk_…`): what a store persists. Never
    /// show it for an ed25519 key; receivers get [`Self::receiver_key`].
    pub fn expose(&self) -> String {
        match self {
            Self::Hmac(key) => key.expose(),
            Self::Ed25519(key) => key.expose(),
        }
    }

    /// What a receiver verifies with: the shared `whsec_…` secret itself for
    /// HMAC, only the `whpk_…` public key for ed25519.
    pub fn receiver_key(&self) -> String {
        match self {
            Self::Hmac(key) => key.expose(),
            Self::Ed25519(key) => key.public_key().expose(),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hmac(key) => key.fmt(f),
            Self::Ed25519(key) => key.fmt(f),
        }
    }
}

/// A symmetric Standard Webhooks key (`whsec_`).
#[derive(Clone, PartialEq, Eq)]
pub struct HmacKey(Vec<u8>);

impl HmacKey {
    /// The textual prefix of a serialized key.
    pub const PREFIX: &'static str = "whsec_";
    /// Bytes in a generated key (Svix uses 24).
    const GENERATED_LEN: usize = 24;
    /// Accepted key sizes for caller-supplied keys, in bytes.
    const MIN_LEN: usize = 24;
    const MAX_LEN: usize = 64;

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; Self::GENERATED_LEN];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses `whsec_<base64>` (the prefix is optional, as in the Standard
    /// Webhooks libraries).
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if value.starts_with(Ed25519Key::PREFIX) || value.starts_with(Ed25519PublicKey::PREFIX) {
            return Err(ValidationError::new(
                "key",
                "is an ed25519 key; a whsec_ key is needed here",
            ));
        }
        let encoded = value.strip_prefix(Self::PREFIX).unwrap_or(value);
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| ValidationError::new("key", "must be base64 after the whsec_ prefix"))?;
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&bytes.len()) {
            return Err(ValidationError::new(
                "key",
                format!(
                    "must decode to between {} and {} bytes",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(Self(bytes))
    }

    /// The raw key bytes for HMAC.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The `whsec_…` text.
    pub fn expose(&self) -> String {
        format!("{}{}", Self::PREFIX, STANDARD.encode(&self.0))
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

/// An ed25519 secret key (`whsk_`). Its text holds the 64-byte secret key
/// as libsodium and Svix lay it out: the 32-byte seed, then the 32-byte
/// public key.
#[derive(Clone, PartialEq, Eq)]
pub struct Ed25519Key(ed25519_dalek::SigningKey);

impl Ed25519Key {
    /// The textual prefix of a serialized secret key.
    pub const PREFIX: &'static str = "whsk_";

    /// A fresh random key pair.
    pub fn generate() -> Self {
        let mut seed = [0u8; ed25519_dalek::SECRET_KEY_LENGTH];
        rand::thread_rng().fill_bytes(&mut seed);
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Parses `whsk_<base64 of seed ‖ public key>`. The public half must be
    /// the one the seed derives: a mismatched pair would sign with a key no
    /// receiver was given.
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        let encoded = value
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| ValidationError::new("key", "must start with the whsk_ prefix"))?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| ValidationError::new("key", "must be base64 after the whsk_ prefix"))?;
        let pair: &[u8; ed25519_dalek::KEYPAIR_LENGTH] =
            bytes.as_slice().try_into().map_err(|_| {
                ValidationError::new(
                    "key",
                    format!(
                        "must decode to {} bytes (ed25519 seed and public key)",
                        ed25519_dalek::KEYPAIR_LENGTH
                    ),
                )
            })?;
        ed25519_dalek::SigningKey::from_keypair_bytes(pair)
            .map(Self)
            .map_err(|_| {
                ValidationError::new(
                    "key",
                    "is not an ed25519 key pair: its public half does not match its seed",
                )
            })
    }

    /// The key that signs.
    pub fn signing_key(&self) -> &ed25519_dalek::SigningKey {
        &self.0
    }

    /// The public half, which is all a receiver needs.
    pub fn public_key(&self) -> Ed25519PublicKey {
        Ed25519PublicKey(self.0.verifying_key())
    }

    /// The `whsk_…` text.
    pub fn expose(&self) -> String {
        format!(
            "{}{}",
            Self::PREFIX,
            STANDARD.encode(self.0.to_keypair_bytes())
        )
    }
}

impl fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Key")
            .field("public", &self.public_key().expose())
            .finish_non_exhaustive()
    }
}

/// An ed25519 public key (`whpk_`): verifies `v1a` signatures, cannot sign.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ed25519PublicKey(ed25519_dalek::VerifyingKey);

impl Ed25519PublicKey {
    /// The textual prefix of a serialized public key.
    pub const PREFIX: &'static str = "whpk_";

    /// Parses `whpk_<base64 of the 32-byte public key>`.
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        let encoded = value
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| ValidationError::new("key", "must start with the whpk_ prefix"))?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| ValidationError::new("key", "must be base64 after the whpk_ prefix"))?;
        let bytes: &[u8; ed25519_dalek::PUBLIC_KEY_LENGTH] =
            bytes.as_slice().try_into().map_err(|_| {
                ValidationError::new(
                    "key",
                    format!("must decode to {} bytes", ed25519_dalek::PUBLIC_KEY_LENGTH),
                )
            })?;
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| ValidationError::new("key", "is not an ed25519 public key"))
    }

    /// The key that verifies.
    pub fn verifying_key(&self) -> &ed25519_dalek::VerifyingKey {
        &self.0
    }

    /// The `whpk_…` text.
    pub fn expose(&self) -> String {
        format!("{}{}", Self::PREFIX, STANDARD.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for Ed25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Ed25519PublicKey")
            .field(&self.expose())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_never_print() {
        let key = SigningKey::generate();
        let text = key.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(SigningKey::parse(&text).unwrap(), key);
        assert!(!key.is_asymmetric());
        assert_eq!(key.receiver_key(), text);
        assert!(!format!("{key:?}").contains(&text[6..]));
    }

    #[test]
    fn ed25519_keys_round_trip_and_only_the_public_half_prints() {
        let key = SigningKey::generate_ed25519();
        let text = key.expose();
        assert!(text.starts_with("whsk_"));
        assert_eq!(SigningKey::parse(&text).unwrap(), key);
        assert!(key.is_asymmetric());

        let public = key.receiver_key();
        assert!(public.starts_with("whpk_"));
        assert_eq!(Ed25519PublicKey::parse(&public).unwrap().expose(), public);

        let debug = format!("{key:?}");
        let secret_bytes = STANDARD.decode(&text[5..]).unwrap();
        let seed = STANDARD.encode(&secret_bytes[..32]);
        assert!(!debug.contains(&text[5..]), "{debug}");
        assert!(!debug.contains(&seed[..40]), "{debug}");
        assert!(debug.contains(&public), "{debug}");
    }

    #[test]
    fn short_or_garbled_keys_are_rejected() {
        assert!(SigningKey::parse("whsec_c2hvcnQ=").is_err());
        assert!(SigningKey::parse("whsec_***").is_err());
    }

    #[test]
    fn bad_ed25519_keys_are_rejected_with_reasons() {
        let message = |text: &str| SigningKey::parse(text).unwrap_err().message;
        assert!(message("whsk_***").contains("base64"));
        // A 32-byte seed alone: the pair is 64 bytes.
        let seed = STANDARD.encode([7u8; 32]);
        assert!(message(&format!("whsk_{seed}")).contains("64 bytes"));
        // A seed followed by someone else's public key.
        let mut pair = [7u8; 64];
        pair[32..].copy_from_slice(
            Ed25519Key::generate()
                .public_key()
                .verifying_key()
                .as_bytes(),
        );
        assert!(message(&format!("whsk_{}", STANDARD.encode(pair))).contains("does not match"));
        // A public key where a secret is expected.
        let public = SigningKey::generate_ed25519().receiver_key();
        assert!(message(&public).contains("whpk_"));
        // HMAC-only parsing names the kind it wanted.
        let secret = SigningKey::generate_ed25519().expose();
        assert!(HmacKey::parse(&secret)
            .unwrap_err()
            .message
            .contains("whsec_"));
    }
}
