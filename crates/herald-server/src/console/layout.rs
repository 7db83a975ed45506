//! The page shell, shared markup and the response headers every console
//! page carries.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use herald_core::model::DeliveryStatus;
use herald_core::Timestamp;
use maud::{html, Markup, DOCTYPE};

/// The stylesheet, compiled into the binary.
const STYLESHEET: &str = include_str!("console.css");

pub(crate) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// The navigation a page shows.
pub(crate) enum Nav<'a> {
    /// Signed-in operator: every section, and sign out.
    Operator { csrf: &'a str },
    /// A tenant portal: its one app only.
    Portal { base: &'a str, app_name: &'a str },
    /// Signed out, or an error.
    Plain,
}

/// A whole HTML page.
pub(crate) fn page(title: &str, nav: Nav<'_>, notice: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · Herald" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                header.top {
                    @match nav {
                        Nav::Operator { csrf } => {
                            a.brand href="/console/apps" { "Herald" }
                            nav aria-label="Sections" {
                                a href="/console/apps" { "Applications" }
                                a href="/console/event-types" { "Event types" }
                                a href="/console/sources" { "Sources" }
                            }
                            form method="post" action="/console/logout" {
                                (csrf_field(csrf))
                                button type="submit" { "Sign out" }
                            }
                        }
                        Nav::Portal { base, app_name } => {
                            a.brand href=(base) { (app_name) }
                            nav aria-label="Sections" {
                                a href=(base) { "Endpoints and messages" }
                            }
                        }
                        Nav::Plain => {
                            span.brand { "Herald" }
                        }
                    }
                }
                main {
                    @if let Some(notice) = notice {
                        p.notice role="status" { (notice) }
                    }
                    (body)
                }
            }
        }
    }
}

/// The hidden field every form carries.
pub(crate) fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A point in time, readable and machine-readable.
pub(crate) fn time(at: Timestamp) -> Markup {
    let datetime = at.to_datetime();
    html! {
        time datetime=(datetime.to_rfc3339()) {
            (datetime.format("%Y-%m-%d %H:%M:%S UTC"))
        }
    }
}

pub(crate) fn status_name(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Success => "success",
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Fail => "fail",
        DeliveryStatus::Sending => "sending",
    }
}

/// A delivery or attempt status, by word and colour.
pub(crate) fn status_badge(status: DeliveryStatus) -> Markup {
    let name = status_name(status);
    html! { span class={ "badge " (name) } data-status=(name) { (name) } }
}

/// Pretty-printed JSON when `text` is JSON, else the text as it is; either
/// way it is escaped where it is put.
pub(crate) fn pretty_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| text.to_owned())
}

/// The answer for a page: HTML that is never cached (pages show secrets)
/// and may run no script at all. The referrer goes to Herald only (portal
/// URLs carry their token), and not "none": then browsers send
/// `Origin: null`, which the CSRF guard must refuse. The operator console may not be framed;
/// a tenant portal may (platforms embed it).
pub(crate) fn html(markup: Markup, embeddable: bool) -> Response {
    let frames = if embeddable {
        "frame-ancestors *"
    } else {
        "frame-ancestors 'none'"
    };
    let policy = format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; {frames}"
    );
    let mut response = axum::response::Html(markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    if !embeddable {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// What a `done=` query parameter after an action says; anything else
/// says nothing (the text shown is never taken from the URL).
pub(crate) fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "resent" => "Resend queued: a new attempt will appear below.",
        "rotated" => "Secret rotated. The old secret keeps signing for the grace period.",
        "enabled" => "Endpoint enabled.",
        "disabled" => "Endpoint disabled: nothing is sent to it until it is enabled.",
        "recovered" => "Failed messages since the chosen time are queued again.",
        "sent" => "Test event sent to this endpoint.",
        "created" => "Endpoint created.",
        "updated" => "Endpoint updated.",
        _ => return None,
    })
}
