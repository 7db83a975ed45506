//! A source's `type` and `config`, parsed into what the gateway runs: the
//! verifier and the guards (body size, IP allowlist, rate, dedupe window,
//! headers passed through).
//!
//! Type names and config shapes follow Svix's Ingest API (`svix`, `stripe`,
//! `github`, `slack`, `shopify` with `config.secret`; `generic-webhook`), so
//! the official SDKs can create and read every source. Herald's further
//! schemes are `generic-webhook` with a `config.verifier` object:
//!
//! ```json
//! {"verifier": {"type": "hmac", "secret": "…", "header": "X-Signature",
//!               "algorithm": "sha256", "encoding": "hex", "prefix": "sha256=",
//!               "timestampHeader": "X-Timestamp"}}
//! ```
//!
//! with `type` one of `twilio` (`secret`, optional `url`), `gitlab`
//! (`secret`), `hmac`, `basic-auth` (`username`, `password`), `api-key`
//! (`header`, `value`) or `none`. A `generic-webhook` without a verifier is
//! open, as in Svix.
//!
//! The same parse runs when a source is created (so a bad config is a 422
//! naming the field) and on every request (so an edit applies at once).

use std::time::Duration;

use herald_core::retry_schedule::parse_duration;
use herald_core::HmacKey;
use herald_signing::verifiers::{
    ApiKeyConfig, BasicAuthConfig, GitHubConfig, GitLabConfig, HmacAlgorithm, HmacConfig, Secret,
    ShopifyConfig, SignatureEncoding, SlackConfig, StandardWebhooksConfig, StripeConfig,
    TwilioConfig, Verifier,
};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

/// How long a provider event id is remembered unless `config.dedupeWindow`
/// says otherwise: providers retry for up to three days (Stripe), so a week
/// covers every retry.
const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// Svix Ingest types whose senders sign with Standard Webhooks (they are
/// built on Svix): all verified like `svix`.
const STANDARD_WEBHOOKS_TYPES: &[&str] = &[
    "svix",
    "beehiiv",
    "brex",
    "clerk",
    "guesty",
    "incident-io",
    "lithic",
    "nash",
    "pleo",
    "psi-fi",
    "replicate",
    "resend",
    "safebase",
    "sardine",
    "stych",
];

/// Config keys whose values are secrets: never echoed by the API.
const SECRET_KEYS: &[&str] = &["secret", "password", "value"];

/// Which provider's conventions a source follows (event type and id
/// extraction, Slack's URL check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provider {
    StandardWebhooks,
    Stripe,
    GitHub,
    Slack,
    Shopify,
    Generic,
}

/// Everything the gateway needs to know about a source, parsed.
#[derive(Debug, Clone)]
pub(crate) struct SourceSettings {
    pub(crate) provider: Provider,
    pub(crate) verifier: Verifier,
    /// Largest body accepted; `None` uses the server's payload limit.
    pub(crate) max_body_bytes: Option<usize>,
    /// Empty allows every address.
    pub(crate) allowed_ips: Vec<IpNet>,
    /// Requests per second; `None` is unlimited.
    pub(crate) rate_limit: Option<u32>,
    pub(crate) dedupe_window: Duration,
    /// Original headers passed through to every destination (lowercase).
    pub(crate) forward_headers: Vec<String>,
    /// `generic-webhook`: the header naming the event type, if any.
    pub(crate) event_type_header: Option<String>,
    /// `generic-webhook`: the header carrying the provider's event id.
    pub(crate) event_id_header: Option<String>,
    /// Twilio: the URL the provider signs, when a proxy changes it.
    pub(crate) signed_url: Option<String>,
}

/// A config that cannot be used; `field` is its path under the body
/// (`config.secret`, `type`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub(crate) field: String,
    pub(crate) message: String,
}

fn error(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigIn {
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    verifier: Option<VerifierIn>,
    #[serde(default)]
    max_body_bytes: Option<usize>,
    #[serde(default)]
    allowed_ips: Option<Vec<String>>,
    #[serde(default)]
    rate_limit: Option<u32>,
    /// A duration such as `"7d"`, or whole seconds.
    #[serde(default)]
    dedupe_window: Option<Value>,
    #[serde(default)]
    forward_headers: Option<Vec<String>>,
    #[serde(default)]
    event_type_header: Option<String>,
    #[serde(default)]
    event_id_header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
enum VerifierIn {
    Twilio {
        secret: String,
        #[serde(default)]
        url: Option<String>,
    },
    Gitlab {
        secret: String,
    },
    Hmac {
        secret: String,
        header: String,
        #[serde(default)]
        algorithm: Option<String>,
        #[serde(default)]
        encoding: Option<String>,
        #[serde(default)]
        prefix: Option<String>,
        #[serde(default)]
        timestamp_header: Option<String>,
    },
    BasicAuth {
        username: String,
        password: String,
    },
    ApiKey {
        header: String,
        value: String,
    },
    None,
}

fn secret(value: Option<&str>, field: &str) -> Result<Secret, ConfigError> {
    value
        .and_then(Secret::new)
        .ok_or_else(|| error(field, "is required and must not be empty"))
}

fn header_name(value: &str, field: &str) -> Result<String, ConfigError> {
    axum::http::HeaderName::from_bytes(value.as_bytes())
        .map(|name| name.as_str().to_owned())
        .map_err(|_| error(field, format!("'{value}' is not a valid header name")))
}

/// The verifier a source of `source_type` with `config` runs, and the URL
/// it checks Twilio signatures against when the config names one: what
/// `herald verify` checks a captured request with, parsed here so that the
/// command line and the gateway can never disagree about a scheme.
pub fn source_verifier(
    source_type: &str,
    config: &Value,
) -> Result<(Verifier, Option<String>), ConfigError> {
    parse(source_type, config).map(|settings| (settings.verifier, settings.signed_url))
}

/// Parses `config` for a source of `source_type`.
pub(crate) fn parse(source_type: &str, config: &Value) -> Result<SourceSettings, ConfigError> {
    let mut config: ConfigIn = if config.is_null() {
        ConfigIn::default()
    } else {
        serde_path_to_error::deserialize(config).map_err(|failure| {
            let path = failure.path().to_string();
            let inner = failure.into_inner().to_string();
            let mut field = if path == "." || path.is_empty() {
                "config".to_owned()
            } else {
                format!("config.{path}")
            };
            // A missing field is reported at its parent; name the field.
            if let Some(missing) = inner
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
            {
                field = format!("{field}.{missing}");
            }
            error(&field, inner)
        })?
    };
    if source_type != "generic-webhook" && config.verifier.is_some() {
        return Err(error(
            "config.verifier",
            "is only used by generic-webhook sources",
        ));
    }
    let shared_secret = config.secret.as_deref();
    let (provider, verifier, signed_url) = match source_type {
        kind if STANDARD_WEBHOOKS_TYPES.contains(&kind) => {
            let text = shared_secret.ok_or_else(|| error("config.secret", "is required"))?;
            let key =
                HmacKey::parse(text).map_err(|failure| error("config.secret", failure.message))?;
            (
                Provider::StandardWebhooks,
                Verifier::StandardWebhooks(StandardWebhooksConfig { secret: key }),
                None,
            )
        }
        "stripe" => (
            Provider::Stripe,
            Verifier::Stripe(StripeConfig {
                secret: secret(shared_secret, "config.secret")?,
            }),
            None,
        ),
        "github" => (
            Provider::GitHub,
            Verifier::GitHub(GitHubConfig {
                secret: secret(shared_secret, "config.secret")?,
            }),
            None,
        ),
        "slack" => (
            Provider::Slack,
            Verifier::Slack(SlackConfig {
                secret: secret(shared_secret, "config.secret")?,
            }),
            None,
        ),
        "shopify" => (
            Provider::Shopify,
            Verifier::Shopify(ShopifyConfig {
                secret: secret(shared_secret, "config.secret")?,
            }),
            None,
        ),
        "generic-webhook" => {
            if config.secret.is_some() {
                return Err(error(
                    "config.secret",
                    "is not used by generic-webhook; configure config.verifier",
                ));
            }
            let (verifier, url) = generic_verifier(config.verifier.take())?;
            (Provider::Generic, verifier, url)
        }
        other => {
            return Err(error(
                "type",
                format!("'{other}' is not a source type Herald supports"),
            ))
        }
    };
    let allowed_ips = config
        .allowed_ips
        .unwrap_or_default()
        .iter()
        .map(|cidr| {
            let cidr = cidr.trim();
            cidr.parse::<IpNet>()
                .or_else(|_| cidr.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    error(
                        "config.allowedIps",
                        format!("'{cidr}' is not an address or CIDR range"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if config.rate_limit == Some(0) {
        return Err(error("config.rateLimit", "must be at least 1"));
    }
    if config.max_body_bytes == Some(0) {
        return Err(error("config.maxBodyBytes", "must be at least 1"));
    }
    let dedupe_window = match config.dedupe_window {
        None | Some(Value::Null) => DEFAULT_DEDUPE_WINDOW,
        Some(Value::Number(seconds)) => seconds
            .as_u64()
            .map(Duration::from_secs)
            .ok_or_else(|| error("config.dedupeWindow", "must be whole seconds"))?,
        Some(Value::String(text)) => parse_duration(&text)
            .map_err(|failure| error("config.dedupeWindow", failure.message))?,
        Some(_) => {
            return Err(error(
                "config.dedupeWindow",
                "must be a duration like \"7d\" or whole seconds",
            ))
        }
    };
    let forward_headers = config
        .forward_headers
        .unwrap_or_default()
        .iter()
        .map(|name| header_name(name, "config.forwardHeaders"))
        .collect::<Result<Vec<_>, _>>()?;
    let event_type_header = config
        .event_type_header
        .as_deref()
        .map(|name| header_name(name, "config.eventTypeHeader"))
        .transpose()?;
    let event_id_header = config
        .event_id_header
        .as_deref()
        .map(|name| header_name(name, "config.eventIdHeader"))
        .transpose()?;
    Ok(SourceSettings {
        provider,
        verifier,
        max_body_bytes: config.max_body_bytes,
        allowed_ips,
        rate_limit: config.rate_limit,
        dedupe_window,
        forward_headers,
        event_type_header,
        event_id_header,
        signed_url,
    })
}

fn generic_verifier(
    verifier: Option<VerifierIn>,
) -> Result<(Verifier, Option<String>), ConfigError> {
    let field = "config.verifier.secret";
    Ok(match verifier {
        None | Some(VerifierIn::None) => (Verifier::None, None),
        Some(VerifierIn::Twilio { secret: text, url }) => {
            if let Some(url) = &url {
                url::Url::parse(url)
                    .map_err(|_| error("config.verifier.url", "is not an absolute URL"))?;
            }
            (
                Verifier::Twilio(TwilioConfig {
                    secret: secret(Some(&text), field)?,
                }),
                url,
            )
        }
        Some(VerifierIn::Gitlab { secret: text }) => (
            Verifier::GitLab(GitLabConfig {
                secret: secret(Some(&text), field)?,
            }),
            None,
        ),
        Some(VerifierIn::Hmac {
            secret: text,
            header,
            algorithm,
            encoding,
            prefix,
            timestamp_header,
        }) => {
            let algorithm = match algorithm.as_deref().unwrap_or("sha256") {
                "sha1" => HmacAlgorithm::Sha1,
                "sha256" => HmacAlgorithm::Sha256,
                "sha512" => HmacAlgorithm::Sha512,
                _ => {
                    return Err(error(
                        "config.verifier.algorithm",
                        "must be sha1, sha256 or sha512",
                    ))
                }
            };
            let encoding = match encoding.as_deref().unwrap_or("hex") {
                "hex" => SignatureEncoding::Hex,
                "base64" => SignatureEncoding::Base64,
                _ => return Err(error("config.verifier.encoding", "must be hex or base64")),
            };
            (
                Verifier::Hmac(HmacConfig {
                    header: header_name(&header, "config.verifier.header")?,
                    algorithm,
                    encoding,
                    prefix: prefix.filter(|prefix| !prefix.is_empty()),
                    timestamp_header: timestamp_header
                        .map(|name| header_name(&name, "config.verifier.timestampHeader"))
                        .transpose()?,
                    secret: secret(Some(&text), field)?,
                }),
                None,
            )
        }
        Some(VerifierIn::BasicAuth { username, password }) => (
            Verifier::BasicAuth(BasicAuthConfig {
                username,
                password: secret(Some(&password), "config.verifier.password")?,
            }),
            None,
        ),
        Some(VerifierIn::ApiKey { header, value }) => (
            Verifier::ApiKey(ApiKeyConfig {
                header: header_name(&header, "config.verifier.header")?,
                value: secret(Some(&value), "config.verifier.value")?,
            }),
            None,
        ),
    })
}

/// `config` with every secret removed, for API answers (Svix, too, never
/// echoes a source's secret).
pub(crate) fn redacted(config: &Value) -> Value {
    match config {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(key, _)| !SECRET_KEYS.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), redacted(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Header names whose values the request log never stores: credentials of
/// the sender. Signature headers stay: a MAC reveals nothing of its key.
pub(crate) fn credential_headers(settings: &SourceSettings) -> Vec<String> {
    let mut names: Vec<String> = [
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-gitlab-token",
    ]
    .iter()
    .map(|name| (*name).to_owned())
    .collect();
    if let Verifier::ApiKey(config) = &settings.verifier {
        names.push(config.header.to_ascii_lowercase());
    }
    names
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field_of(source_type: &str, config: Value) -> String {
        parse(source_type, &config)
            .expect_err("config is refused")
            .field
    }

    #[test]
    fn svix_named_types_need_their_secret() {
        assert!(parse("stripe", &json!({"secret": "whsec_abc"})).is_ok());
        assert_eq!(field_of("stripe", json!({})), "config.secret");
        assert_eq!(
            field_of("svix", json!({"secret": "not base64!"})),
            "config.secret"
        );
        let clerk = parse(
            "clerk",
            &json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
        )
        .expect("clerk signs with Standard Webhooks");
        assert_eq!(clerk.provider, Provider::StandardWebhooks);
    }

    #[test]
    fn unknown_types_and_fields_are_named() {
        assert_eq!(field_of("cron", json!({})), "type");
        assert_eq!(
            field_of("stripe", json!({"secret": "s", "sekret": 1})),
            "config.sekret"
        );
        assert_eq!(
            field_of(
                "generic-webhook",
                json!({"verifier": {"type": "hmac", "secret": "s"}})
            ),
            "config.verifier.header"
        );
        assert_eq!(
            field_of("generic-webhook", json!({"allowedIps": ["nowhere"]})),
            "config.allowedIps"
        );
    }

    #[test]
    fn generic_webhooks_choose_a_verifier_and_guards() {
        let settings = parse(
            "generic-webhook",
            &json!({
                "verifier": {"type": "hmac", "secret": "s", "header": "X-Sig",
                             "algorithm": "sha512", "encoding": "base64", "prefix": "v1="},
                "allowedIps": ["10.0.0.0/8", "192.0.2.1"],
                "rateLimit": 5,
                "dedupeWindow": "1h",
                "forwardHeaders": ["X-Request-Id"],
            }),
        )
        .expect("config parses");
        assert!(matches!(settings.verifier, Verifier::Hmac(_)));
        assert_eq!(settings.allowed_ips.len(), 2);
        assert_eq!(settings.dedupe_window, Duration::from_secs(3600));
        assert_eq!(settings.forward_headers, ["x-request-id"]);
        let open = parse("generic-webhook", &json!({})).expect("an open source");
        assert!(matches!(open.verifier, Verifier::None));
        assert_eq!(open.dedupe_window, DEFAULT_DEDUPE_WINDOW);
    }

    #[test]
    fn answers_never_carry_secrets() {
        let config = json!({"secret": "s", "rateLimit": 3,
                            "verifier": {"type": "api-key", "header": "X-Key", "value": "k"}});
        assert_eq!(
            redacted(&config),
            json!({"rateLimit": 3, "verifier": {"type": "api-key", "header": "X-Key"}})
        );
    }
}
