//! `/ingest/api/v1`: the inbound gateway's management API, in the shape of
//! Svix's Ingest API (the `ingest` module of the official SDKs): sources,
//! their destinations, and their request log.

mod destinations;
mod requests;
mod sources;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub(crate) use sources::load_source;

/// The routes, all behind the API token.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sources::list, sources::create))
        .routes(routes!(sources::get, sources::put, sources::delete))
        .routes(routes!(destinations::list, destinations::create))
        .routes(routes!(
            destinations::get,
            destinations::put,
            destinations::delete
        ))
        .routes(routes!(destinations::secret))
        .routes(routes!(destinations::rotate_secret))
        .routes(routes!(destinations::headers, destinations::put_headers))
        .routes(routes!(requests::list))
}
