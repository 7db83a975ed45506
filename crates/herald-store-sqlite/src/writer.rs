//! The single writer: one thread owns the read-write connection and commits
//! whatever work has queued up in one transaction (group commit).
//!
//! SQLite allows one writer at a time, so many concurrent writers only wait
//! for each other; funnelling them through one thread turns N fsyncs into one
//! without making any caller wait longer than one commit. Each job runs in a
//! savepoint so a failing job is rolled back alone; a job's answer is sent
//! only after the whole batch has committed, which is what makes an `Ok`
//! mean "durable".

use std::sync::mpsc;
use std::thread;

use herald_store::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::backend;

/// How many jobs one transaction takes at most, to bound commit latency.
const MAX_BATCH: usize = 512;

trait Job: Send {
    /// Runs the job inside the open transaction.
    fn run(&mut self, connection: &Connection);
    /// Delivers the answer once the transaction has committed (or failed).
    fn finish(self: Box<Self>, commit: Result<(), String>);
}

struct Typed<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Typed<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, connection: &Connection) {
        let Some(work) = self.work.take() else { return };
        let result = match run_cached(connection, "SAVEPOINT job") {
            Err(error) => Err(backend(error)),
            Ok(()) => {
                let result = work(connection);
                let closing = if result.is_ok() {
                    run_cached(connection, "RELEASE job")
                } else {
                    run_cached(connection, "ROLLBACK TO job")
                        .and_then(|()| run_cached(connection, "RELEASE job"))
                };
                match closing {
                    Ok(()) => result,
                    Err(error) => Err(backend(error)),
                }
            }
        };
        self.result = Some(result);
    }

    fn finish(self: Box<Self>, commit: Result<(), String>) {
        let answer = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Backend("write job did not run".into())),
            (Err(error), _) => Err(StoreError::Backend(error)),
        };
        // The caller may have gone away (request cancelled); the work is done either way.
        let _ = self.reply.send(answer);
    }
}

/// Handle to the writer thread.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the thread that owns `connection`. It stops when the last
    /// handle is dropped, after finishing what was queued.
    pub(crate) fn start(connection: Connection) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        thread::Builder::new()
            .name("herald-sqlite-writer".into())
            .spawn(move || run(connection, queue))?;
        Ok(Self { jobs })
    }

    /// Runs `work` in a write transaction and answers after it committed.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Typed {
            work: Some(work),
            result: None,
            reply,
        };
        self.jobs
            .send(Box::new(job))
            .map_err(|_| StoreError::Backend("the sqlite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the sqlite writer dropped a job".into()))?
    }
}

fn run(connection: Connection, queue: mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = commit_batch(&connection, &mut batch);
        if let Err(error) = &commit {
            tracing::error!(%error, jobs = batch.len(), "sqlite group commit failed");
        }
        for job in batch {
            job.finish(commit.clone());
        }
    }
}

/// Runs a parameterless statement through the statement cache: these run
/// several times per job, and parsing them each time showed in profiles.
fn run_cached(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn commit_batch(connection: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), String> {
    run_cached(connection, "BEGIN IMMEDIATE").map_err(|error| error.to_string())?;
    for job in batch.iter_mut() {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(connection)));
        if ran.is_err() {
            // The job's answer was never set, so its caller gets an error;
            // the transaction is abandoned so nothing half-done commits.
            let _ = run_cached(connection, "ROLLBACK");
            return Err("a write job panicked; the batch was rolled back".into());
        }
        if connection.is_autocommit() {
            // SQLite rolled the whole transaction back (disk full, I/O
            // error): running further jobs now would commit each on its own.
            return Err("the transaction was rolled back by sqlite".into());
        }
    }
    if let Err(error) = run_cached(connection, "COMMIT") {
        let _ = connection.execute_batch("ROLLBACK");
        return Err(error.to_string());
    }
    Ok(())
}
