//! The REST API, one module per resource, mounted under `/api/v1`.

mod apps;
mod attempts;
pub(crate) mod endpoints;
mod event_types;
mod health;
pub(crate) mod ingest;
mod messages;
mod operational;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

/// Routes that need a token.
pub(crate) fn authenticated() -> Router<AppState> {
    Router::new()
        .route("/app", get(apps::list).post(apps::create))
        .route(
            "/app/{app}",
            get(apps::get)
                .put(apps::put)
                .patch(apps::patch)
                .delete(apps::delete),
        )
        .route(
            "/event-type",
            get(event_types::list).post(event_types::create),
        )
        .route(
            "/event-type/{name}",
            get(event_types::get)
                .put(event_types::put)
                .patch(event_types::patch)
                .delete(event_types::delete),
        )
        .route(
            "/app/{app}/endpoint",
            get(endpoints::list).post(endpoints::create),
        )
        .route(
            "/app/{app}/endpoint/{endpoint}",
            get(endpoints::get)
                .put(endpoints::put)
                .patch(endpoints::patch)
                .delete(endpoints::delete),
        )
        .route(
            "/app/{app}/endpoint/{endpoint}/secret",
            get(endpoints::secret),
        )
        .route(
            "/app/{app}/endpoint/{endpoint}/secret/rotate",
            post(endpoints::rotate_secret),
        )
        .route(
            "/app/{app}/endpoint/{endpoint}/headers",
            get(endpoints::headers)
                .put(endpoints::put_headers)
                .patch(endpoints::patch_headers),
        )
        .route(
            "/app/{app}/endpoint/{endpoint}/recover",
            post(endpoints::recover),
        )
        .route(
            "/app/{app}/endpoint/{endpoint}/send-example",
            post(endpoints::send_example),
        )
        .route(
            "/app/{app}/endpoint/{endpoint}/stats",
            get(endpoints::stats),
        )
        .route(
            "/app/{app}/endpoint/{endpoint}/msg",
            get(messages::of_endpoint),
        )
        .route("/app/{app}/msg", get(messages::list).post(messages::create))
        .route("/app/{app}/msg/{msg}", get(messages::get))
        .route("/app/{app}/msg/{msg}/endpoint", get(messages::destinations))
        .route(
            "/app/{app}/msg/{msg}/endpoint/{endpoint}/resend",
            post(attempts::resend),
        )
        .route("/app/{app}/attempt/msg/{msg}", get(attempts::by_message))
        .route("/app/{app}/msg/{msg}/attempt/{attempt}", get(attempts::get))
        .route(
            "/app/{app}/attempt/endpoint/{endpoint}",
            get(attempts::by_endpoint),
        )
        .route(
            "/operational-webhook/endpoint",
            get(operational::list).post(operational::create),
        )
        .route(
            "/operational-webhook/endpoint/{endpoint}",
            get(operational::get)
                .put(operational::put)
                .delete(operational::delete),
        )
        .route(
            "/operational-webhook/endpoint/{endpoint}/secret",
            get(operational::secret),
        )
        .route(
            "/operational-webhook/endpoint/{endpoint}/secret/rotate",
            post(operational::rotate_secret),
        )
        .route(
            "/operational-webhook/endpoint/{endpoint}/headers",
            get(operational::headers).put(operational::put_headers),
        )
}

/// Routes open without a token.
pub(crate) fn public() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/health/ready", get(health::ready))
}
