//! The shared secret of a provider scheme (signing secret, auth token, API
//! key, password), kept out of `Debug` output.

use std::fmt;

/// A non-empty secret, used as raw bytes. `Debug` prints `<redacted>`, and
/// there is deliberately no `PartialEq`: comparisons against request data go
/// through the constant-time helpers.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps `value`, or `None` if it is empty: an empty secret would let an
    /// empty header or an unkeyed MAC through.
    pub fn new(value: impl Into<Vec<u8>>) -> Option<Self> {
        let bytes = value.into();
        if bytes.is_empty() {
            None
        } else {
            Some(Self(bytes))
        }
    }

    /// The secret's bytes, for keying a MAC or a comparison.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_secrets_are_refused() {
        assert!(Secret::new("").is_none());
        assert!(Secret::new(Vec::new()).is_none());
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let secret = Secret::new("hunter2").expect("not empty");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(secret.expose(), b"hunter2");
    }
}
