//! One application's pages, shared by the operator console and the tenant
//! portal: its endpoints and messages, one endpoint (health, secret,
//! actions), one message (payload, deliveries, attempts, resend).
//!
//! Every handler starts from the [`Scope`] its guard resolved and looks
//! ids up only within `scope.app`: `endpoint_by_ref(app, …)`,
//! `message_by_ref(app, …)`. An id of another app is simply not found.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use chrono::{DateTime, NaiveDateTime, Utc};
use herald_core::model::{Delivery, DeliveryStatus, Endpoint, Message};
use herald_core::{EventTypeName, Timestamp};
use herald_store::{AttemptFilter, Cursor, MessageFilter, Page, PageRequest};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use super::chart;
use super::guard::Form;
use super::layout::{self, csrf_field, pretty_json, status_badge, time, Nav};
use super::{ConsoleError, Scope};
use crate::api::endpoints;
use crate::error::ApiError;
use crate::state::AppState;

/// Rows per page of messages and attempts.
const PAGE_SIZE: usize = 25;
/// What the charts cover: the last day, by hour.
const CHART_BUCKETS: i64 = 24;
const CHART_BUCKET_MILLIS: i64 = 3_600_000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route(
            "/new-endpoint",
            get(new_endpoint_form).post(create_endpoint),
        )
        .route("/endpoint/{endpoint}", get(endpoint_page))
        .route(
            "/endpoint/{endpoint}/edit",
            get(edit_endpoint_form).post(update_endpoint),
        )
        .route("/endpoint/{endpoint}/rotate", post(rotate_secret))
        .route("/endpoint/{endpoint}/toggle", post(toggle_endpoint))
        .route("/endpoint/{endpoint}/recover", post(recover))
        .route("/endpoint/{endpoint}/test", post(send_test_event))
        .route("/msg/{msg}", get(message_page))
        .route("/msg/{msg}/resend/{endpoint}", post(resend))
}

type PageResult = Result<Response, ConsoleError>;

impl Scope {
    fn nav(&self) -> Nav<'_> {
        if self.is_portal {
            Nav::Portal {
                base: &self.base,
                app_name: &self.app.name,
            }
        } else {
            Nav::Operator { csrf: &self.csrf }
        }
    }

    fn render(&self, title: &str, done: Option<&str>, body: Markup) -> Response {
        layout::html(
            layout::page(title, self.nav(), layout::notice(done), body),
            self.is_portal,
        )
    }

    fn endpoint_url(&self, endpoint: &str) -> String {
        format!("{}/endpoint/{endpoint}", self.base)
    }

    fn message_url(&self, msg: &str) -> String {
        format!("{}/msg/{msg}", self.base)
    }

    async fn endpoint(&self, state: &AppState, reference: &str) -> Result<Endpoint, ApiError> {
        state
            .store
            .endpoint_by_ref(&self.app.id, reference)
            .await?
            .ok_or(ApiError::NotFound("endpoint"))
    }

    async fn message(&self, state: &AppState, reference: &str) -> Result<Message, ApiError> {
        state
            .store
            .message_by_ref(&self.app.id, reference)
            .await?
            .ok_or(ApiError::NotFound("message"))
    }

    /// A form posting to `{base}{action}`, or nothing on a read-only link.
    fn form(&self, action: &str, label: &str, fields: Markup, button_class: &str) -> Markup {
        if !self.can_write {
            return html! {};
        }
        html! {
            form method="post" action={ (self.base) (action) } {
                (csrf_field(&self.csrf))
                (fields)
                button type="submit" class=(button_class) { (label) }
            }
        }
    }
}

fn see_other(location: String) -> Response {
    Redirect::to(&location).into_response()
}

/// A form value that was left empty counts as not given.
fn given(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// A time from a `datetime-local` field (read as UTC) or RFC 3339.
fn parse_time(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
                .map(|time| time.and_utc())
        })
        .map_err(|_| {
            ApiError::invalid_query(field, "must be a date and time like 2024-05-01T12:00")
        })?;
    Ok(Timestamp::from_datetime(parsed))
}

fn local_input_value(at: Timestamp) -> String {
    at.to_datetime().format("%Y-%m-%dT%H:%M").to_string()
}

fn status_from_name(name: &str) -> Option<DeliveryStatus> {
    [
        DeliveryStatus::Success,
        DeliveryStatus::Pending,
        DeliveryStatus::Fail,
        DeliveryStatus::Sending,
    ]
    .into_iter()
    .find(|status| layout::status_name(*status) == name)
}

/// Where a page of a newest-first list starts: `older=<id>` goes on past an
/// id, `newer=<id>` comes back before one.
#[derive(Debug, Default, Deserialize)]
struct Paging {
    older: Option<String>,
    newer: Option<String>,
}

impl Paging {
    fn request(&self) -> PageRequest {
        let cursor = match (given(&self.older), given(&self.newer)) {
            (Some(older), _) => Cursor::After(older.to_owned()),
            (None, Some(newer)) => Cursor::Before(newer.to_owned()),
            (None, None) => Cursor::Start,
        };
        PageRequest {
            limit: PAGE_SIZE,
            cursor,
            newest_first: true,
        }
    }

    fn is_first_page(&self) -> bool {
        given(&self.older).is_none() && given(&self.newer).is_none()
    }
}

/// "Newer" and "Older" links around a page of a newest-first list keyed by
/// `id`; `query` holds the list's other parameters.
fn pager<T>(
    path: &str,
    query: &[(&str, &str)],
    page: &Page<T>,
    paging: &Paging,
    id: impl Fn(&T) -> String,
) -> Markup {
    let link = |key: &str, value: &str| {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (name, value) in query {
            if !value.is_empty() {
                serializer.append_pair(name, value);
            }
        }
        serializer.append_pair(key, value);
        format!("{path}?{}", serializer.finish())
    };
    let going_back = given(&paging.newer).is_some() && given(&paging.older).is_none();
    let has_newer = if going_back {
        page.has_more
    } else {
        !paging.is_first_page()
    };
    let has_older = if going_back { true } else { page.has_more };
    html! {
        nav.pager aria-label="Pages" {
            @if let (true, Some(first)) = (has_newer, page.items.first()) {
                a href=(link("newer", &id(first))) rel="prev" { "← Newer" }
            }
            @if let (true, Some(last)) = (has_older, page.items.last()) {
                a href=(link("older", &id(last))) rel="next" { "Older →" }
            }
        }
    }
}

fn chart_window(state: &AppState) -> (Timestamp, Timestamp) {
    let now = state.clock.now().0;
    let until = (now / CHART_BUCKET_MILLIS + 1) * CHART_BUCKET_MILLIS;
    (
        Timestamp(until - CHART_BUCKETS * CHART_BUCKET_MILLIS),
        Timestamp(until),
    )
}

// The app: endpoints, chart, messages with search.

#[derive(Debug, Default, Deserialize)]
struct MessageSearch {
    q: Option<String>,
    event_type: Option<String>,
    status: Option<String>,
    after: Option<String>,
    before: Option<String>,
    done: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

async fn overview(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Query(search): Query<MessageSearch>,
) -> PageResult {
    let app = &scope.app;
    let endpoints = state
        .store
        .list_endpoints(
            &app.id,
            PageRequest {
                limit: 250,
                cursor: Cursor::Start,
                newest_first: false,
            },
        )
        .await?;
    let (since, until) = chart_window(&state);
    let buckets = state
        .store
        .delivery_histogram(&app.id, None, since, until, CHART_BUCKET_MILLIS)
        .await?;

    let filter = MessageFilter {
        event_types: given(&search.event_type)
            .map(|name| vec![name.to_owned()])
            .unwrap_or_default(),
        after: given(&search.after)
            .map(|text| parse_time("after", text))
            .transpose()?,
        before: given(&search.before)
            .map(|text| parse_time("before", text))
            .transpose()?,
        ..MessageFilter::default()
    };
    let status = match given(&search.status) {
        Some(name) => Some(
            status_from_name(name)
                .ok_or_else(|| ApiError::invalid_query("status", "unknown status"))?,
        ),
        None => None,
    };
    let messages = if let Some(reference) = given(&search.q) {
        // An id or an eventId: one lookup, no list.
        let found = state.store.message_by_ref(&app.id, reference).await?;
        Page {
            items: found.into_iter().collect(),
            has_more: false,
        }
    } else if let Some(status) = status {
        state
            .store
            .list_messages_with_status(&app.id, status, filter, search.paging.request())
            .await?
    } else {
        state
            .store
            .list_messages(&app.id, filter, search.paging.request())
            .await?
    };
    let mut rows = Vec::with_capacity(messages.items.len());
    for message in &messages.items {
        let deliveries = state
            .store
            .deliveries_of_message(&app.id, &message.id)
            .await?;
        rows.push((message, deliveries));
    }
    let query = [
        ("event_type", given(&search.event_type).unwrap_or_default()),
        ("status", given(&search.status).unwrap_or_default()),
        ("after", given(&search.after).unwrap_or_default()),
        ("before", given(&search.before).unwrap_or_default()),
    ];
    let body = html! {
        h1 { (app.name) }
        p.muted.mono { (app.id) @if let Some(uid) = &app.uid { " · uid " (uid) } }
        @if !scope.is_portal {
            (scope.form("/portal-link", "Create a tenant portal link", html! {}, ""))
        }
        section aria-labelledby="chart-title" {
            h2 #chart-title { "Deliveries, last 24 hours" }
            (chart::render(&buckets, since, CHART_BUCKET_MILLIS, CHART_BUCKETS as usize))
        }
        section aria-labelledby="endpoints-title" {
            h2 #endpoints-title { "Endpoints" }
            @if scope.can_write {
                p { a href={ (scope.base) "/new-endpoint" } { "Add an endpoint" } }
            }
            @if endpoints.items.is_empty() {
                p.muted { "No endpoints yet: messages are stored but go nowhere." }
            } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "URL" } th scope="col" { "State" } th scope="col" { "Event types" } th scope="col" { "Id" } } }
                    tbody {
                        @for endpoint in &endpoints.items {
                            tr {
                                td { a href=(scope.endpoint_url(endpoint.id.as_str())) { (endpoint.url.as_str()) } }
                                td { (enabled_badge(endpoint)) }
                                td { (filter_text(endpoint)) }
                                td.id.mono { (endpoint.id) }
                            }
                        }
                    }
                } }
            }
        }
        section aria-labelledby="messages-title" {
            h2 #messages-title { "Messages" }
            form.filters method="get" action=(scope.base) role="search" aria-label="Search messages" {
                label { "Message id or eventId"
                    input type="search" name="q" value=(given(&search.q).unwrap_or_default()); }
                label { "Event type"
                    input type="text" name="event_type" value=(given(&search.event_type).unwrap_or_default()); }
                label { "Delivery status"
                    select name="status" {
                        option value="" { "any" }
                        @for name in ["fail", "pending", "sending", "success"] {
                            option value=(name) selected[given(&search.status) == Some(name)] { (name) }
                        }
                    }
                }
                label { "After (UTC)"
                    input type="datetime-local" name="after" value=(given(&search.after).unwrap_or_default()); }
                label { "Before (UTC)"
                    input type="datetime-local" name="before" value=(given(&search.before).unwrap_or_default()); }
                button type="submit" { "Search" }
            }
            @if rows.is_empty() {
                p.muted { "No messages match." }
            } @else {
                div.scroll { table #messages {
                    thead { tr { th scope="col" { "Message" } th scope="col" { "Event type" } th scope="col" { "Deliveries" } th scope="col" { "Created" } } }
                    tbody {
                        @for (message, deliveries) in &rows {
                            tr data-message=(message.id) {
                                td.id.mono {
                                    a href=(scope.message_url(message.id.as_str())) { (message.id) }
                                    @if let Some(event_id) = &message.event_id { br; span.muted { "eventId " (event_id) } }
                                }
                                td { (message.event_type) }
                                td { (delivery_summary(deliveries)) }
                                td { (time(message.created_at)) }
                            }
                        }
                    }
                } }
                (pager(&scope.base, &query, &messages, &search.paging, |message: &Message| message.id.to_string()))
            }
        }
    };
    Ok(scope.render(&app.name, given(&search.done), body))
}

fn enabled_badge(endpoint: &Endpoint) -> Markup {
    if endpoint.disabled {
        html! { span.badge.disabled { "disabled" } }
    } else {
        html! { span.badge.success { "enabled" } }
    }
}

fn filter_text(endpoint: &Endpoint) -> String {
    match &endpoint.filter_types {
        Some(types) => types
            .iter()
            .map(EventTypeName::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        None => "all".to_owned(),
    }
}

fn delivery_summary(deliveries: &[Delivery]) -> Markup {
    html! {
        @if deliveries.is_empty() { span.muted { "none" } }
        @for delivery in deliveries { (status_badge(delivery.status)) " " }
    }
}

// One endpoint.

#[derive(Debug, Default, Deserialize)]
struct EndpointQuery {
    reveal: Option<String>,
    done: Option<String>,
}

async fn endpoint_page(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(EndpointPath { endpoint }): Path<EndpointPath>,
    Query(query): Query<EndpointQuery>,
) -> PageResult {
    let endpoint = scope.endpoint(&state, &endpoint).await?;
    let app = &scope.app;
    let now = state.clock.now();
    let week_ago = Timestamp(now.0 - 7 * 24 * CHART_BUCKET_MILLIS);
    let stats = state
        .store
        .endpoint_stats(&endpoint.id, Some(week_ago), None)
        .await?;
    let finished = stats.success + stats.fail;
    let (since, until) = chart_window(&state);
    let buckets = state
        .store
        .delivery_histogram(
            &app.id,
            Some(&endpoint.id),
            since,
            until,
            CHART_BUCKET_MILLIS,
        )
        .await?;
    let failures = state
        .store
        .list_endpoint_messages(
            &app.id,
            &endpoint.id,
            Some(DeliveryStatus::Fail),
            MessageFilter::default(),
            PageRequest {
                limit: 10,
                cursor: Cursor::Start,
                newest_first: true,
            },
        )
        .await?;
    let event_types = state
        .store
        .list_event_types(
            PageRequest {
                limit: 250,
                cursor: Cursor::Start,
                newest_first: false,
            },
            false,
        )
        .await?;
    let is_revealed = query.reveal.as_deref() == Some("secret");
    let action = |path: &str| format!("/endpoint/{}/{path}", endpoint.id);
    let body = html! {
        p { a href=(scope.base) { "← " (app.name) } }
        h1 { "Endpoint " span.mono { (endpoint.url.as_str()) } }
        dl.facts {
            dt { "Id" } dd.mono { (endpoint.id) }
            @if let Some(uid) = &endpoint.uid { dt { "uid" } dd.mono { (uid) } }
            dt { "State" } dd { (enabled_badge(&endpoint)) }
            dt { "Event types" } dd { (filter_text(&endpoint)) }
            @if !endpoint.description.is_empty() { dt { "Description" } dd { (endpoint.description) } }
            dt { "Success rate, 7 days" } dd #success-rate {
                @if finished == 0 { "no finished deliveries" }
                @else { (format!("{:.1} %", stats.success as f64 * 100.0 / finished as f64)) }
                " (" (stats.success) " succeeded, " (stats.fail) " failed, "
                (stats.pending + stats.sending) " waiting)"
            }
            dt { "Signing secret" } dd {
                @if is_revealed {
                    code #secret { (endpoint.key.receiver_key()) }
                    " " a href=(scope.endpoint_url(endpoint.id.as_str())) { "Hide" }
                } @else {
                    a #reveal-secret href={ (scope.endpoint_url(endpoint.id.as_str())) "?reveal=secret" } { "Reveal secret" }
                }
            }
        }
        @if scope.can_write {
            p { a href={ (scope.endpoint_url(endpoint.id.as_str())) "/edit" } { "Edit endpoint" } }
        }
        section aria-labelledby="chart-title" {
            h2 #chart-title { "Deliveries, last 24 hours" }
            (chart::render(&buckets, since, CHART_BUCKET_MILLIS, CHART_BUCKETS as usize))
        }
        @if scope.can_write {
            section aria-labelledby="actions-title" {
                h2 #actions-title { "Actions" }
                div.actions {
                    (scope.form(&action("rotate"), "Rotate secret", html! {}, ""))
                    (scope.form(&action("toggle"),
                        if endpoint.disabled { "Enable endpoint" } else { "Disable endpoint" },
                        html! {}, if endpoint.disabled { "primary" } else { "danger" }))
                    (scope.form(&action("recover"), "Recover failed messages", html! {
                        label { "Failed since (UTC)"
                            input type="datetime-local" name="since" required
                                value=(local_input_value(Timestamp(now.0 - 24 * CHART_BUCKET_MILLIS))); }
                    }, ""))
                    (scope.form(&action("test"), "Send test event", html! {
                        label { "Event type"
                            input type="text" name="event_type" list="event-types" required
                                value=(event_types.items.first().map(|event_type| event_type.name.as_str()).unwrap_or("test.event")); }
                        datalist #event-types {
                            @for event_type in &event_types.items { option value=(event_type.name.as_str()) {} }
                        }
                    }, ""))
                }
            }
        }
        section aria-labelledby="failures-title" {
            h2 #failures-title { "Recent failures" }
            @if failures.items.is_empty() {
                p.muted { "No failed deliveries." }
            } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "Message" } th scope="col" { "Event type" } th scope="col" { "Attempts" } th scope="col" { "Created" } } }
                    tbody {
                        @for (message, delivery) in &failures.items {
                            tr {
                                td.id.mono { a href=(scope.message_url(message.id.as_str())) { (message.id) } }
                                td { (message.event_type) }
                                td { (delivery.attempt_count) }
                                td { (time(message.created_at)) }
                            }
                        }
                    }
                } }
            }
        }
    };
    Ok(scope.render("Endpoint", given(&query.done), body))
}

#[derive(Debug, Deserialize)]
struct EndpointPath {
    endpoint: String,
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    event_type: Option<String>,
}

fn back_to_endpoint(scope: &Scope, endpoint: &Endpoint, done: &str) -> Response {
    see_other(format!(
        "{}?done={done}",
        scope.endpoint_url(endpoint.id.as_str())
    ))
}

async fn rotate_secret(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(EndpointPath { endpoint }): Path<EndpointPath>,
) -> PageResult {
    let endpoint = scope.endpoint(&state, &endpoint).await?;
    let back = back_to_endpoint(&scope, &endpoint, "rotated");
    // The answer holds the new secret; the page shows it only when asked.
    endpoints::rotate(&state, endpoint, b"").await?;
    Ok(back)
}

async fn toggle_endpoint(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(EndpointPath { endpoint }): Path<EndpointPath>,
) -> PageResult {
    let mut endpoint = scope.endpoint(&state, &endpoint).await?;
    let was_disabled = endpoint.disabled;
    endpoint.disabled = !was_disabled;
    let endpoint = crate::api::endpoints::save(&state, endpoint, was_disabled).await?;
    let done = if endpoint.disabled {
        "disabled"
    } else {
        "enabled"
    };
    Ok(back_to_endpoint(&scope, &endpoint, done))
}

async fn recover(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(EndpointPath { endpoint }): Path<EndpointPath>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    let endpoint = scope.endpoint(&state, &endpoint).await?;
    let since = given(&form.since)
        .ok_or_else(|| ApiError::invalid("since", "is required"))
        .and_then(|text| parse_time("since", text))?;
    let now = state.clock.now();
    let recovered = state.store.recover(&endpoint.id, since, None, now).await?;
    state.engine.wake();
    tracing::info!(endpoint = %endpoint.id, recovered, "recovering failed deliveries (console)");
    Ok(back_to_endpoint(&scope, &endpoint, "recovered"))
}

async fn send_test_event(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(EndpointPath { endpoint }): Path<EndpointPath>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    let endpoint = scope.endpoint(&state, &endpoint).await?;
    let event_type =
        given(&form.event_type).ok_or_else(|| ApiError::invalid("event_type", "is required"))?;
    // The API's own send-example: the same payload (the type's schema
    // example) and the same single-endpoint fan-out.
    let input = serde_json::from_value(json!({ "eventType": event_type }))
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    endpoints::send_example(
        State(state.clone()),
        Path((scope.app.id.to_string(), endpoint.id.to_string())),
        crate::extract::Json(input),
    )
    .await?;
    Ok(back_to_endpoint(&scope, &endpoint, "sent"))
}

// Adding and editing endpoints.

#[derive(Debug, Default, Deserialize)]
struct EndpointForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    event_types: Option<String>,
}

impl EndpointForm {
    /// The event types as a list; empty means every type.
    fn event_types(&self) -> Option<Vec<String>> {
        let types: Vec<String> = given(&self.event_types)?
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        (!types.is_empty()).then_some(types)
    }
}

fn endpoint_form(scope: &Scope, action: &str, form: &EndpointForm, submit: &str) -> Markup {
    scope.form(
        action,
        submit,
        html! {
            div.card {
                p { label { "URL (https://…)"
                    input type="url" name="url" required value=(form.url); } }
                p { label { "Description"
                    input.wide type="text" name="description" value=(given(&form.description).unwrap_or_default()); } }
                p { label { "Event types (comma-separated; empty for all)"
                    input.wide type="text" name="event_types" value=(given(&form.event_types).unwrap_or_default()); } }
            }
        },
        "primary",
    )
}

async fn new_endpoint_form(Extension(scope): Extension<Scope>) -> PageResult {
    let body = html! {
        p { a href=(scope.base) { "← " (scope.app.name) } }
        h1 { "Add an endpoint" }
        (endpoint_form(&scope, "/new-endpoint", &EndpointForm::default(), "Create endpoint"))
    };
    Ok(scope.render("Add an endpoint", None, body))
}

async fn create_endpoint(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Form(form): Form<EndpointForm>,
) -> PageResult {
    let input = serde_json::from_value(json!({
        "url": form.url.trim(),
        "description": given(&form.description).unwrap_or_default(),
        "eventTypes": form.event_types(),
    }))
    .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let endpoint = endpoints::create_in(&state, scope.app.id.clone(), input).await?;
    Ok(back_to_endpoint(&scope, &endpoint, "created"))
}

async fn edit_endpoint_form(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(EndpointPath { endpoint }): Path<EndpointPath>,
) -> PageResult {
    let endpoint = scope.endpoint(&state, &endpoint).await?;
    let form = EndpointForm {
        url: endpoint.url.to_string(),
        description: Some(endpoint.description.clone()),
        event_types: endpoint.filter_types.as_ref().map(|types| {
            types
                .iter()
                .map(EventTypeName::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        }),
    };
    let action = format!("/endpoint/{}/edit", endpoint.id);
    let body = html! {
        p { a href=(scope.endpoint_url(endpoint.id.as_str())) { "← Endpoint" } }
        h1 { "Edit endpoint" }
        (endpoint_form(&scope, &action, &form, "Save"))
    };
    Ok(scope.render("Edit endpoint", None, body))
}

async fn update_endpoint(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(EndpointPath { endpoint }): Path<EndpointPath>,
    Form(form): Form<EndpointForm>,
) -> PageResult {
    let endpoint = scope.endpoint(&state, &endpoint).await?;
    // PATCH semantics: channels, headers, metadata and the rest stay.
    let patch = serde_json::from_value(json!({
        "url": form.url.trim(),
        "description": given(&form.description).unwrap_or_default(),
        "eventTypes": form.event_types(),
    }))
    .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let crate::extract::Json(updated) = endpoints::patch(
        State(state.clone()),
        Path((scope.app.id.to_string(), endpoint.id.to_string())),
        crate::extract::Json(patch),
    )
    .await?;
    Ok(see_other(format!(
        "{}?done=updated",
        scope.endpoint_url(&updated.id)
    )))
}

// One message.

#[derive(Debug, Deserialize)]
struct MessagePath {
    msg: String,
}

#[derive(Debug, Default, Deserialize)]
struct MessageQuery {
    done: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

async fn message_page(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(MessagePath { msg }): Path<MessagePath>,
    Query(query): Query<MessageQuery>,
) -> PageResult {
    let message = scope.message(&state, &msg).await?;
    let app = &scope.app;
    let deliveries = state
        .store
        .deliveries_of_message(&app.id, &message.id)
        .await?;
    let mut targets = Vec::with_capacity(deliveries.len());
    for delivery in &deliveries {
        let endpoint = state
            .store
            .endpoint_by_ref(&app.id, delivery.endpoint_id.as_str())
            .await?;
        targets.push((delivery, endpoint));
    }
    let attempts = state
        .store
        .list_attempts(
            &app.id,
            AttemptFilter {
                msg_id: Some(message.id.clone()),
                ..AttemptFilter::default()
            },
            query.paging.request(),
        )
        .await?;
    let message_url = scope.message_url(message.id.as_str());
    let body = html! {
        p { a href=(scope.base) { "← " (app.name) } }
        h1 { "Message " span.mono { (message.id) } }
        dl.facts {
            dt { "Event type" } dd { (message.event_type) }
            @if let Some(event_id) = &message.event_id { dt { "eventId" } dd.mono { (event_id) } }
            dt { "Created" } dd { (time(message.created_at)) }
            @if !message.channels.is_empty() {
                dt { "Channels" } dd { (message.channels.iter().map(|channel| channel.as_str()).collect::<Vec<_>>().join(", ")) }
            }
        }
        h2 { "Payload" }
        pre #payload { (pretty_json(&message.payload)) }
        section aria-labelledby="deliveries-title" {
            h2 #deliveries-title { "Deliveries" }
            @if targets.is_empty() {
                p.muted { "No endpoint matched this message." }
            } @else {
                div.scroll { table #deliveries {
                    thead { tr { th scope="col" { "Endpoint" } th scope="col" { "Status" } th scope="col" { "Attempts" } th scope="col" { "Next attempt" } th scope="col" { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for (delivery, endpoint) in &targets {
                            tr data-endpoint=(delivery.endpoint_id) {
                                td {
                                    @match endpoint {
                                        Some(endpoint) => a href=(scope.endpoint_url(endpoint.id.as_str())) { (endpoint.url.as_str()) },
                                        None => span.muted { (delivery.endpoint_id) " (deleted)" },
                                    }
                                }
                                td { (status_badge(delivery.status)) }
                                td { (delivery.attempt_count) }
                                td { @match delivery.next_attempt_at { Some(at) => (time(at)), None => span.muted { "none" } } }
                                td {
                                    @if endpoint.is_some() {
                                        (scope.form(&format!("/msg/{}/resend/{}", message.id, delivery.endpoint_id), "Resend", html! {}, ""))
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        }
        section aria-labelledby="attempts-title" {
            h2 #attempts-title { "Attempts" }
            @if attempts.items.is_empty() {
                p.muted { "No attempt yet." }
            } @else {
                div.scroll { table #attempts {
                    thead { tr {
                        th scope="col" { "When" } th scope="col" { "Status" } th scope="col" { "HTTP" }
                        th scope="col" { "Duration" } th scope="col" { "Trigger" } th scope="col" { "Endpoint" } th scope="col" { "Response" }
                    } }
                    tbody {
                        @for attempt in &attempts.items {
                            tr.attempt data-attempt=(attempt.id) data-status=(layout::status_name(attempt.status)) {
                                td { (time(attempt.timestamp)) }
                                td { (status_badge(attempt.status)) }
                                td.mono { @if attempt.response_status_code > 0 { (attempt.response_status_code) } @else { "—" } }
                                td { (attempt.response_duration_ms) " ms" }
                                td { @if attempt.trigger == herald_core::model::TriggerType::Manual { "manual" } @else { "scheduled" } }
                                td.mono { (attempt.url) }
                                td {
                                    @if let Some(error) = attempt.error { p.error { (error.as_str()) } }
                                    @if attempt.response.is_empty() { span.muted { "(empty body)" } }
                                    @else { details { summary { "Response body" } pre { (attempt.response) } } }
                                }
                            }
                        }
                    }
                } }
                (pager(&message_url, &[], &attempts, &query.paging, |attempt: &herald_core::model::Attempt| attempt.id.to_string()))
            }
        }
    };
    Ok(scope.render("Message", given(&query.done), body))
}

#[derive(Debug, Deserialize)]
struct ResendPath {
    msg: String,
    endpoint: String,
}

async fn resend(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path(ResendPath { msg, endpoint }): Path<ResendPath>,
) -> PageResult {
    // Both within the scope's app: a resend may not reach another app's
    // endpoint, nor send another app's message.
    let message = scope.message(&state, &msg).await?;
    let endpoint = scope.endpoint(&state, &endpoint).await?;
    state
        .store
        .resend(&scope.app.id, &message.id, &endpoint.id, state.clock.now())
        .await?;
    state.engine.wake();
    Ok(see_other(format!(
        "{}?done=resent",
        scope.message_url(message.id.as_str())
    )))
}

/// How long an operator session lasts.
pub(super) const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
