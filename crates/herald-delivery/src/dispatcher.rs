//! The dispatcher: leases due deliveries and runs each as a task, bounded by
//! a global pool size and a per-endpoint limit.
//!
//! It never polls the database in a loop. It sleeps until whichever comes
//! first: the earliest due delivery, a wake-up from the API (new message,
//! resend, recover), a wake-up from another node sharing the store, a
//! finished attempt freeing capacity, or the sweep interval (which also
//! frees leases left behind by a crashed node).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_core::model::{Attempt, DeliveryStatus, Endpoint, Message, TriggerType};
use herald_core::{Clock, EndpointId, Timestamp};
use herald_store::{Claim, HandOffTerms, HandedOff, Recorded, Store, StoreError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::attempt::{perform, Finished, RetryPolicy, Verdict};
use crate::client::Client;
use crate::health::{Disable, Health};
use crate::metrics::EngineMetrics;
use crate::operational::{
    AttemptEvent, DisableTrigger, LastAttempt, Operational, OperationalEvent,
    FAILING_AFTER_ATTEMPTS,
};
use crate::rate::RateLimits;
use crate::retention;
use crate::slots::EndpointSlots;
use crate::ssrf::Guard;
use crate::{DeliveryConfig, DeliveryError};

/// Most deliveries leased in one store call.
const CLAIM_BATCH: usize = 256;

/// Claims outstanding at once (waiting for a worker, sending, or waiting for
/// their result to commit), per worker: enough to keep workers busy while
/// results wait for a group commit (see `DeliveryConfig::lease_duration`).
const UNRECORDED_PER_WORKER: usize = 4;

/// Most new deliveries of one message the engine takes straight from its
/// create (see [`EngineHandle::offer`]); the rest are claimed.
const HAND_OFF_MAX: usize = 8;

/// The longest a claim waits for its endpoint's rate slot; well inside the
/// shortest lease (`DeliveryConfig::lease_duration` is at least 30 s).
const RATE_WAIT_BUDGET: Duration = Duration::from_secs(10);

/// What the API needs of the engine: waking it, raising operational
/// events, telling it an endpoint changed, and its metrics. Cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle").finish_non_exhaustive()
    }
}

impl EngineHandle {
    /// Wakes the dispatcher now instead of at its next timer.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Operational events (the API raises `endpoint.enabled`/`disabled`
    /// when an operator flips an endpoint).
    pub fn operational(&self) -> &Operational {
        &self.shared.operational
    }

    /// The engine's metrics, for the server's registry.
    pub fn metrics(&self) -> &Arc<EngineMetrics> {
        &self.shared.metrics
    }

    /// Forgets what the engine learnt of `endpoint`'s health (an operator
    /// re-enabled or edited it: its circuit closes, its streak restarts).
    pub fn endpoint_changed(&self, endpoint: &EndpointId) {
        self.shared.health.forget(endpoint);
    }

    /// Room for a message about to be created to hand its deliveries
    /// straight to attempts ([`Store::create_message_handing_off`]), saving
    /// each a claim and a wait for the dispatcher. `None` when more than
    /// half the claim budget is out: the rest is kept for claims, so under
    /// load the backlog is never starved by new work.
    pub fn offer(&self) -> Option<Offer> {
        let shared = &self.shared;
        let spare = shared
            .budget
            .available_permits()
            .saturating_sub(shared.budget_size / 2)
            .min(HAND_OFF_MAX);
        let permits: Vec<_> = (0..spare)
            .map_while(|_| shared.budget.clone().try_acquire_owned().ok())
            .collect();
        if permits.is_empty() {
            return None;
        }
        let terms = HandOffTerms {
            max: permits.len(),
            busy: shared.busy_endpoints(),
            lease_until: shared.clock.now().plus(shared.lease_duration),
        };
        Some(Offer { permits, terms })
    }

    /// Starts the attempts of deliveries a create leased on `offer`'s
    /// terms; the permits they did not use go back.
    pub fn hand_off(&self, offer: Offer, message: &Message, handed: Vec<HandedOff>) {
        let mut permits = offer.permits.into_iter();
        for HandedOff { claim, endpoint } in handed {
            let Some(record_permit) = permits.next() else {
                // The store leased more than offered; the lease expires
                // and the delivery is claimed then.
                tracing::error!(msg = %claim.msg_id, "hand-off beyond its terms");
                break;
            };
            let endpoint_slot = self.shared.reserve_endpoint(&claim.endpoint_id);
            let target = (message.clone(), Some(endpoint));
            self.shared.handed.spawn(attempt_task(
                self.shared.clone(),
                claim,
                Some(target),
                record_permit,
                endpoint_slot,
            ));
        }
    }
}

/// Claim budget reserved for a message create to hand its deliveries
/// over; what is not used returns when it is dropped.
pub struct Offer {
    permits: Vec<OwnedSemaphorePermit>,
    terms: HandOffTerms,
}

impl Offer {
    /// The terms to create the message on.
    pub fn terms(&self) -> HandOffTerms {
        self.terms.clone()
    }
}

/// What every attempt task uses, shared once instead of field by field.
struct Shared {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    client: Client,
    policy: RetryPolicy,
    health: Health,
    rates: RateLimits,
    operational: Operational,
    metrics: Arc<EngineMetrics>,
    wake: Notify,
    /// One permit per HTTP attempt in flight (`workers`).
    pool: Semaphore,
    endpoints: Mutex<EndpointSlots>,
    /// One permit per claim or hand-off not yet recorded: bounds the
    /// attempts whose results wait for a commit, so a slow disk slows
    /// claiming down.
    budget: Arc<Semaphore>,
    budget_size: usize,
    per_endpoint_concurrency: usize,
    lease_duration: Duration,
    /// The longest a claim waits for its endpoint's gate before handing
    /// its delivery back (see `DeliveryConfig::lease_duration`).
    gate_wait: Duration,
    /// Attempts of handed-off deliveries, waited for at shutdown like
    /// the dispatcher's own.
    handed: TaskTracker,
}

/// The delivery engine.
pub struct Engine {
    shared: Arc<Shared>,
    config: DeliveryConfig,
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
            &config.extra_roots,
        )?;
        let budget_size = config.workers.max(1) * UNRECORDED_PER_WORKER;
        let shared = Shared {
            operational: Operational::new(store.clone(), clock.clone()),
            store,
            clock,
            client,
            policy: RetryPolicy {
                schedule: config.retry_schedule.clone(),
                retry_after_cap: config.retry_after_cap,
            },
            health: Health::new(config.health.clone()),
            rates: RateLimits::default(),
            metrics: Arc::new(EngineMetrics::default()),
            wake: Notify::new(),
            pool: Semaphore::new(config.workers.max(1)),
            endpoints: Mutex::new(EndpointSlots::new(config.claim_ahead)),
            budget: Arc::new(Semaphore::new(budget_size)),
            budget_size,
            per_endpoint_concurrency: config.per_endpoint_concurrency.max(1),
            lease_duration: config.lease_duration(),
            gate_wait: config.gate_wait(),
            handed: TaskTracker::new(),
        };
        Ok(Self {
            shared: Arc::new(shared),
            config,
        })
    }

    /// A handle the API uses to wake the dispatcher and raise events.
    pub fn handle(&self) -> EngineHandle {
        EngineHandle {
            shared: self.shared.clone(),
        }
    }

    /// Dispatches until `shutdown` is cancelled, then waits up to `drain` for
    /// attempts in flight. Attempts cut off by the deadline keep their lease
    /// and are retried after it expires (or at the next start).
    pub async fn run(self, shutdown: CancellationToken, drain: Duration) {
        let mut tasks = JoinSet::new();
        let store = &self.shared.store;
        let clock = &self.shared.clock;
        // A shared store's live leases may belong to other nodes mid-attempt:
        // only the sweep below, which frees expired leases, may touch them.
        if self.config.exclusive_store && !store.is_shared() {
            match store.release_leases(clock.now(), true).await {
                Ok(0) => {}
                Ok(released) => tracing::info!(released, "resuming deliveries left in flight"),
                Err(error) => tracing::error!(%error, "cannot release leases at start"),
            }
        }
        let purging = tokio::spawn(retention::purge_loop(
            store.clone(),
            clock.clone(),
            self.config.retention,
            self.config.purge_interval,
            shutdown.clone(),
        ));
        let remote = store.remote_wakeups();
        let mut last_sweep = clock.now();
        // When the earliest pending delivery is due, as last read.
        let mut next_due = None;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let now = clock.now();
            if now.0 - last_sweep.0 >= self.config.sweep_interval.as_millis() as i64 {
                last_sweep = now;
                if let Err(error) = store.release_leases(now, false).await {
                    tracing::warn!(%error, "lease sweep failed");
                }
            }
            let round = match self.dispatch_due(&mut tasks).await {
                Ok(round) => round,
                Err(error) => {
                    tracing::error!(%error, "cannot claim deliveries");
                    Round::Nothing
                }
            };
            match round {
                Round::Full => continue,
                // Claims are out: each wakes this loop when it finishes, and
                // a retry it schedules is read on the round that claims
                // nothing. Reading the due time after every claim cost a
                // read per few deliveries under load.
                Round::Claimed | Round::NoRoom => {}
                Round::Nothing => next_due = self.next_due().await,
            }
            let wait = self.time_to_next(next_due, now);
            tokio::select! {
                () = self.shared.wake.notified() => {}
                () = remote_wakeup(remote.as_deref()) => {}
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => {}
            }
        }
        self.shared.handed.close();
        let drained = tokio::time::timeout(drain, async {
            while tasks.join_next().await.is_some() {}
            self.shared.handed.wait().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "shutdown deadline passed with attempts in flight; they will be retried"
            );
            tasks.abort_all();
        }
        if let Err(error) = purging.await {
            tracing::error!(%error, "retention task failed");
        }
    }

    /// Leases what is due and can run now.
    async fn dispatch_due(&self, tasks: &mut JoinSet<()>) -> Result<Round, StoreError> {
        let free = self.shared.budget.available_permits();
        if free == 0 {
            return Ok(Round::NoRoom);
        }
        let limit = free.min(CLAIM_BATCH);
        let now = self.shared.clock.now();
        let skipped = self.shared.busy_endpoints();
        let lease_until = now.plus(self.config.lease_duration());
        let started = Instant::now();
        let claims = self
            .shared
            .store
            .claim_due(
                now,
                limit,
                self.config.per_endpoint_concurrency.max(1),
                &skipped,
                lease_until,
            )
            .await?;
        self.shared
            .metrics
            .observe_store("claim_due", started.elapsed());
        let round = match claims.len() {
            0 => Round::Nothing,
            claimed if claimed == limit => Round::Full,
            _ => Round::Claimed,
        };
        for claim in claims {
            let Ok(record_permit) = self.shared.budget.clone().try_acquire_owned() else {
                // Cannot happen: we claimed no more than the free permits
                // and only this loop takes them. The lease will expire.
                tracing::error!("claim budget unexpectedly exhausted");
                break;
            };
            let endpoint_permit = self.shared.reserve_endpoint(&claim.endpoint_id);
            tasks.spawn(attempt_task(
                self.shared.clone(),
                claim,
                None,
                record_permit,
                endpoint_permit,
            ));
        }
        Ok(round)
    }

    async fn next_due(&self) -> Option<Timestamp> {
        self.shared
            .store
            .next_due_at()
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "cannot read the next due time");
                None
            })
    }

    fn time_to_next(&self, next_due: Option<Timestamp>, now: Timestamp) -> Duration {
        let sweep = self.config.sweep_interval;
        match next_due {
            // Due work we could not take (pool or endpoint full): a finishing
            // attempt wakes us, the sweep timer is only a backstop.
            Some(next) if next <= now => sweep,
            Some(next) => Duration::from_millis((next.0 - now.0) as u64).min(sweep),
            None => sweep,
        }
    }
}

/// What one round of claiming came to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Round {
    /// As many claims as asked for: more may be due at once.
    Full,
    /// Some claims, fewer than asked for.
    Claimed,
    /// No room for claims: every claim budget permit is out.
    NoRoom,
    /// Room, but nothing due that could be claimed.
    Nothing,
}

/// Works one claim from its endpoint's slot to its recorded outcome.
async fn attempt_task(
    shared: Arc<Shared>,
    claim: Claim,
    target: Option<Target>,
    record_permit: OwnedSemaphorePermit,
    endpoint_slot: Arc<Semaphore>,
) {
    // Counted out of the endpoint's claims when dropped, even if the
    // attempt panics, so the endpoint never looks busy forever.
    let reservation = Reservation {
        shared: shared.clone(),
        endpoint: claim.endpoint_id.clone(),
    };
    // The endpoint's slot first, then a worker: a claim queued behind a
    // slow endpoint holds no worker that others could use. An endpoint
    // that turned slow with many claims queued would keep the last of them
    // waiting past their lease: those hand their delivery back instead.
    let worked = match tokio::time::timeout(shared.gate_wait, endpoint_slot.acquire()).await {
        Ok(Ok(_endpoint_permit)) => {
            let started = Instant::now();
            let worked = shared.work(&claim, target).await;
            // Only a request tells the endpoint's pace: a claim put off by
            // an open circuit or a rate limit, or logged as refused because
            // the endpoint is disabled, ends at once.
            if worked
                .as_ref()
                .is_some_and(|worked| worked.finished.verdict.is_some())
            {
                lock(&shared.endpoints).note_pace(&claim.endpoint_id, started.elapsed());
            }
            worked
        }
        Ok(Err(_)) => None,
        Err(_) => Some(shared.hand_back(&claim)),
    };
    // The HTTP part is over: the worker and the endpoint's slot were freed
    // above, so the next attempt need not wait for this commit.
    drop(reservation);
    shared.wake.notify_one();
    if let Some(worked) = worked {
        shared.finish(&claim, worked).await;
    }
    drop(record_permit);
    shared.wake.notify_one();
}

/// The message a claim is for, and its endpoint unless that was deleted.
type Target = (Message, Option<Endpoint>);

/// A worked claim and what it was about.
struct Worked {
    finished: Finished,
    message: Option<Message>,
    endpoint: Option<Endpoint>,
}

impl Shared {
    /// Endpoints claims leave alone: those with as many rounds of their
    /// concurrency outstanding as their pace allows (see [`crate::slots`]),
    /// or two rounds once half the claim budget is out, so a few fast
    /// endpoints that turn slow at once cannot hold the whole budget.
    /// Endpoints with an open circuit are claimed: their deliveries are put
    /// off to when it closes, which takes them out of the due queue instead
    /// of leaving a growing heap of due work every claim would have to step
    /// over.
    fn busy_endpoints(&self) -> Vec<EndpointId> {
        let deep = self.budget.available_permits() > self.budget_size / 2;
        lock(&self.endpoints).busy(self.per_endpoint_concurrency, deep)
    }

    fn reserve_endpoint(&self, endpoint: &EndpointId) -> Arc<Semaphore> {
        lock(&self.endpoints).reserve(endpoint, self.per_endpoint_concurrency)
    }

    /// Gives a claim's delivery back, due now, without an attempt and
    /// without using up a retry: it waited for its endpoint too long.
    fn hand_back(&self, claim: &Claim) -> Worked {
        let now = self.clock.now();
        tracing::debug!(msg = %claim.msg_id, endpoint = %claim.endpoint_id, "claim waited too long for its endpoint; handed back");
        let outcome = claim.outcome(DeliveryStatus::Pending, claim.attempt_count, Some(now), now);
        Worked {
            finished: Finished::without_attempt(outcome),
            message: None,
            endpoint: None,
        }
    }

    /// Loads (unless handed `target`) and attempts one claim; answers what
    /// to record. On a store failure nothing is recorded and the lease is
    /// left to expire, which retries the delivery: at-least-once, never lost.
    async fn work(&self, claim: &Claim, target: Option<Target>) -> Option<Worked> {
        let loaded = match target {
            Some(target) => Ok(Some(target)),
            None => self.store.claim_target(claim).await,
        };
        let (message, endpoint) = match loaded {
            Ok(Some(target)) => target,
            Ok(None) => return None, // the message (and its app) were deleted
            Err(error @ StoreError::Corrupt(_)) => {
                // Retrying cannot fix a row that does not decode: end the
                // delivery as failed (visible, recoverable) instead of
                // leasing it again forever.
                tracing::error!(%error, msg = %claim.msg_id, "claimed delivery is unreadable; failing it");
                let outcome = claim.outcome(
                    DeliveryStatus::Fail,
                    claim.attempt_count,
                    None,
                    self.clock.now(),
                );
                return Some(Worked {
                    finished: Finished::without_attempt(outcome),
                    message: None,
                    endpoint: None,
                });
            }
            Err(error) => {
                // Transient: the lease expires and the delivery is tried again.
                tracing::error!(%error, msg = %claim.msg_id, "cannot load a claimed delivery");
                return None;
            }
        };
        if let Some(endpoint) = endpoint.as_ref().filter(|endpoint| !endpoint.disabled) {
            let now = self.clock.now();
            // A resend is an operator's explicit ask: it goes through an
            // open circuit (and keeps its manual trigger).
            let open_until = self
                .health
                .open_until(&endpoint.id, now)
                .filter(|_| claim.trigger == TriggerType::Scheduled);
            // A rate slot too far off would outlast the lease: come back
            // for it later instead of holding the claim.
            let mut rate_wait = None;
            let throttled_until = match (open_until, endpoint.rate_limit) {
                (None, Some(per_second)) => {
                    match self.take_rate_slot(&endpoint.id, per_second, now).await {
                        Ok(wait) => {
                            rate_wait = Some(wait);
                            None
                        }
                        Err(until) => Some(until),
                    }
                }
                _ => None,
            };
            if let Some(until) = open_until.or(throttled_until) {
                // Put off without an attempt and without using up a retry.
                let outcome = claim.outcome(
                    DeliveryStatus::Pending,
                    claim.attempt_count,
                    Some(until),
                    now,
                );
                return Some(Worked {
                    finished: Finished::without_attempt(outcome),
                    message: Some(message),
                    endpoint: Some(endpoint.clone()),
                });
            }
            if let Some(wait) = rate_wait {
                tokio::time::sleep(wait).await;
            }
        }
        let _worker = self.pool.acquire().await.ok()?;
        let finished = perform(
            &self.client,
            &*self.clock,
            &self.policy,
            claim,
            &message,
            endpoint.as_ref(),
        )
        .await;
        if let (Some(verdict), Some(endpoint)) = (finished.verdict, endpoint.as_ref()) {
            // Before the endpoint's slot is freed, so a claim waiting for it
            // sees the circuit this answer opened.
            self.health.note(&endpoint.id, verdict, self.clock.now());
        }
        if let Some(attempt) = &finished.attempt {
            tracing::debug!(
                msg = %attempt.msg_id,
                endpoint = %attempt.endpoint_id,
                status = attempt.response_status_code,
                error = attempt.error.map(|error| error.as_str()),
                "attempt finished"
            );
        }
        Some(Worked {
            finished,
            message: Some(message),
            endpoint,
        })
    }

    /// Takes `endpoint`'s next delivery slot at `per_second`, shared with
    /// the other nodes when the store is, answering how long to wait for
    /// it; or, when the next slot is further off than
    /// [`RATE_WAIT_BUDGET`], nothing is taken and the answer (`Err`) is
    /// when to come back.
    async fn take_rate_slot(
        &self,
        endpoint: &EndpointId,
        per_second: u32,
        now: Timestamp,
    ) -> Result<Duration, Timestamp> {
        if self.store.is_shared() {
            let now_micros = now.0.saturating_mul(1000);
            let budget = i64::try_from(RATE_WAIT_BUDGET.as_micros()).unwrap_or(i64::MAX);
            let horizon = now_micros.saturating_add(budget);
            match self
                .store
                .take_rate_slot(endpoint, per_second, now_micros, horizon)
                .await
            {
                Ok(Some(slot)) => {
                    // From now, not from before the call: the call's own
                    // time (a wait for a connection) is already spent.
                    let after = self.clock.now().0.saturating_mul(1000);
                    let ahead = u64::try_from(slot.at_micros - after).unwrap_or(0);
                    return if slot.taken {
                        Ok(Duration::from_micros(ahead))
                    } else {
                        Err(Timestamp(slot.at_micros / 1000 + 1))
                    };
                }
                Ok(None) => {}
                Err(error) => {
                    // Better this node's own spacing than none.
                    tracing::warn!(%error, %endpoint, "cannot take a shared rate slot");
                }
            }
        }
        self.rates
            .take(endpoint, per_second, RATE_WAIT_BUDGET)
            .map_err(|wait| now.plus(wait))
    }

    /// Records a worked claim, then acts on what it showed: endpoint health
    /// and operational events. Nothing is raised for an outcome that could
    /// not be recorded (the delivery will be tried again).
    async fn finish(&self, claim: &Claim, worked: Worked) {
        let Worked {
            finished,
            message,
            endpoint,
        } = worked;
        let started = Instant::now();
        let recorded = self
            .store
            .record_attempt(finished.attempt.clone(), finished.outcome.clone())
            .await;
        self.metrics
            .observe_store("record_attempt", started.elapsed());
        let recorded = match recorded {
            Ok(recorded) => recorded,
            Err(error) => {
                tracing::error!(%error, msg = %claim.msg_id, "cannot record an attempt; it will be retried");
                return;
            }
        };
        self.count(&finished);
        let (Some(verdict), Some(endpoint), Some(attempt)) =
            (finished.verdict, endpoint, finished.attempt.as_ref())
        else {
            return;
        };
        let now = self.clock.now();
        match self
            .health
            .observe(&*self.store, &endpoint.id, verdict, now)
            .await
        {
            Ok(Some(disable)) => self.disable(&endpoint, disable).await,
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, endpoint = %endpoint.id, "cannot record endpoint health")
            }
        }
        if recorded != Recorded::Applied {
            // Another claim owns the delivery now, or a resend took the
            // outcome's place: the delivery did not end (or fail) here.
            return;
        }
        let kind = match (verdict, finished.outcome.status) {
            (Verdict::Succeeded, _) if claim.attempt_count >= FAILING_AFTER_ATTEMPTS => {
                Some(AttemptEvent::Recovered)
            }
            (Verdict::Failed | Verdict::Gone, DeliveryStatus::Fail)
                if claim.trigger == TriggerType::Scheduled =>
            {
                Some(AttemptEvent::Exhausted)
            }
            (Verdict::Failed | Verdict::Gone, DeliveryStatus::Pending)
                if finished.outcome.attempt_count == FAILING_AFTER_ATTEMPTS =>
            {
                Some(AttemptEvent::Failing)
            }
            _ => None,
        };
        if let Some(kind) = kind {
            self.raise_attempt_event(kind, claim, message.as_ref(), attempt)
                .await;
        }
    }

    fn count(&self, finished: &Finished) {
        if let Some(attempt) = &finished.attempt {
            let outcome = if attempt.status == DeliveryStatus::Success {
                "success"
            } else {
                "failure"
            };
            EngineMetrics::count(&self.metrics.attempts, outcome);
            self.metrics
                .attempt_duration
                .observe(attempt.response_duration_ms as f64 / 1000.0);
        }
        let outcome = match (finished.outcome.status, &finished.attempt) {
            (DeliveryStatus::Success, _) => "delivered",
            (DeliveryStatus::Pending, None) => "deferred",
            (DeliveryStatus::Pending | DeliveryStatus::Sending, _) => "retrying",
            (DeliveryStatus::Fail, _) => "failed",
        };
        EngineMetrics::count(&self.metrics.deliveries, outcome);
    }

    /// Turns `endpoint` off (a `410 Gone`, or failing for too long) and
    /// tells the operator.
    async fn disable(&self, endpoint: &Endpoint, disable: Disable) {
        let result = self
            .store
            .disable_endpoint(&endpoint.app_id, &endpoint.id, self.clock.now())
            .await;
        let disabled = match result {
            Ok(Some(disabled)) => disabled,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(%error, endpoint = %endpoint.id, "cannot disable a failing endpoint");
                return;
            }
        };
        self.health.forget(&endpoint.id);
        tracing::warn!(endpoint = %endpoint.id, fail_since = %disable.fail_since, "endpoint disabled");
        let app_uid = self.app_uid(&endpoint.app_id).await;
        self.raise(OperationalEvent::EndpointDisabled {
            endpoint: Box::new(disabled),
            app_uid,
            fail_since: Some(disable.fail_since),
            trigger: DisableTrigger::Automatic,
        })
        .await;
    }

    async fn raise_attempt_event(
        &self,
        kind: AttemptEvent,
        claim: &Claim,
        message: Option<&Message>,
        attempt: &Attempt,
    ) {
        let app_uid = self.app_uid(&claim.app_id).await;
        self.raise(OperationalEvent::Attempt {
            kind,
            app_id: claim.app_id.clone(),
            app_uid,
            msg_id: claim.msg_id.clone(),
            msg_event_id: message.and_then(|message| message.event_id.clone()),
            endpoint_id: claim.endpoint_id.clone(),
            last_attempt: LastAttempt {
                id: attempt.id.clone(),
                response_status_code: attempt.response_status_code,
                timestamp: attempt.timestamp,
            },
        })
        .await;
    }

    async fn app_uid(&self, app: &herald_core::AppId) -> Option<herald_core::Uid> {
        match self.store.app_by_ref(app.as_str()).await {
            Ok(found) => found.and_then(|app| app.uid),
            Err(error) => {
                tracing::warn!(%error, %app, "cannot read an app for an operational event");
                None
            }
        }
    }

    async fn raise(&self, event: OperationalEvent) {
        match self.operational.emit(&event).await {
            Ok(true) => self.wake.notify_one(),
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%error, event = event.event_type(), "cannot raise an operational event");
            }
        }
    }
}

/// One claim counted against its endpoint until dropped.
struct Reservation {
    shared: Arc<Shared>,
    endpoint: EndpointId,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        lock(&self.shared.endpoints).release(&self.endpoint);
    }
}

/// Resolves when another node signals new work; never without a signal.
async fn remote_wakeup(remote: Option<&Notify>) {
    match remote {
        Some(notify) => notify.notified().await,
        None => std::future::pending().await,
    }
}

fn lock(slots: &Mutex<EndpointSlots>) -> std::sync::MutexGuard<'_, EndpointSlots> {
    // Counters stay consistent even if a holder panicked mid-update.
    slots
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
