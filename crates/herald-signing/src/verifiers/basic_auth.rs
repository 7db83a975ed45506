//! HTTP Basic authentication (RFC 7617): `Authorization: Basic
//! base64(user:password)` must carry the configured user and password.

use super::mac;
use super::{InboundRequest, Secret, VerifyError};

const HEADER: &str = "Authorization";

/// Configuration of a Basic-auth source.
#[derive(Debug, Clone)]
pub struct BasicAuthConfig {
    /// The expected user name (it cannot contain `:`, per RFC 7617).
    pub username: String,
    /// The expected password; `Debug` redacts it.
    pub password: Secret,
}

impl BasicAuthConfig {
    pub(crate) fn verify(&self, request: &InboundRequest<'_>) -> Result<(), VerifyError> {
        let value = request.required_header(HEADER)?;
        let (scheme, credentials) = value
            .trim()
            .split_once(' ')
            .ok_or(VerifyError::malformed(HEADER, "expected Basic credentials"))?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(VerifyError::malformed(HEADER, "expected the Basic scheme"));
        }
        let decoded = mac::decode_base64(credentials.trim())
            .ok_or(VerifyError::malformed(HEADER, "credentials are not base64"))?;
        let colon = decoded
            .iter()
            .position(|byte| *byte == b':')
            .ok_or(VerifyError::malformed(HEADER, "credentials lack a colon"))?;
        let (username, password) = (&decoded[..colon], &decoded[colon + 1..]);
        // Both halves are always compared, so timing tells nothing about
        // which one was wrong.
        let user_matches = mac::secret_matches(self.username.as_bytes(), username);
        let password_matches = mac::secret_matches(self.password.expose(), password);
        if bool::from(user_matches & password_matches) {
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

    // Credentials encoded with Python's `base64.b64encode(b"user:password")`.
    const VALID: &str = "Basic aGVyYWxkOmNvcnJlY3QgaG9yc2UgYmF0dGVyeSBzdGFwbGU=";

    fn check(headers: &[(&str, &str)]) -> Result<(), VerifyError> {
        let request = InboundRequest {
            body: b"{}",
            headers: &headers,
            public_url: "https://herald.example/in/src_1",
        };
        Verifier::BasicAuth(BasicAuthConfig {
            username: "herald".into(),
            password: Secret::new("correct horse battery staple").expect("not empty"),
        })
        .verify(&request, 0)
    }

    #[test]
    fn the_configured_user_and_password_pass() {
        assert_eq!(check(&[("authorization", VALID)]), Ok(()));
        // The scheme name is case-insensitive, and padding is optional.
        assert_eq!(
            check(&[(
                "Authorization",
                "basic aGVyYWxkOmNvcnJlY3QgaG9yc2UgYmF0dGVyeSBzdGFwbGU"
            )]),
            Ok(())
        );
    }

    #[test]
    fn a_wrong_password_or_user_fails() {
        // "herald:wrong" and "other:correct horse battery staple".
        for value in [
            "Basic aGVyYWxkOndyb25n",
            "Basic b3RoZXI6Y29ycmVjdCBob3JzZSBiYXR0ZXJ5IHN0YXBsZQ==",
        ] {
            assert_eq!(
                check(&[("Authorization", value)]),
                Err(VerifyError::bad_signature(HEADER)),
                "{value}"
            );
        }
    }

    #[test]
    fn missing_and_malformed_headers_are_told_apart() {
        assert_eq!(check(&[]), Err(VerifyError::missing(HEADER)));
        let cases = [
            ("Basic", "expected Basic credentials"),
            ("Bearer aGVyYWxkOndyb25n", "expected the Basic scheme"),
            ("Basic !!!", "credentials are not base64"),
            // "herald", no colon.
            ("Basic aGVyYWxk", "credentials lack a colon"),
        ];
        for (value, reason) in cases {
            assert_eq!(
                check(&[("Authorization", value)]),
                Err(VerifyError::malformed(HEADER, reason)),
                "{value}"
            );
        }
    }
}
