//! `/api/v1/app/{app}/endpoint`: where a tenant's messages go, with their
//! secrets, headers, recovery, test events and statistics.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use herald_core::model::{Endpoint, Metadata, RetiredKey, TaskKind, RESERVED_HEADERS};
use herald_core::{
    AppId, Channel, EndpointId, EndpointUrl, EventTypeName, SigningKey, Timestamp, Uid,
};
use herald_delivery::operational::{DisableTrigger, EndpointChange, OperationalEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::api::apps::load_app;
use crate::api::background_tasks::{self, BackgroundTaskOut};
use crate::api::messages::{self, MessageOut};
use crate::api::openapi::paths::{AppPath, EndpointPath};
use crate::api::operational;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::wire::{list_response, parse_time, query_time, ListParams, ListResponse, Patch};

/// Longest a rotated-out key may keep signing: a forgotten old key must not
/// stay valid indefinitely.
const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;

/// Channels an endpoint may subscribe to at most.
const MAX_CHANNELS: usize = 10;

/// Create (POST) and replace (PUT) bodies; `secret`, `keyType` and
/// `headers` only apply on create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EndpointIn {
    url: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    version: Option<i32>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    filter_types: Option<Vec<String>>,
    #[serde(default)]
    event_types: Option<Vec<String>>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    #[schema(minimum = 1)]
    rate_limit: Option<u32>,
    #[serde(default)]
    #[schema(minimum = 1)]
    throttle_rate: Option<u32>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    key_type: Option<KeyType>,
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    metadata: Option<Metadata>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

impl EndpointIn {
    /// The event types the endpoint asks for, under whichever field name
    /// (`filterTypes` or Svix's newer `eventTypes`) it used.
    pub(crate) fn subscriptions(&self) -> Vec<(&'static str, &Vec<String>)> {
        [
            ("filterTypes", self.filter_types.as_ref()),
            ("eventTypes", self.event_types.as_ref()),
        ]
        .into_iter()
        .filter_map(|(field, types)| Some((field, types?)))
        .collect()
    }
}

/// The kind of signing key Herald generates when the caller gives none
/// (`keyType`, a Herald extension named after Svix's
/// `default_signature_type` values). Svix's API has no such field and its
/// SDKs never send it, so they keep getting `hmac256` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KeyType {
    /// A `whsec_` key: `v1` signatures, the receiver holds the secret.
    Hmac256,
    /// A `whsk_` key pair: `v1a` signatures, the receiver holds only the
    /// `whpk_` public key.
    Ed25519,
}

impl KeyType {
    fn of(key: &SigningKey) -> Self {
        if key.is_asymmetric() {
            Self::Ed25519
        } else {
            Self::Hmac256
        }
    }
}

/// The key a create or rotate asked for: the one given in `field`
/// (`whsec_…` or `whsk_…`), else a new one of `key_type` (HMAC by default,
/// as Svix does). A given key and a `keyType` of another kind contradict
/// each other and are refused rather than one silently winning.
fn signing_key(
    given: Option<&str>,
    key_type: Option<KeyType>,
    field: &str,
) -> Result<SigningKey, ApiError> {
    let Some(text) = given else {
        return Ok(match key_type {
            Some(KeyType::Ed25519) => SigningKey::generate_ed25519(),
            Some(KeyType::Hmac256) | None => SigningKey::generate(),
        });
    };
    let key = SigningKey::parse(text).map_err(|error| error.at(field))?;
    match key_type {
        Some(kind) if kind != KeyType::of(&key) => Err(ApiError::invalid(
            "keyType",
            format!("does not match the kind of key given in {field}"),
        )),
        _ => Ok(key),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EndpointPatch {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    url: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    description: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    uid: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<i32>)]
    version: Patch<i32>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    disabled: Patch<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    filter_types: Patch<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    event_types: Patch<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    channels: Patch<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1)]
    rate_limit: Patch<u32>,
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1)]
    throttle_rate: Patch<u32>,
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    metadata: Patch<Metadata>,
}

/// An endpoint as answered. Filters and rate appear under both their old
/// and new Svix names so every SDK generation reads them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EndpointOut {
    pub(crate) id: String,
    pub(crate) uid: Option<String>,
    pub(crate) url: String,
    pub(crate) description: String,
    pub(crate) version: i32,
    pub(crate) disabled: bool,
    pub(crate) filter_types: Option<Vec<String>>,
    pub(crate) event_types: Option<Vec<String>>,
    pub(crate) channels: Option<Vec<String>>,
    pub(crate) rate_limit: Option<u32>,
    pub(crate) throttle_rate: Option<u32>,
    #[schema(value_type = BTreeMap<String, String>)]
    pub(crate) metadata: Metadata,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

impl From<Endpoint> for EndpointOut {
    fn from(endpoint: Endpoint) -> Self {
        let filter_types: Option<Vec<String>> = endpoint
            .filter_types
            .map(|types| types.iter().map(ToString::to_string).collect());
        Self {
            id: endpoint.id.to_string(),
            uid: endpoint.uid.map(|uid| uid.to_string()),
            url: endpoint.url.to_string(),
            description: endpoint.description,
            version: endpoint.version,
            disabled: endpoint.disabled,
            event_types: filter_types.clone(),
            filter_types,
            channels: endpoint
                .channels
                .map(|channels| channels.iter().map(ToString::to_string).collect()),
            rate_limit: endpoint.rate_limit,
            throttle_rate: endpoint.rate_limit,
            metadata: endpoint.metadata,
            created_at: endpoint.created_at.to_rfc3339(),
            updated_at: endpoint.updated_at.to_rfc3339(),
        }
    }
}

fn parse_filter(
    types: Option<Vec<String>>,
    field: &str,
) -> Result<Option<Vec<EventTypeName>>, ApiError> {
    let Some(types) = types else { return Ok(None) };
    if types.is_empty() {
        return Err(ApiError::invalid(
            field,
            "must list at least one event type, or be omitted",
        ));
    }
    types
        .iter()
        .map(|name| EventTypeName::parse(name).map_err(|error| ApiError::from(error.at(field))))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn parse_channels(channels: Option<Vec<String>>) -> Result<Option<Vec<Channel>>, ApiError> {
    let Some(channels) = channels else {
        return Ok(None);
    };
    if channels.is_empty() || channels.len() > MAX_CHANNELS {
        return Err(ApiError::invalid(
            "channels",
            format!("must list between 1 and {MAX_CHANNELS} channels, or be omitted"),
        ));
    }
    channels
        .iter()
        .map(|name| Channel::parse(name).map_err(ApiError::from))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn parse_uid(uid: Option<&str>) -> Result<Option<Uid>, ApiError> {
    uid.map(|uid| {
        if EndpointId::parse(uid).is_some() {
            return Err(ApiError::invalid(
                "uid",
                "must not look like an endpoint id",
            ));
        }
        Uid::parse(uid).map_err(ApiError::from)
    })
    .transpose()
}

fn parse_version(version: Option<i32>) -> Result<i32, ApiError> {
    match version {
        None => Ok(1),
        Some(version) if version >= 1 => Ok(version),
        Some(_) => Err(ApiError::invalid("version", "must be at least 1")),
    }
}

fn parse_rate(rate: Option<u32>) -> Result<Option<u32>, ApiError> {
    match rate {
        Some(0) => Err(ApiError::invalid("throttleRate", "must be at least 1")),
        other => Ok(other),
    }
}

/// Header names whose values are not echoed back by `GET …/headers`.
const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for (name, value) in headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ApiError::invalid(
                "headers",
                format!("'{name}' is not a valid header name"),
            ));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(ApiError::invalid(
                "headers",
                format!("'{name}' is set by Herald and cannot be overridden"),
            ));
        }
        if HeaderValue::from_str(value).is_err() {
            return Err(ApiError::invalid(
                "headers",
                format!("the value of '{name}' is not a valid header value"),
            ));
        }
    }
    Ok(())
}

/// Loads an endpoint of an app (both by id or uid), or answers 404.
pub(crate) async fn load_endpoint(
    state: &AppState,
    app: &str,
    endpoint: &str,
) -> Result<Endpoint, ApiError> {
    let app = load_app(state, app).await?;
    endpoint_of(state, &app.id, endpoint).await
}

/// Loads an endpoint (by id or uid) of an app already loaded, or answers
/// 404. The ingest API reaches a source's destinations through this too.
pub(crate) async fn endpoint_of(
    state: &AppState,
    app: &AppId,
    endpoint: &str,
) -> Result<Endpoint, ApiError> {
    state
        .store
        .endpoint_by_ref(app, endpoint)
        .await?
        .ok_or(ApiError::NotFound("endpoint"))
}

/// Lists an app's endpoints, oldest first.
#[utoipa::path(
    get,
    operation_id = "v1.endpoint.list",
    path = "/app/{app}/endpoint",
    tag = "endpoints",
    params(AppPath, ListParams),
    responses((status = 200, body = ListResponse<EndpointOut>))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<ListResponse<EndpointOut>>, ApiError> {
    let app = load_app(&state, &app).await?;
    list_of(&state, &app.id, params).await.map(Json)
}

/// The endpoints of an app already loaded, oldest first.
pub(crate) async fn list_of(
    state: &AppState,
    app: &AppId,
    params: ListParams,
) -> Result<ListResponse<EndpointOut>, ApiError> {
    let request = params.page()?;
    let page = state.store.list_endpoints(app, request.clone()).await?;
    Ok(list_response(
        page,
        &request,
        |endpoint| endpoint.id.to_string(),
        EndpointOut::from,
    ))
}

/// Refuses a URL whose host is a literal address the SSRF guard blocks
/// (loopback, private, link-local, metadata…) unless allowlisted: such an
/// endpoint could never be delivered to. Hostnames are checked when the
/// engine connects, on every address they resolve to.
fn check_target(state: &AppState, url: &EndpointUrl) -> Result<(), ApiError> {
    let Ok(parsed) = url::Url::parse(url.as_str()) else {
        return Ok(());
    };
    state
        .ssrf
        .check_literal(&parsed)
        .map_err(|blocked| ApiError::invalid("url", blocked.to_string()))
}

/// The fields shared by create and replace, validated.
struct Settings {
    url: EndpointUrl,
    description: String,
    uid: Option<Uid>,
    version: i32,
    disabled: bool,
    filter_types: Option<Vec<EventTypeName>>,
    channels: Option<Vec<Channel>>,
    rate_limit: Option<u32>,
    metadata: Metadata,
}

fn settings(input: &mut EndpointIn) -> Result<Settings, ApiError> {
    let (filter, field) = match input.event_types.take() {
        Some(types) => (Some(types), "eventTypes"),
        None => (input.filter_types.take(), "filterTypes"),
    };
    Ok(Settings {
        url: EndpointUrl::parse(&input.url)?,
        description: input.description.take().unwrap_or_default(),
        uid: parse_uid(input.uid.as_deref())?,
        version: parse_version(input.version)?,
        disabled: input.disabled.unwrap_or(false),
        filter_types: parse_filter(filter, field)?,
        channels: parse_channels(input.channels.take())?,
        rate_limit: parse_rate(input.throttle_rate.or(input.rate_limit))?,
        metadata: input.metadata.take().unwrap_or_default(),
    })
}

fn new_endpoint(
    state: &AppState,
    app: herald_core::AppId,
    settings: Settings,
    key: SigningKey,
    headers: BTreeMap<String, String>,
) -> Result<Endpoint, ApiError> {
    check_headers(&headers)?;
    let now = state.clock.now();
    Ok(Endpoint {
        id: EndpointId::generate(),
        app_id: app,
        uid: settings.uid,
        url: settings.url,
        description: settings.description,
        version: settings.version,
        disabled: settings.disabled,
        filter_types: settings.filter_types,
        channels: settings.channels,
        rate_limit: settings.rate_limit,
        metadata: settings.metadata,
        headers,
        key,
        retired_keys: Vec::new(),
        created_at: now,
        updated_at: now,
    })
}

/// Creates an endpoint; without `secret` a key is generated, an ed25519
/// pair if `keyType` is `ed25519`.
#[utoipa::path(
    post,
    operation_id = "v1.endpoint.create",
    path = "/app/{app}/endpoint",
    tag = "endpoints",
    params(AppPath),
    request_body = EndpointIn,
    responses((status = 201, body = EndpointOut))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(input): Json<EndpointIn>,
) -> Result<impl IntoResponse, ApiError> {
    let app = load_app(&state, &app).await?;
    let endpoint = create_in(&state, app.id, input).await?;
    Ok((StatusCode::CREATED, Json(EndpointOut::from(endpoint))))
}

/// Creates an endpoint of an app already loaded.
pub(crate) async fn create_in(
    state: &AppState,
    app: AppId,
    mut input: EndpointIn,
) -> Result<Endpoint, ApiError> {
    let settings = settings(&mut input)?;
    check_target(state, &settings.url)?;
    let key = signing_key(input.secret.as_deref(), input.key_type, "secret")?;
    let endpoint = new_endpoint(
        state,
        app,
        settings,
        key,
        input.headers.take().unwrap_or_default(),
    )?;
    let endpoint = state.store.create_endpoint(endpoint).await?;
    announce(state, &endpoint, EndpointChange::Created).await;
    Ok(endpoint)
}

/// Tells the operator's operational endpoints that `endpoint` was created,
/// edited or deleted (see [`operational::raise`]).
async fn announce(state: &AppState, endpoint: &Endpoint, change: EndpointChange) {
    let app_uid = match state.store.app_by_ref(endpoint.app_id.as_str()).await {
        Ok(app) => app.and_then(|app| app.uid),
        Err(error) => {
            tracing::warn!(%error, endpoint = %endpoint.id, "cannot announce an endpoint change");
            return;
        }
    };
    let event = OperationalEvent::EndpointChanged {
        change,
        endpoint: Box::new(endpoint.clone()),
        app_uid,
    };
    operational::raise(state, event).await;
}

/// One endpoint by id or uid.
#[utoipa::path(
    get,
    operation_id = "v1.endpoint.get",
    path = "/app/{app}/endpoint/{endpoint}",
    tag = "endpoints",
    params(EndpointPath),
    responses((status = 200, body = EndpointOut))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path((app, endpoint)): Path<(String, String)>,
) -> Result<Json<EndpointOut>, ApiError> {
    Ok(Json(load_endpoint(&state, &app, &endpoint).await?.into()))
}

/// Replaces an endpoint's settings (secret and headers stay); creates it,
/// with the path's uid, if missing.
#[utoipa::path(
    put,
    operation_id = "v1.endpoint.update",
    path = "/app/{app}/endpoint/{endpoint}",
    tag = "endpoints",
    params(EndpointPath),
    request_body = EndpointIn,
    responses(
        (status = 200, description = "Replaced", body = EndpointOut),
        (status = 201, description = "Created", body = EndpointOut),
    )
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
    Json(input): Json<EndpointIn>,
) -> Result<impl IntoResponse, ApiError> {
    let app = load_app(&state, &app).await?;
    let (status, endpoint) = replace_in(&state, app.id, &reference, input).await?;
    Ok((status, Json(EndpointOut::from(endpoint))))
}

/// Replaces the settings of an endpoint of an app already loaded, or
/// creates it with `reference` as its uid (answering 201 then).
pub(crate) async fn replace_in(
    state: &AppState,
    app: AppId,
    reference: &str,
    mut input: EndpointIn,
) -> Result<(StatusCode, Endpoint), ApiError> {
    let mut settings = settings(&mut input)?;
    check_target(state, &settings.url)?;
    match state.store.endpoint_by_ref(&app, reference).await? {
        Some(mut endpoint) => {
            let was_disabled = endpoint.disabled;
            endpoint.url = settings.url;
            endpoint.description = settings.description;
            endpoint.uid = settings.uid;
            endpoint.version = settings.version;
            endpoint.disabled = settings.disabled;
            endpoint.filter_types = settings.filter_types;
            endpoint.channels = settings.channels;
            endpoint.rate_limit = settings.rate_limit;
            endpoint.metadata = settings.metadata;
            let endpoint = save(state, endpoint, was_disabled).await?;
            Ok((StatusCode::OK, endpoint))
        }
        None => {
            if settings.uid.is_none() {
                settings.uid =
                    parse_uid(Some(reference)).map_err(|_| ApiError::NotFound("endpoint"))?;
            }
            let key = signing_key(input.secret.as_deref(), input.key_type, "secret")?;
            let endpoint = new_endpoint(
                state,
                app,
                settings,
                key,
                input.headers.take().unwrap_or_default(),
            )?;
            let endpoint = state.store.create_endpoint(endpoint).await?;
            Ok((StatusCode::CREATED, endpoint))
        }
    }
}

/// Changes the given fields of an endpoint.
#[utoipa::path(
    patch,
    operation_id = "v1.endpoint.patch",
    path = "/app/{app}/endpoint/{endpoint}",
    tag = "endpoints",
    params(EndpointPath),
    request_body = EndpointPatch,
    responses((status = 200, body = EndpointOut))
)]
pub(crate) async fn patch(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
    Json(input): Json<EndpointPatch>,
) -> Result<Json<EndpointOut>, ApiError> {
    let mut endpoint = load_endpoint(&state, &app, &reference).await?;
    let was_disabled = endpoint.disabled;
    match input.url {
        Patch::Value(url) => {
            endpoint.url = EndpointUrl::parse(&url)?;
            check_target(&state, &endpoint.url)?;
        }
        Patch::Null => return Err(ApiError::invalid("url", "must not be null")),
        Patch::Absent => {}
    }
    match input.description {
        Patch::Value(description) => endpoint.description = description,
        Patch::Null => endpoint.description.clear(),
        Patch::Absent => {}
    }
    match input.uid {
        Patch::Value(uid) => endpoint.uid = parse_uid(Some(&uid))?,
        Patch::Null => endpoint.uid = None,
        Patch::Absent => {}
    }
    if let Patch::Value(version) = input.version {
        endpoint.version = parse_version(Some(version))?;
    }
    if let Patch::Value(disabled) = input.disabled {
        endpoint.disabled = disabled;
    }
    let (filter, field) = if input.event_types == Patch::Absent {
        (input.filter_types, "filterTypes")
    } else {
        (input.event_types, "eventTypes")
    };
    match filter {
        Patch::Value(types) => endpoint.filter_types = parse_filter(Some(types), field)?,
        Patch::Null => endpoint.filter_types = None,
        Patch::Absent => {}
    }
    match input.channels {
        Patch::Value(channels) => endpoint.channels = parse_channels(Some(channels))?,
        Patch::Null => endpoint.channels = None,
        Patch::Absent => {}
    }
    let rate = if input.throttle_rate == Patch::Absent {
        input.rate_limit
    } else {
        input.throttle_rate
    };
    match rate {
        Patch::Value(rate) => endpoint.rate_limit = parse_rate(Some(rate))?,
        Patch::Null => endpoint.rate_limit = None,
        Patch::Absent => {}
    }
    if let Some(metadata) = input.metadata.into_value() {
        endpoint.metadata = metadata;
    }
    Ok(Json(save(&state, endpoint, was_disabled).await?.into()))
}

/// Stores an edited endpoint. The engine forgets what it learnt of the
/// endpoint's health (an operator's edit is a fresh start), and turning it
/// on or off raises `endpoint.enabled` / `endpoint.disabled` for the
/// operator's operational endpoints; re-enabling also ends its failure
/// streak, so it is not disabled again for failures from before.
pub(crate) async fn save(
    state: &AppState,
    mut endpoint: Endpoint,
    was_disabled: bool,
) -> Result<Endpoint, ApiError> {
    endpoint.updated_at = state.clock.now();
    let endpoint = state.store.update_endpoint(endpoint).await?;
    state.engine.endpoint_changed(&endpoint.id);
    announce(state, &endpoint, EndpointChange::Updated).await;
    if endpoint.disabled == was_disabled {
        return Ok(endpoint);
    }
    if !endpoint.disabled {
        state
            .store
            .set_endpoint_failing(&endpoint.id, None, std::time::Duration::ZERO)
            .await?;
        // Deliveries that waited while it was disabled may be due now.
        state.engine.wake();
    }
    let app_uid = state
        .store
        .app_by_ref(endpoint.app_id.as_str())
        .await?
        .and_then(|app| app.uid);
    let event = if endpoint.disabled {
        OperationalEvent::EndpointDisabled {
            endpoint: Box::new(endpoint.clone()),
            app_uid,
            fail_since: None,
            trigger: DisableTrigger::Manual,
        }
    } else {
        OperationalEvent::EndpointEnabled {
            endpoint: Box::new(endpoint.clone()),
            app_uid,
        }
    };
    if state.engine.operational().emit(&event).await? {
        state.engine.wake();
    }
    Ok(endpoint)
}

/// Deletes an endpoint; its queued deliveries end as failed.
#[utoipa::path(
    delete,
    operation_id = "v1.endpoint.delete",
    path = "/app/{app}/endpoint/{endpoint}",
    tag = "endpoints",
    params(EndpointPath),
    responses((status = 204, description = "Deleted"))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let endpoint = load_endpoint(&state, &app, &reference).await?;
    remove(&state, &endpoint).await
}

/// Deletes a loaded endpoint.
pub(crate) async fn remove(state: &AppState, endpoint: &Endpoint) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_endpoint(&endpoint.app_id, &endpoint.id, state.clock.now())
        .await?;
    announce(state, endpoint, EndpointChange::Deleted).await;
    Ok(StatusCode::NO_CONTENT)
}

/// What a receiver verifies with. For an ed25519 endpoint that is the
/// `whpk_` public key: the `whsk_` secret key never leaves Herald, so a
/// leaked API response cannot be used to forge deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EndpointSecretOut {
    key: String,
}

impl From<&Endpoint> for EndpointSecretOut {
    fn from(endpoint: &Endpoint) -> Self {
        Self {
            key: endpoint.key.receiver_key(),
        }
    }
}

/// The key receivers verify the endpoint's signatures with: its `whsec_`
/// secret, or its `whpk_` public key if it signs with ed25519.
#[utoipa::path(
    get,
    operation_id = "v1.endpoint.get-secret",
    path = "/app/{app}/endpoint/{endpoint}/secret",
    tag = "endpoints",
    params(EndpointPath),
    responses((status = 200, body = EndpointSecretOut))
)]
pub(crate) async fn secret(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
) -> Result<Json<EndpointSecretOut>, ApiError> {
    let endpoint = load_endpoint(&state, &app, &reference).await?;
    Ok(Json(EndpointSecretOut::from(&endpoint)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EndpointSecretRotateIn {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_type: Option<KeyType>,
    #[serde(default)]
    grace_period_seconds: Option<u64>,
}

/// Replaces the signing secret. The old one keeps signing (both signatures
/// are sent) until the grace period ends, so receivers can switch over —
/// also between kinds (`whsec_` to `whsk_` or back): each key signs with
/// its own version. Answers what receivers verify the new key with.
#[utoipa::path(
    post,
    operation_id = "v1.endpoint.rotate-secret",
    path = "/app/{app}/endpoint/{endpoint}/secret/rotate",
    tag = "endpoints",
    params(EndpointPath),
    request_body(
        content = Option<EndpointSecretRotateIn>,
        description = "Optional: without a body a new key of the same kind is generated",
    ),
    responses((status = 200, body = EndpointSecretOut))
)]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<EndpointSecretOut>, ApiError> {
    let endpoint = load_endpoint(&state, &app, &reference).await?;
    rotate(&state, endpoint, &body).await.map(Json)
}

/// Rotates the secret of a loaded endpoint; `body` is an optional
/// `EndpointSecretRotateIn` (the SDKs often send none, or `{}`).
pub(crate) async fn rotate(
    state: &AppState,
    mut endpoint: Endpoint,
    body: &[u8],
) -> Result<EndpointSecretOut, ApiError> {
    let input: EndpointSecretRotateIn = if body.iter().all(u8::is_ascii_whitespace) {
        EndpointSecretRotateIn::default()
    } else {
        crate::extract::parse_json(body)?
    };
    let new_key = signing_key(input.key.as_deref(), input.key_type, "key")?;
    let now = state.clock.now();
    let grace = match input.grace_period_seconds {
        Some(seconds) if seconds > MAX_GRACE_SECONDS => {
            return Err(ApiError::invalid(
                "gracePeriodSeconds",
                format!("must be at most {MAX_GRACE_SECONDS} (7 days)"),
            ))
        }
        Some(seconds) => std::time::Duration::from_secs(seconds),
        None => state.config.rotation_grace,
    };
    let old_key = std::mem::replace(&mut endpoint.key, new_key);
    endpoint
        .retired_keys
        .retain(|retired| retired.expires_at > now);
    endpoint.retired_keys.push(RetiredKey {
        key: old_key,
        expires_at: now.plus(grace),
    });
    endpoint.updated_at = now;
    let endpoint = state.store.update_endpoint(endpoint).await?;
    Ok(EndpointSecretOut::from(&endpoint))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EndpointHeadersOut {
    headers: BTreeMap<String, String>,
    sensitive: Vec<String>,
}

/// The custom headers; values of sensitive ones are withheld.
#[utoipa::path(
    get,
    operation_id = "v1.endpoint.get-headers",
    path = "/app/{app}/endpoint/{endpoint}/headers",
    tag = "endpoints",
    params(EndpointPath),
    responses((status = 200, body = EndpointHeadersOut))
)]
pub(crate) async fn headers(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
) -> Result<Json<EndpointHeadersOut>, ApiError> {
    let endpoint = load_endpoint(&state, &app, &reference).await?;
    Ok(Json(EndpointHeadersOut::from(endpoint)))
}

impl From<Endpoint> for EndpointHeadersOut {
    fn from(endpoint: Endpoint) -> Self {
        let (sensitive, shown): (Vec<_>, Vec<_>) = endpoint
            .headers
            .into_iter()
            .partition(|(name, _)| SENSITIVE_HEADERS.contains(&name.to_ascii_lowercase().as_str()));
        Self {
            headers: shown.into_iter().collect(),
            sensitive: sensitive.into_iter().map(|(name, _)| name).collect(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EndpointHeadersIn {
    headers: BTreeMap<String, String>,
}

/// Replaces all custom headers.
#[utoipa::path(
    put,
    operation_id = "v1.endpoint.update-headers",
    path = "/app/{app}/endpoint/{endpoint}/headers",
    tag = "endpoints",
    params(EndpointPath),
    request_body = EndpointHeadersIn,
    responses((status = 204, description = "Replaced"))
)]
pub(crate) async fn put_headers(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
    Json(input): Json<EndpointHeadersIn>,
) -> Result<StatusCode, ApiError> {
    let endpoint = load_endpoint(&state, &app, &reference).await?;
    replace_headers(&state, endpoint, input).await
}

/// Replaces all custom headers of a loaded endpoint.
pub(crate) async fn replace_headers(
    state: &AppState,
    mut endpoint: Endpoint,
    input: EndpointHeadersIn,
) -> Result<StatusCode, ApiError> {
    check_headers(&input.headers)?;
    endpoint.headers = input.headers;
    endpoint.updated_at = state.clock.now();
    state.store.update_endpoint(endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EndpointHeadersPatchIn {
    /// A `null` value removes that header.
    headers: BTreeMap<String, Option<String>>,
    #[serde(default)]
    delete_headers: Vec<String>,
}

/// Adds, changes or removes some custom headers.
#[utoipa::path(
    patch,
    operation_id = "v1.endpoint.patch-headers",
    path = "/app/{app}/endpoint/{endpoint}/headers",
    tag = "endpoints",
    params(EndpointPath),
    request_body = EndpointHeadersPatchIn,
    responses((status = 204, description = "Changed"))
)]
pub(crate) async fn patch_headers(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
    Json(input): Json<EndpointHeadersPatchIn>,
) -> Result<StatusCode, ApiError> {
    let mut endpoint = load_endpoint(&state, &app, &reference).await?;
    for (name, value) in input.headers {
        match value {
            Some(value) => endpoint.headers.insert(name, value),
            None => endpoint.headers.remove(&name),
        };
    }
    for name in input.delete_headers {
        endpoint.headers.remove(&name);
    }
    check_headers(&endpoint.headers)?;
    endpoint.updated_at = state.clock.now();
    state.store.update_endpoint(endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The window of a recover or replay: messages created in `[since, until)`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RecoverIn {
    since: String,
    #[serde(default)]
    until: Option<String>,
}

impl RecoverIn {
    fn window(&self) -> Result<(Timestamp, Option<Timestamp>), ApiError> {
        let since = parse_time("since", &self.since, false)?;
        let until = self
            .until
            .as_deref()
            .map(|until| parse_time("until", until, false))
            .transpose()?;
        Ok((since, until))
    }
}

/// Sends the endpoint the messages of `[since, until)` it subscribes to
/// and never got: sent before it existed, or before its filter took them
/// in. A delivery it had, whatever became of it, is not sent again.
#[utoipa::path(
    post,
    operation_id = "v1.endpoint.replay-missing",
    path = "/app/{app}/endpoint/{endpoint}/replay-missing",
    tag = "endpoints",
    params(EndpointPath),
    request_body = RecoverIn,
    responses((status = 202, body = ReplayOut))
)]
pub(crate) async fn replay_missing(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
    Json(input): Json<RecoverIn>,
) -> Result<impl IntoResponse, ApiError> {
    let endpoint = load_endpoint(&state, &app, &reference).await?;
    let (since, until) = input.window()?;
    if endpoint.disabled {
        // Every replayed delivery would fail at once without a request.
        return Err(ApiError::Conflict(
            "the endpoint is disabled; enable it before replaying to it".into(),
        ));
    }
    let now = state.clock.now();
    let replayed = state
        .store
        .replay_missing(&endpoint, since, until, now)
        .await?;
    let task = queued_by_task(&state, &endpoint, TaskKind::EndpointReplay, replayed).await?;
    Ok((StatusCode::ACCEPTED, Json(ReplayOut { task, replayed })))
}

/// After a recover or replay queued `queued` deliveries to `endpoint`:
/// wakes the engine for them and records the task, with Svix's
/// `messagesSent`.
async fn queued_by_task(
    state: &AppState,
    endpoint: &Endpoint,
    kind: TaskKind,
    queued: u64,
) -> Result<BackgroundTaskOut, ApiError> {
    state.engine.wake();
    tracing::info!(endpoint = %endpoint.id, queued, task = kind.as_str(), "deliveries queued");
    let data = Map::from_iter([("messagesSent".to_owned(), Value::from(queued))]);
    background_tasks::record_finished(state, &endpoint.app_id, kind, data).await
}

/// Re-queues the endpoint's failed deliveries of messages created in
/// `[since, until)`.
#[utoipa::path(
    post,
    operation_id = "v1.endpoint.recover",
    path = "/app/{app}/endpoint/{endpoint}/recover",
    tag = "endpoints",
    params(EndpointPath),
    request_body = RecoverIn,
    responses((status = 202, body = RecoverOut))
)]
pub(crate) async fn recover(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
    Json(input): Json<RecoverIn>,
) -> Result<impl IntoResponse, ApiError> {
    let endpoint = load_endpoint(&state, &app, &reference).await?;
    let (since, until) = input.window()?;
    let now = state.clock.now();
    let recovered = state.store.recover(&endpoint.id, since, until, now).await?;
    let task = queued_by_task(&state, &endpoint, TaskKind::EndpointRecover, recovered).await?;
    Ok((StatusCode::ACCEPTED, Json(RecoverOut { task, recovered })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EventExampleIn {
    event_type: String,
    #[serde(default)]
    example_index: Option<usize>,
    /// The payload to send; by default the event type's schema example.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    payload: Option<Value>,
}

/// The example payload of an event type: from its newest schema's
/// `examples`, else a minimal object naming the type.
fn example_payload(schemas: Option<&Value>, event_type: &str, index: usize) -> Value {
    let newest_schema = schemas
        .and_then(Value::as_object)
        .and_then(|versions| {
            versions
                .iter()
                .max_by_key(|(version, _)| version.parse::<u64>().unwrap_or(0))
        })
        .map(|(_, schema)| schema);
    newest_schema
        .and_then(|schema| schema.get("examples"))
        .and_then(|examples| examples.get(index))
        .filter(|example| example.is_object())
        .cloned()
        .unwrap_or_else(|| json!({ "type": event_type, "example": true }))
}

/// Sends a test event of a chosen type to this endpoint only.
#[utoipa::path(
    post,
    operation_id = "v1.endpoint.send-example",
    path = "/app/{app}/endpoint/{endpoint}/send-example",
    tag = "endpoints",
    params(EndpointPath),
    request_body = EventExampleIn,
    responses((status = 202, body = MessageOut))
)]
pub(crate) async fn send_example(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
    Json(input): Json<EventExampleIn>,
) -> Result<impl IntoResponse, ApiError> {
    let endpoint = load_endpoint(&state, &app, &reference).await?;
    let name = EventTypeName::parse(&input.event_type)?;
    let event_type = state.store.event_type(name.as_str()).await?;
    let payload = match input.payload {
        Some(payload) => payload,
        None => example_payload(
            event_type
                .as_ref()
                .and_then(|event_type| event_type.schemas.as_ref()),
            name.as_str(),
            input.example_index.unwrap_or(0),
        ),
    };
    let payload = serde_json::value::to_raw_value(&payload)
        .map_err(|error| ApiError::invalid("payload", error.to_string()))?;
    let message = messages::build_message(
        &state,
        endpoint.app_id.clone(),
        name,
        payload,
        None,
        Vec::new(),
        Vec::new(),
    )?;
    let created = state
        .store
        .create_message_for_endpoint(message, &endpoint.id)
        .await?;
    state.engine.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageOut::new(created.message, true, state.clock.now())),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsParams {
    /// Count deliveries of messages created at or after this RFC 3339 time.
    since: Option<String>,
    /// Count deliveries of messages created before this RFC 3339 time.
    until: Option<String>,
}

/// Delivery counts of the endpoint by status.
#[utoipa::path(
    get,
    operation_id = "v1.endpoint.get-stats",
    path = "/app/{app}/endpoint/{endpoint}/stats",
    tag = "endpoints",
    params(EndpointPath, StatsParams),
    responses((status = 200, body = EndpointStatsOut))
)]
pub(crate) async fn stats(
    State(state): State<AppState>,
    Path((app, reference)): Path<(String, String)>,
    Query(params): Query<StatsParams>,
) -> Result<Json<EndpointStatsOut>, ApiError> {
    let endpoint = load_endpoint(&state, &app, &reference).await?;
    let since = query_time("since", params.since.as_deref())?;
    let until = query_time("until", params.until.as_deref())?;
    let stats = state
        .store
        .endpoint_stats(&endpoint.id, since, until)
        .await?;
    Ok(Json(EndpointStatsOut {
        success: stats.success,
        pending: stats.pending,
        sending: stats.sending,
        fail: stats.fail,
        canceled: 0,
    }))
}

/// The answer to a recover: the work is done by the time it answers, and
/// `GET /background-task/{id}` shows it afterwards.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecoverOut {
    #[serde(flatten)]
    task: BackgroundTaskOut,
    /// How many failed deliveries were queued again.
    recovered: u64,
}

/// The answer to a replay, done by the time it answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplayOut {
    #[serde(flatten)]
    task: BackgroundTaskOut,
    /// How many deliveries were queued.
    replayed: u64,
}

/// Delivery counts of an endpoint by status.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EndpointStatsOut {
    success: u64,
    pending: u64,
    sending: u64,
    fail: u64,
    /// Always 0: Herald does not cancel deliveries.
    canceled: u64,
}
