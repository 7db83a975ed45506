//! The single writer: one thread owns the read-write connection and commits
//! whatever work has queued up in one transaction (group commit).
//!
//! SQLite allows one writer at a time, so many concurrent writers only wait
//! for each other; funnelling them through one thread turns N fsyncs into one
//! without making any caller wait longer than one commit. A failing job is
//! rolled back alone; a job's answer is sent only after the whole batch has
//! committed, which is what makes an `Ok` mean "durable".
//!
//! Isolating a job costs a savepoint, and a savepoint copies every page the
//! job touches into a statement journal: for the small jobs of the delivery
//! path that was a third of the writer's time. Jobs that can run twice
//! (their work only borrows what it captured) therefore run first in the
//! transaction and without savepoints; only if one of them fails is the
//! transaction rolled back and each of them done again under its own
//! savepoint, so the failure still touches nothing but its own job.

use std::sync::mpsc;
use std::thread;

use herald_store::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::backend;

/// How many jobs one transaction takes at most, to bound commit latency.
const MAX_BATCH: usize = 512;

trait Job: Send {
    /// Whether the job can run again after its work was rolled back.
    fn repeatable(&self) -> bool;
    /// Runs the job inside the open transaction, under its own savepoint
    /// when `isolated`; answers whether it succeeded.
    fn run(&mut self, connection: &Connection, isolated: bool) -> bool;
    /// Delivers the answer once the transaction has committed (or failed).
    fn finish(self: Box<Self>, commit: Result<(), String>);
}

/// Work done once: it may consume what it captured.
struct Once<F>(Option<F>);

/// Work that may be done again after a rollback.
struct Repeatable<F>(F);

/// What a job's work is, to the job that runs it.
trait Work<T>: Send {
    const REPEATABLE: bool;
    /// Does the work; `None` once work that cannot repeat has been done.
    fn call(&mut self, connection: &Connection) -> Option<Result<T, StoreError>>;
}

impl<T, F> Work<T> for Once<F>
where
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    const REPEATABLE: bool = false;
    fn call(&mut self, connection: &Connection) -> Option<Result<T, StoreError>> {
        self.0.take().map(|work| work(connection))
    }
}

impl<T, F> Work<T> for Repeatable<F>
where
    F: FnMut(&Connection) -> Result<T, StoreError> + Send,
{
    const REPEATABLE: bool = true;
    fn call(&mut self, connection: &Connection) -> Option<Result<T, StoreError>> {
        Some((self.0)(connection))
    }
}

struct Typed<T, W> {
    work: W,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, W> Job for Typed<T, W>
where
    T: Send,
    W: Work<T>,
{
    fn repeatable(&self) -> bool {
        W::REPEATABLE
    }

    fn run(&mut self, connection: &Connection, isolated: bool) -> bool {
        let result = if isolated {
            isolate(connection, |connection| self.work.call(connection))
        } else {
            self.work.call(connection)
        };
        let succeeded = matches!(result, Some(Ok(_)));
        if result.is_some() {
            self.result = result;
        }
        succeeded
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

/// Runs `work` under a savepoint, rolled back if it fails.
fn isolate<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Option<Result<T, StoreError>>,
) -> Option<Result<T, StoreError>> {
    if let Err(error) = run_cached(connection, "SAVEPOINT job") {
        return Some(Err(backend(error)));
    }
    let result = work(connection);
    let closing = if matches!(result, Some(Ok(_))) {
        run_cached(connection, "RELEASE job")
    } else {
        run_cached(connection, "ROLLBACK TO job")
            .and_then(|()| run_cached(connection, "RELEASE job"))
    };
    match closing {
        Ok(()) => result,
        Err(error) => Some(Err(backend(error))),
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

    /// Runs `work` in a write transaction, under its own savepoint, and
    /// answers after it committed.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(Once(Some(work))).await
    }

    /// Like [`Writer::write`] for work that can be done again after a
    /// rollback (it only borrows what it captured): it runs without a
    /// savepoint of its own and is redone under one only if it or another
    /// such job of the batch fails.
    pub(crate) async fn write_repeatable<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(Repeatable(work)).await
    }

    async fn submit<T, W>(&self, work: W) -> Result<T, StoreError>
    where
        T: Send + 'static,
        W: Work<T> + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Typed {
            work,
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
    // Jobs of one batch come from concurrent callers, so their order is
    // free: the repeatable ones go first, where a failure can be undone by
    // rolling back the transaction and redoing them one by one.
    batch.sort_by_key(|job| !job.repeatable());
    let repeatable = batch.iter().take_while(|job| job.repeatable()).count();
    let (together, alone) = batch.split_at_mut(repeatable);
    run_cached(connection, "BEGIN IMMEDIATE").map_err(|error| error.to_string())?;
    if !run_jobs(connection, together, false)? {
        if !connection.is_autocommit() {
            run_cached(connection, "ROLLBACK").map_err(|error| error.to_string())?;
        }
        run_cached(connection, "BEGIN IMMEDIATE").map_err(|error| error.to_string())?;
        run_jobs(connection, together, true)?;
    }
    run_jobs(connection, alone, true)?;
    if let Err(error) = run_cached(connection, "COMMIT") {
        let _ = connection.execute_batch("ROLLBACK");
        return Err(error.to_string());
    }
    Ok(())
}

/// Runs `jobs` in the open transaction, each under its own savepoint when
/// `isolated`; answers whether every job succeeded. An error means the
/// transaction is gone (a job panicked, or SQLite rolled it back).
fn run_jobs(
    connection: &Connection,
    jobs: &mut [Box<dyn Job>],
    isolated: bool,
) -> Result<bool, String> {
    let mut all = true;
    for job in jobs.iter_mut() {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            job.run(connection, isolated)
        }));
        match ran {
            Err(_) => {
                // The job's answer was never set, so its caller gets an
                // error; the transaction is abandoned so nothing half-done
                // commits.
                let _ = run_cached(connection, "ROLLBACK");
                return Err("a write job panicked; the batch was rolled back".into());
            }
            Ok(succeeded) => all &= succeeded,
        }
        if connection.is_autocommit() {
            if !isolated {
                // Redone one by one in a new transaction.
                return Ok(false);
            }
            // SQLite rolled the whole transaction back (disk full, I/O
            // error): running further jobs now would commit each on its own.
            return Err("the transaction was rolled back by sqlite".into());
        }
        if !all && !isolated {
            // Nothing can be kept: stop and redo the run job by job.
            return Ok(false);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<T: Send + 'static>(
        work: impl Work<T> + 'static,
    ) -> (Box<dyn Job>, oneshot::Receiver<Result<T, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let job = Typed {
            work,
            result: None,
            reply,
        };
        (Box::new(job), answer)
    }

    fn insert(values: &'static [i64]) -> impl FnMut(&Connection) -> Result<(), StoreError> {
        move |connection| {
            for value in values {
                connection
                    .execute("INSERT INTO t (v) VALUES (?1)", [value])
                    .map_err(backend)?;
            }
            Ok(())
        }
    }

    fn stored(connection: &Connection) -> Vec<i64> {
        let mut statement = connection.prepare("SELECT v FROM t ORDER BY v").unwrap();
        let values = statement.query_map([], |row| row.get(0)).unwrap();
        values.map(Result::unwrap).collect()
    }

    /// A repeatable job that fails halfway (run without a savepoint) leaves
    /// nothing behind, and the other jobs of its batch, repeatable or not,
    /// before and after it, still commit.
    #[test]
    fn a_failing_repeatable_job_is_undone_alone() {
        let connection = crate::connect_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .unwrap();
        let (first, first_answer) = job(Repeatable(insert(&[1])));
        // Writes 3, then trips over the 1 the first job wrote.
        let (failing, failing_answer) = job(Repeatable(insert(&[3, 1])));
        let (after, after_answer) = job(Repeatable(insert(&[2])));
        let (once, once_answer) = job(Once(Some(|connection: &Connection| {
            insert(&[4])(connection)
        })));
        let (last, last_answer) = job(Repeatable(insert(&[5])));
        let mut batch = vec![first, failing, after, once, last];

        let commit = commit_batch(&connection, &mut batch);
        assert_eq!(commit, Ok(()));
        for job in batch {
            job.finish(commit.clone());
        }

        assert!(first_answer.blocking_recv().unwrap().is_ok());
        assert!(matches!(
            failing_answer.blocking_recv().unwrap(),
            Err(StoreError::Backend(_))
        ));
        assert!(after_answer.blocking_recv().unwrap().is_ok());
        assert!(once_answer.blocking_recv().unwrap().is_ok());
        assert!(last_answer.blocking_recv().unwrap().is_ok());
        assert_eq!(stored(&connection), vec![1, 2, 4, 5]);
    }

    /// Without a failure, repeatable jobs commit all their work.
    #[test]
    fn repeatable_jobs_commit_every_write() {
        let connection = crate::connect_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .unwrap();
        let (first, first_answer) = job(Repeatable(insert(&[1, 2])));
        let (second, second_answer) = job(Repeatable(insert(&[3])));
        let mut batch = vec![first, second];
        let commit = commit_batch(&connection, &mut batch);
        for job in batch {
            job.finish(commit.clone());
        }
        assert!(first_answer.blocking_recv().unwrap().is_ok());
        assert!(second_answer.blocking_recv().unwrap().is_ok());
        assert_eq!(stored(&connection), vec![1, 2, 3]);
    }
}
