//! Who may see a console page, and the CSRF check in front of every action.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

use super::keys::Signer;
use super::{ConsoleError, Scope};
use crate::error::ApiError;
use crate::state::AppState;

/// The operator's session cookie. `Path=/console`, `HttpOnly` (no script
/// reads it) and `SameSite=Strict` (no other site's page makes the browser
/// send it).
pub(super) const SESSION_COOKIE: &str = "herald_console";
/// The login form's own CSRF nonce, set with the form.
pub(super) const LOGIN_COOKIE: &str = "herald_login";

/// A form field larger than this is not a console form.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// What a POST behind a guard must prove, set by the guard for
/// [`check_csrf`]: the token is `derive(purpose, secret)`.
#[derive(Clone)]
pub(super) struct CsrfExpectation {
    purpose: &'static str,
    secret: String,
    can_write: bool,
}

/// The signed-in operator, for pages outside an app.
#[derive(Clone)]
pub(super) struct Operator {
    pub(super) csrf: String,
}

pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The CSRF secret of a valid operator session in `headers`: unexpired,
/// and opened with an API token that has not been revoked since.
async fn session_nonce(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(cookie) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let signer = signer(state).await?;
    let Some((nonce, token_hash)) = signer.open_session(cookie, state.clock.now()) else {
        return Ok(None);
    };
    Ok(state
        .tokens
        .accepts_hash(&token_hash)
        .await?
        .then_some(nonce))
}

pub(super) async fn signer(state: &AppState) -> Result<&Signer, ApiError> {
    Ok(state.console.signer(state.store.as_ref()).await?)
}

fn to_login() -> Response {
    Redirect::to("/console/login").into_response()
}

/// Pages outside an app: a valid operator session, or the login page.
pub(super) async fn operator(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let nonce = match session_nonce(&state, request.headers()).await {
        Ok(Some(nonce)) => nonce,
        Ok(None) => return to_login(),
        Err(error) => return ConsoleError::from(error).into_response(),
    };
    let csrf = match signer(&state).await {
        Ok(signer) => signer.derive("csrf", &nonce),
        Err(error) => return ConsoleError::from(error).into_response(),
    };
    request.extensions_mut().insert(Operator { csrf });
    request.extensions_mut().insert(CsrfExpectation {
        purpose: "csrf",
        secret: nonce,
        can_write: true,
    });
    next.run(request).await
}

/// An app's pages for the operator: a valid session and an existing app.
pub(super) async fn operator_app(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    mut request: Request,
    next: Next,
) -> Response {
    let nonce = match session_nonce(&state, request.headers()).await {
        Ok(Some(nonce)) => nonce,
        Ok(None) => return to_login(),
        Err(error) => return ConsoleError::from(error).into_response(),
    };
    let resolved = async {
        let reference = params.get("app").map(String::as_str).unwrap_or_default();
        let app = state
            .store
            .app_by_ref(reference)
            .await?
            .ok_or(ApiError::NotFound("application"))?;
        let csrf = signer(&state).await?.derive("csrf", &nonce);
        Ok::<_, ApiError>((app, csrf))
    }
    .await;
    let (app, csrf) = match resolved {
        Ok(found) => found,
        Err(error) => return ConsoleError::from(error).into_response(),
    };
    request
        .extensions_mut()
        .insert(Operator { csrf: csrf.clone() });
    request.extensions_mut().insert(Scope {
        base: format!("/console/app/{}", app.id),
        app,
        csrf,
        is_portal: false,
        can_write: true,
    });
    request.extensions_mut().insert(CsrfExpectation {
        purpose: "csrf",
        secret: nonce,
        can_write: true,
    });
    next.run(request).await
}

/// A tenant portal: the token names the one app this request may see.
pub(super) async fn portal(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = params.get("token").cloned().unwrap_or_default();
    let resolved = async {
        let signer = signer(&state).await?;
        let Some(grant) = signer.open_portal_token(&token, state.clock.now()) else {
            return Err(ConsoleError::InvalidLink);
        };
        if !super::portal::still_honoured(&state, &grant).await? {
            return Err(ConsoleError::InvalidLink);
        }
        // By id only: the grant was signed for this id.
        let app = state
            .store
            .app_by_ref(grant.app.as_str())
            .await?
            .filter(|app| app.id == grant.app)
            .ok_or(ConsoleError::InvalidLink)?;
        let csrf = signer.derive("portal-csrf", &token);
        Ok((app, grant.can_write, csrf))
    }
    .await;
    let (app, can_write, csrf) = match resolved {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    request.extensions_mut().insert(Scope {
        base: format!("/console/portal/{token}"),
        app,
        csrf,
        is_portal: true,
        can_write,
    });
    request.extensions_mut().insert(CsrfExpectation {
        purpose: "portal-csrf",
        secret: token,
        can_write,
    });
    next.run(request).await
}

/// Whether the browser says the request comes from a page of another
/// origin. Browsers send `Origin` on every POST; a request without one
/// (not a browser) still needs the CSRF token.
fn is_cross_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, rest)| rest);
    origin_host != Some(host)
}

/// The `csrf` field of an urlencoded form.
pub(super) fn form_csrf(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned())
}

/// Refuses a state-changing request unless it is a same-origin form post
/// carrying the token its guard expects (read-only portal links refuse
/// them all). GET and HEAD change nothing and pass.
pub(super) async fn check_csrf(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let Some(expected) = request.extensions().get::<CsrfExpectation>().cloned() else {
        return ConsoleError::Forbidden("no session").into_response();
    };
    if !expected.can_write {
        return ConsoleError::Forbidden("this link is read-only").into_response();
    }
    if is_cross_origin(request.headers()) {
        return ConsoleError::Forbidden("cross-origin form posts are refused").into_response();
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return ConsoleError::Forbidden("form too large").into_response();
    };
    let signer = match signer(&state).await {
        Ok(signer) => signer,
        Err(error) => return ConsoleError::from(error).into_response(),
    };
    let is_valid = form_csrf(&bytes)
        .is_some_and(|given| signer.derived_matches(expected.purpose, &expected.secret, &given));
    if !is_valid {
        return ConsoleError::Forbidden(
            "missing or invalid CSRF token; reload the page and try again",
        )
        .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Whether a login form post is same-origin and carries the token bound to
/// its login cookie.
pub(super) async fn login_is_genuine(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<bool, ApiError> {
    if is_cross_origin(headers) {
        return Ok(false);
    }
    let Some(nonce) = cookie(headers, LOGIN_COOKIE) else {
        return Ok(false);
    };
    let signer = signer(state).await?;
    Ok(form_csrf(body).is_some_and(|given| signer.derived_matches("login", nonce, &given)))
}

/// An urlencoded form body (the CSRF field is ignored here: the guard
/// checked it before the handler ran).
pub(super) struct Form<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|_| ApiError::BadRequest("unreadable form".to_owned()))?;
        serde_urlencoded::from_bytes(&bytes)
            .map(Form)
            .map_err(|error| ApiError::BadRequest(format!("malformed form: {error}")).into())
    }
}
