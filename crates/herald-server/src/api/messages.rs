//! `/api/v1/app/{app}/msg`: messages, and where each one went.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use herald_core::model::{App, DeliveryStatus, Message};
use herald_core::{AppId, Channel, EventTypeName, MessageId, Timestamp};
use herald_store::{MessageFilter, Page};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::api::apps::load_app;
use crate::api::endpoints::EndpointOut;
use crate::api::openapi::paths::{AppPath, EndpointPath, MessagePath};
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::wire::{
    comma_list, list_response, page_request, parse_time, query_time, ListParams, ListResponse,
};

/// Longest accepted `eventId`.
const MAX_EVENT_ID: usize = 256;
/// Most channels a message can be published on.
const MAX_CHANNELS: usize = 10;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct MessageIn {
    event_type: String,
    /// Kept as sent: validated without building a tree, stored and
    /// delivered byte for byte.
    #[schema(value_type = Object)]
    payload: Box<RawValue>,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// Days to keep the payload (5 to 90); after that it is deleted and
    /// the message kept. Without it (or the hours below) the payload lives
    /// as long as the message.
    #[serde(default)]
    payload_retention_period: Option<u64>,
    /// Hours to keep the payload (1 to 2,160), instead of the days above.
    #[serde(default)]
    payload_retention_hours: Option<u64>,
    /// Creates the application on the fly if it does not exist.
    #[serde(default)]
    application: Option<InlineApplication>,
    /// Deliver at this RFC 3339 time instead of at once, at most
    /// 30 days ahead; a time already past sends at once.
    #[serde(default)]
    deliver_at: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // accepted so SDK requests parse; not used
    #[schema(value_type = Option<Object>)]
    transformations_params: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InlineApplication {
    name: String,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    metadata: Option<herald_core::model::Metadata>,
}

/// A message as answered; `payload` is `{}` when content was not asked for.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageOut {
    id: String,
    event_type: String,
    event_id: Option<String>,
    #[schema(value_type = Object)]
    payload: Box<RawValue>,
    channels: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    timestamp: String,
    /// When a scheduled message is delivered; absent for one sent at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    deliver_at: Option<String>,
}

impl MessageOut {
    /// The message as answered at `now`: a payload past its retention reads
    /// `{}` even before the background purge has deleted it.
    pub(crate) fn new(message: Message, with_content: bool, now: Timestamp) -> Self {
        let deliver_at = message
            .is_scheduled()
            .then(|| message.first_due().to_rfc3339());
        // The stored payload is JSON already: it is answered as it is,
        // not parsed and written out again.
        let payload = if with_content && !message.payload_gone(now) {
            RawValue::from_string(message.payload).unwrap_or_else(|_| raw_json("null"))
        } else {
            raw_json("{}")
        };
        Self {
            id: message.id.to_string(),
            event_type: message.event_type.to_string(),
            event_id: message.event_id,
            payload,
            channels: (!message.channels.is_empty())
                .then(|| message.channels.iter().map(ToString::to_string).collect()),
            tags: (!message.tags.is_empty()).then_some(message.tags),
            timestamp: message.created_at.to_rfc3339(),
            deliver_at,
        }
    }
}

/// A constant JSON value.
fn raw_json(text: &'static str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap_or_else(|_| unreachable!("{text} is JSON"))
}

/// Validates and assembles a new message; the payload, valid JSON already,
/// is stored as it came and sent byte for byte on every attempt.
pub(crate) fn build_message(
    state: &AppState,
    app: AppId,
    event_type: EventTypeName,
    payload: Box<RawValue>,
    event_id: Option<String>,
    channels: Vec<String>,
    tags: Vec<String>,
) -> Result<Message, ApiError> {
    // A raw value carries no whitespace around it.
    if !payload.get().starts_with('{') {
        return Err(ApiError::invalid("payload", "must be a JSON object"));
    }
    let payload = String::from(Box::<str>::from(payload));
    let limit = state.config.max_payload_bytes;
    if payload.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    if let Some(event_id) = &event_id {
        if event_id.is_empty() || event_id.len() > MAX_EVENT_ID {
            return Err(ApiError::invalid(
                "eventId",
                format!("must be 1 to {MAX_EVENT_ID} characters"),
            ));
        }
    }
    if channels.len() > MAX_CHANNELS {
        return Err(ApiError::invalid(
            "channels",
            format!("must list at most {MAX_CHANNELS} channels"),
        ));
    }
    let channels = channels
        .iter()
        .map(|channel| Channel::parse(channel))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Message {
        id: MessageId::generate(),
        app_id: app,
        event_type,
        event_id,
        payload,
        channels,
        tags,
        headers: Default::default(),
        created_at: state.clock.now(),
        deliver_at: None,
        content_expunged_at: None,
        payload_expires_at: None,
    })
}

/// The furthest ahead a message may be scheduled: far enough for any
/// "remind them tomorrow" or "retry next week", near enough that a year
/// typed wrong is caught.
const MAX_SCHEDULE_AHEAD_MS: i64 = 30 * 24 * 3600 * 1000;

const HOUR_MS: i64 = 3600 * 1000;

/// How long a payload is kept, in milliseconds, from the two ways of
/// asking (Svix's bounds: 5 to 90 days, or 1 to 2,160 hours; not both).
fn payload_retention(days: Option<u64>, hours: Option<u64>) -> Result<Option<i64>, ApiError> {
    let hours = match (days, hours) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "payloadRetentionHours",
                "cannot be given with payloadRetentionPeriod",
            ))
        }
        (Some(days), None) if !(5..=90).contains(&days) => {
            return Err(ApiError::invalid(
                "payloadRetentionPeriod",
                "must be 5 to 90 days",
            ))
        }
        (None, Some(hours)) if !(1..=2160).contains(&hours) => {
            return Err(ApiError::invalid(
                "payloadRetentionHours",
                "must be 1 to 2160 hours",
            ))
        }
        (Some(days), None) => days * 24,
        (None, Some(hours)) => hours,
        (None, None) => return Ok(None),
    };
    // At most 2,160 hours: far inside i64 milliseconds.
    Ok(Some(i64::try_from(hours).unwrap_or(i64::MAX) * HOUR_MS))
}

/// The scheduled time of a message created at `now`, checked.
fn deliver_at(text: &str, now: Timestamp) -> Result<Timestamp, ApiError> {
    let at = parse_time("deliverAt", text, false)?;
    if at.0 > now.0.saturating_add(MAX_SCHEDULE_AHEAD_MS) {
        return Err(ApiError::invalid(
            "deliverAt",
            "must be at most 30 days in the future",
        ));
    }
    Ok(at)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ContentParams {
    /// Answer the payload (the default), or `{}` in its place.
    with_content: Option<bool>,
}

async fn app_for_create(
    state: &AppState,
    reference: &str,
    inline: Option<InlineApplication>,
) -> Result<App, ApiError> {
    if let Some(app) = state.store.app_by_ref(reference).await? {
        return Ok(app);
    }
    let Some(inline) = inline else {
        return Err(ApiError::NotFound("application"));
    };
    let uid = inline.uid.as_deref().unwrap_or(reference);
    let now = state.clock.now();
    let app = App {
        id: AppId::generate(),
        uid: Some(herald_core::Uid::parse(uid).map_err(|error| error.at("application.uid"))?),
        name: inline.name,
        rate_limit: None,
        metadata: inline.metadata.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    match state.store.create_app(app).await {
        Ok(app) => Ok(app),
        // Another request created it at the same moment.
        Err(herald_store::StoreError::Conflict { .. }) => state
            .store
            .app_by_ref(uid)
            .await?
            .ok_or(ApiError::NotFound("application")),
        Err(error) => Err(error.into()),
    }
}

/// Takes one message from `app`'s budget: its own `rateLimit` (messages
/// per second), else the server-wide default.
async fn check_app_rate(state: &AppState, app: &App) -> Result<(), ApiError> {
    let Some(limit) = app.rate_limit.or(state.config.app_rate_limit) else {
        return Ok(());
    };
    let shared_key = format!("app:{}", app.id);
    crate::rate_limit::take(state, &state.app_limiter, &app.id, &shared_key, limit)
        .await
        .map_err(|wait| ApiError::RateLimited {
            limit,
            retry_after_secs: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
        })
}

/// Accepts a message: answers 202 only after the message and its fan-out
/// are committed. An `idempotency-key` already used for this app answers
/// the first message again and queues nothing.
#[utoipa::path(
    post,
    operation_id = "v1.message.create",
    path = "/app/{app}/msg",
    tag = "messages",
    params(
        AppPath,
        ContentParams,
        (
            "idempotency-key" = Option<String>,
            Header,
            nullable = false,
            description = "A retried create with the same key answers the first message"
        ),
    ),
    request_body = MessageIn,
    responses((status = 202, body = MessageOut))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(params): Query<ContentParams>,
    headers: HeaderMap,
    Json(input): Json<MessageIn>,
) -> Result<impl IntoResponse, ApiError> {
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|value| {
            value
                .to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::BadRequest("idempotency-key must be visible ASCII".into()))
        })
        .transpose()?;
    let event_type = EventTypeName::parse(&input.event_type)?;
    let retention = payload_retention(
        input.payload_retention_period,
        input.payload_retention_hours,
    )?;
    // Checked in full before an application is created on the fly: a
    // refused message creates nothing. The app's id is set once it exists.
    let mut message = build_message(
        &state,
        AppId::generate(),
        event_type,
        input.payload,
        input.event_id,
        input.channels.unwrap_or_default(),
        input.tags.unwrap_or_default(),
    )?;
    if let Some(text) = &input.deliver_at {
        message.deliver_at = Some(deliver_at(text, message.created_at)?);
    }
    if let Some(kept) = retention {
        let expires_at = Timestamp(message.created_at.0.saturating_add(kept));
        if message.deliver_at.is_some_and(|at| at.0 >= expires_at.0) {
            let field = if input.payload_retention_hours.is_some() {
                "payloadRetentionHours"
            } else {
                "payloadRetentionPeriod"
            };
            return Err(ApiError::invalid(
                field,
                "must keep the payload past deliverAt",
            ));
        }
        message.payload_expires_at = Some(expires_at);
    }
    let app = app_for_create(&state, &app, input.application).await?;
    check_app_rate(&state, &app).await?;
    message.app_id = app.id;
    let started = std::time::Instant::now();
    // With room in the engine, the new deliveries go straight to their
    // first attempt: leased in the create's transaction, not claimed. A
    // scheduled message's deliveries wait in the queue for their time.
    let offer = (!message.is_scheduled())
        .then(|| state.engine.offer())
        .flatten();
    let (created, handed) = match offer {
        Some(offer) => {
            let (created, handed) = state
                .store
                .create_message_handing_off(message, idempotency_key, offer.terms())
                .await?;
            let count = handed.len();
            state.engine.hand_off(offer, &created.message, handed);
            (created, count)
        }
        None => (
            state.store.create_message(message, idempotency_key).await?,
            0,
        ),
    };
    state
        .engine
        .metrics()
        .observe_store("create_message", started.elapsed());
    if created.is_new {
        state.metrics.accepted("api");
    }
    if created.deliveries > handed {
        state.engine.wake();
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageOut::new(
            created.message,
            params.with_content.unwrap_or(true),
            state.clock.now(),
        )),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct MessageListParams {
    /// Items per page, 1 to 250 (50 by default).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// Where to continue: an answer's `iterator` or `prevIterator`.
    iterator: Option<String>,
    /// Only messages published on this channel.
    channel: Option<String>,
    /// Only messages with this tag.
    tag: Option<String>,
    /// Only messages created before this RFC 3339 time.
    before: Option<String>,
    /// Only messages created after this RFC 3339 time.
    after: Option<String>,
    /// Answer payloads (the default), or `{}` in their place.
    with_content: Option<bool>,
    /// Only these event types, comma-separated.
    event_types: Option<String>,
}

/// The message filters Svix's lists take, checked.
fn message_filter(
    event_types: Option<&str>,
    channel: Option<String>,
    tag: Option<String>,
    before: Option<&str>,
    after: Option<&str>,
) -> Result<MessageFilter, ApiError> {
    Ok(MessageFilter {
        event_types: comma_list(event_types),
        channel,
        tag,
        before: query_time("before", before)?,
        after: query_time("after", after)?,
    })
}

/// Lists an app's messages, newest first.
#[utoipa::path(
    get,
    operation_id = "v1.message.list",
    path = "/app/{app}/msg",
    tag = "messages",
    params(AppPath, MessageListParams),
    responses((status = 200, body = ListResponse<MessageOut>))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(params): Query<MessageListParams>,
) -> Result<Json<ListResponse<MessageOut>>, ApiError> {
    let app = load_app(&state, &app).await?;
    let request = page_request(params.limit, params.iterator.as_deref(), None, true)?;
    let filter = message_filter(
        params.event_types.as_deref(),
        params.channel,
        params.tag,
        params.before.as_deref(),
        params.after.as_deref(),
    )?;
    let with_content = params.with_content.unwrap_or(true);
    let now = state.clock.now();
    let page = state
        .store
        .list_messages(&app.id, filter, request.clone())
        .await?;
    Ok(Json(list_response(
        page,
        &request,
        |message| message.id.to_string(),
        |message| MessageOut::new(message, with_content, now),
    )))
}

/// Loads a message of an app by id or `eventId`, or answers 404.
pub(crate) async fn load_message(
    state: &AppState,
    app: &AppId,
    reference: &str,
) -> Result<Message, ApiError> {
    state
        .store
        .message_by_ref(app, reference)
        .await?
        .ok_or(ApiError::NotFound("message"))
}

/// Deletes a message's payload, for one sent with content it should not
/// have carried: the message and its attempts stay, its payload reads
/// `{}`, and it is not sent again (resends are refused, retries end).
#[utoipa::path(
    delete,
    operation_id = "v1.message.expunge-content",
    path = "/app/{app}/msg/{msg}/content",
    tag = "messages",
    params(MessagePath),
    responses((status = 204, description = "Deleted"))
)]
pub(crate) async fn expunge_content(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = load_app(&state, &app).await?;
    let message = load_message(&state, &app.id, &reference).await?;
    let now = state.clock.now();
    if !state
        .store
        .expunge_content(&app.id, &message.id, now)
        .await?
    {
        return Err(ApiError::NotFound("message"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// One message by id or `eventId`.
#[utoipa::path(
    get,
    operation_id = "v1.message.get",
    path = "/app/{app}/msg/{msg}",
    tag = "messages",
    params(MessagePath, ContentParams),
    responses((status = 200, body = MessageOut))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
    Query(params): Query<ContentParams>,
) -> Result<Json<MessageOut>, ApiError> {
    let app = load_app(&state, &app).await?;
    let message = load_message(&state, &app.id, &reference).await?;
    Ok(Json(MessageOut::new(
        message,
        params.with_content.unwrap_or(true),
        state.clock.now(),
    )))
}

/// Svix's textual name of a status.
pub(crate) fn status_text(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Success => "success",
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Fail => "fail",
        DeliveryStatus::Sending => "sending",
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageEndpointOut {
    #[serde(flatten)]
    endpoint: EndpointOut,
    status: i64,
    status_text: &'static str,
    /// When the next attempt is due; `null` once none is left.
    next_attempt: Option<String>,
    attempts: u32,
}

/// Where a message went: one entry per endpoint it was fanned out to, with
/// that delivery's status.
#[utoipa::path(
    get,
    operation_id = "v1.message-attempt.list-attempted-destinations",
    path = "/app/{app}/msg/{msg}/endpoint",
    tag = "messages",
    params(MessagePath, ListParams),
    responses((status = 200, body = ListResponse<MessageEndpointOut>))
)]
pub(crate) async fn destinations(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
    Query(params): Query<ListParams>,
) -> Result<Json<ListResponse<MessageEndpointOut>>, ApiError> {
    let request = params.page()?;
    let app = load_app(&state, &app).await?;
    let message = load_message(&state, &app.id, &reference).await?;
    let deliveries = state
        .store
        .deliveries_of_message(&app.id, &message.id)
        .await?;
    // Pages by endpoint id; the iterators come from the deliveries, so an
    // endpoint deleted since its fan-out leaves a page short, not a gap.
    let page = Page::of_all(deliveries, &request, |delivery| {
        delivery.endpoint_id.as_str()
    });
    let deliveries = list_response(
        page,
        &request,
        |delivery| delivery.endpoint_id.to_string(),
        |delivery| delivery,
    );
    let mut data = Vec::with_capacity(deliveries.data.len());
    for delivery in deliveries.data {
        let Some(endpoint) = state
            .store
            .endpoint_by_ref(&app.id, delivery.endpoint_id.as_str())
            .await?
        else {
            continue; // deleted since
        };
        data.push(MessageEndpointOut {
            endpoint: endpoint.into(),
            status: delivery.status.code(),
            status_text: status_text(delivery.status),
            next_attempt: delivery.next_attempt_at.map(|at| at.to_rfc3339()),
            attempts: delivery.attempt_count,
        });
    }
    Ok(Json(ListResponse {
        data,
        iterator: deliveries.iterator,
        prev_iterator: deliveries.prev_iterator,
        done: deliveries.done,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EndpointMessageOut {
    #[serde(flatten)]
    message: MessageOut,
    status: i64,
    status_text: &'static str,
    next_attempt: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EndpointMessagesParams {
    /// Items per page, 1 to 250 (50 by default).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// Where to continue: an answer's `iterator` or `prevIterator`.
    iterator: Option<String>,
    /// Only deliveries in this status: 0 success, 1 pending, 2 fail, 3 sending.
    status: Option<i64>,
    /// Answer payloads (the default), or `{}` in their place.
    with_content: Option<bool>,
    /// Only messages published on this channel.
    channel: Option<String>,
    /// Only messages with this tag.
    tag: Option<String>,
    /// Only messages created before this RFC 3339 time.
    before: Option<String>,
    /// Only messages created after this RFC 3339 time.
    after: Option<String>,
    /// Only these event types, comma-separated.
    event_types: Option<String>,
}

/// The messages sent (or due) to one endpoint, newest first, with that
/// delivery's status: what a tenant looks at when one endpoint misbehaves.
#[utoipa::path(
    get,
    operation_id = "v1.message-attempt.list-attempted-messages",
    path = "/app/{app}/endpoint/{endpoint}/msg",
    tag = "messages",
    params(EndpointPath, EndpointMessagesParams),
    responses((status = 200, body = ListResponse<EndpointMessageOut>))
)]
pub(crate) async fn of_endpoint(
    State(state): State<AppState>,
    Path((app, endpoint)): Path<(String, String)>,
    Query(params): Query<EndpointMessagesParams>,
) -> Result<Json<ListResponse<EndpointMessageOut>>, ApiError> {
    let endpoint = crate::api::endpoints::load_endpoint(&state, &app, &endpoint).await?;
    let status = params
        .status
        .map(|code| {
            DeliveryStatus::from_code(code)
                .ok_or_else(|| ApiError::invalid_query("status", "must be 0, 1, 2 or 3"))
        })
        .transpose()?;
    let request = page_request(params.limit, params.iterator.as_deref(), None, true)?;
    let filter = message_filter(
        params.event_types.as_deref(),
        params.channel,
        params.tag,
        params.before.as_deref(),
        params.after.as_deref(),
    )?;
    let with_content = params.with_content.unwrap_or(true);
    let now = state.clock.now();
    let page = state
        .store
        .list_endpoint_messages(
            &endpoint.app_id,
            &endpoint.id,
            status,
            filter,
            request.clone(),
        )
        .await?;
    Ok(Json(list_response(
        page,
        &request,
        |(message, _)| message.id.to_string(),
        |(message, delivery)| EndpointMessageOut {
            message: MessageOut::new(message, with_content, now),
            status: delivery.status.code(),
            status_text: status_text(delivery.status),
            next_attempt: delivery.next_attempt_at.map(|at| at.to_rfc3339()),
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_past_its_retention_reads_empty_before_the_purge() {
        let message = Message {
            payload: r#"{"card":"4242"}"#.to_owned(),
            payload_expires_at: Some(Timestamp(100)),
            ..herald_store::conformance::new_message(&AppId::generate(), "a.b", Timestamp(0))
        };
        let shown = |now: i64| {
            MessageOut::new(message.clone(), true, Timestamp(now))
                .payload
                .get()
                .to_owned()
        };
        assert_eq!(shown(99), r#"{"card":"4242"}"#);
        assert_eq!(shown(100), "{}");
    }
}
