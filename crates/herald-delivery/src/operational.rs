//! Operational webhooks: events about the platform itself (an endpoint was
//! disabled, a message ran out of retries…) sent to the operator's own
//! endpoints, with Svix's event names and payload shapes.
//!
//! The operator's endpoints belong to one application Herald keeps for
//! itself (uid [`OPERATIONAL_APP_UID`], created on first use), so an event
//! is an ordinary message of that app: stored, fanned out by the endpoints'
//! `filterTypes`, signed, retried and logged like any other. Events are
//! never raised about that app's own deliveries, so a broken operator
//! endpoint cannot feed itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use herald_core::model::{App, BackgroundTask, Endpoint, Message, Metadata};
use herald_core::{AppId, AttemptId, Clock, EndpointId, EventTypeName, MessageId, Timestamp, Uid};
use herald_store::{Store, StoreError};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

/// The uid of the application that holds operational endpoints.
pub const OPERATIONAL_APP_UID: &str = "herald-operational-webhooks";

/// The event types an operational endpoint can receive.
pub const OPERATIONAL_EVENT_TYPES: &[&str] = &[
    "background_task.finished",
    "endpoint.created",
    "endpoint.deleted",
    "endpoint.disabled",
    "endpoint.enabled",
    "endpoint.updated",
    "message.attempt.exhausted",
    "message.attempt.failing",
    "message.attempt.recovered",
];

/// Who turned an endpoint off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableTrigger {
    /// An operator or tenant, through the API.
    Manual,
    /// Herald, after a `410 Gone` or failing for too long.
    Automatic,
}

/// The last attempt of a delivery an event is about.
#[derive(Debug, Clone, PartialEq)]
pub struct LastAttempt {
    pub id: AttemptId,
    pub response_status_code: i32,
    pub timestamp: Timestamp,
}

/// One operational event.
#[derive(Debug, Clone, PartialEq)]
pub enum OperationalEvent {
    EndpointDisabled {
        endpoint: Box<Endpoint>,
        app_uid: Option<Uid>,
        fail_since: Option<Timestamp>,
        trigger: DisableTrigger,
    },
    EndpointEnabled {
        endpoint: Box<Endpoint>,
        app_uid: Option<Uid>,
    },
    /// An endpoint was created, edited or deleted (by the API or console).
    EndpointChanged {
        change: EndpointChange,
        endpoint: Box<Endpoint>,
        app_uid: Option<Uid>,
    },
    /// A recover or replay of one of `app_id`'s endpoints ended.
    TaskFinished {
        app_id: AppId,
        task: Box<BackgroundTask>,
    },
    /// `kind` is `exhausted`, `failing` or `recovered`.
    Attempt {
        kind: AttemptEvent,
        app_id: AppId,
        app_uid: Option<Uid>,
        msg_id: MessageId,
        msg_event_id: Option<String>,
        endpoint_id: EndpointId,
        last_attempt: LastAttempt,
    },
}

/// Which `endpoint.*` lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointChange {
    Created,
    Updated,
    Deleted,
}

/// Which `message.attempt.*` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEvent {
    /// Every retry failed; the delivery is over.
    Exhausted,
    /// The fourth attempt failed; retries go on.
    Failing,
    /// A delivery that had been failing succeeded.
    Recovered,
}

/// Failed attempts after which `message.attempt.failing` is sent (Svix's
/// choice: the fourth).
pub const FAILING_AFTER_ATTEMPTS: u32 = 4;

impl OperationalEvent {
    /// The event type name.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::EndpointDisabled { .. } => "endpoint.disabled",
            Self::EndpointEnabled { .. } => "endpoint.enabled",
            Self::EndpointChanged { change, .. } => match change {
                EndpointChange::Created => "endpoint.created",
                EndpointChange::Updated => "endpoint.updated",
                EndpointChange::Deleted => "endpoint.deleted",
            },
            Self::TaskFinished { .. } => "background_task.finished",
            Self::Attempt { kind, .. } => match kind {
                AttemptEvent::Exhausted => "message.attempt.exhausted",
                AttemptEvent::Failing => "message.attempt.failing",
                AttemptEvent::Recovered => "message.attempt.recovered",
            },
        }
    }

    /// The application the event is about.
    fn subject_app(&self) -> &AppId {
        match self {
            Self::EndpointDisabled { endpoint, .. }
            | Self::EndpointEnabled { endpoint, .. }
            | Self::EndpointChanged { endpoint, .. } => &endpoint.app_id,
            Self::Attempt { app_id, .. } | Self::TaskFinished { app_id, .. } => app_id,
        }
    }

    /// The body sent: `{"type": …, "data": {…}}`.
    pub fn payload(&self) -> Value {
        let uid = |uid: &Option<Uid>| uid.as_ref().map(|uid| uid.as_str().to_owned());
        let data = match self {
            Self::EndpointDisabled {
                endpoint,
                app_uid,
                fail_since,
                trigger,
            } => json!({
                "appId": endpoint.app_id,
                "appUid": uid(app_uid),
                "endpointId": endpoint.id,
                "endpointUid": uid(&endpoint.uid),
                "failSince": fail_since.map(Timestamp::to_rfc3339),
                "trigger": match trigger {
                    DisableTrigger::Manual => "manual",
                    DisableTrigger::Automatic => "automatic",
                },
            }),
            Self::EndpointEnabled { endpoint, app_uid }
            | Self::EndpointChanged {
                endpoint, app_uid, ..
            } => json!({
                "appId": endpoint.app_id,
                "appUid": uid(app_uid),
                "endpointId": endpoint.id,
                "endpointUid": uid(&endpoint.uid),
            }),
            Self::TaskFinished { task, .. } => json!({
                "data": task.data,
                "status": task.status.as_str(),
                "task": task.kind.as_str(),
                "taskId": task.id,
            }),
            Self::Attempt {
                app_id,
                app_uid,
                msg_id,
                msg_event_id,
                endpoint_id,
                last_attempt,
                ..
            } => json!({
                "appId": app_id,
                "appUid": uid(app_uid),
                "msgId": msg_id,
                "msgEventId": msg_event_id,
                "endpointId": endpoint_id,
                "lastAttempt": {
                    "id": last_attempt.id,
                    "responseStatusCode": last_attempt.response_status_code,
                    "timestamp": last_attempt.timestamp.to_rfc3339(),
                },
            }),
        };
        json!({ "type": self.event_type(), "data": data })
    }
}

/// Raises operational events; cheap to clone.
#[derive(Clone)]
pub struct Operational {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    app: Arc<OnceCell<AppId>>,
}

impl Operational {
    pub(crate) fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            app: Arc::new(OnceCell::new()),
        }
    }

    /// The application holding the operational endpoints, created on first
    /// use (by whichever node gets there first).
    pub async fn app(&self) -> Result<AppId, StoreError> {
        self.app
            .get_or_try_init(|| async {
                if let Some(app) = self.store.app_by_ref(OPERATIONAL_APP_UID).await? {
                    return Ok(app.id);
                }
                let now = self.clock.now();
                let uid = Uid::parse(OPERATIONAL_APP_UID)
                    .map_err(|error| StoreError::Corrupt(error.to_string()))?;
                let app = App {
                    id: AppId::generate(),
                    uid: Some(uid),
                    name: "Operational webhooks".to_owned(),
                    rate_limit: None,
                    metadata: Metadata::new(),
                    created_at: now,
                    updated_at: now,
                };
                match self.store.create_app(app).await {
                    Ok(app) => Ok(app.id),
                    // Another node (or request) created it meanwhile.
                    Err(StoreError::Conflict { .. }) => self
                        .store
                        .app_by_ref(OPERATIONAL_APP_UID)
                        .await?
                        .map(|app| app.id)
                        .ok_or(StoreError::NotFound("application")),
                    Err(error) => Err(error),
                }
            })
            .await
            .cloned()
    }

    /// Stores `event` as a message of the operational app, fanned out to
    /// the operator's endpoints that subscribe to it. Answers whether
    /// anything was queued.
    pub async fn emit(&self, event: &OperationalEvent) -> Result<bool, StoreError> {
        // Until an operator adds an operational endpoint (which creates the
        // app) nobody listens: nothing is stored, and no app appears.
        let app = match self.app.get() {
            Some(app) => app.clone(),
            None => match self.store.app_by_ref(OPERATIONAL_APP_UID).await? {
                Some(app) => self.app.get_or_init(|| async { app.id }).await.clone(),
                None => return Ok(false),
            },
        };
        if event.subject_app() == &app {
            return Ok(false);
        }
        let event_type = EventTypeName::parse(event.event_type())
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let message = Message {
            id: MessageId::generate(),
            app_id: app,
            event_type,
            event_id: None,
            payload: event.payload().to_string(),
            channels: Vec::new(),
            tags: Vec::new(),
            headers: BTreeMap::new(),
            created_at: self.clock.now(),
            deliver_at: None,
            content_expunged_at: None,
            payload_expires_at: None,
        };
        let created = self.store.create_message(message, None).await?;
        Ok(created.deliveries > 0)
    }
}
