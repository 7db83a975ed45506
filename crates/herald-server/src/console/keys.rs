//! The console's signed values: operator sessions, CSRF tokens and tenant
//! portal links.
//!
//! Nothing about a session or a portal link is stored: each is a payload
//! with an expiry and an HMAC-SHA256 under one installation key (kept by
//! the store, so every node and every restart accepts what any node
//! signed). Each kind of value signs under its own purpose prefix, so a
//! value of one kind never verifies as another.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use herald_core::{AppId, Timestamp};
use herald_store::{Store, StoreError};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::sync::OnceCell;

/// The name the store keeps the console's key under.
const KEY_NAME: &str = "console.v1";

/// The installation key, loaded (or created) on first use.
#[derive(Default)]
pub(crate) struct ConsoleKeys {
    key: OnceCell<Signer>,
}

impl ConsoleKeys {
    pub(crate) async fn signer(&self, store: &dyn Store) -> Result<&Signer, StoreError> {
        self.key
            .get_or_try_init(|| async {
                let mut candidate = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut candidate);
                let key = store.instance_key(KEY_NAME, candidate).await?;
                Ok(Signer { key })
            })
            .await
    }
}

/// Signs and checks the console's values.
pub(crate) struct Signer {
    key: Vec<u8>,
}

/// What a valid portal token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortalGrant {
    pub(crate) app: AppId,
    pub(crate) expires_at: Timestamp,
    pub(crate) can_write: bool,
    /// When the token was issued, so that expiring an app's tokens reaches
    /// those issued before; 0 for tokens signed before it was recorded.
    pub(crate) issued_at: Timestamp,
    /// The caller's name for the session the token was issued for, so
    /// that expiring that session's tokens reaches it.
    pub(crate) session: Option<String>,
}

/// A random value for a session or a login form.
pub(crate) fn nonce() -> String {
    let mut bytes = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Signer {
    fn mac(&self, purpose: &str, payload: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(purpose.as_bytes());
        mac.update(b"\n");
        mac.update(payload.as_bytes());
        mac
    }

    /// `payload.signature`.
    fn sign(&self, purpose: &str, payload: &str) -> String {
        let signature = self.mac(purpose, payload).finalize().into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The payload of a value signed for `purpose`, if the signature holds.
    fn open<'a>(&self, purpose: &str, signed: &'a str) -> Option<&'a str> {
        let (payload, signature) = signed.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        // `verify_slice` compares in constant time.
        self.mac(purpose, payload)
            .verify_slice(&signature)
            .ok()
            .map(|()| payload)
    }

    /// A token that proves knowledge of `secret` for `purpose`: the CSRF
    /// token of a session or a portal link, the login form's token.
    pub(crate) fn derive(&self, purpose: &str, secret: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(purpose, secret).finalize().into_bytes())
    }

    /// Whether `given` is the token [`Signer::derive`] makes, compared in
    /// constant time.
    pub(crate) fn derived_matches(&self, purpose: &str, secret: &str, given: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(given)
            .is_ok_and(|given| self.mac(purpose, secret).verify_slice(&given).is_ok())
    }

    /// An operator session valid until `expires_at`, opened with the API
    /// token whose hash is `token_hash` (so that revoking the token ends
    /// the session); its nonce keys its CSRF token.
    pub(crate) fn session(&self, expires_at: Timestamp, token_hash: &str) -> String {
        self.sign(
            "session",
            &format!("{}.{}.{token_hash}", expires_at.0, nonce()),
        )
    }

    /// The nonce and token hash of a session cookie still valid at `now`.
    pub(crate) fn open_session(&self, cookie: &str, now: Timestamp) -> Option<(String, String)> {
        let payload = self.open("session", cookie)?;
        let mut parts = payload.split('.');
        let expires_at: i64 = parts.next()?.parse().ok()?;
        let nonce = parts.next()?.to_owned();
        let token_hash = parts.next()?.to_owned();
        if parts.next().is_some() || now.0 >= expires_at {
            return None;
        }
        Some((nonce, token_hash))
    }

    /// A portal token for one app. The session name goes last, base64url
    /// encoded, since it may hold the dots that separate the parts.
    pub(crate) fn portal_token(&self, grant: &PortalGrant) -> String {
        let mode = if grant.can_write { "rw" } else { "ro" };
        let mut payload = format!(
            "{}.{}.{mode}.{}",
            grant.app, grant.expires_at.0, grant.issued_at.0
        );
        if let Some(session) = &grant.session {
            payload.push('.');
            payload.push_str(&URL_SAFE_NO_PAD.encode(session));
        }
        self.sign("portal", &payload)
    }

    /// What a portal token grants, if it is genuine and not expired at `now`.
    pub(crate) fn open_portal_token(&self, token: &str, now: Timestamp) -> Option<PortalGrant> {
        let payload = self.open("portal", token)?;
        let mut parts = payload.split('.');
        let app = AppId::parse(parts.next()?)?;
        let expires_at = Timestamp(parts.next()?.parse().ok()?);
        let can_write = match parts.next()? {
            "rw" => true,
            "ro" => false,
            _ => return None,
        };
        let issued_at = match parts.next() {
            Some(issued_at) => Timestamp(issued_at.parse().ok()?),
            None => Timestamp(0),
        };
        let session = match parts.next() {
            Some(encoded) => Some(String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?),
            None => None,
        };
        if parts.next().is_some() || now.0 >= expires_at.0 {
            return None;
        }
        Some(PortalGrant {
            app,
            expires_at,
            can_write,
            issued_at,
            session,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(key: &[u8]) -> Signer {
        Signer { key: key.to_vec() }
    }

    /// A grant of a new app, issued at 1,000 and expiring at 2,000.
    fn grant(can_write: bool, session: Option<&str>) -> PortalGrant {
        PortalGrant {
            app: AppId::generate(),
            expires_at: Timestamp(2_000),
            can_write,
            issued_at: Timestamp(1_000),
            session: session.map(str::to_owned),
        }
    }

    #[test]
    fn a_portal_token_grants_its_app_until_it_expires() {
        let signer = signer(b"key");
        let grant = grant(true, None);
        let token = signer.portal_token(&grant);
        assert_eq!(
            signer.open_portal_token(&token, Timestamp(1_999)),
            Some(grant)
        );
        assert_eq!(signer.open_portal_token(&token, Timestamp(2_000)), None);
    }

    #[test]
    fn a_portal_token_carries_its_session_whatever_characters_it_holds() {
        let signer = signer(b"key");
        let grant = grant(false, Some("user.42 ünïcode/.."));
        let token = signer.portal_token(&grant);
        assert_eq!(
            signer.open_portal_token(&token, Timestamp(1_999)),
            Some(grant.clone())
        );
        // The session is signed with the rest: another one grants nothing.
        let (payload, signature) = token.rsplit_once('.').expect("signed");
        let (unsessioned, _) = payload.rsplit_once('.').expect("has a session part");
        let swapped = format!(
            "{unsessioned}.{}.{signature}",
            URL_SAFE_NO_PAD.encode("other")
        );
        assert_eq!(signer.open_portal_token(&swapped, Timestamp(0)), None);
        let dropped = format!("{unsessioned}.{signature}");
        assert_eq!(signer.open_portal_token(&dropped, Timestamp(0)), None);
    }

    #[test]
    fn a_portal_token_signed_without_its_issue_time_reads_as_issued_at_zero() {
        let signer = signer(b"key");
        let app = AppId::generate();
        let token = signer.sign("portal", &format!("{app}.2000.ro"));
        let grant = signer
            .open_portal_token(&token, Timestamp(1_999))
            .expect("still valid");
        assert_eq!(
            (grant.app, grant.issued_at, grant.session),
            (app, Timestamp(0), None)
        );
    }

    #[test]
    fn an_edited_portal_token_grants_nothing() {
        let signer = signer(b"key");
        let grant = grant(false, None);
        let token = signer.portal_token(&grant);
        let other_app = AppId::generate();
        let forged = token.replacen(grant.app.as_str(), other_app.as_str(), 1);
        assert_eq!(signer.open_portal_token(&forged, Timestamp(0)), None);
        let upgraded = token.replacen(".ro.", ".rw.", 1);
        assert_eq!(signer.open_portal_token(&upgraded, Timestamp(0)), None);
        let other_key = Signer {
            key: b"another key".to_vec(),
        };
        assert_eq!(other_key.open_portal_token(&token, Timestamp(0)), None);
    }

    #[test]
    fn a_value_signed_for_one_purpose_is_refused_for_another() {
        let signer = signer(b"key");
        let session = signer.session(Timestamp(5_000), "hash");
        assert!(signer.open_session(&session, Timestamp(0)).is_some());
        assert_eq!(signer.open_portal_token(&session, Timestamp(0)), None);
        assert_eq!(signer.open_session(&session, Timestamp(5_000)), None);
    }

    #[test]
    fn a_csrf_token_matches_only_its_own_secret() {
        let signer = signer(b"key");
        let token = signer.derive("csrf", "nonce-a");
        assert!(signer.derived_matches("csrf", "nonce-a", &token));
        assert!(!signer.derived_matches("csrf", "nonce-b", &token));
        assert!(!signer.derived_matches("login", "nonce-a", &token));
        assert!(!signer.derived_matches("csrf", "nonce-a", "not base64!"));
    }
}
