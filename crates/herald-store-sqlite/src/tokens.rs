//! API token hashes.

use herald_core::Timestamp;
use herald_store::{ApiToken, StoreError};
use rusqlite::{params, Connection};

use crate::error::backend;

pub(crate) fn add_api_token(connection: &Connection, token: &ApiToken) -> Result<(), StoreError> {
    connection
        .execute(
            "INSERT OR IGNORE INTO api_tokens (hash, created_at, name, hint)
             VALUES (?1, ?2, ?3, ?4)",
            params![token.hash, token.created_at.0, token.name, token.hint],
        )
        .map_err(backend)?;
    Ok(())
}

pub(crate) fn list_api_tokens(connection: &Connection) -> Result<Vec<ApiToken>, StoreError> {
    let mut statement = connection
        .prepare_cached(
            "SELECT hash, name, hint, created_at FROM api_tokens ORDER BY created_at, hash",
        )
        .map_err(backend)?;
    let rows = statement
        .query_map([], |row| {
            Ok(ApiToken {
                hash: row.get(0)?,
                name: row.get(1)?,
                hint: row.get(2)?,
                created_at: Timestamp(row.get(3)?),
            })
        })
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

pub(crate) fn remove_api_token(connection: &Connection, hash: &str) -> Result<bool, StoreError> {
    connection
        .execute("DELETE FROM api_tokens WHERE hash = ?1", [hash])
        .map(|removed| removed > 0)
        .map_err(backend)
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

/// The token table of the database at `path`, from another process
/// (`herald token …` beside a running server). Tokens are not cached by
/// [`crate::SqliteStore`], so this needs neither its lock nor its writer;
/// SQLite serialises these writes with the server's.
pub struct TokenFile {
    connection: Connection,
}

impl TokenFile {
    /// Opens (and if need be creates and migrates) the database at `path`.
    pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        let mut connection = crate::connect(path).map_err(backend)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend)?;
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(backend)?;
        crate::schema::migrate(&mut connection).map_err(backend)?;
        Ok(Self { connection })
    }

    pub fn add(&self, token: &ApiToken) -> Result<(), StoreError> {
        add_api_token(&self.connection, token)
    }

    pub fn list(&self) -> Result<Vec<ApiToken>, StoreError> {
        list_api_tokens(&self.connection)
    }

    pub fn remove(&self, hash: &str) -> Result<bool, StoreError> {
        remove_api_token(&self.connection, hash)
    }
}
