//! Herald's embedded SQLite backend.
//!
//! One file in WAL mode. Writes go through one thread that commits queued
//! work together ([`writer`]); reads use a pool of read-only connections.
//! `synchronous = FULL`: every commit is fsynced before any caller hears
//! `Ok`, so an acknowledged message survives `kill -9` and power loss alike.

mod catalog;
mod error;
mod messages;
mod paging;
mod queue;
mod readers;
mod rows;
mod schema;
mod store;
mod tokens;
mod writer;

use std::path::{Path, PathBuf};

use herald_store::StoreError;
use rusqlite::Connection;

use crate::error::backend;
use crate::readers::Readers;
use crate::writer::Writer;

/// The SQLite implementation of [`herald_store::Store`].
#[derive(Clone)]
pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
    path: PathBuf,
}

/// Read connections kept open; reads are short, a few cover the API and the
/// delivery workers.
const READERS: usize = 4;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut connection = Connection::open(&path).map_err(backend)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = OFF;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(backend)?;
        schema::migrate(&mut connection).map_err(backend)?;
        let writer = Writer::start(connection)
            .map_err(|error| StoreError::Backend(format!("cannot start writer: {error}")))?;
        let readers = Readers::open(&path, READERS)?;
        Ok(Self {
            writer,
            readers,
            path,
        })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
