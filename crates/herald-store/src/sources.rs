//! Inbound sources and what they receive: the records and the storage trait
//! of the inbound gateway.
//!
//! A source is backed by an application of its own (created with it, in the
//! same transaction), so an accepted request becomes an ordinary message of
//! that app and is fanned out to its endpoints like any other. What this
//! trait adds is what only the gateway needs: the sources themselves, the
//! capped log of received requests (raw body, headers, remote address,
//! outcome), and deduplication by the provider's event id.
//!
//! What must stay true: an accepted request's log entry, its dedupe key, its
//! message and the message's fan-out are written in one transaction, so an
//! `Ok` from [`SourceStore::accept_request`] means all of them are durable
//! and the gateway may answer the provider.

use std::fmt;

use async_trait::async_trait;
use herald_core::model::{App, Message, Metadata};
use herald_core::{AppId, InboundRequestId, MessageId, SourceId, Timestamp, Uid};

use crate::{CreatedMessage, Page, PageRequest, StoreError};

type Result<T> = std::result::Result<T, StoreError>;

/// How many requests the log keeps per source by default; older ones are
/// deleted as new ones arrive, so a flood of rejected requests cannot fill
/// the disk.
pub const REQUEST_LOG_CAP: usize = 1000;

/// An inbound source: the public URL `/in/{id}` and how requests to it are
/// verified.
#[derive(Clone, PartialEq)]
pub struct Source {
    pub id: SourceId,
    /// The application whose messages the source's requests become.
    pub app_id: AppId,
    pub uid: Option<Uid>,
    pub name: String,
    /// The Svix Ingest type name (`stripe`, `generic-webhook`, …), checked
    /// by the server before it is stored.
    pub source_type: String,
    /// The type's configuration as given (a JSON object); it holds the
    /// verifier's secret, so `Debug` leaves it out.
    pub config: serde_json::Value,
    pub metadata: Metadata,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("uid", &self.uid)
            .field("name", &self.name)
            .field("source_type", &self.source_type)
            .field("config", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// What became of a received request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    /// Verified and stored as a message, forwarded to the destinations.
    Accepted,
    /// Verified, but the provider's event id was seen within the dedupe
    /// window: acknowledged and not forwarded again.
    Duplicate,
    /// Refused (size, address, rate, signature, …); `reason` says why.
    Rejected,
}

impl RequestOutcome {
    /// The stable name shown in the API and used as a filter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Rejected => "rejected",
        }
    }

    /// Inverse of [`RequestOutcome::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Accepted, Self::Duplicate, Self::Rejected]
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }
}

/// One request as a source received it, for the request log.
#[derive(Clone, PartialEq)]
pub struct ReceivedRequest {
    pub id: InboundRequestId,
    pub source_id: SourceId,
    pub received_at: Timestamp,
    /// The peer address of the connection (`ip:port`).
    pub remote_addr: String,
    /// Every header as received, in order (values that are not UTF-8 are
    /// stored lossily).
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte.
    pub body: Vec<u8>,
    pub outcome: RequestOutcome,
    /// The status Herald answered with.
    pub status_code: u16,
    /// Why it was rejected (or `duplicate`), in words for the operator.
    pub reason: Option<String>,
    /// The message it became (for a duplicate: the message of the first).
    pub msg_id: Option<MessageId>,
}

impl fmt::Debug for ReceivedRequest {
    // Headers and body are left out: they carry the sender's credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedRequest")
            .field("id", &self.id)
            .field("source_id", &self.source_id)
            .field("outcome", &self.outcome)
            .field("status_code", &self.status_code)
            .field("reason", &self.reason)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The provider's event id of an accepted request and how long a repeat of
/// it is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeKey {
    pub event_id: String,
    pub expires_at: Timestamp,
}

/// What [`SourceStore::accept_request`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// A new event: stored as a message and fanned out.
    Forwarded(Box<CreatedMessage>),
    /// A repeat within the dedupe window: only logged; `msg_id` is the
    /// message the first one became.
    Duplicate { msg_id: MessageId },
}

/// The inbound gateway's storage. Lookups named `…_by_ref` accept an id or a
/// uid.
#[async_trait]
pub trait SourceStore: Send + Sync + 'static {
    /// Inserts `app` and `source` (whose `app_id` is `app.id`) in one
    /// transaction; `Conflict` if the source's uid is taken.
    async fn create_source(&self, source: Source, app: App) -> Result<Source>;
    /// A source by id or uid.
    async fn source_by_ref(&self, reference: &str) -> Result<Option<Source>>;
    /// Sources, oldest first.
    async fn list_sources(&self, page: PageRequest) -> Result<Page<Source>>;
    /// Replaces a source's fields; `Conflict` if the new uid is taken.
    async fn update_source(&self, source: Source) -> Result<Source>;
    /// Deletes a source, its backing app with everything the app owns, its
    /// request log and its dedupe keys.
    async fn delete_source(&self, id: &SourceId) -> Result<()>;

    /// Stores a verified request in one transaction: when `dedupe` names an
    /// event id already seen by this source and not expired at
    /// `request.received_at`, only logs the request as a duplicate;
    /// otherwise records the dedupe key, stores `message` with its fan-out
    /// (as [`crate::Store::create_message`] does) and logs the request as
    /// accepted. The log keeps the newest `log_cap` requests per source.
    async fn accept_request(
        &self,
        request: ReceivedRequest,
        message: Message,
        dedupe: Option<DedupeKey>,
        log_cap: usize,
    ) -> Result<Accepted>;
    /// Logs a request that was answered without a message (a rejection, a
    /// Slack URL check), keeping the newest `log_cap` per source.
    async fn log_request(&self, request: ReceivedRequest, log_cap: usize) -> Result<()>;
    /// The logged requests of `source`, newest first, optionally of one
    /// outcome only.
    async fn list_requests(
        &self,
        source: &SourceId,
        outcome: Option<RequestOutcome>,
        page: PageRequest,
    ) -> Result<Page<ReceivedRequest>>;
}
