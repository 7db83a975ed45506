//! `/ingest/api/v1/source`: inbound sources, in Svix Ingest's shapes
//! (`IngestSourceIn` / `IngestSourceOut`), plus `appId`: the application
//! each source is backed by, so the `/api/v1/app/{app}/…` message and
//! attempt APIs reach its events.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use herald_core::model::{App, Metadata};
use herald_core::{AppId, SourceId, Uid};
use herald_store::Source;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::openapi::paths::SourcePath;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::gateway::{ingest_url, source_config};
use crate::state::AppState;
use crate::wire::{list_response, ListParams, ListResponse};

/// Create (POST) and replace (PUT) body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct IngestSourceIn {
    name: String,
    /// The provider, which says how requests are verified: `stripe`,
    /// `github`, `slack`, `shopify`, `svix` or another Standard Webhooks
    /// sender (`clerk`, `resend`, …), or `generic-webhook`, whose
    /// `config.verifier` names the scheme (`twilio`, `gitlab`,
    /// `standard-webhooks`, `hmac`, `basic-auth`, `api-key`).
    #[serde(rename = "type")]
    source_type: String,
    /// The verifier's settings (its secret, …). Svix's SDKs default a
    /// missing config to `{}`; so does Herald.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    config: Option<Value>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    metadata: Option<Metadata>,
}

/// A source as answered; `config` comes without its secrets.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IngestSourceOut {
    id: String,
    uid: Option<String>,
    name: String,
    #[serde(rename = "type")]
    source_type: String,
    #[schema(value_type = Object)]
    config: Value,
    #[schema(value_type = BTreeMap<String, String>)]
    metadata: Metadata,
    ingest_url: String,
    app_id: String,
    created_at: String,
    updated_at: String,
}

impl IngestSourceOut {
    fn new(state: &AppState, source: Source) -> Self {
        Self {
            ingest_url: ingest_url(state, &source),
            id: source.id.to_string(),
            uid: source.uid.map(|uid| uid.to_string()),
            name: source.name,
            source_type: source.source_type,
            config: source_config::redacted(&source.config),
            metadata: source.metadata,
            app_id: source.app_id.to_string(),
            created_at: source.created_at.to_rfc3339(),
            updated_at: source.updated_at.to_rfc3339(),
        }
    }
}

fn parse_uid(uid: Option<&str>) -> Result<Option<Uid>, ApiError> {
    uid.map(|uid| {
        if SourceId::parse(uid).is_some() {
            return Err(ApiError::invalid("uid", "must not look like a source id"));
        }
        Uid::parse(uid).map_err(ApiError::from)
    })
    .transpose()
}

/// The validated fields of an `IngestSourceIn`.
struct Settings {
    name: String,
    source_type: String,
    config: Value,
    uid: Option<Uid>,
    metadata: Metadata,
}

fn settings(input: IngestSourceIn) -> Result<Settings, ApiError> {
    if input.name.trim().is_empty() {
        return Err(ApiError::invalid("name", "must not be empty"));
    }
    let config = input
        .config
        .unwrap_or_else(|| Value::Object(Default::default()));
    if !config.is_object() {
        return Err(ApiError::invalid("config", "must be a JSON object"));
    }
    source_config::parse(&input.source_type, &config).map_err(|error| {
        let mut location = vec!["body".to_owned()];
        location.extend(error.field.split('.').map(str::to_owned));
        ApiError::Validation {
            location,
            message: error.message,
            kind: "value_error",
        }
    })?;
    Ok(Settings {
        name: input.name,
        source_type: input.source_type,
        config,
        uid: parse_uid(input.uid.as_deref())?,
        metadata: input.metadata.unwrap_or_default(),
    })
}

/// Loads a source by id or uid, or answers 404.
pub(crate) async fn load_source(state: &AppState, reference: &str) -> Result<Source, ApiError> {
    state
        .store
        .source_by_ref(reference)
        .await?
        .ok_or(ApiError::NotFound("source"))
}

/// Lists sources, oldest first.
#[utoipa::path(
    get,
    operation_id = "v1.ingest.source.list",
    path = "/source",
    tag = "ingest",
    params(ListParams),
    responses((status = 200, body = ListResponse<IngestSourceOut>))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<ListResponse<IngestSourceOut>>, ApiError> {
    let request = params.page()?;
    let page = state.store.list_sources(request.clone()).await?;
    Ok(Json(list_response(
        page,
        &request,
        |source| source.id.to_string(),
        |source| IngestSourceOut::new(&state, source),
    )))
}

/// Creates the source and its backing app in one store transaction.
async fn create_source(state: &AppState, settings: Settings) -> Result<Source, ApiError> {
    let now = state.clock.now();
    let id = SourceId::generate();
    let app = App {
        id: AppId::generate(),
        // The app's uid is the source id, so `/api/v1/app/{source id}/msg`
        // reaches the source's events without looking the app id up.
        uid: Some(Uid::parse(id.as_str()).map_err(ApiError::from)?),
        name: settings.name.clone(),
        rate_limit: None,
        metadata: Metadata::new(),
        created_at: now,
        updated_at: now,
    };
    let source = Source {
        id,
        app_id: app.id.clone(),
        uid: settings.uid,
        name: settings.name,
        source_type: settings.source_type,
        config: settings.config,
        metadata: settings.metadata,
        created_at: now,
        updated_at: now,
    };
    Ok(state.store.create_source(source, app).await?)
}

/// Creates a source; answers it with its `ingestUrl`.
#[utoipa::path(
    post,
    operation_id = "v1.ingest.source.create",
    path = "/source",
    tag = "ingest",
    request_body = IngestSourceIn,
    responses((status = 201, body = IngestSourceOut))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Json(input): Json<IngestSourceIn>,
) -> Result<impl IntoResponse, ApiError> {
    let source = create_source(&state, settings(input)?).await?;
    Ok((
        StatusCode::CREATED,
        Json(IngestSourceOut::new(&state, source)),
    ))
}

/// One source by id or uid.
#[utoipa::path(
    get,
    operation_id = "v1.ingest.source.get",
    path = "/source/{source}",
    tag = "ingest",
    params(SourcePath),
    responses((status = 200, body = IngestSourceOut))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<Json<IngestSourceOut>, ApiError> {
    let source = load_source(&state, &reference).await?;
    Ok(Json(IngestSourceOut::new(&state, source)))
}

/// Replaces a source's name, type, config, uid and metadata; creates it,
/// with the path's uid, if missing.
#[utoipa::path(
    put,
    operation_id = "v1.ingest.source.update",
    path = "/source/{source}",
    tag = "ingest",
    params(SourcePath),
    request_body = IngestSourceIn,
    responses(
        (status = 200, description = "Replaced", body = IngestSourceOut),
        (status = 201, description = "Created", body = IngestSourceOut),
    )
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Json(input): Json<IngestSourceIn>,
) -> Result<impl IntoResponse, ApiError> {
    let mut settings = settings(input)?;
    match state.store.source_by_ref(&reference).await? {
        Some(mut source) => {
            source.name = settings.name;
            source.source_type = settings.source_type;
            source.config = settings.config;
            source.uid = settings.uid;
            source.metadata = settings.metadata;
            source.updated_at = state.clock.now();
            let source = state.store.update_source(source).await?;
            Ok((StatusCode::OK, Json(IngestSourceOut::new(&state, source))))
        }
        None => {
            if settings.uid.is_none() {
                settings.uid =
                    parse_uid(Some(&reference)).map_err(|_| ApiError::NotFound("source"))?;
            }
            let source = create_source(&state, settings).await?;
            Ok((
                StatusCode::CREATED,
                Json(IngestSourceOut::new(&state, source)),
            ))
        }
    }
}

/// Deletes a source with its backing app, destinations, messages and log.
#[utoipa::path(
    delete,
    operation_id = "v1.ingest.source.delete",
    path = "/source/{source}",
    tag = "ingest",
    params(SourcePath),
    responses((status = 204, description = "Deleted"))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<StatusCode, ApiError> {
    let source = load_source(&state, &reference).await?;
    state.store.delete_source(&source.id).await?;
    state.gateway.limiter.forget(&source.id);
    Ok(StatusCode::NO_CONTENT)
}
