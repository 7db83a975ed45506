//! [`Store`] for [`SqliteStore`]: writes go to the group-commit writer, reads
//! to the reader pool. Arguments are moved into the closures because both
//! run on other threads.

use async_trait::async_trait;
use herald_core::model::{
    App, Attempt, BackgroundTask, Delivery, Endpoint, EventType, Message, PortalExpiry,
};
use herald_core::{AppId, AttemptId, EndpointId, MessageId, TaskId, Timestamp};
use herald_store::{
    replay_id_range, ApiToken, AttemptFilter, Claim, CreatedMessage, DeliveryBucket,
    DeliveryOutcome, DeliveryStats, HandOffTerms, HandedOff, IdempotencyClaim, IdempotencyTerms,
    MessageFilter, Page, PageRequest, QueueDepth, Recorded, Store, StoreError, TaskFilter,
};

use crate::{
    catalog, housekeeping, idempotency, messages, payload, queue, tasks, tokens, SqliteStore,
};

type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
impl Store for SqliteStore {
    async fn create_app(&self, app: App) -> Result<App> {
        self.writer
            .write(move |connection| catalog::insert_app(connection, &app).map(|()| app))
            .await
    }

    async fn app_by_ref(&self, reference: &str) -> Result<Option<App>> {
        if let Some(app) = self.caches.app(reference) {
            return Ok(Some(App::clone(&app)));
        }
        let generation = self.caches.app_generation();
        let key = reference.to_owned();
        let found = self
            .readers
            .read(move |connection| catalog::app_by_ref(connection, &key))
            .await?;
        if let Some(app) = &found {
            self.caches.store_app(reference, app.clone(), generation);
        }
        Ok(found)
    }

    async fn list_apps(&self, page: PageRequest) -> Result<Page<App>> {
        self.readers
            .read(move |connection| catalog::list_apps(connection, &page))
            .await
    }

    async fn update_app(&self, app: App) -> Result<App> {
        let caches = self.caches.clone();
        let result = self
            .writer
            .write(move |connection| {
                caches.apps_changed();
                catalog::update_app(connection, &app).map(|()| app)
            })
            .await;
        // Again after the commit (see `delete_app`).
        self.caches.apps_changed();
        result
    }

    async fn delete_app(&self, id: &AppId) -> Result<()> {
        let id = id.clone();
        let caches = self.caches.clone();
        let result = self
            .writer
            .write(move |connection| {
                caches.apps_changed();
                caches.endpoints_changed();
                caches.messages_deleted();
                catalog::delete_app(connection, &id)
            })
            .await;
        // Again after the commit: a reader that fetched the old rows between
        // the first invalidation and the commit cannot have its copy kept.
        self.caches.apps_changed();
        self.caches.endpoints_changed();
        self.caches.messages_deleted();
        result
    }

    async fn create_event_type(&self, event_type: EventType) -> Result<EventType> {
        self.writer
            .write(move |connection| {
                catalog::insert_event_type(connection, &event_type).map(|()| event_type)
            })
            .await
    }

    async fn event_type(&self, name: &str) -> Result<Option<EventType>> {
        let name = name.to_owned();
        self.readers
            .read(move |connection| catalog::event_type(connection, &name))
            .await
    }

    async fn list_event_types(
        &self,
        page: PageRequest,
        include_archived: bool,
    ) -> Result<Page<EventType>> {
        self.readers
            .read(move |connection| catalog::list_event_types(connection, &page, include_archived))
            .await
    }

    async fn update_event_type(&self, event_type: EventType) -> Result<EventType> {
        self.writer
            .write(move |connection| {
                catalog::update_event_type(connection, &event_type).map(|()| event_type)
            })
            .await
    }

    async fn delete_event_type(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.writer
            .write(move |connection| catalog::delete_event_type(connection, &name))
            .await
    }

    async fn create_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint> {
        self.writer
            .write(move |connection| {
                catalog::insert_endpoint(connection, &endpoint).map(|()| endpoint)
            })
            .await
    }

    async fn endpoint_by_ref(&self, app: &AppId, reference: &str) -> Result<Option<Endpoint>> {
        let (app, reference) = (app.clone(), reference.to_owned());
        self.readers
            .read(move |connection| catalog::endpoint_by_ref(connection, &app, &reference))
            .await
    }

    async fn list_endpoints(&self, app: &AppId, page: PageRequest) -> Result<Page<Endpoint>> {
        let app = app.clone();
        self.readers
            .read(move |connection| catalog::list_endpoints(connection, &app, &page))
            .await
    }

    async fn update_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint> {
        let caches = self.caches.clone();
        let result = self
            .writer
            .write(move |connection| {
                caches.endpoints_changed();
                catalog::update_endpoint(connection, &endpoint).map(|()| endpoint)
            })
            .await;
        // Again after the commit (see `delete_app`).
        self.caches.endpoints_changed();
        result
    }

    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId, now: Timestamp) -> Result<()> {
        let (app, id) = (app.clone(), id.clone());
        let caches = self.caches.clone();
        let result = self
            .writer
            .write(move |connection| {
                caches.endpoints_changed();
                catalog::delete_endpoint(connection, &app, &id, now)
            })
            .await;
        self.caches.endpoints_changed();
        result
    }

    async fn create_message(
        &self,
        message: Message,
        idempotency_key: Option<String>,
    ) -> Result<CreatedMessage> {
        let packed = payload::pack(&message.payload);
        let created = self
            .writer
            .write_repeatable(move |connection| {
                messages::create_message(
                    connection,
                    (&message, &packed),
                    idempotency_key.as_deref(),
                    messages::FanOut::Matching,
                )
            })
            .await?;
        if created.is_new && created.deliveries > 0 {
            self.caches.store_message(created.message.clone());
        }
        Ok(created)
    }

    async fn create_message_handing_off(
        &self,
        message: Message,
        idempotency_key: Option<String>,
        terms: HandOffTerms,
    ) -> Result<(CreatedMessage, Vec<HandedOff>)> {
        let caches = self.caches.clone();
        let packed = payload::pack(&message.payload);
        let (created, handed) = self
            .writer
            .write_repeatable(move |connection| {
                // Endpoints as this transaction sees them: the cache holds
                // only endpoints unchanged since they were read.
                let mut resolve = |connection: &rusqlite::Connection, id: &EndpointId| match caches
                    .endpoint(id)
                {
                    Some(endpoint) => Some(Endpoint::clone(&endpoint)),
                    None => catalog::endpoint_by_id(connection, id).ok().flatten(),
                };
                messages::create_message_handing_off(
                    connection,
                    (&message, &packed),
                    idempotency_key.as_deref(),
                    &terms,
                    &mut resolve,
                )
            })
            .await?;
        if created.is_new && created.deliveries > 0 {
            self.caches.store_message(created.message.clone());
        }
        Ok((created, handed))
    }

    async fn create_message_for_endpoint(
        &self,
        message: Message,
        endpoint: &EndpointId,
    ) -> Result<CreatedMessage> {
        let endpoint = endpoint.clone();
        let packed = payload::pack(&message.payload);
        self.writer
            .write_repeatable(move |connection| {
                messages::create_message(
                    connection,
                    (&message, &packed),
                    None,
                    messages::FanOut::Only(&endpoint),
                )
            })
            .await
    }

    async fn expunge_content(&self, app: &AppId, msg: &MessageId, now: Timestamp) -> Result<bool> {
        let (app, id) = (app.clone(), msg.clone());
        let expunged = self
            .writer
            .write(move |connection| messages::expunge_content(connection, &app, &id, now))
            .await?;
        // After the commit, so no delivery reads the old payload from here.
        self.caches.forget_message(msg);
        Ok(expunged)
    }

    async fn expunge_expired_payloads(&self, now: Timestamp, limit: usize) -> Result<u64> {
        let expunged = self
            .writer
            .write(move |connection| messages::expunge_expired_payloads(connection, now, limit))
            .await?;
        // After the commit, as for one message above.
        self.caches.forget_messages(&expunged);
        Ok(expunged.len() as u64)
    }

    async fn message_by_ref(&self, app: &AppId, reference: &str) -> Result<Option<Message>> {
        let (app, reference) = (app.clone(), reference.to_owned());
        self.readers
            .read(move |connection| messages::message_by_ref(connection, &app, &reference))
            .await
    }

    async fn list_messages(
        &self,
        app: &AppId,
        filter: MessageFilter,
        page: PageRequest,
    ) -> Result<Page<Message>> {
        let app = app.clone();
        self.readers
            .read(move |connection| messages::list_messages(connection, &app, &filter, &page))
            .await
    }

    async fn list_messages_with_status(
        &self,
        app: &AppId,
        status: herald_core::model::DeliveryStatus,
        filter: MessageFilter,
        page: PageRequest,
    ) -> Result<Page<Message>> {
        let app = app.clone();
        self.readers
            .read(move |connection| {
                messages::list_messages_with_status(connection, &app, status, &filter, &page)
            })
            .await
    }

    async fn delivery_histogram(
        &self,
        app: &AppId,
        endpoint: Option<&EndpointId>,
        since: Timestamp,
        until: Timestamp,
        bucket_millis: i64,
    ) -> Result<Vec<DeliveryBucket>> {
        let (app, endpoint) = (app.clone(), endpoint.cloned());
        self.readers
            .read(move |connection| {
                messages::delivery_histogram(
                    connection,
                    &app,
                    endpoint.as_ref(),
                    since,
                    until,
                    bucket_millis,
                )
            })
            .await
    }

    async fn deliveries_of_message(&self, app: &AppId, msg: &MessageId) -> Result<Vec<Delivery>> {
        let (app, msg) = (app.clone(), msg.clone());
        self.readers
            .read(move |connection| messages::deliveries_of_message(connection, &app, &msg))
            .await
    }

    async fn list_endpoint_messages(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        status: Option<herald_core::model::DeliveryStatus>,
        filter: MessageFilter,
        page: PageRequest,
    ) -> Result<Page<(Message, Delivery)>> {
        let (app, endpoint) = (app.clone(), endpoint.clone());
        self.readers
            .read(move |connection| {
                messages::list_endpoint_messages(
                    connection, &app, &endpoint, status, &filter, &page,
                )
            })
            .await
    }

    async fn list_attempts(
        &self,
        app: &AppId,
        filter: AttemptFilter,
        page: PageRequest,
    ) -> Result<Page<Attempt>> {
        let app = app.clone();
        self.readers
            .read(move |connection| messages::list_attempts(connection, &app, &filter, &page))
            .await
    }

    async fn attempt(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> Result<Option<Attempt>> {
        let (app, msg, id) = (app.clone(), msg.clone(), id.clone());
        self.readers
            .read(move |connection| messages::attempt(connection, &app, &msg, &id))
            .await
    }

    async fn expunge_attempt_content(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> Result<bool> {
        let (app, msg, id) = (app.clone(), msg.clone(), id.clone());
        self.writer
            .write(move |connection| messages::expunge_attempt_content(connection, &app, &msg, &id))
            .await
    }

    async fn resend(
        &self,
        app: &AppId,
        msg: &MessageId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> Result<()> {
        let (app, msg, endpoint) = (app.clone(), msg.clone(), endpoint.clone());
        self.writer
            .write(move |connection| messages::resend(connection, &app, &msg, &endpoint, now))
            .await
    }

    async fn recover(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
        until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<u64> {
        // In chunks, each its own write: other writes (new messages, attempt
        // results) go between them instead of waiting for a million-row update.
        const CHUNK: usize = 5_000;
        let mut recovered = 0;
        loop {
            let endpoint = endpoint.clone();
            let changed = self
                .writer
                .write(move |connection| {
                    messages::recover_chunk(connection, &endpoint, since, until, now, CHUNK)
                })
                .await?;
            recovered += changed;
            if changed < CHUNK as u64 {
                return Ok(recovered);
            }
        }
    }

    async fn replay_missing(
        &self,
        endpoint: &Endpoint,
        since: Timestamp,
        until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<u64> {
        // In chunks, each its own write, as for `recover`.
        const CHUNK: usize = 1_000;
        let (mut after, before) = replay_id_range(since, until);
        let mut queued = 0;
        loop {
            let id = endpoint.id.clone();
            let (from, to) = (after.clone(), before.clone());
            let step = self
                .writer
                .write(move |connection| {
                    messages::replay_chunk(connection, &id, (&from, &to), since, until, now, CHUNK)
                })
                .await?;
            queued += step.queued;
            match step.last {
                Some(last) if step.scanned == CHUNK => after = last,
                _ => return Ok(queued),
            }
        }
    }

    async fn endpoint_stats(
        &self,
        endpoint: &EndpointId,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<DeliveryStats> {
        let endpoint = endpoint.clone();
        self.readers
            .read(move |connection| messages::endpoint_stats(connection, &endpoint, since, until))
            .await
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
        per_endpoint: usize,
        saturated: &[EndpointId],
        lease_until: Timestamp,
    ) -> Result<Vec<Claim>> {
        let saturated = saturated.to_vec();
        let cursor = self.claim_cursor.clone();
        let caches = self.caches.clone();
        let (claims, messages) = self
            .writer
            .write_repeatable(move |connection| {
                let mut cursor = cursor
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let claims = queue::claim_due(
                    connection,
                    now,
                    limit,
                    per_endpoint,
                    &saturated,
                    lease_until,
                    &mut cursor,
                )?;
                // The messages the claims are sent with, read here, where
                // their pages are warm, rather than by each attempt through
                // a reader (a thread hop, and a page cache SQLite drops
                // after every commit): a backlog deeper than the message
                // cache otherwise costs both per delivery.
                let mut missing: Vec<&MessageId> = claims
                    .iter()
                    .map(|claim| &claim.msg_id)
                    .filter(|msg| caches.message(msg).is_none())
                    .collect();
                missing.sort_unstable();
                missing.dedup();
                let messages = queue::messages_by_id(connection, &missing)?;
                Ok((claims, messages))
            })
            .await?;
        for message in messages {
            self.caches.store_message(message);
        }
        Ok(claims)
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>> {
        self.readers.read(queue::next_due_at).await
    }

    async fn claim_target(&self, claim: &Claim) -> Result<Option<(Message, Option<Endpoint>)>> {
        let message = self.caches.message(&claim.msg_id);
        let endpoint = self.caches.endpoint(&claim.endpoint_id);
        if let (Some(message), Some(endpoint)) = (&message, &endpoint) {
            return Ok(Some((
                Message::clone(message),
                Some(Endpoint::clone(endpoint)),
            )));
        }
        let claim = claim.clone();
        let generation = self.caches.endpoint_generation();
        let target = self
            .readers
            .read(move |connection| queue::claim_target(connection, &claim))
            .await?;
        if let Some((_, Some(endpoint))) = &target {
            self.caches.store_endpoint(endpoint.clone(), generation);
        }
        Ok(target)
    }

    async fn record_attempt(
        &self,
        attempt: Option<Attempt>,
        outcome: DeliveryOutcome,
    ) -> Result<Recorded> {
        self.writer
            .write_repeatable(move |connection| {
                queue::record_attempt(connection, attempt.as_ref(), &outcome)
            })
            .await
    }

    async fn release_leases(&self, now: Timestamp, all: bool) -> Result<u64> {
        self.writer
            .write(move |connection| queue::release_leases(connection, now, all))
            .await
    }

    async fn disable_endpoint(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> Result<Option<Endpoint>> {
        let (app, endpoint) = (app.clone(), endpoint.clone());
        let caches = self.caches.clone();
        let result = self
            .writer
            .write(move |connection| {
                caches.endpoints_changed();
                housekeeping::disable_endpoint(connection, &app, &endpoint, now)
            })
            .await;
        // Again after the commit (see `delete_app`).
        self.caches.endpoints_changed();
        result
    }

    async fn set_endpoint_failing(
        &self,
        endpoint: &EndpointId,
        failure_at: Option<Timestamp>,
        quiet_gap: std::time::Duration,
    ) -> Result<Option<Timestamp>> {
        let endpoint = endpoint.clone();
        self.writer
            .write(move |connection| {
                housekeeping::set_endpoint_failing(connection, &endpoint, failure_at, quiet_gap)
            })
            .await
    }

    async fn purge_before(&self, cutoff: Timestamp, limit: usize) -> Result<u64> {
        self.writer
            .write(move |connection| housekeeping::purge_before(connection, cutoff, limit))
            .await
    }

    async fn queue_depths(&self, limit: usize, now: Timestamp) -> Result<Vec<QueueDepth>> {
        self.readers
            .read(move |connection| housekeeping::queue_depths(connection, limit, now))
            .await
    }

    async fn expire_portal_tokens(
        &self,
        app: &AppId,
        sessions: &[String],
        now: Timestamp,
        grace_until: Timestamp,
    ) -> Result<()> {
        let (app, sessions) = (app.clone(), sessions.to_vec());
        self.writer
            .write(move |connection| {
                catalog::expire_portal_tokens(connection, &app, &sessions, now, grace_until)
            })
            .await
    }

    async fn forget_portal_expiry_before(&self, cutoff: Timestamp, limit: usize) -> Result<u64> {
        self.writer
            .write(move |connection| {
                catalog::forget_portal_expiry_before(connection, cutoff, limit)
            })
            .await
    }

    async fn portal_expiry(&self, app: &AppId, session: Option<&str>) -> Result<Vec<PortalExpiry>> {
        let (app, session) = (app.clone(), session.map(str::to_owned));
        self.readers
            .read(move |connection| catalog::portal_expiry(connection, &app, session.as_deref()))
            .await
    }

    async fn add_api_token(&self, token: &ApiToken) -> Result<()> {
        let token = token.clone();
        self.writer
            .write(move |connection| tokens::add_api_token(connection, &token))
            .await
    }

    async fn list_api_tokens(&self) -> Result<Vec<ApiToken>> {
        self.readers.read(tokens::list_api_tokens).await
    }

    async fn remove_api_token(&self, hash: &str) -> Result<bool> {
        let hash = hash.to_owned();
        self.writer
            .write(move |connection| tokens::remove_api_token(connection, &hash))
            .await
    }

    async fn api_token_exists(&self, hash: &str) -> Result<bool> {
        let hash = hash.to_owned();
        self.readers
            .read(move |connection| tokens::api_token_exists(connection, &hash))
            .await
    }

    async fn api_token_count(&self) -> Result<u64> {
        self.readers.read(tokens::api_token_count).await
    }

    async fn claim_idempotency_key(
        &self,
        key: &str,
        fingerprint: &str,
        claim: &str,
        terms: IdempotencyTerms,
    ) -> Result<IdempotencyClaim> {
        let (key, fingerprint, claim) = (key.to_owned(), fingerprint.to_owned(), claim.to_owned());
        self.writer
            .write(move |connection| {
                idempotency::claim(connection, &key, &fingerprint, &claim, terms)
            })
            .await
    }

    async fn complete_idempotency_key(
        &self,
        key: &str,
        claim: &str,
        status: u16,
        body: Vec<u8>,
    ) -> Result<()> {
        let (key, claim) = (key.to_owned(), claim.to_owned());
        self.writer
            .write(move |connection| idempotency::complete(connection, &key, &claim, status, &body))
            .await
    }

    async fn release_idempotency_key(&self, key: &str, claim: &str) -> Result<()> {
        let (key, claim) = (key.to_owned(), claim.to_owned());
        self.writer
            .write(move |connection| idempotency::release(connection, &key, &claim))
            .await
    }

    async fn record_task(&self, task: &BackgroundTask) -> Result<()> {
        let task = task.clone();
        self.writer
            .write(move |connection| tasks::record_task(connection, &task))
            .await
    }

    async fn task_by_id(&self, id: &TaskId) -> Result<Option<BackgroundTask>> {
        let id = id.clone();
        self.readers
            .read(move |connection| tasks::task_by_id(connection, &id))
            .await
    }

    async fn list_tasks(
        &self,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<BackgroundTask>> {
        self.readers
            .read(move |connection| tasks::list_tasks(connection, &filter, &page))
            .await
    }

    async fn instance_key(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>> {
        let name = name.to_owned();
        self.writer
            .write(move |connection| tokens::instance_key(connection, &name, &candidate))
            .await
    }
}
