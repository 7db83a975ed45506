//! The outbound HTTP client: one pooled client for every endpoint, redirects
//! off (a redirect is an answer, not a new target), connections through the
//! SSRF guard, answers read up to a cap.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use herald_core::model::AttemptError;
use reqwest::header::HeaderMap;

use crate::ssrf::{Blocked, Guard, GuardedResolver};
use crate::DeliveryError;

/// What came back from one request.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: Option<u16>,
    pub(crate) body: String,
    pub(crate) duration: Duration,
    pub(crate) error: Option<AttemptError>,
    /// How long a `429` or `503` asked us to wait (`Retry-After`).
    pub(crate) retry_after: Option<Duration>,
}

pub(crate) struct Client {
    http: reqwest::Client,
    guard: Arc<Guard>,
    timeout: Duration,
    body_cap: usize,
}

impl Client {
    pub(crate) fn new(
        guard: Guard,
        timeout: Duration,
        body_cap: usize,
    ) -> Result<Self, DeliveryError> {
        let guard = Arc::new(guard);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the endpoint's host itself, past the
            // SSRF guard: deliveries never use the environment's proxy.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(guard.clone())))
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("Herald-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| DeliveryError::Client(error.to_string()))?;
        Ok(Self {
            http,
            guard,
            timeout,
            body_cap,
        })
    }

    /// POSTs `body` to `url`; never fails, every problem is an outcome.
    pub(crate) async fn post(&self, url: &str, headers: HeaderMap, body: Bytes) -> Response {
        let started = Instant::now();
        let failed = |error: AttemptError, detail: String| Response {
            status: None,
            body: detail,
            duration: started.elapsed(),
            error: Some(error),
            retry_after: None,
        };
        let parsed = match reqwest::Url::parse(url) {
            Ok(parsed) => parsed,
            Err(error) => return failed(AttemptError::Connection, format!("invalid url: {error}")),
        };
        if let Err(blocked) = self.guard.check_literal(&parsed) {
            return failed(AttemptError::SsrfBlocked, blocked.to_string());
        }
        let request = self
            .http
            .post(parsed)
            .headers(headers)
            .body(body)
            .timeout(self.timeout)
            .send();
        let mut response = match request.await {
            Ok(response) => response,
            Err(error) => {
                let kind = classify(&error);
                return failed(kind, describe(&error));
            }
        };
        let status = response.status().as_u16();
        let retry_after = match status {
            429 | 503 => response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, SystemTime::now())),
            _ => None,
        };
        let mut body = Vec::new();
        let mut error = None;
        while body.len() < self.body_cap {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(read_error) => {
                    error = Some(classify(&read_error));
                    break;
                }
            }
        }
        body.truncate(self.body_cap);
        Response {
            status: Some(status),
            body: String::from_utf8_lossy(&body).into_owned(),
            duration: started.elapsed(),
            error,
            retry_after,
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3); a
/// date in the past means "now".
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Maps a client error onto the attempt log's error kinds.
fn classify(error: &reqwest::Error) -> AttemptError {
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.downcast_ref::<Blocked>().is_some() {
            return AttemptError::SsrfBlocked;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return AttemptError::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return AttemptError::Timeout,
                _ => {}
            }
        }
        source = cause.source();
    }
    if error.is_timeout() {
        AttemptError::Timeout
    } else if error.is_connect() {
        let text = describe(error).to_ascii_lowercase();
        if text.contains("dns") || text.contains("lookup") || text.contains("resolve") {
            AttemptError::Dns
        } else if text.contains("certificate") || text.contains("tls") {
            AttemptError::Tls
        } else {
            AttemptError::Connection
        }
    } else {
        AttemptError::InvalidResponse
    }
}

/// The error with its causes, for the attempt log (no secrets are in it:
/// only the URL the tenant configured and network errors).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
