//! Standard Webhooks signatures (<https://www.standardwebhooks.com>).
//!
//! Invariant: pure functions over bytes; comparisons of signatures are
//! constant-time. The server and the delivery engine both sign through here,
//! so there is exactly one definition of the signed content.

mod standard;

pub use standard::{sign, signature_header, verify, SignatureError, SignedContent};
