//! The server's header map as the verifiers see it.

use axum::http::HeaderMap;
use herald_signing::verifiers::Headers;

/// Wraps an `http::HeaderMap` for [`Headers`]. `HeaderMap` already matches
/// names without regard to case; a value that is not visible ASCII reads as
/// absent, as the trait asks (no scheme signs one).
pub(crate) struct RequestHeaders<'a>(pub(crate) &'a HeaderMap);

impl Headers for RequestHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)?.to_str().ok()
    }
}

/// Every header as `(name, value)` text pairs, in the order received, with
/// the values of `hidden` names replaced (credentials are not logged).
pub(crate) fn header_pairs(headers: &HeaderMap, hidden: &[String]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = if hidden.iter().any(|hidden| hidden == name.as_str()) {
                "<redacted>".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn lookups_ignore_case_and_credentials_are_hidden() {
        let mut map = HeaderMap::new();
        map.insert("x-github-event", HeaderValue::from_static("push"));
        map.insert("authorization", HeaderValue::from_static("Basic c2VjcmV0"));
        assert_eq!(RequestHeaders(&map).get("X-GitHub-Event"), Some("push"));
        assert_eq!(RequestHeaders(&map).get("X-Missing"), None);
        let pairs = header_pairs(&map, &["authorization".to_owned()]);
        assert!(pairs.contains(&("authorization".to_owned(), "<redacted>".to_owned())));
        assert!(pairs.contains(&("x-github-event".to_owned(), "push".to_owned())));
    }
}
