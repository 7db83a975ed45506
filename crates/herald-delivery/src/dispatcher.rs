//! The dispatcher: leases due deliveries and runs each as a task, bounded by
//! a global pool size and a per-endpoint limit.
//!
//! It never polls the database in a loop. It sleeps until whichever comes
//! first: the earliest due delivery, a wake-up from the API (new message,
//! resend, recover), a finished attempt freeing capacity, or the sweep
//! interval (which also frees leases left behind by a crashed node).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::{Clock, EndpointId};
use herald_store::{Claim, Store};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::attempt::{perform, Finished};
use crate::client::Client;
use crate::ssrf::Guard;
use crate::{DeliveryConfig, DeliveryError};

/// Most deliveries leased in one store call.
const CLAIM_BATCH: usize = 256;

/// Claims outstanding at once (waiting for a worker, sending, or waiting for
/// their result to commit), per worker: enough to keep workers busy while
/// results wait for a group commit (see `DeliveryConfig::lease_duration`).
const UNRECORDED_PER_WORKER: usize = 4;

/// An endpoint may have this many times its concurrency claimed at once, so
/// its next attempts are ready when one finishes.
const QUEUED_PER_SLOT: usize = 2;

/// Tells the engine that new work may be due.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    wake: Arc<Notify>,
}

impl EngineHandle {
    /// Wakes the dispatcher now instead of at its next timer.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// In-flight bookkeeping per endpoint.
#[derive(Default)]
struct EndpointSlots {
    slots: HashMap<EndpointId, (usize, Arc<Semaphore>)>,
}

/// The delivery engine.
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: DeliveryConfig,
    client: Arc<Client>,
    wake: Arc<Notify>,
    /// One permit per HTTP attempt in flight (`workers`).
    pool: Arc<Semaphore>,
    /// One permit per claim not yet recorded: bounds the attempts whose
    /// results wait for a commit, so a slow disk slows claiming down.
    unrecorded: Arc<Semaphore>,
    endpoints: Arc<Mutex<EndpointSlots>>,
}

impl Engine {
    /// Builds an engine; nothing runs until [`Engine::run`].
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: DeliveryConfig,
    ) -> Result<Self, DeliveryError> {
        let client = Client::new(
            Guard::new(config.ssrf_allowlist.clone()),
            config.request_timeout,
            config.response_body_cap,
        )?;
        Ok(Self {
            store,
            clock,
            pool: Arc::new(Semaphore::new(config.workers.max(1))),
            unrecorded: Arc::new(Semaphore::new(
                config.workers.max(1) * UNRECORDED_PER_WORKER,
            )),
            config,
            client: Arc::new(client),
            wake: Arc::new(Notify::new()),
            endpoints: Arc::new(Mutex::new(EndpointSlots::default())),
        })
    }

    /// A handle the API uses to wake the dispatcher.
    pub fn handle(&self) -> EngineHandle {
        EngineHandle {
            wake: self.wake.clone(),
        }
    }

    /// Dispatches until `shutdown` is cancelled, then waits up to `drain` for
    /// attempts in flight. Attempts cut off by the deadline keep their lease
    /// and are retried after it expires (or at the next start).
    pub async fn run(self, shutdown: CancellationToken, drain: Duration) {
        let mut tasks = JoinSet::new();
        if self.config.exclusive_store {
            match self.store.release_leases(self.clock.now(), true).await {
                Ok(0) => {}
                Ok(released) => tracing::info!(released, "resuming deliveries left in flight"),
                Err(error) => tracing::error!(%error, "cannot release leases at start"),
            }
        }
        let mut last_sweep = self.clock.now();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let now = self.clock.now();
            if now.0 - last_sweep.0 >= self.config.sweep_interval.as_millis() as i64 {
                last_sweep = now;
                if let Err(error) = self.store.release_leases(now, false).await {
                    tracing::warn!(%error, "lease sweep failed");
                }
            }
            let filled = match self.dispatch_due(&mut tasks).await {
                Ok(filled) => filled,
                Err(error) => {
                    tracing::error!(%error, "cannot claim deliveries");
                    false
                }
            };
            if filled {
                continue;
            }
            let wait = self.time_to_next(now).await;
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => {}
            }
        }
        let drained =
            tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "shutdown deadline passed with attempts in flight; they will be retried"
            );
            tasks.abort_all();
        }
    }

    /// Leases what is due and can run now; answers whether the batch came
    /// back full (more may be due at once).
    async fn dispatch_due(
        &self,
        tasks: &mut JoinSet<()>,
    ) -> Result<bool, herald_store::StoreError> {
        let free = self.unrecorded.available_permits();
        if free == 0 {
            return Ok(false);
        }
        let limit = free.min(CLAIM_BATCH);
        let saturated = self.saturated_endpoints();
        let now = self.clock.now();
        let lease_until = now.plus(self.config.lease_duration());
        let claims = self
            .store
            .claim_due(
                now,
                limit,
                self.config.per_endpoint_concurrency.max(1),
                &saturated,
                lease_until,
            )
            .await?;
        let full = claims.len() == limit;
        for claim in claims {
            let Ok(record_permit) = self.unrecorded.clone().try_acquire_owned() else {
                // Cannot happen: we claimed no more than the free permits
                // and only this loop takes them. The lease will expire.
                tracing::error!("claim budget unexpectedly exhausted");
                break;
            };
            let endpoint_permit = self.reserve_endpoint(&claim.endpoint_id);
            tasks.spawn(self.attempt_task(claim, record_permit, endpoint_permit));
        }
        Ok(full)
    }

    /// Endpoints with `QUEUED_PER_SLOT` times their concurrency outstanding;
    /// a claim adds at most one concurrency's worth, so no claim waits
    /// behind more than two rounds of its endpoint's attempts.
    fn saturated_endpoints(&self) -> Vec<EndpointId> {
        let limit = self.config.per_endpoint_concurrency.max(1) * QUEUED_PER_SLOT;
        lock(&self.endpoints)
            .slots
            .iter()
            .filter(|(_, (in_flight, _))| *in_flight >= limit)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn reserve_endpoint(&self, endpoint: &EndpointId) -> Arc<Semaphore> {
        let limit = self.config.per_endpoint_concurrency.max(1);
        let mut slots = lock(&self.endpoints);
        let entry = slots
            .slots
            .entry(endpoint.clone())
            .or_insert_with(|| (0, Arc::new(Semaphore::new(limit))));
        entry.0 += 1;
        entry.1.clone()
    }

    async fn time_to_next(&self, now: herald_core::Timestamp) -> Duration {
        let sweep = self.config.sweep_interval;
        match self.store.next_due_at().await {
            // Due work we could not take (pool or endpoint full): a finishing
            // attempt wakes us, the sweep timer is only a backstop.
            Ok(Some(next)) if next <= now => sweep,
            Ok(Some(next)) => Duration::from_millis((next.0 - now.0) as u64).min(sweep),
            Ok(None) => sweep,
            Err(error) => {
                tracing::warn!(%error, "cannot read the next due time");
                sweep
            }
        }
    }

    fn attempt_task(
        &self,
        claim: Claim,
        record_permit: OwnedSemaphorePermit,
        endpoint_slot: Arc<Semaphore>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let pool = self.pool.clone();
        let store = self.store.clone();
        let clock = self.clock.clone();
        let client = self.client.clone();
        let schedule = self.config.retry_schedule.clone();
        let endpoints = self.endpoints.clone();
        let wake = self.wake.clone();
        async move {
            // Counted out of the endpoint's claims when dropped, even if the
            // attempt panics, so the endpoint never looks busy forever.
            let reservation = Reservation {
                endpoints,
                endpoint: claim.endpoint_id.clone(),
            };
            // The endpoint's slot first, then a worker: a claim queued
            // behind a slow endpoint holds no worker that others could use.
            let finished = match endpoint_slot.acquire().await {
                Ok(_endpoint_permit) => match pool.acquire().await {
                    Ok(_worker) => send(&*store, &*clock, &client, &schedule, &claim).await,
                    Err(_) => None,
                },
                Err(_) => None,
            };
            // The HTTP part is over: the worker and the endpoint's slot were
            // freed above, so the next attempt need not wait for this commit.
            drop(reservation);
            wake.notify_one();
            if let Some(Finished { attempt, outcome }) = finished {
                if let Err(error) = store.record_attempt(attempt, outcome).await {
                    tracing::error!(%error, msg = %claim.msg_id, "cannot record an attempt; it will be retried");
                }
            }
            drop(record_permit);
            wake.notify_one();
        }
    }
}

/// One claim counted against its endpoint until dropped.
struct Reservation {
    endpoints: Arc<Mutex<EndpointSlots>>,
    endpoint: EndpointId,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut slots = lock(&self.endpoints);
        if let Some(entry) = slots.slots.get_mut(&self.endpoint) {
            entry.0 = entry.0.saturating_sub(1);
            if entry.0 == 0 {
                slots.slots.remove(&self.endpoint);
            }
        }
    }
}

/// Loads and attempts one claim; answers what to record. On a store
/// failure nothing is recorded and the lease is left to expire, which
/// retries the delivery: at-least-once, never lost.
async fn send(
    store: &dyn Store,
    clock: &dyn Clock,
    client: &Client,
    schedule: &herald_core::RetrySchedule,
    claim: &Claim,
) -> Option<Finished> {
    let (message, endpoint) = match store.claim_target(claim).await {
        Ok(Some(target)) => target,
        Ok(None) => return None, // the message (and its app) were deleted
        Err(error @ herald_store::StoreError::Corrupt(_)) => {
            // Retrying cannot fix a row that does not decode: end the
            // delivery as failed (visible, recoverable) instead of leasing
            // it again forever.
            tracing::error!(%error, msg = %claim.msg_id, "claimed delivery is unreadable; failing it");
            return Some(Finished {
                attempt: None,
                outcome: claim.outcome(
                    herald_core::model::DeliveryStatus::Fail,
                    claim.attempt_count,
                    None,
                    clock.now(),
                ),
            });
        }
        Err(error) => {
            // Transient: the lease expires and the delivery is tried again.
            tracing::error!(%error, msg = %claim.msg_id, "cannot load a claimed delivery");
            return None;
        }
    };
    let finished = perform(client, clock, schedule, claim, &message, endpoint.as_ref()).await;
    if let Some(attempt) = &finished.attempt {
        tracing::debug!(
            msg = %attempt.msg_id,
            endpoint = %attempt.endpoint_id,
            status = attempt.response_status_code,
            error = attempt.error.map(|error| error.as_str()),
            "attempt finished"
        );
    }
    Some(finished)
}

fn lock(slots: &Mutex<EndpointSlots>) -> std::sync::MutexGuard<'_, EndpointSlots> {
    // Counters stay consistent even if a holder panicked mid-update.
    slots
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
