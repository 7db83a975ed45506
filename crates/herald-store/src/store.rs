//! The storage trait.

use std::sync::Arc;

use async_trait::async_trait;
use herald_core::model::{
    App, Attempt, BackgroundTask, Delivery, Endpoint, EventType, Message, PortalExpiry,
};
use herald_core::{AppId, AttemptId, EndpointId, MessageId, TaskId, Timestamp};
use tokio::sync::Notify;

use crate::{
    ApiToken, AttemptFilter, Claim, CreatedMessage, DeliveryBucket, DeliveryOutcome, DeliveryStats,
    HandOffTerms, HandedOff, IdempotencyClaim, IdempotencyTerms, MessageFilter, Page, PageRequest,
    QueueDepth, RateSlot, RateToken, Recorded, SourceStore, StoreError, TaskFilter,
};

type Result<T> = std::result::Result<T, StoreError>;

/// Everything Herald persists. Lookups named `…_by_ref` accept an id or a uid.
#[async_trait]
pub trait Store: SourceStore + Send + Sync + 'static {
    // Applications.

    /// Inserts a new app; `Conflict` if its uid is taken.
    async fn create_app(&self, app: App) -> Result<App>;
    /// An app by id or uid.
    async fn app_by_ref(&self, reference: &str) -> Result<Option<App>>;
    /// Apps, oldest first.
    async fn list_apps(&self, page: PageRequest) -> Result<Page<App>>;
    /// Replaces an app's fields; `Conflict` if the new uid is taken.
    async fn update_app(&self, app: App) -> Result<App>;
    /// Deletes an app with everything it owns.
    async fn delete_app(&self, id: &AppId) -> Result<()>;

    // Event types.

    /// Inserts an event type; `Conflict` if the name exists.
    async fn create_event_type(&self, event_type: EventType) -> Result<EventType>;
    /// An event type by name.
    async fn event_type(&self, name: &str) -> Result<Option<EventType>>;
    /// Event types by name; archived ones only when asked.
    async fn list_event_types(
        &self,
        page: PageRequest,
        include_archived: bool,
    ) -> Result<Page<EventType>>;
    /// Replaces an event type's fields.
    async fn update_event_type(&self, event_type: EventType) -> Result<EventType>;
    /// Removes an event type for good.
    async fn delete_event_type(&self, name: &str) -> Result<()>;

    // Endpoints.

    /// Inserts an endpoint; `Conflict` if its uid is taken within the app.
    async fn create_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint>;
    /// An endpoint of `app` by id or uid.
    async fn endpoint_by_ref(&self, app: &AppId, reference: &str) -> Result<Option<Endpoint>>;
    /// Endpoints of `app`, oldest first.
    async fn list_endpoints(&self, app: &AppId, page: PageRequest) -> Result<Page<Endpoint>>;
    /// Replaces an endpoint's fields (URL, filters, secret, headers…).
    async fn update_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint>;
    /// Deletes an endpoint; its unfinished deliveries end as failed in the
    /// same transaction, so nothing keeps retrying a target that is gone.
    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId, now: Timestamp) -> Result<()>;

    // Messages.

    /// Stores a message and one pending delivery (due at `message.created_at`)
    /// per enabled endpoint of its app whose filters match, in one
    /// transaction. With an idempotency key already used in this app, stores
    /// nothing and answers the first message.
    async fn create_message(
        &self,
        message: Message,
        idempotency_key: Option<String>,
    ) -> Result<CreatedMessage>;
    /// Like [`Store::create_message`], and leases to the caller at once,
    /// until `terms.lease_until`, up to `terms.max` of the new deliveries:
    /// those to endpoints outside `terms.busy` with nothing else due, so a
    /// hand-off never overtakes a backlog. Answers them with their
    /// endpoints. A backend may lease none (the default); the engine then
    /// claims them as usual.
    async fn create_message_handing_off(
        &self,
        message: Message,
        idempotency_key: Option<String>,
        terms: HandOffTerms,
    ) -> Result<(CreatedMessage, Vec<HandedOff>)> {
        let _ = terms;
        let created = self.create_message(message, idempotency_key).await?;
        Ok((created, Vec::new()))
    }
    /// Stores a message with a single delivery, to `endpoint` only (a test
    /// event sent from the API), whatever the endpoint's filters say.
    async fn create_message_for_endpoint(
        &self,
        message: Message,
        endpoint: &EndpointId,
    ) -> Result<CreatedMessage>;
    /// Deletes the payload of message `msg` of `app` (it becomes `{}`,
    /// marked as deleted at `now`); whether there was such a message.
    async fn expunge_content(&self, app: &AppId, msg: &MessageId, now: Timestamp) -> Result<bool>;

    /// Deletes, as [`Store::expunge_content`] does, up to `limit` payloads
    /// whose own retention (`Message::payload_expires_at`) ended by `now`;
    /// answers how many. The caller repeats until none is left.
    async fn expunge_expired_payloads(&self, now: Timestamp, limit: usize) -> Result<u64>;
    /// A message of `app` by id or `eventId`.
    async fn message_by_ref(&self, app: &AppId, reference: &str) -> Result<Option<Message>>;
    /// Messages of `app`, newest first.
    async fn list_messages(
        &self,
        app: &AppId,
        filter: MessageFilter,
        page: PageRequest,
    ) -> Result<Page<Message>>;

    /// Messages of `app` with at least one delivery in `status`, newest
    /// first, each once, also matching `filter`. Backends drive this from
    /// an index on the deliveries of an app by status, so finding the few
    /// failed messages among many delivered ones reads only the failed.
    async fn list_messages_with_status(
        &self,
        app: &AppId,
        status: herald_core::model::DeliveryStatus,
        filter: MessageFilter,
        page: PageRequest,
    ) -> Result<Page<Message>>;

    // Deliveries and attempts.

    /// The deliveries of one message, one per endpoint it was fanned out to.
    async fn deliveries_of_message(&self, app: &AppId, msg: &MessageId) -> Result<Vec<Delivery>>;
    /// The messages fanned out to `endpoint`, newest first, each with its
    /// delivery there (optionally only those in `status`).
    async fn list_endpoint_messages(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        status: Option<herald_core::model::DeliveryStatus>,
        filter: MessageFilter,
        page: PageRequest,
    ) -> Result<Page<(Message, Delivery)>>;
    /// Attempts of `app` matching `filter`, newest first.
    async fn list_attempts(
        &self,
        app: &AppId,
        filter: AttemptFilter,
        page: PageRequest,
    ) -> Result<Page<Attempt>>;
    /// One attempt of a message of `app`.
    async fn attempt(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> Result<Option<Attempt>>;
    /// Deletes the response body logged with attempt `id` of `msg` (it
    /// reads empty after); whether there was such an attempt.
    async fn expunge_attempt_content(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> Result<bool>;
    /// Queues one manual attempt of `msg` to `endpoint`, creating the
    /// delivery if the message was never fanned out to it. If an attempt is
    /// in flight, the manual one follows it; a delivery still pending keeps
    /// its retry schedule and is only made due now.
    async fn resend(
        &self,
        app: &AppId,
        msg: &MessageId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> Result<()>;
    /// Queues a delivery to `endpoint`, due at `now`, for every message of
    /// its app created in `[since, until)` that it subscribes to and that
    /// has no delivery to it (sent before it existed, or before it
    /// subscribed); answers how many.
    async fn replay_missing(
        &self,
        endpoint: &Endpoint,
        since: Timestamp,
        until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<u64>;
    /// Re-queues the failed deliveries of `endpoint` whose message was
    /// created in `[since, until)`; answers how many.
    async fn recover(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
        until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<u64>;
    /// Delivery counts of `endpoint` by status, for messages created in
    /// `[since, until)`.
    async fn endpoint_stats(
        &self,
        endpoint: &EndpointId,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<DeliveryStats>;

    /// Deliveries of the current endpoints of `app` (or of `endpoint`
    /// alone), by the creation time of their message, counted by outcome
    /// in buckets of `bucket_millis` from `since` until before `until`;
    /// buckets without deliveries are left out, the rest come oldest first.
    async fn delivery_histogram(
        &self,
        app: &AppId,
        endpoint: Option<&EndpointId>,
        since: Timestamp,
        until: Timestamp,
        bucket_millis: i64,
    ) -> Result<Vec<DeliveryBucket>>;

    // The delivery queue.

    /// Leases up to `limit` pending deliveries due at `now` (oldest due
    /// first), at most `per_endpoint` of them to one endpoint, until
    /// `lease_until`, skipping `saturated` endpoints; leased deliveries show
    /// as sending. The per-endpoint cap keeps one busy endpoint from filling
    /// a batch whose leases would run out while its attempts queue.
    async fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
        per_endpoint: usize,
        saturated: &[EndpointId],
        lease_until: Timestamp,
    ) -> Result<Vec<Claim>>;
    /// When the earliest pending delivery is due, if any.
    async fn next_due_at(&self) -> Result<Option<Timestamp>>;
    /// The message and (if it still exists) endpoint a claim is for, read at
    /// send time so endpoint edits apply to queued deliveries.
    async fn claim_target(&self, claim: &Claim) -> Result<Option<(Message, Option<Endpoint>)>>;
    /// Logs `attempt` (if one was made) and moves its delivery to `outcome`
    /// in one transaction. The delivery moves only if it still holds the
    /// outcome's lease: a worker whose lease expired (and whose delivery was
    /// claimed again) or whose endpoint was deleted meanwhile logs its
    /// attempt but changes nothing else. A resend asked for while the
    /// attempt ran is queued now instead of the outcome. Answers which of
    /// these happened, so nothing is announced for an outcome that did not
    /// take effect.
    async fn record_attempt(
        &self,
        attempt: Option<Attempt>,
        outcome: DeliveryOutcome,
    ) -> Result<Recorded>;
    /// Returns leased deliveries to pending: those whose lease ended before
    /// `now`, or every lease when `all` (a single node starting up owns them
    /// all). Answers how many.
    async fn release_leases(&self, now: Timestamp, all: bool) -> Result<u64>;
    /// Whether other nodes may be using the same database at once. A node
    /// of a shared store must never release leases that have not run out:
    /// they may belong to a live node in the middle of an attempt.
    fn is_shared(&self) -> bool {
        false
    }
    /// Signalled when another node committed work that may be due now, so
    /// an idle engine wakes without polling; `None` when no other node can
    /// add work (the engine's own wake-ups then cover everything).
    fn remote_wakeups(&self) -> Option<Arc<Notify>> {
        None
    }

    /// Takes the next delivery slot of `endpoint`, rate-limited to
    /// `per_second`, for every node using the store at once: `now`, or one
    /// interval (1 s / `per_second`) after the slot taken before it if that
    /// is later — unless that is after `horizon_micros`, when nothing is
    /// taken and the answer says when the next slot is. `None` when one
    /// node owns the store: the engine spaces attempts in its memory.
    async fn take_rate_slot(
        &self,
        endpoint: &EndpointId,
        per_second: u32,
        now_micros: i64,
        horizon_micros: i64,
    ) -> Result<Option<RateSlot>> {
        let _ = (endpoint, per_second, now_micros, horizon_micros);
        Ok(None)
    }

    /// Takes a token from the rate bucket `key` — `rate` tokens a second,
    /// holding at most one second's worth — for every node using the store
    /// at once. `None` when one node owns the store: the buckets are then
    /// kept in its memory.
    async fn take_rate_token(
        &self,
        key: &str,
        rate: u32,
        now_micros: i64,
    ) -> Result<Option<RateToken>> {
        let _ = (key, rate, now_micros);
        Ok(None)
    }

    // Endpoint health and housekeeping.

    /// Turns `endpoint` of `app` off and nothing else, so an edit made at
    /// the same moment is kept; answers the endpoint as stored if this call
    /// disabled it, `None` if it was already off or is gone.
    async fn disable_endpoint(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> Result<Option<Endpoint>>;

    /// Records a failure of `endpoint` at `failure_at` (`Some`), or ends
    /// its failure streak (`None`, a success). A running streak keeps its
    /// start unless no failure was recorded for longer than `quiet_gap`
    /// before this one (an endpoint that failed once and then had no
    /// traffic for days is not "failing for days"); then a new streak
    /// starts. Answers when the current streak began (`None` once ended).
    /// Kept in the database because "failing for five days" must outlast
    /// restarts; the engine writes it only when an endpoint changes state
    /// and about once a minute while it keeps failing.
    async fn set_endpoint_failing(
        &self,
        endpoint: &EndpointId,
        failure_at: Option<Timestamp>,
        quiet_gap: std::time::Duration,
    ) -> Result<Option<Timestamp>>;
    /// Deletes, at most `limit` rows per table per call, attempts logged
    /// before `cutoff` and messages created before it that have nothing left
    /// to deliver (with their deliveries); answers how many rows went. Small
    /// batches keep each write short so delivery never stalls behind it.
    async fn purge_before(&self, cutoff: Timestamp, limit: usize) -> Result<u64>;
    /// Pending deliveries per endpoint, deepest queue first, at most `limit`
    /// endpoints (the backlog gauges of `/metrics`). The age is that of the
    /// oldest message owed at `now`: a first attempt put off past `now` (a
    /// scheduled message, or one held back by a rate limit or an open
    /// circuit) does not age the backlog.
    async fn queue_depths(&self, limit: usize, now: Timestamp) -> Result<Vec<QueueDepth>>;

    // Portal tokens are signed, not stored; expiring them is recorded per
    // app, for all its tokens or for the tokens of named sessions.

    /// Voids `app`'s portal tokens issued before `now` (all of them, or
    /// with `sessions` those issued for one of these sessions), after a
    /// grace until `grace_until` (no later than a grace already running
    /// for the same tokens; a token whose earlier grace ended stays void).
    async fn expire_portal_tokens(
        &self,
        app: &AppId,
        sessions: &[String],
        now: Timestamp,
        grace_until: Timestamp,
    ) -> Result<()>;
    /// Forgets, at most `limit` at a time, the orders whose `grace_before`
    /// is not after `cutoff` (now less the longest a token lives: every
    /// token they cover has expired by itself); answers how many went.
    async fn forget_portal_expiry_before(&self, cutoff: Timestamp, limit: usize) -> Result<u64>;
    /// What expiring `app`'s portal tokens left standing for a token of
    /// `session` (or of none): the orders on all the app's tokens and on
    /// that session's, those that were ever given. A token stands if every
    /// one of them allows it.
    async fn portal_expiry(&self, app: &AppId, session: Option<&str>) -> Result<Vec<PortalExpiry>>;

    // API tokens (stored as SHA-256 hashes, never in clear).

    /// Records a token (a hash already recorded is left as it is).
    async fn add_api_token(&self, token: &ApiToken) -> Result<()>;
    /// Whether a token hash was recorded.
    async fn api_token_exists(&self, hash: &str) -> Result<bool>;
    /// How many tokens exist (zero on a fresh database).
    async fn api_token_count(&self) -> Result<u64>;
    /// Every recorded token, oldest first.
    async fn list_api_tokens(&self) -> Result<Vec<ApiToken>>;
    /// Forgets a token hash; whether there was one.
    async fn remove_api_token(&self, hash: &str) -> Result<bool>;

    // Idempotency keys of API requests other than message creation (which
    // keeps its key with the message).

    /// Claims `key` for a request whose content hashes to `fingerprint`;
    /// `claim` tells this claim from a later one that takes the key over.
    async fn claim_idempotency_key(
        &self,
        key: &str,
        fingerprint: &str,
        claim: &str,
        terms: IdempotencyTerms,
    ) -> Result<IdempotencyClaim>;
    /// Stores the answer of the request that claimed `key` as `claim`
    /// (nothing if the key was taken over since).
    async fn complete_idempotency_key(
        &self,
        key: &str,
        claim: &str,
        status: u16,
        body: Vec<u8>,
    ) -> Result<()>;
    /// Gives `key` up, if `claim` still holds it (its request failed in a
    /// way worth retrying).
    async fn release_idempotency_key(&self, key: &str, claim: &str) -> Result<()>;

    // Background tasks.

    /// Stores a task, or its new state if its id is stored already.
    async fn record_task(&self, task: &BackgroundTask) -> Result<()>;
    /// A task by id.
    async fn task_by_id(&self, id: &TaskId) -> Result<Option<BackgroundTask>>;
    /// Tasks, newest first unless the page asks otherwise.
    async fn list_tasks(
        &self,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<BackgroundTask>>;

    // Keys of this installation.

    /// The secret stored under `name`, storing `candidate` first if there
    /// is none. Every node sharing the database gets the same answer (the
    /// first stored wins), so what one node signs with it (console
    /// sessions, portal links) every other node accepts, also after a
    /// restart.
    async fn instance_key(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>>;
}
