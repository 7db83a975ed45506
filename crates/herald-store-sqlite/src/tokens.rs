//! API token hashes.

use herald_core::Timestamp;
use herald_store::StoreError;
use rusqlite::{params, Connection};

use crate::error::backend;

pub(crate) fn add_api_token(
    connection: &Connection,
    hash: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    connection
        .execute(
            "INSERT OR IGNORE INTO api_tokens (hash, created_at) VALUES (?1, ?2)",
            params![hash, now.0],
        )
        .map_err(backend)?;
    Ok(())
}

pub(crate) fn api_token_exists(connection: &Connection, hash: &str) -> Result<bool, StoreError> {
    connection
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM api_tokens WHERE hash = ?1)",
            [hash],
            |row| row.get(0),
        )
        .map_err(backend)
}

pub(crate) fn api_token_count(connection: &Connection) -> Result<u64, StoreError> {
    connection
        .query_row("SELECT COUNT(*) FROM api_tokens", [], |row| {
            row.get::<_, i64>(0)
        })
        .map(|count| count as u64)
        .map_err(backend)
}

/// The key named `name`, inserting `candidate` if none is stored; runs in
/// the writer so two first calls cannot both insert.
pub(crate) fn instance_key(
    connection: &Connection,
    name: &str,
    candidate: &[u8],
) -> Result<Vec<u8>, StoreError> {
    connection
        .execute(
            "INSERT OR IGNORE INTO instance_keys (name, key) VALUES (?1, ?2)",
            params![name, candidate],
        )
        .map_err(backend)?;
    connection
        .query_row(
            "SELECT key FROM instance_keys WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .map_err(backend)
}

/// Records a token hash in the database at `path` from another process
/// (`herald token create` beside a running server). Tokens are not cached
/// by [`crate::SqliteStore`], so this needs neither its lock nor its writer;
/// SQLite serialises the write with the server's.
pub fn add_api_token_to_file(
    path: &std::path::Path,
    hash: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut connection = crate::connect(path).map_err(backend)?;
    connection
        .busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .map_err(backend)?;
    crate::schema::migrate(&mut connection).map_err(backend)?;
    add_api_token(&connection, hash, now)
}
