//! Verifiers for the inbound gateway: does a request really come from the
//! provider a source is configured for?
//!
//! One [`Verifier`] per source, built from its configuration; the gateway
//! calls [`Verifier::verify`] with the raw request ([`InboundRequest`]) and
//! the current time. Every scheme works over the exact body bytes, compares
//! signatures and secrets in constant time, and allows a timestamp at most
//! [`TIMESTAMP_TOLERANCE_SECS`] away from now where the scheme signs one.
//!
//! What must stay true: no secret reaches `Debug` output (configs hold them
//! as [`Secret`] or [`HmacKey`]), and no input, however malformed, panics
//! (the fuzz targets in `fuzz/` and the `fuzzing` harness check this).

mod api_key;
mod basic_auth;
mod github;
mod gitlab;
mod hmac;
mod mac;
mod request;
mod secret;
mod shopify;
mod slack;
mod standard_webhooks;
mod stripe;
mod timestamp;
mod twilio;

use std::borrow::Cow;

pub use api_key::ApiKeyConfig;
pub use basic_auth::BasicAuthConfig;
pub use github::GitHubConfig;
pub use gitlab::GitLabConfig;
pub use hmac::{HmacConfig, SignatureEncoding};
pub use mac::HmacAlgorithm;
pub use request::{Headers, InboundRequest};
pub use secret::Secret;
pub use shopify::ShopifyConfig;
pub use slack::SlackConfig;
pub use standard_webhooks::StandardWebhooksConfig;
pub use stripe::StripeConfig;
pub use timestamp::TIMESTAMP_TOLERANCE_SECS;
pub use twilio::TwilioConfig;

#[cfg(doc)]
use herald_core::HmacKey;

/// How a source authenticates the requests it receives: one variant per
/// scheme, each with the configuration it needs.
#[derive(Debug, Clone)]
pub enum Verifier {
    /// Standard Webhooks / Svix: `webhook-*` (or `svix-*`) headers, `v1`
    /// HMAC-SHA256 signatures over `"{id}.{timestamp}.{body}"`.
    StandardWebhooks(StandardWebhooksConfig),
    /// Stripe: `Stripe-Signature: t=…,v1=…`.
    Stripe(StripeConfig),
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`.
    GitHub(GitHubConfig),
    /// Slack: `X-Slack-Signature: v0=<hex>` with `X-Slack-Request-Timestamp`.
    Slack(SlackConfig),
    /// Shopify: `X-Shopify-Hmac-Sha256: <base64>`.
    Shopify(ShopifyConfig),
    /// Twilio: `X-Twilio-Signature`, HMAC-SHA1 over the public URL and the
    /// form parameters (or the URL alone, with `bodySHA256`, for JSON).
    Twilio(TwilioConfig),
    /// GitLab: `X-Gitlab-Token` equals the configured secret token.
    GitLab(GitLabConfig),
    /// Any other HMAC scheme: header, algorithm, encoding, prefix and an
    /// optional signed timestamp header.
    Hmac(HmacConfig),
    /// `Authorization: Basic …` with the configured user and password.
    BasicAuth(BasicAuthConfig),
    /// A configured header carries a configured value.
    ApiKey(ApiKeyConfig),
    /// Accepts every request: the source is open.
    None,
}

impl Verifier {
    /// Checks `request` against this scheme. `now_unix_secs` is the current
    /// time, used for the timestamp tolerance of the schemes that sign one.
    pub fn verify(
        &self,
        request: &InboundRequest<'_>,
        now_unix_secs: i64,
    ) -> Result<(), VerifyError> {
        match self {
            Self::StandardWebhooks(config) => config.verify(request, now_unix_secs),
            Self::Stripe(config) => config.verify(request, now_unix_secs),
            Self::GitHub(config) => config.verify(request),
            Self::Slack(config) => config.verify(request, now_unix_secs),
            Self::Shopify(config) => config.verify(request),
            Self::Twilio(config) => config.verify(request),
            Self::GitLab(config) => config.verify(request),
            Self::Hmac(config) => config.verify(request, now_unix_secs),
            Self::BasicAuth(config) => config.verify(request),
            Self::ApiKey(config) => config.verify(request),
            Self::None => Ok(()),
        }
    }
}

/// Why a request was rejected. Every variant names the header at fault, so
/// the rejection can be shown to the operator (never to the sender).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header the scheme requires is absent.
    #[error("missing header {header}")]
    MissingHeader {
        /// The header's name, as the provider spells it.
        header: Cow<'static, str>,
    },
    /// A header is present but not in the scheme's format.
    #[error("malformed header {header}: {reason}")]
    MalformedHeader {
        /// The header's name, as the provider spells it.
        header: Cow<'static, str>,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The header is well formed but no signature (or credential) in it
    /// matches.
    #[error("signature in header {header} does not match")]
    BadSignature {
        /// The header's name, as the provider spells it.
        header: Cow<'static, str>,
    },
    /// The signature matches but its timestamp is further than
    /// [`TIMESTAMP_TOLERANCE_SECS`] from now: a replay, or a skewed clock.
    #[error("timestamp in header {header} is outside the tolerance")]
    StaleTimestamp {
        /// The header's name, as the provider spells it.
        header: Cow<'static, str>,
    },
}

impl VerifyError {
    /// A stable, short name for the kind of rejection, for metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader { .. } => "missing_header",
            Self::MalformedHeader { .. } => "malformed_header",
            Self::BadSignature { .. } => "bad_signature",
            Self::StaleTimestamp { .. } => "stale_timestamp",
        }
    }

    /// The name of the header the rejection is about.
    pub fn header(&self) -> &str {
        match self {
            Self::MissingHeader { header }
            | Self::MalformedHeader { header, .. }
            | Self::BadSignature { header }
            | Self::StaleTimestamp { header } => header,
        }
    }

    pub(crate) fn missing(header: impl Into<Cow<'static, str>>) -> Self {
        Self::MissingHeader {
            header: header.into(),
        }
    }

    pub(crate) fn malformed(header: impl Into<Cow<'static, str>>, reason: &'static str) -> Self {
        Self::MalformedHeader {
            header: header.into(),
            reason,
        }
    }

    pub(crate) fn bad_signature(header: impl Into<Cow<'static, str>>) -> Self {
        Self::BadSignature {
            header: header.into(),
        }
    }

    pub(crate) fn stale(header: impl Into<Cow<'static, str>>) -> Self {
        Self::StaleTimestamp {
            header: header.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_accepts_anything() {
        let headers: [(&str, &str); 0] = [];
        let request = InboundRequest {
            body: b"anything",
            headers: &headers,
            public_url: "https://herald.example/in/src_1",
        };
        assert_eq!(Verifier::None.verify(&request, 0), Ok(()));
    }

    #[test]
    fn errors_name_their_header_and_code() {
        let error = VerifyError::malformed("Stripe-Signature", "no t= timestamp");
        assert_eq!(error.header(), "Stripe-Signature");
        assert_eq!(error.code(), "malformed_header");
        assert_eq!(
            error.to_string(),
            "malformed header Stripe-Signature: no t= timestamp"
        );
        assert_eq!(
            VerifyError::stale("webhook-timestamp").to_string(),
            "timestamp in header webhook-timestamp is outside the tolerance"
        );
    }

    #[test]
    fn no_config_prints_its_secret() {
        let secret = || Secret::new("super-secret-value").expect("not empty");
        let verifiers = [
            Verifier::Stripe(StripeConfig { secret: secret() }),
            Verifier::GitHub(GitHubConfig { secret: secret() }),
            Verifier::Slack(SlackConfig { secret: secret() }),
            Verifier::Shopify(ShopifyConfig { secret: secret() }),
            Verifier::Twilio(TwilioConfig { secret: secret() }),
            Verifier::GitLab(GitLabConfig { secret: secret() }),
            Verifier::Hmac(HmacConfig {
                header: "X-Signature".into(),
                algorithm: HmacAlgorithm::Sha256,
                encoding: SignatureEncoding::Hex,
                prefix: None,
                timestamp_header: None,
                secret: secret(),
            }),
            Verifier::BasicAuth(BasicAuthConfig {
                username: "herald".into(),
                password: secret(),
            }),
            Verifier::ApiKey(ApiKeyConfig {
                header: "X-Api-Key".into(),
                value: secret(),
            }),
        ];
        for verifier in verifiers {
            let printed = format!("{verifier:?}");
            assert!(!printed.contains("super-secret"), "{printed}");
            assert!(printed.contains("<redacted>"), "{printed}");
        }
    }
}
