//! Tenant portal links: `POST /api/v1/auth/app-portal-access/{app}` (the
//! shape of Svix's App Portal access) answers `{url, token}`; the URL opens
//! that one application's pages without any other credential until the
//! token expires.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use herald_core::model::App;
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
    Ok(guard::signer(state)
        .await?
        .open_portal_token(token, state.clock.now()))
}

/// Signs a portal link for `app`.
pub(super) async fn issue(
    state: &AppState,
    app: &App,
    lifetime: Duration,
    can_write: bool,
) -> Result<AppPortalAccessOut, ApiError> {
    let grant = PortalGrant {
        app: app.id.clone(),
        expires_at: state.clock.now().plus(lifetime),
        can_write,
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
    let input: AppPortalAccessIn = if body.iter().all(u8::is_ascii_whitespace) {
        AppPortalAccessIn::default()
    } else {
        crate::extract::parse_json(&body)?
    };
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
