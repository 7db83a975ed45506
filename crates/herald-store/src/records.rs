//! Inputs and outputs of [`crate::Store`] calls that are not domain records.

use herald_core::model::{DeliveryStatus, Endpoint, Message, TriggerType};
use herald_core::{AppId, EndpointId, MessageId, Timestamp};

/// The answer to a message create.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedMessage {
    pub message: Message,
    /// False when an earlier create with the same idempotency key answered.
    pub is_new: bool,
    /// How many deliveries the fan-out queued (0 for a repeat).
    pub deliveries: usize,
}

/// Filters of a message list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageFilter {
    pub event_types: Vec<String>,
    pub channel: Option<String>,
    pub tag: Option<String>,
    pub before: Option<Timestamp>,
    pub after: Option<Timestamp>,
}

/// Filters of an attempt list; `msg_id` and/or `endpoint_id` scope it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttemptFilter {
    pub msg_id: Option<MessageId>,
    pub endpoint_id: Option<EndpointId>,
    pub status: Option<DeliveryStatus>,
    /// Only answers in this class: 0 (no answer), 100, 200, 300, 400, 500.
    pub status_code_class: Option<i32>,
    pub event_types: Vec<String>,
    /// Only attempts of messages on this channel, or with this tag.
    pub channel: Option<String>,
    pub tag: Option<String>,
    pub before: Option<Timestamp>,
    pub after: Option<Timestamp>,
}

impl AttemptFilter {
    /// Whether the filter reads the attempts' messages.
    pub fn needs_messages(&self) -> bool {
        !self.event_types.is_empty() || self.channel.is_some() || self.tag.is_some()
    }

    /// The response codes `status_code_class` stands for, as `[low, high)`.
    pub fn status_code_range(&self) -> Option<(i32, i32)> {
        self.status_code_class.map(|class| match class {
            0 => (0, 1),
            class => (class, class + 100),
        })
    }
}

/// Delivery counts of one endpoint by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    pub success: u64,
    pub pending: u64,
    pub sending: u64,
    pub fail: u64,
}

/// Delivery counts of messages created in one time bucket (the console's
/// chart): `start` is the bucket's first instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryBucket {
    pub start: Timestamp,
    pub succeeded: u64,
    pub failed: u64,
    /// Pending or being sent.
    pub waiting: u64,
}

/// What the engine can take straight from a message create (a hand-off):
/// the new deliveries are leased in the create's transaction, and neither
/// claimed nor read again before their first attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct HandOffTerms {
    /// Most deliveries the engine takes.
    pub max: usize,
    /// Endpoints it takes nothing for (they have enough work queued).
    pub busy: Vec<EndpointId>,
    /// When the leases of what it takes run out.
    pub lease_until: Timestamp,
}

/// A delivery leased to the engine by a message create, with its endpoint
/// as the create's transaction saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct HandedOff {
    pub claim: Claim,
    pub endpoint: Endpoint,
}

/// A delivery leased to this node for one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub app_id: AppId,
    pub msg_id: MessageId,
    pub endpoint_id: EndpointId,
    /// Attempts made before this one.
    pub attempt_count: u32,
    pub trigger: TriggerType,
    /// When this claim's lease runs out.
    pub lease_until: Timestamp,
    /// The backend's fencing token for this lease, different for every claim
    /// of the delivery on any node: its outcome is only written while the
    /// delivery still carries this token (fencing a late or duplicate worker).
    pub lease_token: i64,
}

impl Claim {
    /// The delivery's new state after working this claim.
    pub fn outcome(
        &self,
        status: DeliveryStatus,
        attempt_count: u32,
        next_attempt_at: Option<Timestamp>,
        updated_at: Timestamp,
    ) -> DeliveryOutcome {
        DeliveryOutcome {
            msg_id: self.msg_id.clone(),
            endpoint_id: self.endpoint_id.clone(),
            status,
            attempt_count,
            next_attempt_at,
            updated_at,
            lease_token: self.lease_token,
        }
    }
}

/// The new state of a delivery after an attempt (or after giving up on one).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryOutcome {
    pub msg_id: MessageId,
    pub endpoint_id: EndpointId,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    /// `None` once no retry is left.
    pub next_attempt_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// The lease of the claim this outcome ends (see [`Claim::lease_token`]).
    pub lease_token: i64,
}

/// A delivery slot of a rate-limited endpoint, in microseconds since the
/// Unix epoch (a millisecond is too coarse for rates above 1,000/s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSlot {
    pub at_micros: i64,
    /// Whether the slot was taken for the caller; `false` when the next
    /// free slot lies past the horizon asked for, and nothing was taken.
    pub taken: bool,
}

/// What taking a token from a shared rate bucket came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateToken {
    Taken,
    /// The bucket is empty; the next token comes in this many
    /// microseconds.
    Empty {
        wait_micros: i64,
    },
}

/// The backlog of one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDepth {
    pub app_id: AppId,
    pub endpoint_id: EndpointId,
    /// Deliveries waiting for an attempt (pending, not leased).
    pub pending: u64,
    /// When the oldest of them became owed (its message's creation, or
    /// its scheduled time): the backlog's age.
    pub oldest_created_at: Timestamp,
}

/// What [`crate::Store::record_attempt`] did with an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The delivery moved to the outcome.
    Applied,
    /// A resend asked for during the attempt was queued instead.
    ResendQueued,
    /// The claim's lease was gone (taken over, or the delivery ended): only
    /// the attempt was logged.
    Stale,
}

/// An API token as stored: never the token itself, only its SHA-256, and
/// what lets an operator tell tokens apart when listing or revoking them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Hex SHA-256 of the token.
    pub hash: String,
    /// What the token is for, as given at creation (`ci`, `billing`).
    pub name: Option<String>,
    /// The token's last characters, to recognise a token one holds.
    pub hint: Option<String>,
    pub created_at: Timestamp,
}

/// Which background tasks a list answers; `None` matches every value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub status: Option<herald_core::model::TaskStatus>,
    pub kind: Option<herald_core::model::TaskKind>,
}

/// The message ids a replay of the window `[since, until)` walks, as
/// `(after, before)`: a minute wider than the window on each side, since a
/// message's id and its creation time can differ a little (the creation
/// time decides), and bounded above so that the walk ends with the window
/// instead of reading every later message. Ids sort by creation time.
pub fn replay_id_range(since: Timestamp, until: Option<Timestamp>) -> (String, String) {
    const SLACK_MS: i64 = 60_000;
    let after = MessageId::first_at(Timestamp(since.0.saturating_sub(SLACK_MS))).to_string();
    let before = match until {
        Some(until) => MessageId::first_at(Timestamp(until.0.saturating_add(SLACK_MS))).to_string(),
        // Sorts after every id: `~` comes after the digits and letters.
        None => format!("{}~", MessageId::PREFIX),
    };
    (after, before)
}

/// What a request carrying an `idempotency-key` may do, as the store
/// decided atomically (so that two nodes, or a retry racing the original,
/// agree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// First use of the key (or its earlier use expired or was abandoned):
    /// run the request, then complete or release the key.
    Fresh,
    /// The request ran before: answer what it answered.
    Replay { status: u16, body: Vec<u8> },
    /// The same request is running right now.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

/// How long idempotency keys are kept, and when a request that claimed one
/// and never finished (a crash) is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyTerms {
    pub now: Timestamp,
    /// Answers stored before this are forgotten: the key is fresh again.
    pub expired_before: Timestamp,
    /// Claims without an answer made before this were abandoned.
    pub abandoned_before: Timestamp,
}

/// The keys an "expire all portal tokens" order is kept under: each
/// session it names once, in order (so that concurrent orders lock rows in
/// the same order), or '' for every token of the app when it names none.
pub fn portal_expiry_scopes(sessions: &[String]) -> Vec<String> {
    let mut scopes = sessions.to_vec();
    scopes.sort_unstable();
    scopes.dedup();
    if scopes.is_empty() {
        scopes.push(String::new());
    }
    scopes
}
