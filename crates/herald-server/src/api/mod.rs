//! The REST API, one module per resource, mounted under `/api/v1`.

mod apps;
mod attempts;
mod background_tasks;
pub(crate) mod endpoints;
mod event_types;
mod health;
pub(crate) mod ingest;
mod messages;
pub(crate) mod openapi;
mod operational;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;
use crate::{console, gateway, listen};

/// Both REST APIs and the public receiver as mounted; `guard` wraps the
/// routes that need a token.
pub(crate) fn rest(
    guard: impl Fn(OpenApiRouter<AppState>) -> OpenApiRouter<AppState>,
) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .nest("/api/v1", guard(authenticated()).merge(public()))
        .nest("/ingest/api/v1", guard(ingest::routes()))
        // Public: a source's verifier authenticates its requests, and the
        // receiver reads the raw body itself, with the source's size limit.
        .routes(routes!(gateway::receive))
        .merge(guard(
            OpenApiRouter::new().routes(routes!(crate::metrics::scrape)),
        ))
        // Public: the session id in its URL is the capability to post.
        .routes(routes!(listen::relay))
}

/// Every route of the REST APIs, for their description.
pub(crate) fn described() -> OpenApiRouter<AppState> {
    rest(|routes| routes)
}

/// Routes that need a token.
fn authenticated() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(apps::list, apps::create))
        .routes(routes!(apps::get, apps::put, apps::patch, apps::delete))
        .routes(routes!(event_types::list, event_types::create))
        .routes(routes!(
            event_types::get,
            event_types::put,
            event_types::patch,
            event_types::delete
        ))
        .routes(routes!(endpoints::list, endpoints::create))
        .routes(routes!(
            endpoints::get,
            endpoints::put,
            endpoints::patch,
            endpoints::delete
        ))
        .routes(routes!(endpoints::secret))
        .routes(routes!(endpoints::rotate_secret))
        .routes(routes!(
            endpoints::headers,
            endpoints::put_headers,
            endpoints::patch_headers
        ))
        .routes(routes!(endpoints::recover))
        .routes(routes!(endpoints::replay_missing))
        .routes(routes!(endpoints::send_example))
        .routes(routes!(endpoints::stats))
        .routes(routes!(messages::of_endpoint))
        .routes(routes!(messages::list, messages::create))
        .routes(routes!(messages::get))
        .routes(routes!(messages::expunge_content))
        .routes(routes!(messages::destinations))
        .routes(routes!(attempts::resend))
        .routes(routes!(attempts::by_message))
        .routes(routes!(attempts::get))
        .routes(routes!(attempts::expunge_content))
        .routes(routes!(attempts::by_endpoint))
        .routes(routes!(operational::list, operational::create))
        .routes(routes!(
            operational::get,
            operational::put,
            operational::delete
        ))
        .routes(routes!(operational::secret))
        .routes(routes!(operational::rotate_secret))
        .routes(routes!(operational::headers, operational::put_headers))
        .routes(routes!(background_tasks::list))
        .routes(routes!(background_tasks::get))
        .routes(routes!(console::portal::access))
        .routes(routes!(console::portal::expire_all))
        .routes(routes!(listen::create))
        .routes(routes!(listen::poll))
        .routes(routes!(listen::reply))
        .routes(routes!(listen::delete))
}

/// Routes open without a token.
fn public() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .routes(routes!(openapi::serve))
}
