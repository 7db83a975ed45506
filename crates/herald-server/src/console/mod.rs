//! The console: server-rendered HTML for operators at `/console` (signed
//! in with an admin API token) and for one tenant at a time through a
//! signed, expiring portal link (`/console/portal/{token}`).
//!
//! Both see an application through the same pages (`app_pages.rs`),
//! mounted twice: under `/console/app/{app}` behind the operator session,
//! and under `/console/portal/{token}` where the token names the app. The
//! guard that resolves either prefix hands the pages a [`Scope`] holding
//! the app, and the pages look every id in the URL up *within that app*,
//! so a tenant who edits an id in the address bar finds nothing of another
//! app.
//!
//! What must stay true: every state-changing request is a POST that passes
//! [`guard::check_csrf`] (a token bound to the session or portal link, and
//! a same-origin `Origin` when the browser sends one); everything shown is
//! escaped by maud, payloads and response bodies included; no secret or
//! token is logged.

mod app_pages;
mod chart;
mod guard;
mod keys;
mod layout;
mod operator;
pub(crate) mod portal;

use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use herald_core::model::App;
use herald_store::StoreError;

pub(crate) use keys::ConsoleKeys;

use crate::error::ApiError;
use crate::state::AppState;

/// The console's pages and actions, with their guards.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let operator_app = app_pages::routes()
        .route("/portal-link", post(operator::portal_link))
        .route_layer(from_fn_with_state(state.clone(), guard::check_csrf))
        .route_layer(from_fn_with_state(state.clone(), guard::operator_app));
    let portal = app_pages::routes()
        .route_layer(from_fn_with_state(state.clone(), guard::check_csrf))
        .route_layer(from_fn_with_state(state.clone(), guard::portal));
    let operator = Router::new()
        .route("/", get(|| async { Redirect::to("/console/apps") }))
        .route("/apps", get(operator::apps))
        .route("/event-types", get(operator::event_types))
        .route("/sources", get(operator::sources))
        .route("/source/{source}", get(operator::source))
        .route("/logout", post(operator::logout))
        .route_layer(from_fn_with_state(state.clone(), guard::check_csrf))
        .route_layer(from_fn_with_state(state.clone(), guard::operator));
    Router::new()
        .route(
            "/console/login",
            get(operator::login_form).post(operator::login),
        )
        .route("/console/assets/console.css", get(layout::stylesheet))
        .nest("/console", operator)
        .nest("/console/app/{app}", operator_app)
        .nest("/console/portal/{token}", portal)
}

/// The application a page is about, as resolved by the guard in front of
/// it, and how links and forms reach it.
#[derive(Clone)]
pub(crate) struct Scope {
    pub(crate) app: App,
    /// The URL prefix of this app's pages: `/console/app/{id}` or
    /// `/console/portal/{token}`.
    pub(crate) base: String,
    /// The CSRF token every form of the page carries.
    pub(crate) csrf: String,
    /// Seen through a tenant portal link (no way out to other apps).
    pub(crate) is_portal: bool,
    /// False for a read-only portal link: forms are hidden, POSTs refused.
    pub(crate) can_write: bool,
}

/// Why a console request failed, rendered as an HTML page.
#[derive(Debug)]
pub(crate) enum ConsoleError {
    Api(ApiError),
    Forbidden(&'static str),
    /// A portal link that is forged, edited or expired.
    InvalidLink,
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<StoreError> for ConsoleError {
    fn from(error: StoreError) -> Self {
        Self::Api(error.into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::Forbidden(why) => (StatusCode::FORBIDDEN, why.to_owned()),
            Self::InvalidLink => (
                StatusCode::UNAUTHORIZED,
                "This portal link is invalid or has expired. Ask for a new one.".to_owned(),
            ),
            Self::Api(ApiError::Internal(detail)) => {
                tracing::error!(%detail, "console request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong; the server log has the details.".to_owned(),
                )
            }
            Self::Api(error @ ApiError::NotFound(_)) => (StatusCode::NOT_FOUND, error.to_string()),
            Self::Api(error @ ApiError::Conflict(_)) => (StatusCode::CONFLICT, error.to_string()),
            Self::Api(error @ ApiError::Unauthorized(_)) => {
                (StatusCode::UNAUTHORIZED, error.to_string())
            }
            Self::Api(error @ ApiError::Validation { .. }) => {
                let field = match &error {
                    ApiError::Validation { location, .. } => location.last().cloned(),
                    _ => None,
                };
                let message = match field {
                    Some(field) => format!("{field}: {error}"),
                    None => error.to_string(),
                };
                (StatusCode::UNPROCESSABLE_ENTITY, message)
            }
            Self::Api(error) => (StatusCode::BAD_REQUEST, error.to_string()),
        };
        let body = layout::page(
            "Error",
            layout::Nav::Plain,
            None,
            maud::html! {
                h1 { (status.canonical_reason().unwrap_or("Error")) }
                p.error role="alert" { (message) }
            },
        );
        let mut response = layout::html(body, true);
        *response.status_mut() = status;
        response
    }
}
