//! The records Herald keeps. Wire shapes (camelCase JSON) live in the server;
//! rows live in the store crates; these are what the layers hand each other.

use std::collections::BTreeMap;

use crate::{
    AppId, AttemptId, Channel, EndpointId, EndpointUrl, EventTypeName, MessageId, SigningKey,
    TaskId, Timestamp, Uid,
};

/// Headers Herald sets on every delivery itself; an endpoint's custom
/// headers may not replace them (a tenant must not forge signatures).
pub const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
];

/// Free-form string labels a caller attaches to an object.
pub type Metadata = BTreeMap<String, String>;

/// An application: one tenant of the platform.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub id: AppId,
    pub uid: Option<Uid>,
    pub name: String,
    pub rate_limit: Option<u32>,
    pub metadata: Metadata,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What an application's "expire all portal tokens" orders leave standing
/// (`POST /auth/app/{app}/expire-all`): tokens issued before
/// `void_before` are void, those issued before `grace_before` last until
/// `grace_until`, later ones are untouched. Later orders fold into it (see
/// the stores): a grace never outlives one already running, and tokens
/// whose grace ended stay void.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortalExpiry {
    pub void_before: Timestamp,
    pub grace_before: Timestamp,
    pub grace_until: Timestamp,
}

impl PortalExpiry {
    /// The longest a portal token may live: a leaked link must not stay
    /// valid for long. An order whose `grace_before` lies further back
    /// than this covers only tokens that have expired by themselves.
    pub const TOKEN_LIFETIME_MAX: std::time::Duration =
        std::time::Duration::from_secs(30 * 24 * 3600);

    /// Whether a token issued at `issued_at` is still honoured at `now`.
    /// A token issued in the very millisecond of an order counts as issued
    /// after it, so that a link issued right after expiring the others
    /// works.
    pub fn allows(&self, issued_at: Timestamp, now: Timestamp) -> bool {
        if issued_at.0 < self.void_before.0 {
            false
        } else if issued_at.0 < self.grace_before.0 {
            now.0 < self.grace_until.0
        } else {
            true
        }
    }
}

/// A kind of event, with optional JSON Schemas keyed by version.
#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    pub name: EventTypeName,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    pub schemas: Option<serde_json::Value>,
    pub feature_flag: Option<String>,
    pub group_name: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A signing key an endpoint used before a rotation; it is still used to sign
/// until `expires_at` so receivers can roll over without dropping messages.
#[derive(Debug, Clone, PartialEq)]
pub struct RetiredKey {
    pub key: SigningKey,
    pub expires_at: Timestamp,
}

/// A URL of a tenant that receives that tenant's messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub app_id: AppId,
    pub uid: Option<Uid>,
    pub url: EndpointUrl,
    pub description: String,
    pub version: i32,
    pub disabled: bool,
    /// `None` receives every event type.
    pub filter_types: Option<Vec<EventTypeName>>,
    /// `None` receives messages on any channel (or none).
    pub channels: Option<Vec<Channel>>,
    /// Deliveries per second; `None` is unlimited.
    pub rate_limit: Option<u32>,
    pub metadata: Metadata,
    /// Extra headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    pub key: SigningKey,
    pub retired_keys: Vec<RetiredKey>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Endpoint {
    /// Whether a message of `event_type` on `channels` is meant for this
    /// endpoint by its filters (whether it is enabled is a separate question).
    pub fn subscribes_to(&self, event_type: &EventTypeName, channels: &[Channel]) -> bool {
        let type_matches = self
            .filter_types
            .as_ref()
            .is_none_or(|types| types.contains(event_type));
        let channel_matches = self
            .channels
            .as_ref()
            .is_none_or(|wanted| channels.iter().any(|channel| wanted.contains(channel)));
        type_matches && channel_matches
    }

    /// Every key a delivery sent at `now` is signed with: the current one and
    /// the retired ones still inside their grace period.
    pub fn signing_keys(&self, now: Timestamp) -> Vec<&SigningKey> {
        std::iter::once(&self.key)
            .chain(
                self.retired_keys
                    .iter()
                    .filter(|retired| retired.expires_at > now)
                    .map(|retired| &retired.key),
            )
            .collect()
    }
}

/// One event for one application.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: MessageId,
    pub app_id: AppId,
    pub event_type: EventTypeName,
    pub event_id: Option<String>,
    /// The JSON payload, serialized once at ingest and sent byte for byte.
    pub payload: String,
    pub channels: Vec<Channel>,
    pub tags: Vec<String>,
    /// Headers sent with every delivery of this message besides the
    /// endpoint's own: the original headers an inbound source passes
    /// through (`config.forwardHeaders`). Empty for API messages.
    pub headers: BTreeMap<String, String>,
    pub created_at: Timestamp,
    /// A scheduled message (`deliverAt`): its deliveries are first due
    /// then, not at once.
    pub deliver_at: Option<Timestamp>,
    /// When its payload was deleted (`DELETE …/msg/{msg}/content`, or its
    /// retention below ended): it is `{}` since, and the message is not
    /// sent again.
    pub content_expunged_at: Option<Timestamp>,
    /// When its payload is to be deleted (`payloadRetentionPeriod` or
    /// `payloadRetentionHours` at creation); `None` keeps it as long as
    /// the message.
    pub payload_expires_at: Option<Timestamp>,
}

impl Message {
    /// Whether its payload is gone at `now`: deleted on request, or past
    /// its own retention (which the background purge may not have reached
    /// yet). Nothing is sent of such a message any more.
    pub fn payload_gone(&self, now: Timestamp) -> bool {
        self.content_expunged_at.is_some()
            || self.payload_expires_at.is_some_and(|at| at.0 <= now.0)
    }

    /// When the message's deliveries are first due: at creation, or at its
    /// scheduled time when that is later.
    pub fn first_due(&self) -> Timestamp {
        match self.deliver_at {
            Some(at) if at > self.created_at => at,
            _ => self.created_at,
        }
    }

    /// Whether the message waits for a scheduled time rather than going
    /// out at once.
    pub fn is_scheduled(&self) -> bool {
        self.first_due() > self.created_at
    }
}

/// Where a delivery stands, with Svix's numeric codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Success = 0,
    Pending = 1,
    Fail = 2,
    Sending = 3,
}

impl DeliveryStatus {
    /// Svix's numeric code.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// From the numeric code.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Success),
            1 => Some(Self::Pending),
            2 => Some(Self::Fail),
            3 => Some(Self::Sending),
            _ => None,
        }
    }
}

/// What caused an attempt, with Svix's numeric codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerType {
    Scheduled = 0,
    Manual = 1,
}

impl TriggerType {
    /// Svix's numeric code.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// From the numeric code (unknown codes read as scheduled).
    pub fn from_code(code: i64) -> Self {
        if code == 1 {
            Self::Manual
        } else {
            Self::Scheduled
        }
    }
}

/// One message owed to one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub msg_id: MessageId,
    pub endpoint_id: EndpointId,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub trigger: TriggerType,
    pub updated_at: Timestamp,
}

/// Why an attempt produced no acceptable answer, when it was not an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptError {
    Timeout,
    ConnectionRefused,
    Dns,
    Tls,
    Connection,
    SsrfBlocked,
    InvalidResponse,
    EndpointDisabled,
}

impl AttemptError {
    /// Stable snake_case name shown in the attempt log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::ConnectionRefused => "connection_refused",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Connection => "connection",
            Self::SsrfBlocked => "ssrf_blocked",
            Self::InvalidResponse => "invalid_response",
            Self::EndpointDisabled => "endpoint_disabled",
        }
    }

    /// Inverse of [`AttemptError::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Timeout,
            Self::ConnectionRefused,
            Self::Dns,
            Self::Tls,
            Self::Connection,
            Self::SsrfBlocked,
            Self::InvalidResponse,
            Self::EndpointDisabled,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// One HTTP try of a delivery, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: AttemptId,
    pub app_id: AppId,
    pub msg_id: MessageId,
    pub endpoint_id: EndpointId,
    pub url: String,
    pub timestamp: Timestamp,
    /// Success or Fail only.
    pub status: DeliveryStatus,
    /// 0 when no HTTP answer came back.
    pub response_status_code: i32,
    /// The answer body, capped.
    pub response: String,
    pub response_duration_ms: i64,
    pub trigger: TriggerType,
    pub error: Option<AttemptError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_gone_once_deleted_or_past_its_retention() {
        let message = Message {
            id: MessageId::generate(),
            app_id: AppId::generate(),
            event_type: EventTypeName::parse("a.b").unwrap(),
            event_id: None,
            payload: "{}".to_owned(),
            channels: Vec::new(),
            tags: Vec::new(),
            headers: BTreeMap::new(),
            created_at: Timestamp(0),
            deliver_at: None,
            content_expunged_at: None,
            payload_expires_at: None,
        };
        assert!(!message.payload_gone(Timestamp(i64::MAX)));
        let retained = Message {
            payload_expires_at: Some(Timestamp(100)),
            ..message.clone()
        };
        assert!(!retained.payload_gone(Timestamp(99)));
        assert!(
            retained.payload_gone(Timestamp(100)),
            "even before the purge"
        );
        let deleted = Message {
            content_expunged_at: Some(Timestamp(5)),
            ..message
        };
        assert!(deleted.payload_gone(Timestamp(0)));
    }

    fn endpoint(filter: Option<&[&str]>, channels: Option<&[&str]>) -> Endpoint {
        Endpoint {
            id: EndpointId::generate(),
            app_id: AppId::generate(),
            uid: None,
            url: EndpointUrl::parse("https://example.com").unwrap(),
            description: String::new(),
            version: 1,
            disabled: false,
            filter_types: filter.map(|types| {
                types
                    .iter()
                    .map(|name| EventTypeName::parse(name).unwrap())
                    .collect()
            }),
            channels: channels.map(|names| {
                names
                    .iter()
                    .map(|name| Channel::parse(name).unwrap())
                    .collect()
            }),
            rate_limit: None,
            metadata: Metadata::new(),
            headers: BTreeMap::new(),
            key: SigningKey::generate(),
            retired_keys: Vec::new(),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn filters_select_by_type_and_channel() {
        let paid = EventTypeName::parse("invoice.paid").unwrap();
        let sent = EventTypeName::parse("invoice.sent").unwrap();
        let eu = Channel::parse("eu").unwrap();
        let us = Channel::parse("us").unwrap();

        assert!(endpoint(None, None).subscribes_to(&paid, &[]));
        assert!(endpoint(Some(&["invoice.paid"]), None).subscribes_to(&paid, &[]));
        assert!(!endpoint(Some(&["invoice.paid"]), None).subscribes_to(&sent, &[]));
        assert!(endpoint(None, Some(&["eu"])).subscribes_to(&paid, &[us.clone(), eu]));
        assert!(!endpoint(None, Some(&["eu"])).subscribes_to(&paid, &[us]));
        assert!(!endpoint(None, Some(&["eu"])).subscribes_to(&paid, &[]));
    }

    #[test]
    fn retired_keys_sign_only_during_grace() {
        let mut endpoint = endpoint(None, None);
        endpoint.retired_keys.push(RetiredKey {
            key: SigningKey::generate(),
            expires_at: Timestamp(1000),
        });
        assert_eq!(endpoint.signing_keys(Timestamp(999)).len(), 2);
        assert_eq!(endpoint.signing_keys(Timestamp(1000)).len(), 1);
    }
}

/// Work the API did for a caller over many deliveries (recovering or
/// replaying an endpoint's), kept so the id it answered can be looked up
/// later, as Svix's background tasks can.
#[derive(Debug, Clone, PartialEq)]
pub struct BackgroundTask {
    pub id: TaskId,
    pub kind: TaskKind,
    pub status: TaskStatus,
    /// What the task came to, e.g. `{"messagesSent": 3}`.
    pub data: serde_json::Map<String, serde_json::Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Which kind of work a background task is, by Svix's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    EndpointRecover,
    EndpointReplay,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndpointRecover => "endpoint.recover",
            Self::EndpointReplay => "endpoint.replay",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::EndpointRecover, Self::EndpointReplay]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// Where a background task stands, by Svix's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Running,
    Finished,
    Failed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Running, Self::Finished, Self::Failed]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}
