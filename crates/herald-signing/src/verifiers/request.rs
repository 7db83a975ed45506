//! The request as a verifier sees it: raw body bytes, headers by name, and
//! the public URL. No HTTP library types, so the verifiers stay pure and the
//! fuzz targets can build requests from bytes.

use std::fmt;

use super::VerifyError;

/// Header lookup by name, ignoring ASCII case as HTTP does.
///
/// Implemented for (references to) slices, arrays and vectors of `(name,
/// value)` pairs, so any of them can be passed as `&dyn Headers`; the
/// server wraps its own header map in a type implementing it. A value that
/// is not valid UTF-8 should be reported as absent: no scheme signs one.
pub trait Headers {
    /// The value of the first header called `name`, if there is one.
    fn get(&self, name: &str) -> Option<&str>;
}

fn first_value<'a, K, V>(pairs: &'a [(K, V)], name: &str) -> Option<&'a str>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    pairs
        .iter()
        .find(|(key, _)| key.as_ref().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_ref())
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for &[(K, V)] {
    fn get(&self, name: &str) -> Option<&str> {
        first_value(self, name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Headers for [(K, V); N] {
    fn get(&self, name: &str) -> Option<&str> {
        first_value(self, name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for Vec<(K, V)> {
    fn get(&self, name: &str) -> Option<&str> {
        first_value(self, name)
    }
}

/// One inbound request, exactly as received.
#[derive(Clone, Copy)]
pub struct InboundRequest<'a> {
    /// The raw body, before any parsing: signatures cover these bytes.
    pub body: &'a [u8],
    /// The request's headers.
    pub headers: &'a dyn Headers,
    /// The URL the provider called, as the provider sees it (scheme, host,
    /// port if any, path and query), not as a proxy rewrote it. Only Twilio
    /// signs it.
    pub public_url: &'a str,
}

impl InboundRequest<'_> {
    /// The value of a header the scheme cannot do without.
    pub(crate) fn required_header(&self, name: &'static str) -> Result<&str, VerifyError> {
        self.headers
            .get(name)
            .ok_or_else(|| VerifyError::missing(name))
    }
}

impl fmt::Debug for InboundRequest<'_> {
    // Headers are left out: they carry credentials (`Authorization`, API keys).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundRequest")
            .field("body_len", &self.body.len())
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_matched_without_regard_to_case() {
        let headers = vec![
            ("stripe-signature".to_owned(), "first".to_owned()),
            ("Stripe-Signature".to_owned(), "second".to_owned()),
        ];
        assert_eq!(headers.get("STRIPE-SIGNATURE"), Some("first"));
        assert_eq!(headers.get("stripe-signatur"), None);
    }

    #[test]
    fn debug_leaves_headers_out() {
        let headers = [("Authorization", "Basic c2VjcmV0")];
        let request = InboundRequest {
            body: b"{}",
            headers: &headers,
            public_url: "https://herald.example/in/src_1",
        };
        let printed = format!("{request:?}");
        assert!(!printed.contains("c2VjcmV0"), "{printed}");
        assert!(printed.contains("body_len: 2"), "{printed}");
    }
}
