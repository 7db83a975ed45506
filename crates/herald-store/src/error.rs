//! Storage failures, typed so the API edge can map each to a status code.

/// What can go wrong talking to storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value (`uid`, event type name) is already taken.
    #[error("{entity} with this {field} already exists")]
    Conflict {
        entity: &'static str,
        field: &'static str,
    },
    /// The referenced object does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The database failed; the text is for logs only, never for clients.
    #[error("database error: {0}")]
    Backend(String),
    /// Stored data could not be read back (corruption or a bad migration).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}
