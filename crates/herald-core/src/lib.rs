//! Herald's domain: the values every other crate speaks in.
//!
//! Invariant: this crate does no I/O and knows nothing of HTTP, SQL or tokio,
//! so everything here can be tested as plain functions.

pub mod clock;
pub mod error;
pub mod ids;
pub mod model;
pub mod retry_schedule;
pub mod secret;
pub mod values;

pub use clock::{Clock, SystemClock, Timestamp};
pub use error::ValidationError;
pub use ids::{AppId, AttemptId, EndpointId, InboundRequestId, MessageId, SourceId, TaskId};
pub use retry_schedule::RetrySchedule;
pub use secret::{Ed25519Key, Ed25519PublicKey, HmacKey, SigningKey};
pub use values::{Channel, EndpointUrl, EventTypeName, Uid};
