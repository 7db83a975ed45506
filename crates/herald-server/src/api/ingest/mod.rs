//! `/ingest/api/v1`: the inbound gateway's management API, in the shape of
//! Svix's Ingest API (the `ingest` module of the official SDKs): sources,
//! their destinations, and their request log.

mod destinations;
mod requests;
mod sources;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub(crate) use sources::load_source;

/// The routes, all behind the API token.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/source", get(sources::list).post(sources::create))
        .route(
            "/source/{source}",
            get(sources::get).put(sources::put).delete(sources::delete),
        )
        .route(
            "/source/{source}/endpoint",
            get(destinations::list).post(destinations::create),
        )
        .route(
            "/source/{source}/endpoint/{endpoint}",
            get(destinations::get)
                .put(destinations::put)
                .delete(destinations::delete),
        )
        .route(
            "/source/{source}/endpoint/{endpoint}/secret",
            get(destinations::secret),
        )
        .route(
            "/source/{source}/endpoint/{endpoint}/secret/rotate",
            post(destinations::rotate_secret),
        )
        .route(
            "/source/{source}/endpoint/{endpoint}/headers",
            get(destinations::headers).put(destinations::put_headers),
        )
        .route("/source/{source}/request", get(requests::list))
}
