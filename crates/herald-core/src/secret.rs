//! Endpoint signing keys in their `whsec_<base64>` form.
//!
//! The key bytes never appear in `Debug` output, so a stray `{:?}` in a log
//! line cannot leak a secret.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;

use crate::ValidationError;

/// A symmetric Standard Webhooks key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
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

    /// The `whsec_…` text given to users.
    pub fn expose(&self) -> String {
        format!("{}{}", Self::PREFIX, STANDARD.encode(&self.0))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
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
        assert!(!format!("{key:?}").contains(&text[6..]));
    }

    #[test]
    fn short_or_garbled_keys_are_rejected() {
        assert!(SigningKey::parse("whsec_c2hvcnQ=").is_err());
        assert!(SigningKey::parse("whsec_***").is_err());
    }
}
