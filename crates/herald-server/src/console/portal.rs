//! Tenant portal links: `POST /api/v1/auth/app-portal-access/{app}` (the
//! shape of Svix's App Portal access) answers `{url, token}`; the URL opens
//! that one application's pages without any other credential until the
//! token expires, or until `POST /api/v1/auth/app/{app}/expire-all` ends
//! the tokens of the application issued so far: all of them, or those
//! issued for the sessions it names (`sessionId` when the link was made).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use herald_core::model::{App, PortalExpiry};
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
const MAX_LIFETIME_SECONDS: u64 = PortalExpiry::TOKEN_LIFETIME_MAX.as_secs();
/// The longest session name, in bytes: it travels inside every token.
const MAX_SESSION_ID_BYTES: usize = 256;
/// The most sessions one `expire-all` may name.
const MAX_SESSIONS_PER_ORDER: usize = 100;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppPortalAccessIn {
    /// Seconds the link works.
    #[serde(default)]
    expiry: Option<u64>,
    /// A link that shows but changes nothing.
    #[serde(default)]
    read_only: Option<bool>,
    /// The caller's name for the session the link is for (1 to 256
    /// bytes): `expire-all` with `sessionIds` ends that session's links
    /// and leaves the others working.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    session_id: Option<String>,
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
    let now = state.clock.now();
    let orders = state
        .store
        .portal_expiry(&grant.app, grant.session.as_deref())
        .await?;
    Ok(orders
        .iter()
        .all(|order| order.allows(grant.issued_at, now)))
}

/// Signs a portal link for `app`.
pub(super) async fn issue(
    state: &AppState,
    app: &App,
    lifetime: Duration,
    can_write: bool,
    session: Option<String>,
) -> Result<AppPortalAccessOut, ApiError> {
    let now = state.clock.now();
    let grant = PortalGrant {
        app: app.id.clone(),
        expires_at: now.plus(lifetime),
        can_write,
        issued_at: now,
        session,
    };
    let token = guard::signer(state).await?.portal_token(&grant);
    let url = format!(
        "{}/console/portal/{token}",
        state.config.public_url.trim_end_matches('/')
    );
    Ok(AppPortalAccessOut { url, token })
}

/// A signed, expiring link to one application's portal. The body is
/// optional: `{"expiry": seconds, "readOnly": bool, "sessionId": name}`;
/// Svix's other fields (`featureFlags`, …) are accepted and ignored.
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
    if let Some(session) = &input.session_id {
        check_session_id(session, &["sessionId"])?;
    }
    let can_write = !input.read_only.unwrap_or(false);
    let link = issue(&state, &app, lifetime, can_write, input.session_id).await?;
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
    /// Only the tokens issued for these sessions (`sessionId` of the
    /// portal link) end; left out or empty, every token of the
    /// application does. At most 100.
    #[serde(default)]
    #[schema(max_items = 100)]
    session_ids: Option<Vec<String>>,
}

/// Refuses a session name a token could not carry, or a store could not
/// keep (PostgreSQL text holds no NUL); `location` is where in the body
/// it was.
fn check_session_id(session: &str, location: &[&str]) -> Result<(), ApiError> {
    let message = if session.is_empty() || session.len() > MAX_SESSION_ID_BYTES {
        format!("must be 1 to {MAX_SESSION_ID_BYTES} bytes")
    } else if session.chars().any(char::is_control) {
        "must hold no control characters".to_owned()
    } else {
        return Ok(());
    };
    Err(ApiError::Validation {
        location: ["body"]
            .iter()
            .chain(location)
            .map(|part| part.to_string())
            .collect(),
        message,
        kind: "value_error",
    })
}

/// Ends the portal tokens of an application issued so far (a link
/// leaked, a tenant left): all of them, or with `sessionIds` those issued
/// for these sessions; now or after `expiry` seconds. Tokens issued
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
    let sessions = input.session_ids.unwrap_or_default();
    if sessions.len() > MAX_SESSIONS_PER_ORDER {
        return Err(ApiError::invalid(
            "sessionIds",
            format!("must name at most {MAX_SESSIONS_PER_ORDER} sessions"),
        ));
    }
    for (index, session) in sessions.iter().enumerate() {
        check_session_id(session, &["sessionIds", &index.to_string()])?;
    }
    let app = state
        .store
        .app_by_ref(&app)
        .await?
        .ok_or(ApiError::NotFound("application"))?;
    let now = state.clock.now();
    let grace_until = now.plus(Duration::from_secs(grace));
    state
        .store
        .expire_portal_tokens(&app.id, &sessions, now, grace_until)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
