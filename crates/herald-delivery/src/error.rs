//! Errors of the delivery engine itself (not of an attempt, which is an outcome).

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The HTTP client could not be built (TLS roots, resolver).
    #[error("cannot build the http client: {0}")]
    Client(String),
}
