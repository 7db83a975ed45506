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
