//! The operator's pages outside one app: sign-in, the app list, event
//! types, inbound sources and their request logs; and issuing a tenant
//! portal link from an app's page.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use herald_core::model::{App, EventType};
use herald_store::{Cursor, PageRequest, ReceivedRequest, RequestOutcome, Source};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::app_pages::SESSION_LIFETIME;
use super::guard::{self, Operator, LOGIN_COOKIE, SESSION_COOKIE};
use super::keys::nonce;
use super::layout::{self, csrf_field, pretty_json, time, Nav};
use super::portal;
use super::{ConsoleError, Scope};
use crate::error::ApiError;
use crate::state::AppState;

type PageResult = Result<Response, ConsoleError>;

fn operator_page(operator: &Operator, title: &str, body: Markup) -> Response {
    layout::html(
        layout::page(
            title,
            Nav::Operator {
                csrf: &operator.csrf,
            },
            None,
            body,
        ),
        false,
    )
}

/// `Secure` when the console is served over HTTPS (judged by the public
/// URL), so the cookie is never sent in clear there.
fn cookie_attributes(state: &AppState, max_age_seconds: u64) -> String {
    let secure = if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{secure}")
}

fn login_page(state: &AppState, csrf: &str, failed: bool) -> Markup {
    let _ = state;
    layout::page(
        "Sign in",
        Nav::Plain,
        None,
        html! {
            h1 { "Sign in to the Herald console" }
            @if failed {
                p.error role="alert" { "That token was not accepted." }
            }
            form.card method="post" action="/console/login" {
                (csrf_field(csrf))
                p { label { "Admin API token"
                    input type="password" name="token" autocomplete="current-password" required autofocus; } }
                button.primary type="submit" { "Sign in" }
            }
            p.muted { "Any admin API token works (" code { "herald token create" } " makes one)." }
        },
    )
}

/// The login form, with a fresh nonce cookie its CSRF token is bound to.
pub(super) async fn login_form(State(state): State<AppState>) -> PageResult {
    let login_nonce = nonce();
    let csrf = guard::signer(&state).await?.derive("login", &login_nonce);
    let mut response = layout::html(login_page(&state, &csrf, false), false);
    set_cookie(
        &mut response,
        &format!(
            "{LOGIN_COOKIE}={login_nonce}; {}",
            cookie_attributes(&state, 3600)
        ),
    );
    Ok(response)
}

fn set_cookie(response: &mut Response, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

/// Checks the token like the API does and starts a session. The token
/// itself is neither stored in the cookie nor logged.
pub(super) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    if !guard::login_is_genuine(&state, &headers, &body).await? {
        return Err(ConsoleError::Forbidden(
            "the sign-in form expired or came from another site; reload it and try again",
        ));
    }
    let form: LoginForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ApiError::BadRequest("malformed form".to_owned()))?;
    let token = form.token.trim();
    if token.is_empty() || !state.tokens.accepts(token).await? {
        tracing::info!("console sign-in refused");
        let login_nonce = guard::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
        let csrf = guard::signer(&state).await?.derive("login", login_nonce);
        let mut response = layout::html(login_page(&state, &csrf, true), false);
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    }
    let expires_at = state.clock.now().plus(SESSION_LIFETIME);
    let session = guard::signer(&state)
        .await?
        .session(expires_at, &crate::auth::hash_token(token));
    let mut response = Redirect::to("/console/apps").into_response();
    set_cookie(
        &mut response,
        &format!(
            "{SESSION_COOKIE}={session}; {}",
            cookie_attributes(&state, SESSION_LIFETIME.as_secs())
        ),
    );
    set_cookie(
        &mut response,
        &format!("{LOGIN_COOKIE}=; {}", cookie_attributes(&state, 0)),
    );
    tracing::info!("console sign-in");
    Ok(response)
}

pub(super) async fn logout(State(state): State<AppState>) -> Response {
    let mut response = Redirect::to("/console/login").into_response();
    set_cookie(
        &mut response,
        &format!("{SESSION_COOKIE}=; {}", cookie_attributes(&state, 0)),
    );
    response
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    after: Option<String>,
}

fn list_request(after: &Option<String>, limit: usize) -> PageRequest {
    PageRequest {
        limit,
        cursor: match after.as_deref().filter(|after| !after.is_empty()) {
            Some(after) => Cursor::After(after.to_owned()),
            None => Cursor::Start,
        },
        newest_first: false,
    }
}

pub(super) async fn apps(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let apps = state
        .store
        .list_apps(list_request(&query.after, 50))
        .await?;
    let body = html! {
        h1 { "Applications" }
        @if apps.items.is_empty() {
            p.muted { "No applications yet. Create one with " code { "POST /api/v1/app" } "." }
        } @else {
            div.scroll { table #apps {
                thead { tr { th scope="col" { "Name" } th scope="col" { "uid" } th scope="col" { "Id" } th scope="col" { "Created" } } }
                tbody {
                    @for app in &apps.items {
                        tr {
                            td { a href={ "/console/app/" (app.id) } { (app.name) } }
                            td.mono { (app.uid.as_ref().map(ToString::to_string).unwrap_or_default()) }
                            td.id.mono { (app.id) }
                            td { (time(app.created_at)) }
                        }
                    }
                }
            } }
            @if let (true, Some(last)) = (apps.has_more, apps.items.last()) {
                nav.pager aria-label="Pages" { a href={ "/console/apps?after=" (last.id) } rel="next" { "More →" } }
            }
        }
    };
    Ok(operator_page(&operator, "Applications", body))
}

pub(super) async fn event_types(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let types = state
        .store
        .list_event_types(list_request(&query.after, 100), true)
        .await?;
    let body = html! {
        h1 { "Event types" }
        @if types.items.is_empty() {
            p.muted { "No event types yet. Create them with " code { "POST /api/v1/event-type" } "." }
        }
        @for event_type in &types.items { (event_type_card(event_type)) }
        @if let (true, Some(last)) = (types.has_more, types.items.last()) {
            nav.pager aria-label="Pages" { a href={ "/console/event-types?after=" (last.name) } rel="next" { "More →" } }
        }
    };
    Ok(operator_page(&operator, "Event types", body))
}

fn event_type_card(event_type: &EventType) -> Markup {
    html! {
        section.card {
            h2.mono { (event_type.name) }
            @if event_type.archived { span.badge.disabled { "archived" } " " }
            @if event_type.deprecated { span.badge.pending { "deprecated" } }
            @if !event_type.description.is_empty() { p { (event_type.description) } }
            @match &event_type.schemas {
                Some(schemas) => details {
                    summary { "Schemas" }
                    pre { (serde_json::to_string_pretty(schemas).unwrap_or_default()) }
                },
                None => p.muted { "No schema." },
            }
        }
    }
}

pub(super) async fn sources(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let sources = state
        .store
        .list_sources(list_request(&query.after, 50))
        .await?;
    let body = html! {
        h1 { "Inbound sources" }
        @if sources.items.is_empty() {
            p.muted { "No sources yet. Create one with " code { "POST /ingest/api/v1/source" } "." }
        } @else {
            div.scroll { table #sources {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "URL" } } }
                tbody {
                    @for source in &sources.items {
                        tr {
                            td { a href={ "/console/source/" (source.id) } { (source.name) } }
                            td { (source.source_type) }
                            td.mono { (crate::gateway::ingest_url(&state, source)) }
                        }
                    }
                }
            } }
            @if let (true, Some(last)) = (sources.has_more, sources.items.last()) {
                nav.pager aria-label="Pages" { a href={ "/console/sources?after=" (last.id) } rel="next" { "More →" } }
            }
        }
    };
    Ok(operator_page(&operator, "Inbound sources", body))
}

/// A source's configuration with every credential blanked: the page shows
/// how a source verifies, never with what.
fn redacted(config: &Value) -> Value {
    match config {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| {
                    let lower = name.to_ascii_lowercase();
                    let is_secret = ["secret", "token", "password", "key", "credential"]
                        .iter()
                        .any(|word| lower.contains(word))
                        && !lower.contains("header");
                    let shown = match value {
                        Value::String(_) | Value::Number(_) if is_secret => {
                            Value::String("•••• (hidden)".to_owned())
                        }
                        Value::Array(items) if is_secret => Value::Array(
                            items
                                .iter()
                                .map(|_| Value::String("•••• (hidden)".to_owned()))
                                .collect(),
                        ),
                        other => redacted(other),
                    };
                    (name.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

pub(super) async fn source(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    Path(reference): Path<String>,
) -> PageResult {
    let source: Source = state
        .store
        .source_by_ref(&reference)
        .await?
        .ok_or(ApiError::NotFound("source"))?;
    let recent = |outcome| {
        let id = source.id.clone();
        let store = state.store.clone();
        async move {
            store
                .list_requests(
                    &id,
                    Some(outcome),
                    PageRequest {
                        limit: 20,
                        cursor: Cursor::Start,
                        newest_first: true,
                    },
                )
                .await
        }
    };
    let accepted = recent(RequestOutcome::Accepted).await?;
    let rejected = recent(RequestOutcome::Rejected).await?;
    let app_base = format!("/console/app/{}", source.app_id);
    let body = html! {
        p { a href="/console/sources" { "← Sources" } }
        h1 { "Source " (source.name) }
        dl.facts {
            dt { "Id" } dd.mono { (source.id) }
            @if let Some(uid) = &source.uid { dt { "uid" } dd.mono { (uid) } }
            dt { "URL" } dd.mono #ingest-url { (crate::gateway::ingest_url(&state, &source)) }
            dt { "Verifier" } dd { (source.source_type) }
            dt { "Destinations" } dd { a href=(app_base) { "the endpoints and messages of its application" } }
        }
        details { summary { "Configuration (credentials hidden)" } pre { (serde_json::to_string_pretty(&redacted(&source.config)).unwrap_or_default()) } }
        section aria-labelledby="accepted-title" {
            h2 #accepted-title { "Recently accepted" }
            (request_table(&app_base, &accepted.items, false))
        }
        section aria-labelledby="rejected-title" {
            h2 #rejected-title { "Recently rejected" }
            (request_table(&app_base, &rejected.items, true))
        }
    };
    Ok(operator_page(&operator, "Source", body))
}

fn request_table(app_base: &str, requests: &[ReceivedRequest], with_reason: bool) -> Markup {
    html! {
        @if requests.is_empty() {
            p.muted { "None." }
        } @else {
            div.scroll { table.requests {
                thead { tr {
                    th scope="col" { "Received" } th scope="col" { "From" } th scope="col" { "Answer" }
                    @if with_reason { th scope="col" { "Reason" } } @else { th scope="col" { "Message" } }
                    th scope="col" { "Request" }
                } }
                tbody {
                    @for request in requests {
                        tr {
                            td { (time(request.received_at)) }
                            td.mono { (request.remote_addr) }
                            td.mono { (request.status_code) }
                            @if with_reason {
                                td.reason { (request.reason.clone().unwrap_or_default()) }
                            } @else {
                                td.mono { @if let Some(msg) = &request.msg_id { a href={ (app_base) "/msg/" (msg) } { (msg) } } }
                            }
                            td {
                                details {
                                    summary { "Headers and body" }
                                    table {
                                        tbody { @for (name, value) in &request.headers { tr { th scope="row" { (name) } td.mono { (value) } } } }
                                    }
                                    pre { (pretty_json(&String::from_utf8_lossy(&request.body))) }
                                }
                            }
                        }
                    }
                }
            } }
        }
    }
}

/// Issues a portal link for the app and shows it to the operator.
pub(super) async fn portal_link(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Extension(operator): Extension<Operator>,
) -> PageResult {
    let link = portal::issue(&state, &scope.app, portal::DEFAULT_LIFETIME, true, None).await?;
    let body = portal_link_body(&scope.app, &link.url, &scope.base);
    Ok(operator_page(&operator, "Tenant portal link", body))
}

fn portal_link_body(app: &App, url: &str, base: &str) -> Markup {
    html! {
        p { a href=(base) { "← " (app.name) } }
        h1 { "Tenant portal link" }
        p { "Anyone with this link sees " strong { (app.name) } "'s endpoints, messages and attempts, and may edit its endpoints and retry deliveries, for 7 days. It shows nothing of any other application." }
        p { label { "Link" input.wide.mono #portal-url type="text" readonly value=(url); } }
    }
}
