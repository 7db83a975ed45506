//! `/api/v1/app`: applications (tenants).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use herald_core::model::{App, Metadata};
use herald_core::{AppId, Uid};
use herald_delivery::operational::OPERATIONAL_APP_UID;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::openapi::paths::AppPath;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::wire::{list_response, ListParams, ListResponse, Patch};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ApplicationIn {
    name: String,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1)]
    rate_limit: Option<u32>,
    #[serde(default)]
    #[schema(minimum = 1)]
    throttle_rate: Option<u32>,
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    metadata: Option<Metadata>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ApplicationPatch {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    uid: Patch<String>,
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

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplicationOut {
    id: String,
    uid: Option<String>,
    name: String,
    rate_limit: Option<u32>,
    throttle_rate: Option<u32>,
    #[schema(value_type = BTreeMap<String, String>)]
    metadata: Metadata,
    created_at: String,
    updated_at: String,
}

impl From<App> for ApplicationOut {
    fn from(app: App) -> Self {
        Self {
            id: app.id.to_string(),
            uid: app.uid.map(|uid| uid.to_string()),
            name: app.name,
            rate_limit: app.rate_limit,
            throttle_rate: app.rate_limit,
            metadata: app.metadata,
            created_at: app.created_at.to_rfc3339(),
            updated_at: app.updated_at.to_rfc3339(),
        }
    }
}

/// The application holding operational webhook endpoints is Herald's own:
/// a tenant app may not take its uid, and it is changed only through
/// `/api/v1/operational-webhook/endpoint`.
fn check_not_operational(app: &App) -> Result<(), ApiError> {
    if app.uid.as_ref().map(Uid::as_str) == Some(OPERATIONAL_APP_UID) {
        return Err(ApiError::Conflict(
            "this application holds operational webhook endpoints; manage them at \
             /api/v1/operational-webhook/endpoint"
                .into(),
        ));
    }
    Ok(())
}

fn parse_uid(uid: Option<&str>) -> Result<Option<Uid>, ApiError> {
    if uid == Some(OPERATIONAL_APP_UID) {
        return Err(ApiError::Conflict(format!(
            "uid {OPERATIONAL_APP_UID} is reserved for operational webhooks"
        )));
    }
    uid.map(|uid| {
        if AppId::parse(uid).is_some() {
            return Err(ApiError::invalid(
                "uid",
                "must not look like an application id",
            ));
        }
        Uid::parse(uid).map_err(ApiError::from)
    })
    .transpose()
}

/// A rate of 0 would silence the app; absent means unlimited.
fn check_rate(rate: Option<u32>) -> Result<Option<u32>, ApiError> {
    match rate {
        Some(0) => Err(ApiError::invalid("throttleRate", "must be at least 1")),
        other => Ok(other),
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::invalid("name", "must not be empty"));
    }
    Ok(())
}

/// Loads an app by id or uid, or answers 404.
pub(crate) async fn load_app(state: &AppState, reference: &str) -> Result<App, ApiError> {
    state
        .store
        .app_by_ref(reference)
        .await?
        .ok_or(ApiError::NotFound("application"))
}

/// Lists applications, oldest first.
#[utoipa::path(
    get,
    operation_id = "v1.application.list",
    path = "/app",
    tag = "applications",
    params(ListParams),
    responses((status = 200, body = ListResponse<ApplicationOut>))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<ListResponse<ApplicationOut>>, ApiError> {
    let request = params.page()?;
    let page = state.store.list_apps(request.clone()).await?;
    Ok(Json(list_response(
        page,
        &request,
        |app| app.id.to_string(),
        ApplicationOut::from,
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CreateParams {
    /// Answer the existing application with this uid instead of a conflict.
    #[serde(default)]
    get_if_exists: bool,
}

/// Creates an application; with `get_if_exists=true` an existing app with
/// the same uid is answered instead (200 rather than 201).
#[utoipa::path(
    post,
    operation_id = "v1.application.create",
    path = "/app",
    tag = "applications",
    params(CreateParams),
    request_body = ApplicationIn,
    responses(
        (status = 201, description = "Created", body = ApplicationOut),
        (status = 200, description = "An application with this uid exists", body = ApplicationOut),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Query(params): Query<CreateParams>,
    Json(input): Json<ApplicationIn>,
) -> Result<impl IntoResponse, ApiError> {
    check_name(&input.name)?;
    let uid = parse_uid(input.uid.as_deref())?;
    if params.get_if_exists {
        if let Some(uid) = &uid {
            if let Some(existing) = state.store.app_by_ref(uid.as_str()).await? {
                return Ok((StatusCode::OK, Json(ApplicationOut::from(existing))));
            }
        }
    }
    let now = state.clock.now();
    let app = App {
        id: AppId::generate(),
        uid,
        name: input.name,
        rate_limit: check_rate(input.throttle_rate.or(input.rate_limit))?,
        metadata: input.metadata.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    let app = state.store.create_app(app).await?;
    Ok((StatusCode::CREATED, Json(ApplicationOut::from(app))))
}

/// One application by id or uid.
#[utoipa::path(
    get,
    operation_id = "v1.application.get",
    path = "/app/{app}",
    tag = "applications",
    params(AppPath),
    responses((status = 200, body = ApplicationOut))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<ApplicationOut>, ApiError> {
    Ok(Json(load_app(&state, &app).await?.into()))
}

/// Replaces an application's fields; creates it (with this uid) if missing.
#[utoipa::path(
    put,
    operation_id = "v1.application.update",
    path = "/app/{app}",
    tag = "applications",
    params(AppPath),
    request_body = ApplicationIn,
    responses(
        (status = 200, description = "Replaced", body = ApplicationOut),
        (status = 201, description = "Created", body = ApplicationOut),
    )
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Json(input): Json<ApplicationIn>,
) -> Result<impl IntoResponse, ApiError> {
    check_name(&input.name)?;
    let uid = parse_uid(input.uid.as_deref())?;
    let now = state.clock.now();
    let rate_limit = check_rate(input.throttle_rate.or(input.rate_limit))?;
    let metadata = input.metadata.unwrap_or_default();
    match state.store.app_by_ref(&reference).await? {
        Some(mut app) => {
            check_not_operational(&app)?;
            app.uid = uid;
            app.name = input.name;
            app.rate_limit = rate_limit;
            app.metadata = metadata;
            app.updated_at = now;
            let app = state.store.update_app(app).await?;
            Ok((StatusCode::OK, Json(ApplicationOut::from(app))))
        }
        None => {
            let uid = match uid {
                Some(uid) => Some(uid),
                None => {
                    parse_uid(Some(&reference)).map_err(|_| ApiError::NotFound("application"))?
                }
            };
            let app = App {
                id: AppId::generate(),
                uid,
                name: input.name,
                rate_limit,
                metadata,
                created_at: now,
                updated_at: now,
            };
            let app = state.store.create_app(app).await?;
            Ok((StatusCode::CREATED, Json(ApplicationOut::from(app))))
        }
    }
}

/// Changes the given fields of an application.
#[utoipa::path(
    patch,
    operation_id = "v1.application.patch",
    path = "/app/{app}",
    tag = "applications",
    params(AppPath),
    request_body = ApplicationPatch,
    responses((status = 200, body = ApplicationOut))
)]
pub(crate) async fn patch(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Json(input): Json<ApplicationPatch>,
) -> Result<Json<ApplicationOut>, ApiError> {
    let mut app = load_app(&state, &reference).await?;
    check_not_operational(&app)?;
    match input.name {
        Patch::Value(name) => {
            check_name(&name)?;
            app.name = name;
        }
        Patch::Null => return Err(ApiError::invalid("name", "must not be null")),
        Patch::Absent => {}
    }
    match input.uid {
        Patch::Value(uid) => app.uid = parse_uid(Some(&uid))?,
        Patch::Null => app.uid = None,
        Patch::Absent => {}
    }
    let rate = if input.throttle_rate == Patch::Absent {
        input.rate_limit
    } else {
        input.throttle_rate
    };
    rate.apply(&mut app.rate_limit);
    check_rate(app.rate_limit)?;
    if let Some(metadata) = input.metadata.into_value() {
        app.metadata = metadata;
    }
    app.updated_at = state.clock.now();
    Ok(Json(state.store.update_app(app).await?.into()))
}

/// Deletes an application with its endpoints, messages and attempts.
#[utoipa::path(
    delete,
    operation_id = "v1.application.delete",
    path = "/app/{app}",
    tag = "applications",
    params(AppPath),
    responses((status = 204, description = "Deleted"))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<StatusCode, ApiError> {
    let app = load_app(&state, &reference).await?;
    check_not_operational(&app)?;
    // An inbound source's backing app carries the source id as its uid;
    // deleting it alone would leave the source forwarding into nothing.
    if let Some(uid) = &app.uid {
        if let Some(source) = state.store.source_by_ref(uid.as_str()).await? {
            if source.app_id == app.id {
                return Err(ApiError::Conflict(format!(
                    "application backs inbound source {}; delete the source instead",
                    source.id
                )));
            }
        }
    }
    state.store.delete_app(&app.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
