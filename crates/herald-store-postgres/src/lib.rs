//! Herald's PostgreSQL backend: any number of Herald nodes share one
//! database.
//!
//! What makes sharing safe:
//! * work is leased with `SELECT … FOR UPDATE SKIP LOCKED`; a lease carries
//!   its end, a fencing token from a sequence (unique over every claim on
//!   every node) and its node, so a node killed mid-attempt only delays its
//!   deliveries until the others see it has stopped beating ([`liveness`])
//!   or the lease runs out, and a late outcome never overwrites a newer
//!   claim's ([`queue`]);
//! * claims take a transaction-scoped advisory lock, so each sees every
//!   committed lease and an endpoint's deliveries leased by other nodes
//!   count toward its per-endpoint cap;
//! * idempotency keys and inbound dedupe keys are unique indexes written
//!   with `ON CONFLICT`, so two nodes racing on one key agree on one answer;
//! * work created on one node wakes idle nodes through `LISTEN/NOTIFY`
//!   ([`wakeups`]), so new messages never wait for a poll interval;
//! * migrations run under an advisory lock ([`schema`]).
//!
//! What makes it fast: concurrent message creations and attempt records
//! share one transaction and one WAL flush ([`group_commit`]), each in one
//! statement; claims commit without waiting for the flush, which a crash
//! can only turn into a repeated attempt ([`queue`]).
//!
//! Every statement is parameterised and prepared once per pooled
//! connection. Nothing is cached in memory: another node may change any
//! row at any time.

/// Runs `$body` in a transaction on a pooled connection, committing only if
/// it succeeded (dropping an uncommitted transaction rolls it back).
/// Evaluates to the crate's `Result` of the body's value.
macro_rules! transaction {
    ($store:expr, |$transaction:ident| $body:expr) => {
        async {
            let mut client = $store.client().await?;
            let $transaction = client.transaction().await?;
            let value = $body;
            $transaction.commit().await?;
            Ok::<_, $crate::error::Error>(value)
        }
        .await
    };
}

mod catalog;
mod connect;
mod error;
mod group_commit;
mod housekeeping;
mod idempotency;
mod liveness;
mod messages;
mod paging;
mod queue;
mod rows;
mod schema;
mod sources;
mod store;
mod tasks;
#[cfg(feature = "testing")]
pub mod testing;
mod tokens;
mod wakeups;

use std::sync::{Arc, Once};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use connect::ConnectError;
pub use liveness::NODE_SILENCE;

use crate::connect::Target;
use crate::error::Result;
use crate::group_commit::GroupCommit;

/// Connections a node keeps open at most: enough for the API's concurrent
/// requests and the engine's claims and results, far below PostgreSQL's
/// default `max_connections` even for several nodes.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// The PostgreSQL implementation of [`herald_store::Store`]. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// This node's name on its leases: its process id (so an operator can
    /// tell which process holds what) and a ULID (unique across restarts).
    node: String,
    /// The schema the tables live in; the payload of this database's
    /// wake-ups, so nodes on other schemas of one server ignore them.
    schema: String,
    /// Batches message creations and attempt records into shared
    /// transactions.
    writes: GroupCommit,
    /// Pulsed after a commit that made work due; the notifier turns it into
    /// a `NOTIFY` for the other nodes.
    work_added: Arc<Notify>,
    /// Pulsed when another node announced work.
    remote_work: Arc<Notify>,
    /// Starts the listener the first time an engine asks for wake-ups, so
    /// a store nobody waits on holds no extra connection.
    listening: Once,
    /// When a claim last said this node is alive (see [`liveness`]).
    claims_beat: liveness::Pace,
    config: tokio_postgres::Config,
    stop: CancellationToken,
    /// Stops the notifier and the listener when the last clone is dropped.
    _tasks: DropGuard,
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL; the schema
    /// is the first of its `search_path`, e.g. `?options=-csearch_path%3Dherald`),
    /// migrates it and starts announcing its work to other nodes. Fails within
    /// seconds with the reason when the database cannot be used.
    pub async fn connect(url: &str) -> std::result::Result<Self, ConnectError> {
        Self::connect_with(url, DEFAULT_POOL_SIZE).await
    }

    /// [`PostgresStore::connect`] with at most `pool_size` connections (six
    /// at the least).
    pub async fn connect_with(
        url: &str,
        pool_size: usize,
    ) -> std::result::Result<Self, ConnectError> {
        let config = connect::parse(url)?;
        let target = Target::of(&config);
        let timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(connect::CONNECT_TIMEOUT);
        // The connect timeout bounds the socket; this bounds the whole
        // start-up exchange too (a port that accepts but never answers).
        let mut client = tokio::time::timeout(timeout * 2, connect::open(&config))
            .await
            .map_err(|_| ConnectError::Unreachable {
                target: target.address.clone(),
                detail: format!("no answer within {:?}", timeout * 2),
            })?
            .map_err(|error| target.classify(&error))?;
        let schema: Option<String> = client
            .query_one("SELECT current_schema()", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|error| target.classify(&error))?;
        let Some(schema) = schema else {
            let search_path: String = client
                .query_one("SHOW search_path", &[])
                .await
                .and_then(|row| row.try_get(0))
                .unwrap_or_default();
            return Err(ConnectError::MissingSchema {
                target: target.address,
                database: target.database,
                schema: search_path,
            });
        };
        schema::migrate(&mut client)
            .await
            .map_err(|error| target.server_error(format!("cannot migrate: {error}")))?;
        drop(client);

        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            // The group-commit writers may hold a connection each; claims
            // and reads need theirs beside them.
            .max_size(pool_size.max(group_commit::WRITERS + 2))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(timeout * 2))
            .wait_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|error| target.server_error(format!("cannot build the pool: {error}")))?;

        let stop = CancellationToken::new();
        let work_added = Arc::new(Notify::new());
        let remote_work = Arc::new(Notify::new());
        tokio::spawn(wakeups::announce(
            pool.clone(),
            schema.clone(),
            work_added.clone(),
            stop.clone(),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                writes: GroupCommit::start(pool.clone(), group_commit::WRITERS),
                pool,
                node: format!("pid{}-{}", std::process::id(), ulid::Ulid::new()),
                schema,
                work_added,
                remote_work,
                listening: Once::new(),
                claims_beat: liveness::Pace::default(),
                config,
                stop: stop.clone(),
                _tasks: stop.drop_guard(),
            }),
        })
    }

    /// The schema this store's tables live in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.inner.pool.get().await?)
    }

    /// Wake-ups from other nodes, listening from the first call on.
    fn listen_for_work(&self) -> Arc<Notify> {
        let inner = &self.inner;
        inner.listening.call_once(|| {
            tokio::spawn(wakeups::listen(
                inner.config.clone(),
                inner.schema.clone(),
                inner.node.clone(),
                inner.remote_work.clone(),
                inner.stop.clone(),
            ));
        });
        inner.remote_work.clone()
    }

    /// Tells the other nodes (through the notifier) that work may be due.
    fn announce_work(&self) {
        self.inner.work_added.notify_one();
    }
}
