//! Webhook signatures for Herald.
//!
//! - Outbound: Standard Webhooks `v1` signatures (<https://www.standardwebhooks.com>)
//!   that the delivery engine puts on every request (`sign`, `signature_header`,
//!   `verify`).
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

pub use standard::{sign, signature_header, verify, SignatureError, SignedContent};
