//! Tenant portal links: `POST /api/v1/auth/app-portal-access/{app}` (the
//! shape of Svix's App Portal access) answers `{url, token}`; the URL opens
//! that one application's pages without any other credential until the
//! token expires, or until `POST /api/v1/auth/app/{app}/expire-all` ends
//! every token of the application issued so far.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use herald_core::model::App;
use herald_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::guard;
use super::keys::PortalGrant;
use crate::api::openapi::paths::AppPath;
use crate::error::ApiError;
use crate::extract::Json;
use crate::state::AppState;

/// How long a link works unless asked otherwise (Svix's default).
pub(super) const DEFAULT_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest a link may work: a leaked link must not stay valid for long.
const MAX_LIFETIME_SECONDS: u64 = 30 * 24 * 3600;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppPortalAccessIn {
    /// Seconds the link works.
    #[serde(default)]
    expiry: Option<u64>,
    /// A link that shows but changes nothing.
    #[serde(default)]
    read_only: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AppPortalAccessOut {
    pub(crate) url: String,
    pub(crate) token: String,
}

/// What a portal token grants, if it is one, genuine and unexpired: the
/// API accepts it as a bearer token for its application alone.
pub(crate) async fn grant_of(
    state: &AppState,
    token: &str,
) -> Result<Option<PortalGrant>, ApiError> {
    let Some(grant) = guard::signer(state)
        .await?
        .open_portal_token(token, state.clock.now())
    else {
        return Ok(None);
    };
    Ok(still_honoured(state, &grant).await?.then_some(grant))
}

/// Whether no "expire all" of its application has ended `grant` since it
/// was issued.
pub(super) async fn still_honoured(
    state: &AppState,
    grant: &PortalGrant,
) -> Result<bool, StoreError> {
    let expiry = state.store.portal_expiry(&grant.app).await?;
    Ok(expiry.is_none_or(|expiry| expiry.allows(grant.issued_at, state.clock.now())))
}

/// Signs a portal link for `app`.
pub(super) async fn issue(
    state: &AppState,
    app: &App,
    lifetime: Duration,
    can_write: bool,
) -> Result<AppPortalAccessOut, ApiError> {
    let now = state.clock.now();
    let grant = PortalGrant {
        app: app.id.clone(),
        expires_at: now.plus(lifetime),
        can_write,
        issued_at: now,
    };
    let token = guard::signer(state).await?.portal_token(&grant);
    let url = format!(
        "{}/console/portal/{token}",
        state.config.public_url.trim_end_matches('/')
    );
    Ok(AppPortalAccessOut { url, token })
}

/// A signed, expiring link to one application's portal. The body is
/// optional: `{"expiry": seconds, "readOnly": bool}`; Svix's other fields
/// (`featureFlags`, …) are accepted and ignored.
#[utoipa::path(
    post,
    operation_id = "v1.authentication.app-portal-access",
    path = "/auth/app-portal-access/{app}",
    tag = "applications",
    params(AppPath),
    request_body(content = Option<AppPortalAccessIn>, description = "Optional"),
    responses((status = 200, body = AppPortalAccessOut))
)]
pub(crate) async fn access(
    State(state): State<AppState>,
    Path(app): Path<String>,
    body: Bytes,
) -> Result<Json<AppPortalAccessOut>, ApiError> {
    let input: AppPortalAccessIn = optional_body(&body)?;
    let app = state
        .store
        .app_by_ref(&app)
        .await?
        .ok_or(ApiError::NotFound("application"))?;
    let lifetime = match input.expiry {
        None => DEFAULT_LIFETIME,
        Some(seconds) if (1..=MAX_LIFETIME_SECONDS).contains(&seconds) => {
            Duration::from_secs(seconds)
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "expiry",
                format!("must be between 1 and {MAX_LIFETIME_SECONDS} seconds"),
            ))
        }
    };
    let link = issue(&state, &app, lifetime, !input.read_only.unwrap_or(false)).await?;
    Ok(Json(link))
}

/// A body these calls may go without (Svix's SDKs send one, `curl` users
/// often do not): empty reads as every field left out.
fn optional_body<T: Default + serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        crate::extract::parse_json(body)
    }
}

/// The longest grace `expire-all` gives the tokens it ends: as long as a
/// token may live at all.
const MAX_GRACE_SECONDS: u64 = MAX_LIFETIME_SECONDS;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplicationTokenExpireIn {
    /// Seconds the tokens issued so far keep working (0, the default: they
    /// stop now).
    #[serde(default)]
    expiry: Option<u64>,
    /// Accepted for compatibility: every token of the application is
    /// ended, whichever session it belongs to.
    #[serde(default)]
    #[allow(dead_code)] // accepted so SDK requests parse; not used
    session_ids: Option<Vec<String>>,
}

/// Ends every portal token of an application issued so far (a link
/// leaked, a tenant left), now or after `expiry` seconds; tokens issued
/// afterwards work as usual.
#[utoipa::path(
    post,
    operation_id = "v1.authentication.expire-all",
    path = "/auth/app/{app}/expire-all",
    tag = "applications",
    params(AppPath),
    request_body(content = Option<ApplicationTokenExpireIn>, description = "Optional"),
    responses((status = 204, description = "Expired"))
)]
pub(crate) async fn expire_all(
    State(state): State<AppState>,
    Path(app): Path<String>,
    body: Bytes,
) -> Result<axum::http::StatusCode, ApiError> {
    let input: ApplicationTokenExpireIn = optional_body(&body)?;
    let grace = input.expiry.unwrap_or(0);
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::invalid(
            "expiry",
            format!("must be at most {MAX_GRACE_SECONDS} seconds"),
        ));
    }
    let app = state
        .store
        .app_by_ref(&app)
        .await?
        .ok_or(ApiError::NotFound("application"))?;
    let now = state.clock.now();
    state
        .store
        .expire_portal_tokens(&app.id, now, now.plus(Duration::from_secs(grace)))
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
