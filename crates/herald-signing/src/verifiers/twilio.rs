//! Twilio: `X-Twilio-Signature`, the base64 HMAC-SHA1, keyed by the auth
//! token, of the full public URL followed by every form parameter of the
//! body sorted by name, each as name then value, no separators.
//!
//! Two details follow Twilio's own helper libraries rather than the prose
//! of its docs:
//! - A JSON body is not a form: Twilio then adds `bodySHA256=<hex SHA-256 of
//!   the body>` to the URL's query and signs the URL alone. Both the
//!   signature and the body hash must match.
//! - Twilio's signer is inconsistent about the port, so the signature may
//!   cover the URL without its port or with the scheme's default port
//!   added; either verifies. Repeated identical parameters count once, and
//!   a name's values are sorted.

use std::borrow::Cow;

use sha2::{Digest, Sha256};
use subtle::Choice;

use super::hmac::{decode_signature, SignatureEncoding};
use super::mac::{self, HmacAlgorithm};
use super::{InboundRequest, Secret, VerifyError};

const HEADER: &str = "X-Twilio-Signature";
const BODY_HASH_PARAM: &str = "bodySHA256";

/// Configuration of a Twilio source.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// The account's auth token.
    pub secret: Secret,
}

impl TwilioConfig {
    pub(crate) fn verify(&self, request: &InboundRequest<'_>) -> Result<(), VerifyError> {
        let value = request.required_header(HEADER)?;
        let received = decode_signature(value, SignatureEncoding::Base64)
            .map_err(|reason| VerifyError::malformed(HEADER, reason))?;

        let url = request.public_url;
        let body_hash = query_param(url, BODY_HASH_PARAM);
        let (params, body_matches) = match &body_hash {
            // A JSON body: only the URL is signed, and the body must have
            // the hash the URL names (a hash that is not hex cannot match).
            Some(hash) => (
                Vec::new(),
                mac::decode_hex(hash).map_or(Choice::from(0), |hash| {
                    mac::signature_matches(Sha256::digest(request.body).as_slice(), &hash)
                }),
            ),
            None => (sorted_form_params(request.body), Choice::from(1)),
        };

        let (without_port, with_port) = port_variants(url);
        let mut signature_matches = Choice::from(0);
        for url in [without_port, with_port] {
            let expected = mac::hmac(
                HmacAlgorithm::Sha1,
                self.secret.expose(),
                &[url.as_bytes(), &params],
            );
            signature_matches |= mac::signature_matches(&expected, &received);
        }
        if bool::from(signature_matches & body_matches) {
            Ok(())
        } else {
            Err(VerifyError::bad_signature(HEADER))
        }
    }
}

/// The form parameters of `body` as Twilio signs them: decoded, each
/// distinct (name, value) pair once, sorted by name then value, written as
/// name then value with nothing between.
fn sorted_form_params(body: &[u8]) -> Vec<u8> {
    let mut pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = form_urlencoded::parse(body).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut signed = Vec::with_capacity(body.len());
    for (name, value) in pairs {
        signed.extend_from_slice(name.as_bytes());
        signed.extend_from_slice(value.as_bytes());
    }
    signed
}

/// The first non-empty value of `name` in the URL's query string.
fn query_param(url: &str, name: &str) -> Option<String> {
    let (_, after) = url.split_once('?')?;
    let query = after.split('#').next().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, value)| key == name && !value.is_empty())
        .map(|(_, value)| value.into_owned())
}

/// The URL without its port, and the URL with the scheme's default port
/// added when it has none (443 for https, 80 otherwise). A URL with a port
/// keeps it in the second; one without keeps its form in the first. Text
/// that is not `scheme://authority…` is returned unchanged in both.
fn port_variants(url: &str) -> (Cow<'_, str>, Cow<'_, str>) {
    let Some(scheme_end) = url.find("://") else {
        return (Cow::Borrowed(url), Cow::Borrowed(url));
    };
    let authority_start = scheme_end + "://".len();
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |offset| authority_start + offset);
    let authority = &url[authority_start..authority_end];
    // The host follows any `user:password@`; an IPv6 host is bracketed and
    // full of colons, so the port separator is the first colon after `]`.
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let host_and_port = &authority[host_start..];
    let port_colon = match host_and_port.rfind(']') {
        Some(bracket) => host_and_port[bracket..]
            .find(':')
            .map(|offset| bracket + offset),
        None => host_and_port.rfind(':'),
    };
    match port_colon {
        Some(colon) => {
            let colon = authority_start + host_start + colon;
            let without = format!("{}{}", &url[..colon], &url[authority_end..]);
            (Cow::Owned(without), Cow::Borrowed(url))
        }
        None => {
            let default_port = if url[..scheme_end].eq_ignore_ascii_case("https") {
                ":443"
            } else {
                ":80"
            };
            let with = format!(
                "{}{default_port}{}",
                &url[..authority_end],
                &url[authority_end..]
            );
            (Cow::Borrowed(url), Cow::Owned(with))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifiers::Verifier;

    // Twilio's request-validation example, as in its docs and in its own
    // SDKs' tests (twilio-php `RequestValidatorTest`: auth token "12345");
    // Python's `twilio.request_validator.RequestValidator("12345").validate`
    // (twilio 9.13.0) accepts every (url, params, signature) used below
    // unless a test says otherwise.
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    /// The example's parameters, deliberately out of order; `+` is `%2B` in
    /// a form body.
    const FORM_BODY: &[u8] = b"To=%2B18005551212&Digits=1234&CallSid=CA1234567890ABCDE\
&From=%2B14158675309&Caller=%2B14158675309";
    const SIGNATURE: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

    fn check_with(
        token: &str,
        url: &str,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        let headers: Vec<(&str, &str)> = signature
            .map(|value| ("x-twilio-signature", value))
            .into_iter()
            .collect();
        let request = InboundRequest {
            body,
            headers: &headers,
            public_url: url,
        };
        Verifier::Twilio(TwilioConfig {
            secret: Secret::new(token).expect("not empty"),
        })
        .verify(&request, 0)
    }

    fn check(url: &str, signature: &str, body: &[u8]) -> Result<(), VerifyError> {
        check_with(TOKEN, url, Some(signature), body)
    }

    #[test]
    fn the_documented_form_example_verifies() {
        assert_eq!(check(URL, SIGNATURE, FORM_BODY), Ok(()));
    }

    #[test]
    fn a_wrong_token_fails() {
        assert_eq!(
            check_with("54321", URL, Some(SIGNATURE), FORM_BODY),
            Err(VerifyError::bad_signature(HEADER))
        );
    }

    #[test]
    fn a_tampered_param_or_url_fails() {
        let body = String::from_utf8_lossy(FORM_BODY).replace("Digits=1234", "Digits=9999");
        assert_eq!(
            check(URL, SIGNATURE, body.as_bytes()),
            Err(VerifyError::bad_signature(HEADER))
        );
        let extra = format!("{}&extra=1", String::from_utf8_lossy(FORM_BODY));
        assert_eq!(
            check(URL, SIGNATURE, extra.as_bytes()),
            Err(VerifyError::bad_signature(HEADER))
        );
        assert_eq!(
            check(
                "https://mycompany.com/myapp.php?foo=1&bar=3",
                SIGNATURE,
                FORM_BODY
            ),
            Err(VerifyError::bad_signature(HEADER))
        );
    }

    #[test]
    fn repeated_params_count_once_and_their_values_are_sorted() {
        // twilio-php's `testValidateWithArrayAndDuplicates`:
        // Digits = ["5678", "1234", "1234"].
        let body = b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234";
        assert_eq!(check(URL, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", body), Ok(()));
    }

    #[test]
    fn the_port_may_be_present_or_absent_in_what_was_signed() {
        // twilio-php's `testValidateRemovesPortHttps`: signed without the port.
        assert_eq!(
            check(
                "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
                SIGNATURE,
                FORM_BODY
            ),
            Ok(())
        );
        // `testValidateAddsPortHttps`: signed with :443 added.
        assert_eq!(
            check(URL, "kvajT1Ptam85bY51eRf/AJRuM3w=", FORM_BODY),
            Ok(())
        );
        // `testValidateAddsPortHttp`: signed with :80 added.
        assert_eq!(
            check(
                "http://mycompany.com/myapp.php?foo=1&bar=2",
                "0ZXoZLH/DfblKGATFgpif+LLRf4=",
                FORM_BODY
            ),
            Ok(())
        );
        // `testBuildUrlCredsAddsPort`: credentials stay, the port goes after the host.
        assert_eq!(
            check(
                "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
                "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI=",
                FORM_BODY
            ),
            Ok(())
        );
    }

    #[test]
    fn an_ipv6_host_keeps_its_colons() {
        // `RequestValidator.compute_signature("http://[::1]/in/src?x=1",
        // {"a": "b"})`. The Python SDK's own port stripping mangles IPv6
        // hosts, so its `validate` rejects this request; we accept it.
        assert_eq!(
            check(
                "http://[::1]:8080/in/src?x=1",
                "6QZcXBPf1Rw7Ee7dT/ob9zTuqRY=",
                b"a=b"
            ),
            Ok(())
        );
        assert_eq!(
            port_variants("http://[::1]/p").1,
            Cow::<str>::Owned("http://[::1]:80/p".into())
        );
    }

    #[test]
    fn a_json_body_is_checked_by_its_hash_in_the_url() {
        // twilio-php's `testValidateWithBody`.
        let body = br#"{"property": "value", "boolean": true}"#;
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2\
&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        let signature = "a9nBmqA0ju/hNViExpshrM61xv4=";
        assert_eq!(check(url, signature, body), Ok(()));
        // The URL (so the hash) is signed, and the body must match the hash.
        assert_eq!(
            check(
                url,
                signature,
                br#"{"property": "value", "boolean": false}"#
            ),
            Err(VerifyError::bad_signature(HEADER))
        );
        let forged_hash = url.replace("0a1ff7", "1a1ff7");
        assert_eq!(
            check(&forged_hash, signature, body),
            Err(VerifyError::bad_signature(HEADER))
        );
        let not_hex = url.replace("0a1ff7", "zzzzzz");
        assert_eq!(
            check(&not_hex, signature, body),
            Err(VerifyError::bad_signature(HEADER))
        );
        // Without the hash in the URL the body is read as a form, and the
        // signature of the bare URL does not cover it.
        assert_eq!(
            check(URL, SIGNATURE, body),
            Err(VerifyError::bad_signature(HEADER))
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_told_apart() {
        assert_eq!(
            check_with(TOKEN, URL, None, FORM_BODY),
            Err(VerifyError::missing(HEADER))
        );
        assert_eq!(
            check(URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8=*", FORM_BODY),
            Err(VerifyError::malformed(HEADER, "signature is not base64"))
        );
        assert_eq!(
            check(URL, "", FORM_BODY),
            Err(VerifyError::malformed(HEADER, "empty signature"))
        );
    }

    #[test]
    fn port_variants_handle_odd_urls_without_panicking() {
        for url in [
            "",
            "no-scheme",
            "https://",
            "https://:",
            "https://@:/",
            "https://[",
            "https://]:",
            "https://host:99999999999/p?q#f",
            "é://ü:1/",
        ] {
            let _ = port_variants(url);
        }
        assert_eq!(
            port_variants("https://h:8443/p?q=1"),
            (
                Cow::<str>::Owned("https://h/p?q=1".into()),
                Cow::Borrowed("https://h:8443/p?q=1")
            )
        );
    }
}
