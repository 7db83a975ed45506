//! Mapping SQLite errors onto [`StoreError`].

use herald_store::StoreError;
use rusqlite::ErrorCode;

/// Any SQLite failure, as a backend error (details stay in logs).
pub(crate) fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// A failure of an insert or update where a unique constraint means
/// "this uid/name is taken".
pub(crate) fn unique(
    entity: &'static str,
    field: &'static str,
) -> impl Fn(rusqlite::Error) -> StoreError {
    move |error| match &error {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict { entity, field }
        }
        _ => backend(error),
    }
}
