//! Webhook signatures for Herald.
//!
//! - Outbound: Standard Webhooks signatures (<https://www.standardwebhooks.com>)
//!   that the delivery engine puts on every request: `v1` (HMAC-SHA256,
//!   `whsec_` keys) or `v1a` (ed25519, `whsk_` keys, verified with the
//!   `whpk_` public key) — `sign`, `signature_header`, `verify`, `verify_v1a`.
//! - Inbound: [`verifiers`], one per provider scheme, which the gateway runs
//!   on every request before accepting it.
//!
//! Invariant: pure functions over bytes; comparisons of signatures and
//! secrets are constant-time. The server and the delivery engine both sign
//! through here, so there is exactly one definition of the signed content.

mod standard;
pub mod verifiers;

#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;

pub use standard::{sign, signature_header, verify, verify_v1a, SignatureError, SignedContent};
