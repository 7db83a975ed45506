//! Request extractors whose rejections are [`ApiError`]s, so a malformed
//! body or query gets the same `{code, detail}` answer as any other error.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body. Syntax errors answer 400; shape errors (missing, unknown or
/// mistyped fields) answer 422 naming the field.
pub(crate) struct Json<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config.max_payload_bytes;
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                too_large(&rejection, limit).unwrap_or_else(|| {
                    ApiError::BadRequest(format!("cannot read body: {rejection}"))
                })
            })?;
        parse_json(&bytes).map(Json)
    }
}

fn too_large(rejection: &BytesRejection, limit: usize) -> Option<ApiError> {
    (rejection.status() == StatusCode::PAYLOAD_TOO_LARGE)
        .then_some(ApiError::PayloadTooLarge { limit })
}

/// Parses a JSON document into `T`, naming the failing field on error.
///
/// Valid documents, nearly all of them, take the plain parser: tracking the
/// path allocates a segment per field and was a third of the parse. Only a
/// document that fails is parsed again to say where.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Ok(parsed) = serde_json::from_slice(bytes) {
        return Ok(parsed);
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ApiError::BadRequest(format!("body is not valid JSON: {inner}"))
            }
            _ => {
                let message = inner.to_string();
                // Missing and unknown fields are reported at the parent path;
                // name the field itself so the client sees which one.
                let field = quoted_field(&message).map(str::to_owned);
                let mut location = vec!["body".to_owned()];
                location.extend(
                    path.split('.')
                        .filter(|part| !part.is_empty() && *part != "?")
                        .map(str::to_owned),
                );
                if let Some(field) = field {
                    if location.last() != Some(&field) {
                        location.push(field);
                    }
                }
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                ApiError::Validation {
                    location,
                    message,
                    kind: "value_error",
                }
            }
        }
    })
}

/// The field name serde quotes in "missing field `x`" / "unknown field `x`".
fn quoted_field(message: &str) -> Option<&str> {
    if !(message.starts_with("missing field") || message.starts_with("unknown field")) {
        return None;
    }
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(&message[start..end])
}

/// Query parameters, with errors answered as 422 naming the parameter.
pub(crate) struct Query<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded_query(query).map(Query)
    }
}

fn serde_urlencoded_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer = serde_urlencoded_deserializer(query);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let name = error.path().to_string();
        ApiError::invalid_query(&name, error.into_inner().to_string())
    })
}

fn serde_urlencoded_deserializer(query: &str) -> serde_urlencoded::Deserializer<'_> {
    serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()))
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        url: String,
        count: Option<u32>,
    }

    fn location(error: ApiError) -> Vec<String> {
        match error {
            ApiError::Validation { location, .. } => location,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn valid_documents_parse() {
        let sample = parse_json::<Sample>(br#"{"url":"https://x.example","count":2}"#)
            .expect("a valid document");
        assert_eq!(sample.url, "https://x.example");
        assert_eq!(sample.count, Some(2));
    }

    #[test]
    fn shape_errors_name_the_field() {
        assert_eq!(
            location(parse_json::<Sample>(b"{}").unwrap_err()),
            ["body", "url"]
        );
        assert_eq!(
            location(parse_json::<Sample>(br#"{"url":"x","bogus":1}"#).unwrap_err()),
            ["body", "bogus"]
        );
        assert_eq!(
            location(parse_json::<Sample>(br#"{"url":"x","count":"many"}"#).unwrap_err()),
            ["body", "count"]
        );
    }

    #[test]
    fn syntax_errors_are_bad_requests() {
        assert!(matches!(
            parse_json::<Sample>(b"{not json"),
            Err(ApiError::BadRequest(_))
        ));
    }
}
