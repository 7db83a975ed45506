//! The one mapping from failures to HTTP answers.
//!
//! Every error body is `{"code": …, "detail": …}` as in Svix's API; 422
//! answers carry a list of `{loc, msg, type}` in `detail` (the official SDKs
//! parse it that way). Internal details are logged here and never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_core::ValidationError;
use herald_store::StoreError;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorOut {
    /// What went wrong, for programs: `validation`, `not_found`,
    /// `conflict`, `authentication_failed`, `rate_limited`, ….
    pub(crate) code: &'static str,
    /// For people: a sentence, or for `validation` a list of
    /// `{loc, msg, type}` naming each field at fault.
    pub(crate) detail: Value,
}

/// Everything a handler can answer instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or unknown bearer token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The token is genuine but does not reach this (an application's
    /// token used outside its application, or a read-only one writing).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The body is not JSON at all.
    #[error("{0}")]
    BadRequest(String),
    /// The referenced object does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique value is taken.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than allowed.
    #[error("payload exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body is JSON but not acceptable; `location` is the path of the
    /// offending field (`["body", "url"]`).
    #[error("{message}")]
    Validation {
        location: Vec<String>,
        message: String,
        kind: &'static str,
    },
    /// Too many requests for a rate limit; retry after the given seconds.
    #[error("more than {limit} messages per second for this application")]
    RateLimited { limit: u32, retry_after_secs: u64 },
    /// A dependency (the database) is not answering.
    #[error("{0}")]
    Unavailable(&'static str),
    /// Storage failed; details go to the log only.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A validation error on body field `field`.
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation {
            location: vec!["body".into(), field.into()],
            message: message.into(),
            kind: "value_error",
        }
    }

    /// A validation error on request header `name`.
    pub(crate) fn invalid_header(name: &str, message: impl Into<String>) -> Self {
        Self::Validation {
            location: vec!["header".into(), name.into()],
            message: message.into(),
            kind: "value_error",
        }
    }

    /// A validation error on query parameter `name`.
    pub(crate) fn invalid_query(name: &str, message: impl Into<String>) -> Self {
        Self::Validation {
            location: vec!["query".into(), name.into()],
            message: message.into(),
            kind: "value_error",
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        Self::invalid(&error.field, error.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => Self::Conflict(error.to_string()),
            StoreError::NotFound(entity) => Self::NotFound(entity),
            StoreError::Backend(_) | StoreError::Corrupt(_) => Self::Internal(error.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "authentication_failed"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let detail = match &self {
            Self::Validation {
                location,
                message,
                kind,
            } => json!([{ "loc": location, "msg": message, "type": kind }]),
            Self::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                Value::from("internal server error")
            }
            other => Value::from(other.to_string()),
        };
        let body = ErrorOut { code, detail };
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::RateLimited {
            retry_after_secs, ..
        } = &self
        {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after_secs),
            );
        }
        response
    }
}
