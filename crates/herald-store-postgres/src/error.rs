//! Failures inside the backend and how they become [`StoreError`]s.

use herald_store::StoreError;
use tokio_postgres::error::SqlState;

/// What can go wrong in a store call.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// PostgreSQL refused a statement or the connection broke.
    #[error("{}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// An answer the store contract names (conflict, not found, corrupt row).
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// What the store traits answer.
pub(crate) type StoreResult<T> = std::result::Result<T, StoreError>;

impl From<Error> for StoreError {
    fn from(error: Error) -> Self {
        match error {
            Error::Store(error) => error,
            other => StoreError::Backend(other.to_string()),
        }
    }
}

/// The error with the server's own words, which `Display` of
/// `tokio_postgres::Error` leaves to its source ("db error").
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

/// A failed insert or update where a unique violation means "this uid or
/// name is taken".
pub(crate) fn unique(
    entity: &'static str,
    field: &'static str,
) -> impl Fn(tokio_postgres::Error) -> Error {
    move |error| {
        if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            Error::Store(StoreError::Conflict { entity, field })
        } else {
            Error::Postgres(error)
        }
    }
}

/// A stored value that does not decode.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Store(StoreError::Corrupt(what.to_string()))
}
