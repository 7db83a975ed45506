//! Bearer-token authentication.
//!
//! Tokens are random strings handed out once; only their SHA-256 is stored,
//! so a copy of the database does not grant API access. Known hashes are
//! cached in memory because every request checks one, and checked against
//! the store again every few seconds, so a token revoked from the command
//! line (on any node) stops working soon after without a restart.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use herald_core::Timestamp;
use herald_store::{ApiToken, Store, StoreError};
use rand::RngCore;

use crate::error::ApiError;
use crate::state::AppState;

/// How long a token found in the store is accepted without asking again:
/// the longest a revoked token keeps working.
const RECHECK_AFTER: Duration = Duration::from_secs(5);

/// How many trailing characters of a token are kept to recognise it by:
/// too few to help guess the rest (the token carries 256 random bits).
const HINT_CHARS: usize = 4;

/// A new random API token (shown once, stored hashed).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("hrld_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A new token and the record to store for it: the token goes to whoever
/// asked for it, once; the record keeps only its hash, `name` and a hint.
pub fn new_api_token(name: Option<String>, now: Timestamp) -> (String, ApiToken) {
    let token = generate_token();
    let hint = token
        .len()
        .checked_sub(HINT_CHARS)
        .and_then(|start| token.get(start..))
        .map(str::to_owned);
    let record = ApiToken {
        hash: hash_token(&token),
        name,
        hint,
        created_at: now,
    };
    (token, record)
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    crate::digest::sha256_hex(token.as_bytes())
}

/// Makes sure at least one token can reach the API: with none configured and
/// none stored, creates one and returns it so the caller can print it once.
pub async fn ensure_admin_token(
    store: &dyn Store,
    configured: Option<&str>,
    now: Timestamp,
) -> Result<Option<String>, StoreError> {
    if configured.is_some() || store.api_token_count().await? > 0 {
        return Ok(None);
    }
    let (token, record) = new_api_token(Some("first start".into()), now);
    store.add_api_token(&record).await?;
    Ok(Some(token))
}

/// The accepted token hashes: the configured one always, stored ones as
/// last confirmed by the store.
#[derive(Clone)]
pub(crate) struct Tokens {
    store: Arc<dyn Store>,
    configured: Option<String>,
    confirmed: Arc<RwLock<HashMap<String, Instant>>>,
}

impl Tokens {
    pub(crate) fn new(store: Arc<dyn Store>, configured: Option<&str>) -> Self {
        Self {
            store,
            configured: configured.map(hash_token),
            confirmed: Arc::default(),
        }
    }

    pub(crate) async fn accepts(&self, token: &str) -> Result<bool, StoreError> {
        self.accept(hash_token(token)).await
    }

    /// Whether the token with this hash is accepted (a console session
    /// keeps the hash of the token it was opened with, never the token).
    pub(crate) async fn accepts_hash(&self, hash: &str) -> Result<bool, StoreError> {
        self.accept(hash.to_owned()).await
    }

    /// Every API request comes through here: the hash is taken as owned,
    /// so a check costs no copy of it.
    async fn accept(&self, hash: String) -> Result<bool, StoreError> {
        // Comparing hashes by lookup leaks nothing useful about a token: an
        // attacker cannot choose inputs that produce hash prefixes.
        if self.configured.as_ref() == Some(&hash) {
            return Ok(true);
        }
        let confirmed_at = self
            .confirmed
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&hash)
            .copied();
        if confirmed_at.is_some_and(|at| at.elapsed() < RECHECK_AFTER) {
            return Ok(true);
        }
        let exists = self.store.api_token_exists(&hash).await?;
        let mut confirmed = self
            .confirmed
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if exists {
            confirmed.insert(hash, Instant::now());
        } else {
            confirmed.remove(&hash);
        }
        Ok(exists)
    }
}

/// Rejects requests without a valid `Authorization: Bearer <token>`: an
/// API token reaches everything; an application's portal token (from
/// `POST /auth/app-portal-access/{app}`, as in Svix) only that
/// application's resources and the event types, and only to read them
/// when it is read-only.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or(ApiError::Unauthorized("missing Authorization header"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized(
            "Authorization must be 'Bearer <token>'",
        ))?;
    if state.tokens.accepts(token).await? {
        return Ok(next.run(request).await);
    }
    let Some(grant) = crate::console::portal::grant_of(&state, token).await? else {
        return Err(ApiError::Unauthorized("invalid token"));
    };
    let (mut parts, body) = request.into_parts();
    within_app(&state, &mut parts, &grant.app, grant.can_write).await?;
    Ok(next.run(Request::from_parts(parts, body)).await)
}

/// Whether a request made with `app`'s token stays within what it grants.
async fn within_app(
    state: &AppState,
    parts: &mut Parts,
    app: &herald_core::AppId,
    can_write: bool,
) -> Result<(), ApiError> {
    // Inside the `/api/v1` router the prefix is already stripped; the
    // checks read the path as sent either way (as routing does, so an
    // encoded name cannot slip by).
    let full = parts.uri.path();
    let path = full.strip_prefix("/api/v1").unwrap_or(full).to_owned();
    let params = RawPathParams::from_request_parts(parts, state).await.ok();
    let reference = params
        .iter()
        .flat_map(|params| params.iter())
        .find(|(name, _)| *name == "app")
        .map(|(_, value)| value.to_owned());
    let reads = parts.method == Method::GET || parts.method == Method::HEAD;
    let Some(reference) = reference else {
        // The portal lists the event types to subscribe to; nothing else
        // outside an application is an application's business.
        if reads && path.starts_with("/event-type") {
            return Ok(());
        }
        return Err(ApiError::Forbidden(
            "an application's token reaches only that application; this needs an API token",
        ));
    };
    let owner = state.store.app_by_ref(&reference).await?;
    if owner.as_ref().map(|owner| &owner.id) != Some(app) {
        return Err(ApiError::Forbidden("this token is for another application"));
    }
    // `/app/{app}` itself: one segment after `app/`.
    let the_app_itself = path
        .strip_prefix("/app/")
        .is_some_and(|rest| !rest.trim_end_matches('/').contains('/'));
    if path.starts_with("/auth/") || (the_app_itself && !reads) {
        return Err(ApiError::Forbidden(
            "an application's token cannot change its application or grant access to it",
        ));
    }
    if !reads && !can_write {
        return Err(ApiError::Forbidden("this token is read-only"));
    }
    // Sending messages is the platform's business, not its tenant's (Svix
    // refuses it to application tokens too): a leaked portal link must not
    // send authentically signed webhooks.
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if !reads && matches!(segments.as_slice(), ["app", _, "msg"]) {
        return Err(ApiError::Forbidden(
            "an application's token cannot send messages; this needs an API token",
        ));
    }
    Ok(())
}
