//! One attempt of one delivery: sign, send, classify, decide what comes next.

use std::time::Duration;

use bytes::Bytes;
use herald_core::model::{
    Attempt, AttemptError, DeliveryStatus, Endpoint, Message, TriggerType, RESERVED_HEADERS,
};
use herald_core::{AttemptId, Clock, RetrySchedule, Timestamp};
use herald_signing::{signature_header, SignedContent};
use herald_store::{Claim, DeliveryOutcome};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use crate::client::{take_credentials, Client, Response};

/// The Standard Webhooks headers plus their `svix-` copies.
fn headers(endpoint: &Endpoint, message: &Message, now: Timestamp) -> HeaderMap {
    let timestamp = now.unix_seconds();
    let signature = signature_header(
        endpoint.signing_keys(now),
        SignedContent {
            id: message.id.as_str(),
            timestamp,
            body: message.payload.as_bytes(),
        },
    );
    let mut headers = HeaderMap::new();
    // A message's own headers (an inbound source's `forwardHeaders`) come
    // first, so the endpoint's custom headers win on a clash.
    for (name, value) in message.headers.iter().chain(&endpoint.headers) {
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let values = [
        (["webhook-id", "svix-id"], message.id.as_str().to_owned()),
        (
            ["webhook-timestamp", "svix-timestamp"],
            timestamp.to_string(),
        ),
        (["webhook-signature", "svix-signature"], signature),
    ];
    for (names, value) in values {
        // Ids, digits and base64 are always valid header values.
        let Ok(value) = HeaderValue::try_from(value) else {
            continue;
        };
        for name in names {
            headers.insert(HeaderName::from_static(name), value.clone());
        }
    }
    headers
}

/// The endpoint's URL as the attempt log keeps it: without credentials
/// (`user:pass@`), which belong to the endpoint's settings, not to every
/// record of its attempts.
fn logged_url(url: &str) -> String {
    if !url.contains('@') {
        return url.to_owned();
    }
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    match take_credentials(&mut parsed) {
        Some(_) => parsed.into(),
        None => url.to_owned(),
    }
}

/// What to write back after a claim was worked on.
pub(crate) struct Finished {
    pub(crate) attempt: Option<Attempt>,
    pub(crate) outcome: DeliveryOutcome,
    /// What the attempt said about the endpoint; `None` when no request
    /// was made (endpoint gone or disabled, unreadable rows).
    pub(crate) verdict: Option<Verdict>,
}

impl Finished {
    /// A claim settled without a request.
    pub(crate) fn without_attempt(outcome: DeliveryOutcome) -> Self {
        Self {
            attempt: None,
            outcome,
            verdict: None,
        }
    }
}

/// How an endpoint answered, for its health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Succeeded,
    Failed,
    /// `410 Gone`: the receiver says the endpoint no longer exists.
    Gone,
}

/// When failed attempts are tried again.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    pub(crate) schedule: RetrySchedule,
    /// The longest `Retry-After` obeyed; a receiver cannot park a delivery
    /// for longer than this with one answer.
    pub(crate) retry_after_cap: Duration,
}

impl RetryPolicy {
    /// When to try again after failed attempt number `attempts`, or `None`
    /// when the schedule is used up. A `Retry-After` (within the cap) moves
    /// the retry later, never earlier.
    fn next_try(
        &self,
        attempts: u32,
        retry_after: Option<Duration>,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let delay = self
            .schedule
            .delay_after(attempts, &mut rand::thread_rng())?;
        let asked = retry_after.map_or(Duration::ZERO, |asked| asked.min(self.retry_after_cap));
        Some(now.plus(delay.max(asked)))
    }
}

/// Works one claim whose message and endpoint were loaded. `endpoint` is
/// `None` when it was deleted since the fan-out: the delivery then ends
/// without an attempt.
pub(crate) async fn perform(
    client: &Client,
    clock: &dyn Clock,
    policy: &RetryPolicy,
    claim: &Claim,
    message: &Message,
    endpoint: Option<&Endpoint>,
) -> Finished {
    let now = clock.now();
    let end = |status: DeliveryStatus, attempts: u32, next: Option<Timestamp>| {
        claim.outcome(status, attempts, next, clock.now())
    };
    let Some(endpoint) = endpoint else {
        return Finished::without_attempt(end(DeliveryStatus::Fail, claim.attempt_count, None));
    };
    // Its content was deleted on request, or its retention ended (the
    // purge may not have deleted it yet): there is nothing left to send.
    if message.payload_gone(now) {
        return Finished::without_attempt(end(DeliveryStatus::Fail, claim.attempt_count, None));
    }
    let response = if endpoint.disabled {
        Response {
            status: None,
            body: "endpoint is disabled".into(),
            duration: Duration::ZERO,
            error: Some(AttemptError::EndpointDisabled),
            retry_after: None,
        }
    } else {
        client
            .post(
                endpoint.url.as_str(),
                headers(endpoint, message, now),
                Bytes::from(message.payload.clone()),
            )
            .await
    };
    let succeeded = response.error.is_none()
        && response
            .status
            .is_some_and(|code| (200..300).contains(&code));
    let verdict = if endpoint.disabled {
        None
    } else if succeeded {
        Some(Verdict::Succeeded)
    } else if response.status == Some(410) {
        Some(Verdict::Gone)
    } else {
        Some(Verdict::Failed)
    };
    let attempts = claim.attempt_count.saturating_add(1);
    let attempt = Attempt {
        id: AttemptId::generate(),
        app_id: claim.app_id.clone(),
        msg_id: claim.msg_id.clone(),
        endpoint_id: claim.endpoint_id.clone(),
        url: logged_url(endpoint.url.as_str()),
        timestamp: now,
        status: if succeeded {
            DeliveryStatus::Success
        } else {
            DeliveryStatus::Fail
        },
        response_status_code: response.status.map_or(0, i32::from),
        response: response.body,
        response_duration_ms: i64::try_from(response.duration.as_millis()).unwrap_or(i64::MAX),
        trigger: claim.trigger,
        error: response.error,
    };
    let outcome = if succeeded {
        end(DeliveryStatus::Success, attempts, None)
    } else if endpoint.disabled
        || claim.trigger == TriggerType::Manual
        || verdict == Some(Verdict::Gone)
    {
        // A manual resend is one attempt; a disabled endpoint gets none
        // until recovered, nor one that answered it is gone.
        end(DeliveryStatus::Fail, attempts, None)
    } else {
        match policy.next_try(attempts, response.retry_after, clock.now()) {
            Some(next) => end(DeliveryStatus::Pending, attempts, Some(next)),
            None => end(DeliveryStatus::Fail, attempts, None),
        }
    };
    Finished {
        attempt: Some(attempt),
        outcome,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::logged_url;

    #[test]
    fn the_attempt_log_keeps_no_credentials_of_the_url() {
        assert_eq!(
            logged_url("https://user:secret@example.com/hook?to=a@b"),
            "https://example.com/hook?to=a@b"
        );
        assert_eq!(
            logged_url("https://token@example.com/"),
            "https://example.com/"
        );
        assert_eq!(
            logged_url("https://example.com/hook?to=a@b"),
            "https://example.com/hook?to=a@b"
        );
        assert_eq!(
            logged_url("https://example.com/hook"),
            "https://example.com/hook"
        );
    }
}
