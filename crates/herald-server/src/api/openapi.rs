//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of the REST
//! APIs (`/api/v1`, `/ingest/api/v1`) and of the inbound receiver
//! (`/in/{source}`). It is built from the same route lists the server
//! mounts: `utoipa-axum`'s `routes!` registers a handler's route and its
//! description in one call. The console and `/metrics` are not part of it.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use bytes::Bytes;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr};
use utoipa::{IntoParams, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ApiError, ErrorOut};
use crate::state::AppState;

/// The document's fixed parts: what Herald is, how callers authenticate,
/// the error body every operation may answer with.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Webhook infrastructure: send webhooks to your customers' endpoints \
            (a Svix-compatible API) and receive them from providers (an inbound gateway \
            in the shape of Svix's Ingest API)."
    ),
    components(schemas(ErrorOut)),
    modifiers(&Conventions),
    security(("bearer" = [])),
    tags(
        (name = "applications", description = "Tenants: one per customer of the platform"),
        (name = "event types", description = "The kinds of events sent"),
        (name = "endpoints", description = "Where an application's messages are delivered"),
        (name = "messages", description = "Events sent to an application, and their deliveries"),
        (name = "attempts", description = "Each HTTP try of a delivery"),
        (name = "background tasks", description = "Work done over many deliveries: recover, replay"),
        (
            name = "operational webhooks",
            description = "Endpoints that hear about Herald's own events"
        ),
        (
            name = "ingest",
            description = "Inbound sources, their destinations, request logs and the receiver"
        ),
        (name = "health", description = "Liveness, readiness and this document"),
        (
            name = "listen",
            description = "Listen sessions: a relay URL answered by `herald listen` on a \
                developer's machine"
        ),
        (name = "operations", description = "Prometheus metrics"),
    )
)]
struct Base;

/// Adds the bearer scheme the `security` requirements name.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token, or the admin token"))
                    .build(),
            ),
        );
    }
}

/// The operations of `document`, to finish them once all paths are in.
fn operations(document: &mut Document) -> impl Iterator<Item = &mut Operation> {
    document.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

/// A handler's doc comment becomes its operation's summary, line breaks
/// and all: the summary keeps the first sentence on one line, and the
/// whole text, when longer, becomes the description.
fn tidy_summaries(document: &mut Document) {
    for operation in operations(document) {
        let Some(summary) = operation.summary.take() else {
            continue;
        };
        let text = summary.split_whitespace().collect::<Vec<_>>().join(" ");
        match text.find(". ") {
            Some(end) => {
                operation.summary = Some(text[..=end].to_owned());
                operation.description = Some(text);
            }
            None => operation.summary = Some(text),
        }
    }
}

/// Error answers added to each operation once all paths are in.
fn add_error_answers(document: &mut Document) {
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorOut"))))
                    .build(),
            )
            .build()
    };
    let client = error(
        "The request was refused: 400 for a body that is not JSON, 401 without a \
         valid token where one is needed, 404 for an unknown object, 409 for a \
         taken uid, 413 for a body too large, 422 naming the field at fault, 429 \
         with `Retry-After`",
    );
    let server = error("Herald could not serve the request");
    for operation in operations(document) {
        let answers = &mut operation.responses.responses;
        answers.insert("4XX".into(), RefOr::T(client.clone()));
        answers.insert("5XX".into(), RefOr::T(server.clone()));
    }
}

/// The document, built from `routes` (every route the API serves).
fn describe(routes: OpenApiRouter<AppState>) -> Document {
    let mut document = OpenApiRouter::with_openapi(Base::openapi())
        .merge(routes)
        .into_openapi();
    tidy_summaries(&mut document);
    add_error_answers(&mut document);
    document
}

/// The document as served, rendered once.
fn rendered() -> Result<Bytes, ApiError> {
    static RENDERED: OnceLock<Result<Bytes, String>> = OnceLock::new();
    RENDERED
        .get_or_init(|| {
            serde_json::to_vec(&describe(super::described()))
                .map(Bytes::from)
                .map_err(|error| error.to_string())
        })
        .clone()
        .map_err(ApiError::Internal)
}

/// This document: every operation of the REST APIs and of the receiver,
/// their parameters, bodies and answers.
#[utoipa::path(
    get,
    operation_id = "v1.openapi.get",
    path = "/openapi.json",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json"),
    )
)]
pub(crate) async fn serve() -> Result<impl IntoResponse, ApiError> {
    Ok(([(CONTENT_TYPE, "application/json")], rendered()?))
}

/// Path parameters, described once for every operation that takes them.
/// The handlers take the same segments as plain strings.
#[allow(dead_code)] // described, never built
pub(crate) mod paths {
    use super::IntoParams;

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct AppPath {
        /// The application's id (`app_…`) or uid.
        app: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct EventTypePath {
        /// The event type's name.
        name: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct EndpointPath {
        /// The application's id (`app_…`) or uid.
        app: String,
        /// The endpoint's id (`ep_…`) or uid.
        endpoint: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct MessagePath {
        /// The application's id (`app_…`) or uid.
        app: String,
        /// The message's id (`msg_…`) or event id.
        msg: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct MessageEndpointPath {
        /// The application's id (`app_…`) or uid.
        app: String,
        /// The message's id (`msg_…`) or event id.
        msg: String,
        /// The endpoint's id (`ep_…`) or uid.
        endpoint: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct AttemptPath {
        /// The application's id (`app_…`) or uid.
        app: String,
        /// The message's id (`msg_…`) or event id.
        msg: String,
        /// The attempt's id (`atmpt_…`).
        attempt: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct TaskPath {
        /// The background task's id (`qtask_…`).
        task_id: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct OperationalEndpointPath {
        /// The operational webhook endpoint's id (`ep_…`) or uid.
        endpoint: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct SourcePath {
        /// The source's id (`src_…`) or uid.
        source: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub(crate) struct SourceEndpointPath {
        /// The source's id (`src_…`) or uid.
        source: String,
        /// The destination's id (`ep_…`) or uid.
        endpoint: String,
    }
}
