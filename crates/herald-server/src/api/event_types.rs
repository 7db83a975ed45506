//! `/api/v1/event-type`: the kinds of events a platform sends.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use herald_core::model::EventType;
use herald_core::EventTypeName;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::api::openapi::paths::EventTypePath;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::wire::{list_response, page_request, ListResponse, Patch};

/// The body of a create (POST, `name` required) or a replace (PUT, the
/// name comes from the path).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EventTypeIn {
    /// Required when creating with `POST`; a `PUT` takes the name from its
    /// path and ignores this.
    #[serde(default)]
    name: Option<String>,
    description: String,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    deprecated: bool,
    #[serde(default)]
    schemas: Option<Value>,
    #[serde(default)]
    feature_flag: Option<String>,
    #[serde(default)]
    feature_flags: Option<Vec<String>>,
    #[serde(default)]
    group_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EventTypePatch {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    description: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    archived: Patch<bool>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    deprecated: Patch<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    schemas: Patch<Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    feature_flag: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    feature_flags: Patch<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    group_name: Patch<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventTypeOut {
    name: String,
    description: String,
    archived: bool,
    deprecated: bool,
    schemas: Option<Value>,
    feature_flag: Option<String>,
    feature_flags: Option<Vec<String>>,
    group_name: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<EventType> for EventTypeOut {
    fn from(event_type: EventType) -> Self {
        Self {
            name: event_type.name.to_string(),
            description: event_type.description,
            archived: event_type.archived,
            deprecated: event_type.deprecated,
            schemas: event_type.schemas,
            feature_flags: event_type.feature_flag.clone().map(|flag| vec![flag]),
            feature_flag: event_type.feature_flag,
            group_name: event_type.group_name,
            created_at: event_type.created_at.to_rfc3339(),
            updated_at: event_type.updated_at.to_rfc3339(),
        }
    }
}

fn check_schemas(schemas: &Option<Value>) -> Result<(), ApiError> {
    match schemas {
        None | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err(ApiError::invalid(
            "schemas",
            "must be an object of JSON Schemas keyed by version",
        )),
    }
}

fn feature_flag(single: Option<String>, list: Option<Vec<String>>) -> Option<String> {
    single.or_else(|| list.and_then(|flags| flags.into_iter().next()))
}

fn build(
    name: EventTypeName,
    fields: EventTypeIn,
    now: herald_core::Timestamp,
) -> Result<EventType, ApiError> {
    check_schemas(&fields.schemas)?;
    Ok(EventType {
        name,
        description: fields.description,
        archived: fields.archived,
        deprecated: fields.deprecated,
        schemas: fields.schemas,
        feature_flag: feature_flag(fields.feature_flag, fields.feature_flags),
        group_name: fields.group_name,
        created_at: now,
        updated_at: now,
    })
}

async fn load(state: &AppState, name: &str) -> Result<EventType, ApiError> {
    state
        .store
        .event_type(name)
        .await?
        .ok_or(ApiError::NotFound("event type"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Items per page, 1 to 250 (50 by default).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// Where to continue: an answer's `iterator` or `prevIterator`.
    iterator: Option<String>,
    /// `ascending` or `descending`.
    order: Option<String>,
    /// List archived event types too.
    #[serde(default)]
    include_archived: bool,
}

/// Lists event types by name.
#[utoipa::path(
    get,
    operation_id = "v1.event-type.list",
    path = "/event-type",
    tag = "event types",
    params(ListParams),
    responses((status = 200, body = ListResponse<EventTypeOut>))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<ListResponse<EventTypeOut>>, ApiError> {
    let request = page_request(
        params.limit,
        params.iterator.as_deref(),
        params.order.as_deref(),
        false,
    )?;
    let page = state
        .store
        .list_event_types(request.clone(), params.include_archived)
        .await?;
    Ok(Json(list_response(
        page,
        &request,
        |event_type| event_type.name.to_string(),
        EventTypeOut::from,
    )))
}

/// Creates an event type.
#[utoipa::path(
    post,
    operation_id = "v1.event-type.create",
    path = "/event-type",
    tag = "event types",
    request_body = EventTypeIn,
    responses((status = 201, body = EventTypeOut))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Json(input): Json<EventTypeIn>,
) -> Result<impl IntoResponse, ApiError> {
    let name = input
        .name
        .as_deref()
        .ok_or_else(|| ApiError::invalid("name", "is required"))?;
    let name = EventTypeName::parse(name).map_err(|error| error.at("name"))?;
    let event_type = build(name, input, state.clock.now())?;
    let created = state.store.create_event_type(event_type).await?;
    Ok((StatusCode::CREATED, Json(EventTypeOut::from(created))))
}

/// One event type by name.
#[utoipa::path(
    get,
    operation_id = "v1.event-type.get",
    path = "/event-type/{name}",
    tag = "event types",
    params(EventTypePath),
    responses((status = 200, body = EventTypeOut))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<EventTypeOut>, ApiError> {
    Ok(Json(load(&state, &name).await?.into()))
}

/// Replaces an event type, creating it if missing.
#[utoipa::path(
    put,
    operation_id = "v1.event-type.update",
    path = "/event-type/{name}",
    tag = "event types",
    params(EventTypePath),
    request_body = EventTypeIn,
    responses(
        (status = 200, description = "Replaced", body = EventTypeOut),
        (status = 201, description = "Created", body = EventTypeOut),
    )
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(input): Json<EventTypeIn>,
) -> Result<impl IntoResponse, ApiError> {
    let now = state.clock.now();
    match state.store.event_type(&name).await? {
        Some(existing) => {
            let mut event_type = build(existing.name, input, now)?;
            event_type.created_at = existing.created_at;
            let updated = state.store.update_event_type(event_type).await?;
            Ok((StatusCode::OK, Json(EventTypeOut::from(updated))))
        }
        None => {
            let name = EventTypeName::parse(&name).map_err(|error| error.at("name"))?;
            let created = state
                .store
                .create_event_type(build(name, input, now)?)
                .await?;
            Ok((StatusCode::CREATED, Json(EventTypeOut::from(created))))
        }
    }
}

/// Changes the given fields of an event type.
#[utoipa::path(
    patch,
    operation_id = "v1.event-type.patch",
    path = "/event-type/{name}",
    tag = "event types",
    params(EventTypePath),
    request_body = EventTypePatch,
    responses((status = 200, body = EventTypeOut))
)]
pub(crate) async fn patch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(input): Json<EventTypePatch>,
) -> Result<Json<EventTypeOut>, ApiError> {
    let mut event_type = load(&state, &name).await?;
    if let Some(description) = input.description.into_value() {
        event_type.description = description;
    }
    if let Some(archived) = input.archived.into_value() {
        event_type.archived = archived;
    }
    if let Some(deprecated) = input.deprecated.into_value() {
        event_type.deprecated = deprecated;
    }
    input.schemas.apply(&mut event_type.schemas);
    check_schemas(&event_type.schemas)?;
    match input.feature_flags {
        Patch::Value(flags) => event_type.feature_flag = flags.into_iter().next(),
        Patch::Null => event_type.feature_flag = None,
        Patch::Absent => input.feature_flag.apply(&mut event_type.feature_flag),
    }
    input.group_name.apply(&mut event_type.group_name);
    event_type.updated_at = state.clock.now();
    Ok(Json(
        state.store.update_event_type(event_type).await?.into(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteParams {
    /// Delete for good instead of archiving.
    #[serde(default)]
    expunge: bool,
}

/// Archives an event type (it stays usable by existing messages);
/// `expunge=true` deletes it for good.
#[utoipa::path(
    delete,
    operation_id = "v1.event-type.delete",
    path = "/event-type/{name}",
    tag = "event types",
    params(EventTypePath, DeleteParams),
    responses((status = 204, description = "Archived or deleted"))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    let mut event_type = load(&state, &name).await?;
    if params.expunge {
        state.store.delete_event_type(&name).await?;
    } else {
        event_type.archived = true;
        event_type.updated_at = state.clock.now();
        state.store.update_event_type(event_type).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
