//! API key: a configured header carries a configured value, compared in
//! constant time (`Authorization: Bearer …` is this scheme with the header
//! `Authorization` and the value `Bearer …`).

use std::borrow::Cow;

use super::mac;
use super::{InboundRequest, Secret, VerifyError};

/// Configuration of an API-key source.
#[derive(Debug, Clone)]
pub struct ApiKeyConfig {
    /// The header to read, e.g. `X-Api-Key`.
    pub header: String,
    /// The value it must have exactly.
    pub value: Secret,
}

impl ApiKeyConfig {
    pub(crate) fn verify(&self, request: &InboundRequest<'_>) -> Result<(), VerifyError> {
        let name = || Cow::Owned(self.header.clone());
        let received = request
            .headers
            .get(&self.header)
            .ok_or_else(|| VerifyError::missing(name()))?;
        if bool::from(mac::secret_matches(
            self.value.expose(),
            received.as_bytes(),
        )) {
            Ok(())
        } else {
            Err(VerifyError::bad_signature(name()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifiers::Verifier;

    fn check(headers: &[(&str, &str)]) -> Result<(), VerifyError> {
        let request = InboundRequest {
            body: b"{}",
            headers: &headers,
            public_url: "https://herald.example/in/src_1",
        };
        Verifier::ApiKey(ApiKeyConfig {
            header: "X-Api-Key".into(),
            value: Secret::new("key_live_51f0").expect("not empty"),
        })
        .verify(&request, 0)
    }

    #[test]
    fn the_configured_value_passes() {
        assert_eq!(check(&[("x-api-key", "key_live_51f0")]), Ok(()));
    }

    #[test]
    fn any_other_value_fails() {
        for value in ["key_live_51f1", "key_live_51f", "KEY_LIVE_51F0", ""] {
            assert_eq!(
                check(&[("X-Api-Key", value)]),
                Err(VerifyError::bad_signature("X-Api-Key")),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_missing_header_is_named() {
        assert_eq!(
            check(&[("Authorization", "key_live_51f0")]),
            Err(VerifyError::missing("X-Api-Key"))
        );
    }
}
