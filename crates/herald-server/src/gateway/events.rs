//! What a provider's request is about: its event type (a valid Herald
//! event type name) and the provider's own event id (for deduplication),
//! read from the payload or headers the way each provider documents them.

use herald_core::EventTypeName;
use herald_signing::verifiers::Headers;
use serde_json::Value;

use super::source_config::{Provider, SourceSettings};

/// The event type of a request nothing names a type for.
pub(crate) const FALLBACK_EVENT_TYPE: &str = "webhook.received";

/// Longest provider event id kept; a longer one is not used for dedupe (no
/// provider sends one, and the message `eventId` has the same limit).
const MAX_EVENT_ID: usize = 256;

/// An event's type and, if the provider gives one, its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventFacts {
    pub(crate) event_type: EventTypeName,
    pub(crate) event_id: Option<String>,
}

fn text<'a>(body: Option<&'a Value>, pointer: &str) -> Option<&'a str> {
    body?.pointer(pointer)?.as_str()
}

/// Reads the facts of a verified request; `body` is its JSON, if it is JSON.
pub(crate) fn extract(
    settings: &SourceSettings,
    headers: &dyn Headers,
    body: Option<&Value>,
) -> EventFacts {
    let (event_type, event_id) = match settings.provider {
        Provider::Stripe => (
            text(body, "/type").map(str::to_owned),
            text(body, "/id").map(str::to_owned),
        ),
        Provider::GitHub => {
            // `issues` + action `opened` → `issues.opened`: subscribers can
            // filter on the action, as GitHub's own docs name events.
            let event = headers
                .get("X-GitHub-Event")
                .map(|event| match text(body, "/action") {
                    Some(action) => format!("{event}.{action}"),
                    None => event.to_owned(),
                });
            (event, headers.get("X-GitHub-Delivery").map(str::to_owned))
        }
        Provider::Slack => (
            text(body, "/event/type")
                .or_else(|| text(body, "/type"))
                .map(str::to_owned),
            text(body, "/event_id").map(str::to_owned),
        ),
        Provider::Shopify => (
            headers.get("X-Shopify-Topic").map(str::to_owned),
            headers.get("X-Shopify-Webhook-Id").map(str::to_owned),
        ),
        Provider::StandardWebhooks => (
            text(body, "/type").map(str::to_owned),
            headers
                .get("webhook-id")
                .or_else(|| headers.get("svix-id"))
                .map(str::to_owned),
        ),
        Provider::Generic => (
            settings
                .event_type_header
                .as_deref()
                .and_then(|name| headers.get(name))
                .or_else(|| text(body, "/type"))
                .map(str::to_owned),
            settings
                .event_id_header
                .as_deref()
                .and_then(|name| headers.get(name))
                .map(str::to_owned),
        ),
    };
    EventFacts {
        event_type: sanitize(event_type.as_deref().unwrap_or(FALLBACK_EVENT_TYPE)),
        event_id: event_id.filter(|id| !id.is_empty() && id.len() <= MAX_EVENT_ID),
    }
}

/// Makes a provider's event name a valid event type name: `/` and `:`
/// become `.` (`orders/create` → `orders.create`), any other character
/// outside letters, digits, `-`, `_`, `.` becomes `_`; too long is cut.
pub(crate) fn sanitize(name: &str) -> EventTypeName {
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            '/' | ':' => '.',
            c if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') => c,
            _ => '_',
        })
        .take(256)
        .collect();
    EventTypeName::parse(&cleaned).unwrap_or_else(|_| {
        EventTypeName::parse(FALLBACK_EVENT_TYPE).expect("the fallback name is valid")
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::gateway::source_config::parse;

    fn facts(
        source_type: &str,
        config: Value,
        headers: &[(&str, &str)],
        body: Value,
    ) -> EventFacts {
        let settings = parse(source_type, &config).expect("config parses");
        extract(&settings, &headers, Some(&body))
    }

    #[test]
    fn each_provider_names_its_event_its_own_way() {
        let stripe = facts(
            "stripe",
            json!({"secret": "s"}),
            &[],
            json!({"id": "evt_1", "type": "invoice.paid"}),
        );
        assert_eq!(stripe.event_type.as_str(), "invoice.paid");
        assert_eq!(stripe.event_id.as_deref(), Some("evt_1"));

        let github = facts(
            "github",
            json!({"secret": "s"}),
            &[("X-GitHub-Event", "issues"), ("X-GitHub-Delivery", "d-1")],
            json!({"action": "opened"}),
        );
        assert_eq!(github.event_type.as_str(), "issues.opened");
        assert_eq!(github.event_id.as_deref(), Some("d-1"));

        let slack = facts(
            "slack",
            json!({"secret": "s"}),
            &[],
            json!({"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_mention"}}),
        );
        assert_eq!(slack.event_type.as_str(), "app_mention");
        assert_eq!(slack.event_id.as_deref(), Some("Ev1"));

        let shopify = facts(
            "shopify",
            json!({"secret": "s"}),
            &[
                ("X-Shopify-Topic", "orders/create"),
                ("X-Shopify-Webhook-Id", "w-1"),
            ],
            json!({}),
        );
        assert_eq!(shopify.event_type.as_str(), "orders.create");
        assert_eq!(shopify.event_id.as_deref(), Some("w-1"));

        let generic = facts("generic-webhook", json!({}), &[], json!({"x": 1}));
        assert_eq!(generic.event_type.as_str(), FALLBACK_EVENT_TYPE);
        assert_eq!(generic.event_id, None);

        let by_header = facts(
            "generic-webhook",
            json!({"eventTypeHeader": "X-Event", "eventIdHeader": "X-Id"}),
            &[("x-event", "build finished"), ("x-id", "42")],
            json!({"type": "ignored"}),
        );
        assert_eq!(by_header.event_type.as_str(), "build_finished");
        assert_eq!(by_header.event_id.as_deref(), Some("42"));
    }

    #[test]
    fn unusable_names_fall_back() {
        assert_eq!(sanitize("").as_str(), FALLBACK_EVENT_TYPE);
        assert_eq!(sanitize("a:b/c d").as_str(), "a.b.c_d");
    }
}
