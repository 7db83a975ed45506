//! [`Store`] for [`PostgresStore`]: each call takes a pooled connection;
//! writes that must be atomic run in one transaction.

use std::sync::Arc;

use async_trait::async_trait;
use herald_core::model::{
    App, Attempt, BackgroundTask, Delivery, DeliveryStatus, Endpoint, EventType, Message,
    PortalExpiry,
};
use herald_core::{AppId, AttemptId, EndpointId, MessageId, TaskId, Timestamp};
use herald_store::{
    replay_id_range, ApiToken, AttemptFilter, Claim, CreatedMessage, DeliveryBucket,
    DeliveryOutcome, DeliveryStats, IdempotencyClaim, IdempotencyTerms, MessageFilter, Page,
    PageRequest, QueueDepth, RateSlot, RateToken, Recorded, Store, StoreError, TaskFilter,
};
use tokio::sync::Notify;

use crate::error::StoreResult;
use crate::group_commit::{Write, Written};
use crate::{catalog, housekeeping, idempotency, messages, queue, tasks, tokens, PostgresStore};

/// Deliveries re-queued per transaction by `recover`.
const RECOVER_CHUNK: usize = 5_000;

impl PostgresStore {
    /// Creates a message through the group commit.
    async fn created(&self, write: Write) -> StoreResult<CreatedMessage> {
        match self.inner.writes.write(write).await? {
            Written::Created(created) => Ok(*created),
            Written::Recorded(_) => Err(mismatched()),
        }
    }
}

/// A write answered with another kind's answer: cannot happen, each
/// [`Write`] answers its own kind.
fn mismatched() -> StoreError {
    StoreError::Backend("group commit answered with the wrong kind".into())
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_app(&self, app: App) -> StoreResult<App> {
        catalog::insert_app(&self.client().await?, &app).await?;
        Ok(app)
    }

    async fn app_by_ref(&self, reference: &str) -> StoreResult<Option<App>> {
        Ok(catalog::app_by_ref(&self.client().await?, reference).await?)
    }

    async fn list_apps(&self, page: PageRequest) -> StoreResult<Page<App>> {
        Ok(catalog::list_apps(&self.client().await?, &page).await?)
    }

    async fn update_app(&self, app: App) -> StoreResult<App> {
        catalog::update_app(&self.client().await?, &app).await?;
        Ok(app)
    }

    async fn delete_app(&self, id: &AppId) -> StoreResult<()> {
        Ok(transaction!(self, |transaction| {
            catalog::delete_app(&transaction, id).await?
        })?)
    }

    async fn create_event_type(&self, event_type: EventType) -> StoreResult<EventType> {
        catalog::insert_event_type(&self.client().await?, &event_type).await?;
        Ok(event_type)
    }

    async fn event_type(&self, name: &str) -> StoreResult<Option<EventType>> {
        Ok(catalog::event_type(&self.client().await?, name).await?)
    }

    async fn list_event_types(
        &self,
        page: PageRequest,
        include_archived: bool,
    ) -> StoreResult<Page<EventType>> {
        Ok(catalog::list_event_types(&self.client().await?, &page, include_archived).await?)
    }

    async fn update_event_type(&self, event_type: EventType) -> StoreResult<EventType> {
        catalog::update_event_type(&self.client().await?, &event_type).await?;
        Ok(event_type)
    }

    async fn delete_event_type(&self, name: &str) -> StoreResult<()> {
        Ok(catalog::delete_event_type(&self.client().await?, name).await?)
    }

    async fn create_endpoint(&self, endpoint: Endpoint) -> StoreResult<Endpoint> {
        catalog::insert_endpoint(&self.client().await?, &endpoint).await?;
        Ok(endpoint)
    }

    async fn endpoint_by_ref(&self, app: &AppId, reference: &str) -> StoreResult<Option<Endpoint>> {
        Ok(catalog::endpoint_by_ref(&self.client().await?, app, reference).await?)
    }

    async fn list_endpoints(&self, app: &AppId, page: PageRequest) -> StoreResult<Page<Endpoint>> {
        Ok(catalog::list_endpoints(&self.client().await?, app, &page).await?)
    }

    async fn update_endpoint(&self, endpoint: Endpoint) -> StoreResult<Endpoint> {
        catalog::update_endpoint(&self.client().await?, &endpoint).await?;
        Ok(endpoint)
    }

    async fn delete_endpoint(
        &self,
        app: &AppId,
        id: &EndpointId,
        now: Timestamp,
    ) -> StoreResult<()> {
        Ok(transaction!(self, |transaction| {
            catalog::delete_endpoint(&transaction, app, id, now).await?
        })?)
    }

    async fn create_message(
        &self,
        message: Message,
        idempotency_key: Option<String>,
    ) -> StoreResult<CreatedMessage> {
        let created = self
            .created(Write::CreateMessage {
                message,
                idempotency_key,
                only: None,
            })
            .await?;
        if created.deliveries > 0 {
            self.announce_work();
        }
        Ok(created)
    }

    async fn create_message_for_endpoint(
        &self,
        message: Message,
        endpoint: &EndpointId,
    ) -> StoreResult<CreatedMessage> {
        let created = self
            .created(Write::CreateMessage {
                message,
                idempotency_key: None,
                only: Some(endpoint.clone()),
            })
            .await?;
        self.announce_work();
        Ok(created)
    }

    async fn expunge_content(
        &self,
        app: &AppId,
        msg: &MessageId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        Ok(messages::expunge_content(&self.client().await?, app, msg, now).await?)
    }

    async fn expunge_expired_payloads(&self, now: Timestamp, limit: usize) -> StoreResult<u64> {
        Ok(messages::expunge_expired_payloads(&self.client().await?, now, limit).await?)
    }

    async fn message_by_ref(&self, app: &AppId, reference: &str) -> StoreResult<Option<Message>> {
        Ok(messages::message_by_ref(&self.client().await?, app, reference).await?)
    }

    async fn list_messages(
        &self,
        app: &AppId,
        filter: MessageFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Message>> {
        Ok(messages::list_messages(&self.client().await?, app, &filter, &page).await?)
    }

    async fn list_messages_with_status(
        &self,
        app: &AppId,
        status: DeliveryStatus,
        filter: MessageFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Message>> {
        Ok(
            messages::list_messages_with_status(&self.client().await?, app, status, &filter, &page)
                .await?,
        )
    }

    async fn deliveries_of_message(
        &self,
        app: &AppId,
        msg: &MessageId,
    ) -> StoreResult<Vec<Delivery>> {
        Ok(messages::deliveries_of_message(&self.client().await?, app, msg).await?)
    }

    async fn list_endpoint_messages(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        status: Option<DeliveryStatus>,
        filter: MessageFilter,
        page: PageRequest,
    ) -> StoreResult<Page<(Message, Delivery)>> {
        let client = self.client().await?;
        Ok(
            messages::list_endpoint_messages(&client, app, endpoint, status, &filter, &page)
                .await?,
        )
    }

    async fn list_attempts(
        &self,
        app: &AppId,
        filter: AttemptFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Attempt>> {
        Ok(messages::list_attempts(&self.client().await?, app, &filter, &page).await?)
    }

    async fn attempt(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> StoreResult<Option<Attempt>> {
        Ok(messages::attempt(&self.client().await?, app, msg, id).await?)
    }

    async fn expunge_attempt_content(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> StoreResult<bool> {
        Ok(messages::expunge_attempt_content(&self.client().await?, app, msg, id).await?)
    }

    async fn resend(
        &self,
        app: &AppId,
        msg: &MessageId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> StoreResult<()> {
        transaction!(self, |transaction| {
            messages::resend(&transaction, app, msg, endpoint, now).await?
        })?;
        self.announce_work();
        Ok(())
    }

    async fn recover(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
        until: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<u64> {
        // In chunks, each its own transaction, so no transaction holds a
        // million row locks that attempts being recorded would wait on.
        let mut recovered = 0;
        loop {
            let changed = transaction!(self, |transaction| {
                messages::recover_chunk(&transaction, endpoint, since, until, now, RECOVER_CHUNK)
                    .await?
            })?;
            recovered += changed;
            if changed > 0 {
                self.announce_work();
            }
            if changed < RECOVER_CHUNK as u64 {
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
    ) -> StoreResult<u64> {
        // In chunks, each its own transaction, as for `recover`.
        let (mut after, before) = replay_id_range(since, until);
        let mut queued = 0;
        loop {
            let step = transaction!(self, |transaction| {
                messages::replay_chunk(
                    &transaction,
                    &endpoint.id,
                    (&after, &before),
                    since,
                    until,
                    now,
                    RECOVER_CHUNK,
                )
                .await?
            })?;
            queued += step.queued;
            if step.queued > 0 {
                self.announce_work();
            }
            match step.last {
                Some(last) if step.scanned == RECOVER_CHUNK => after = last,
                _ => return Ok(queued),
            }
        }
    }

    async fn endpoint_stats(
        &self,
        endpoint: &EndpointId,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> StoreResult<DeliveryStats> {
        Ok(messages::endpoint_stats(&self.client().await?, endpoint, since, until).await?)
    }

    async fn delivery_histogram(
        &self,
        app: &AppId,
        endpoint: Option<&EndpointId>,
        since: Timestamp,
        until: Timestamp,
        bucket_millis: i64,
    ) -> StoreResult<Vec<DeliveryBucket>> {
        Ok(messages::delivery_histogram(
            &self.client().await?,
            app,
            endpoint,
            since,
            until,
            bucket_millis,
        )
        .await?)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
        per_endpoint: usize,
        saturated: &[EndpointId],
        lease_until: Timestamp,
    ) -> StoreResult<Vec<Claim>> {
        Ok(transaction!(self, |transaction| {
            let claims = queue::claim_due(
                &transaction,
                &self.inner.node,
                now,
                limit,
                per_endpoint,
                saturated,
                lease_until,
            )
            .await?;
            if self.inner.claims_beat.due() {
                // A node that claims is alive, whatever became of the
                // connection it listens and beats on. After the claim lock
                // is taken, so the node's row (which its listener beats
                // too) is held only until this commit.
                queue::beat(&transaction, &self.inner.node).await?;
            }
            claims
        })?)
    }

    async fn next_due_at(&self) -> StoreResult<Option<Timestamp>> {
        Ok(queue::next_due_at(&self.client().await?).await?)
    }

    async fn claim_target(
        &self,
        claim: &Claim,
    ) -> StoreResult<Option<(Message, Option<Endpoint>)>> {
        Ok(queue::claim_target(&self.client().await?, claim).await?)
    }

    async fn record_attempt(
        &self,
        attempt: Option<Attempt>,
        outcome: DeliveryOutcome,
    ) -> StoreResult<Recorded> {
        match self
            .inner
            .writes
            .write(Write::RecordAttempt { attempt, outcome })
            .await?
        {
            Written::Recorded(recorded) => Ok(recorded),
            Written::Created(_) => Err(mismatched()),
        }
    }

    async fn release_leases(&self, now: Timestamp, all: bool) -> StoreResult<u64> {
        let released =
            queue::release_leases(&self.client().await?, &self.inner.node, now, all).await?;
        if released > 0 {
            self.announce_work();
        }
        Ok(released)
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn remote_wakeups(&self) -> Option<Arc<Notify>> {
        Some(self.listen_for_work())
    }

    async fn disable_endpoint(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> StoreResult<Option<Endpoint>> {
        Ok(housekeeping::disable_endpoint(&self.client().await?, app, endpoint, now).await?)
    }

    async fn set_endpoint_failing(
        &self,
        endpoint: &EndpointId,
        failure_at: Option<Timestamp>,
        quiet_gap: std::time::Duration,
    ) -> StoreResult<Option<Timestamp>> {
        Ok(housekeeping::set_endpoint_failing(
            &self.client().await?,
            endpoint,
            failure_at,
            quiet_gap,
        )
        .await?)
    }

    async fn purge_before(&self, cutoff: Timestamp, limit: usize) -> StoreResult<u64> {
        Ok(transaction!(self, |transaction| {
            housekeeping::purge_before(&transaction, cutoff, limit).await?
        })?)
    }

    async fn take_rate_slot(
        &self,
        endpoint: &EndpointId,
        per_second: u32,
        now_micros: i64,
        horizon_micros: i64,
    ) -> StoreResult<Option<RateSlot>> {
        let slot = housekeeping::take_rate_slot(
            &self.client().await?,
            endpoint,
            per_second,
            now_micros,
            horizon_micros,
        )
        .await?;
        Ok(Some(slot))
    }

    async fn take_rate_token(
        &self,
        key: &str,
        rate: u32,
        now_micros: i64,
    ) -> StoreResult<Option<RateToken>> {
        let token =
            housekeeping::take_rate_token(&self.client().await?, key, rate, now_micros).await?;
        Ok(Some(token))
    }

    async fn queue_depths(&self, limit: usize, now: Timestamp) -> StoreResult<Vec<QueueDepth>> {
        Ok(housekeeping::queue_depths(&self.client().await?, limit, now).await?)
    }

    async fn expire_portal_tokens(
        &self,
        app: &AppId,
        sessions: &[String],
        now: Timestamp,
        grace_until: Timestamp,
    ) -> StoreResult<()> {
        let client = self.client().await?;
        Ok(catalog::expire_portal_tokens(&client, app, sessions, now, grace_until).await?)
    }

    async fn forget_portal_expiry_before(
        &self,
        cutoff: Timestamp,
        limit: usize,
    ) -> StoreResult<u64> {
        let client = self.client().await?;
        Ok(catalog::forget_portal_expiry_before(&client, cutoff, limit).await?)
    }

    async fn portal_expiry(
        &self,
        app: &AppId,
        session: Option<&str>,
    ) -> StoreResult<Vec<PortalExpiry>> {
        Ok(catalog::portal_expiry(&self.client().await?, app, session).await?)
    }

    async fn add_api_token(&self, token: &ApiToken) -> StoreResult<()> {
        Ok(tokens::add_api_token(&self.client().await?, token).await?)
    }

    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        Ok(tokens::list_api_tokens(&self.client().await?).await?)
    }

    async fn remove_api_token(&self, hash: &str) -> StoreResult<bool> {
        Ok(tokens::remove_api_token(&self.client().await?, hash).await?)
    }

    async fn api_token_exists(&self, hash: &str) -> StoreResult<bool> {
        Ok(tokens::api_token_exists(&self.client().await?, hash).await?)
    }

    async fn api_token_count(&self) -> StoreResult<u64> {
        Ok(tokens::api_token_count(&self.client().await?).await?)
    }

    async fn claim_idempotency_key(
        &self,
        key: &str,
        fingerprint: &str,
        claim: &str,
        terms: IdempotencyTerms,
    ) -> StoreResult<IdempotencyClaim> {
        Ok(transaction!(self, |transaction| {
            idempotency::claim(&transaction, key, fingerprint, claim, terms).await?
        })?)
    }

    async fn complete_idempotency_key(
        &self,
        key: &str,
        claim: &str,
        status: u16,
        body: Vec<u8>,
    ) -> StoreResult<()> {
        Ok(idempotency::complete(&self.client().await?, key, claim, status, &body).await?)
    }

    async fn release_idempotency_key(&self, key: &str, claim: &str) -> StoreResult<()> {
        Ok(idempotency::release(&self.client().await?, key, claim).await?)
    }

    async fn record_task(&self, task: &BackgroundTask) -> StoreResult<()> {
        Ok(tasks::record_task(&self.client().await?, task).await?)
    }

    async fn task_by_id(&self, id: &TaskId) -> StoreResult<Option<BackgroundTask>> {
        Ok(tasks::task_by_id(&self.client().await?, id).await?)
    }

    async fn list_tasks(
        &self,
        filter: TaskFilter,
        page: PageRequest,
    ) -> StoreResult<Page<BackgroundTask>> {
        Ok(tasks::list_tasks(&self.client().await?, &filter, &page).await?)
    }

    async fn instance_key(&self, name: &str, candidate: Vec<u8>) -> StoreResult<Vec<u8>> {
        Ok(tokens::instance_key(&self.client().await?, name, &candidate).await?)
    }
}
