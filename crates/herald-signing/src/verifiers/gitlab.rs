//! GitLab: the `X-Gitlab-Token` header carries the webhook's secret token
//! itself; there is no signature.

use super::mac;
use super::{InboundRequest, Secret, VerifyError};

const HEADER: &str = "X-Gitlab-Token";

/// Configuration of a GitLab source.
#[derive(Debug, Clone)]
pub struct GitLabConfig {
    /// The webhook's secret token, as entered in GitLab.
    pub secret: Secret,
}

impl GitLabConfig {
    pub(crate) fn verify(&self, request: &InboundRequest<'_>) -> Result<(), VerifyError> {
        let token = request.required_header(HEADER)?;
        if bool::from(mac::secret_matches(self.secret.expose(), token.as_bytes())) {
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

    // No MAC here: the expected value is the token itself.
    fn check(headers: &[(&str, &str)]) -> Result<(), VerifyError> {
        let request = InboundRequest {
            body: b"{}",
            headers: &headers,
            public_url: "https://herald.example/in/src_1",
        };
        Verifier::GitLab(GitLabConfig {
            secret: Secret::new("glwt-7f3a9c").expect("not empty"),
        })
        .verify(&request, 0)
    }

    #[test]
    fn the_configured_token_passes() {
        assert_eq!(check(&[("x-gitlab-token", "glwt-7f3a9c")]), Ok(()));
    }

    #[test]
    fn any_other_token_fails() {
        for token in ["glwt-7f3a9d", "glwt-7f3a9", "glwt-7f3a9c ", ""] {
            assert_eq!(
                check(&[("X-Gitlab-Token", token)]),
                Err(VerifyError::bad_signature(HEADER)),
                "{token:?}"
            );
        }
    }

    #[test]
    fn a_missing_token_is_named() {
        assert_eq!(check(&[]), Err(VerifyError::missing(HEADER)));
    }
}
