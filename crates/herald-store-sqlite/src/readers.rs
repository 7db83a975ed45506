//! A small pool of read connections. WAL lets readers run beside the writer;
//! each read runs on the blocking pool so it never stalls the async runtime.

use std::path::Path;
use std::sync::{Arc, Mutex};

use herald_store::StoreError;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::error::backend;

#[derive(Clone)]
pub(crate) struct Readers {
    idle: Arc<Mutex<Vec<Connection>>>,
    available: Arc<Semaphore>,
}

impl Readers {
    pub(crate) fn open(path: &Path, size: usize) -> Result<Self, StoreError> {
        let mut connections = Vec::with_capacity(size);
        for _ in 0..size {
            let connection = crate::connect_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(backend)?;
            connection
                .busy_timeout(std::time::Duration::from_secs(5))
                .map_err(backend)?;
            connections.push(connection);
        }
        Ok(Self {
            idle: Arc::new(Mutex::new(connections)),
            available: Arc::new(Semaphore::new(size)),
        })
    }

    /// Runs `work` on a free read connection.
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = self
            .available
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("reader pool closed".into()))?;
        let idle = self.idle.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let connection = lock(&idle)
                .pop()
                .ok_or_else(|| StoreError::Backend("reader pool is empty".into()))?;
            let result = work(&connection);
            lock(&idle).push(connection);
            result
        })
        .await
        .map_err(|error| StoreError::Backend(format!("read task failed: {error}")))?
    }
}

fn lock(idle: &Mutex<Vec<Connection>>) -> std::sync::MutexGuard<'_, Vec<Connection>> {
    // A panic while holding the lock cannot leave the Vec inconsistent.
    idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
