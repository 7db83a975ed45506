//! Bearer-token authentication.
//!
//! Tokens are random strings handed out once; only their SHA-256 is stored,
//! so a copy of the database does not grant API access. Known hashes are
//! cached in memory because every request checks one.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use herald_store::{Store, StoreError};
use rand::RngCore;

use crate::error::ApiError;
use crate::state::AppState;

/// A new random API token (shown once, stored hashed).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("hrld_{}", URL_SAFE_NO_PAD.encode(bytes))
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
    now: herald_core::Timestamp,
) -> Result<Option<String>, StoreError> {
    if configured.is_some() || store.api_token_count().await? > 0 {
        return Ok(None);
    }
    let token = generate_token();
    store.add_api_token(&hash_token(&token), now).await?;
    Ok(Some(token))
}

/// The set of accepted token hashes.
#[derive(Clone)]
pub(crate) struct Tokens {
    store: Arc<dyn Store>,
    known: Arc<RwLock<HashSet<String>>>,
}

impl Tokens {
    pub(crate) fn new(store: Arc<dyn Store>, configured: Option<&str>) -> Self {
        let known = configured.into_iter().map(hash_token).collect();
        Self {
            store,
            known: Arc::new(RwLock::new(known)),
        }
    }

    pub(crate) async fn accepts(&self, token: &str) -> Result<bool, StoreError> {
        let hash = hash_token(token);
        // Comparing hashes by set lookup leaks nothing useful about a token:
        // an attacker cannot choose inputs that produce hash prefixes.
        if self
            .known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&hash)
        {
            return Ok(true);
        }
        let exists = self.store.api_token_exists(&hash).await?;
        if exists {
            self.known
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(hash);
        }
        Ok(exists)
    }
}

/// Rejects requests without a valid `Authorization: Bearer <token>`.
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
    if !state.tokens.accepts(token).await? {
        return Err(ApiError::Unauthorized("invalid token"));
    }
    Ok(next.run(request).await)
}
