//! What Herald needs from a database, as one trait.
//!
//! Invariants every backend keeps:
//! * a call that returns `Ok` has committed (durably, per the backend's
//!   fsync policy) before it returns — the API answers only after that;
//! * a message and its fan-out (one delivery per matching endpoint) are one
//!   transaction;
//! * an attempt and its delivery's new state (status, counter, next attempt)
//!   are one transaction, so retries never silently stop or repeat forever.
//!
//! Only the store crates contain SQL.

mod error;
mod page;
mod records;
mod sources;
mod store;

#[cfg(feature = "testing")]
pub mod conformance;

pub use error::StoreError;
pub use page::{Cursor, Page, PageRequest};
pub use records::*;
pub use sources::{
    Accepted, DedupeKey, ReceivedRequest, RequestOutcome, Source, SourceStore, REQUEST_LOG_CAP,
};
pub use store::Store;
