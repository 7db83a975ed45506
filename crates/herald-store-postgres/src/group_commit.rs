//! Group commit: concurrent message creations and attempt records share
//! one transaction, so a burst of them costs one WAL flush and one
//! `BEGIN`/`COMMIT` exchange instead of one each.
//!
//! Callers queue a [`Write`] and wait; a few writer tasks each take what
//! has queued up (at most [`MAX_BATCH`]), run it in one transaction on a
//! pooled connection and answer every caller only after `COMMIT` returned,
//! so an `Ok` still means committed and flushed (`synchronous_commit`
//! stays on). While one writer commits, the next collects the following
//! batch, and PostgreSQL merges the writers' commits into shared flushes.
//!
//! A batch's jobs are sent together, pipelined on the one connection: the
//! batch costs the round trips of its longest job, not the sum of all.
//! Jobs run without savepoints (each would cost two more round trips).
//! When one fails, the whole batch is rolled back and every job of it is
//! run again in a transaction of its own, so a failing job (or a deadlock
//! between two nodes' batches, say on one idempotency key inserted by both
//! in opposite orders) only ever fails itself. A batch whose `COMMIT`
//! fails is not re-run: its outcome is unknown, as for any single
//! transaction, and every caller hears the error.

use std::sync::Arc;

use deadpool_postgres::{GenericClient, Pool};
use futures_util::future::join_all;
use herald_core::model::{Attempt, Message};
use herald_core::EndpointId;
use herald_store::{CreatedMessage, DeliveryOutcome, Recorded, StoreError};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::error::{Error, Result};
use crate::messages::{self, FanOut};
use crate::queue;

/// How many jobs one transaction takes at most, bounding how long a
/// batch holds its row locks and how long its first caller waits.
const MAX_BATCH: usize = 256;

/// Writer tasks per node: enough to keep a batch collecting while others
/// commit, few enough to leave the pool to reads and claims.
pub(crate) const WRITERS: usize = 4;

/// A write that may share its transaction with others.
pub(crate) enum Write {
    CreateMessage {
        message: Message,
        idempotency_key: Option<String>,
        /// `None` fans out to every matching endpoint.
        only: Option<EndpointId>,
    },
    RecordAttempt {
        attempt: Option<Attempt>,
        outcome: DeliveryOutcome,
    },
}

/// What a [`Write`] answers.
pub(crate) enum Written {
    Created(Box<CreatedMessage>),
    Recorded(Recorded),
}

impl Write {
    async fn run(&self, client: &impl GenericClient) -> Result<Written> {
        match self {
            Write::CreateMessage {
                message,
                idempotency_key,
                only,
            } => {
                let fan_out = match only {
                    Some(endpoint) => FanOut::Only(endpoint),
                    None => FanOut::Matching,
                };
                messages::create_message(client, message, idempotency_key.as_deref(), fan_out)
                    .await
                    .map(|created| Written::Created(Box::new(created)))
            }
            Write::RecordAttempt { attempt, outcome } => {
                queue::record_attempt(client, attempt.as_ref(), outcome)
                    .await
                    .map(Written::Recorded)
            }
        }
    }
}

struct Job {
    write: Write,
    reply: oneshot::Sender<Result<Written>>,
}

/// The queue in front of the writer tasks. The writers end when it is
/// dropped (after finishing what was queued).
pub(crate) struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
}

impl GroupCommit {
    /// Starts `writers` writer tasks taking connections from `pool`.
    pub(crate) fn start(pool: Pool, writers: usize) -> GroupCommit {
        let (jobs, queued) = mpsc::unbounded_channel();
        let queued = Arc::new(Mutex::new(queued));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_batches(pool.clone(), queued.clone()));
        }
        GroupCommit { jobs }
    }

    /// Runs `write` in the next batch; answers once that batch committed.
    pub(crate) async fn write(&self, write: Write) -> Result<Written> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { write, reply })
            .map_err(|_| StoreError::Backend("the store is shutting down".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("write dropped before it committed".into()))?
    }
}

/// One writer: takes whatever has queued up and commits it as one batch.
/// The receiver is shared; the writer holding it waits for the next job
/// while the others commit theirs.
async fn write_batches(pool: Pool, queued: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>) {
    loop {
        let mut batch = Vec::new();
        {
            let mut queued = queued.lock().await;
            let Some(first) = queued.recv().await else {
                return;
            };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match queued.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        commit_batch(&pool, batch).await;
    }
}

async fn commit_batch(pool: &Pool, batch: Vec<Job>) {
    if batch.len() == 1 {
        return commit_alone(pool, batch).await;
    }
    let mut client = match pool.get().await {
        Ok(client) => client,
        Err(error) => return fail_all(batch, &Error::from(error)),
    };
    let transaction = match client.transaction().await {
        Ok(transaction) => transaction,
        Err(error) => return fail_all(batch, &Error::from(error)),
    };
    // All the batch's statements go out at once (the connection pipelines
    // requests made together) instead of one round trip after another;
    // the server still runs them one by one, in the order sent.
    let runs = join_all(batch.iter().map(|job| job.write.run(&transaction))).await;
    let mut answers = Vec::with_capacity(batch.len());
    for run in runs {
        match run {
            Ok(answer) => answers.push(answer),
            Err(error) => {
                tracing::debug!(%error, jobs = batch.len(), "a write failed in a batch; running each alone");
                // Dropping the transaction rolls it back; the connection
                // goes back to the pool clean.
                drop(transaction);
                drop(client);
                return commit_alone(pool, batch).await;
            }
        }
    }
    match transaction.commit().await {
        Ok(()) => {
            for (job, answer) in batch.into_iter().zip(answers) {
                // The caller may have gone away; the write is done either way.
                let _ = job.reply.send(Ok(answer));
            }
        }
        Err(error) => fail_all(batch, &Error::from(error)),
    }
}

/// Each job in its own transaction.
async fn commit_alone(pool: &Pool, batch: Vec<Job>) {
    for job in batch {
        let answer = async {
            let mut client = pool.get().await?;
            let transaction = client.transaction().await?;
            let answer = job.write.run(&transaction).await?;
            transaction.commit().await?;
            Ok(answer)
        }
        .await;
        let _ = job.reply.send(answer);
    }
}

fn fail_all(batch: Vec<Job>, error: &Error) {
    let message = error.to_string();
    for job in batch {
        let _ = job
            .reply
            .send(Err(Error::Store(StoreError::Backend(message.clone()))));
    }
}
