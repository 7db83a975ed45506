//! Which nodes are alive: each node running a delivery engine beats every
//! [`HEARTBEAT`] on the connection it listens for wake-ups on, and with
//! its claims (at most once a second); the lease sweep of every other node
//! frees the leases of a node silent for longer than [`NODE_SILENCE`].
//!
//! A node is judged silent only while another has been beating without a
//! gap for at least that long, which proves the database could be reached
//! all that time: when every node fell silent at once, the database (or
//! the way to it) was down, not the nodes, and after it comes back every
//! node has the same time to beat again before anyone is judged. A node
//! never frees its own leases this way.
//!
//! Without it a node that died held its leases until they ran out: the
//! lease covers the longest a live attempt can take (two minutes with the
//! default 15 s request timeout), and meanwhile those leases also counted
//! toward their endpoints' concurrency on every other node, so a crash
//! stalled its busiest endpoints across the cluster for that long.
//!
//! Beats are stamped and judged by the database's clock, so the nodes'
//! clocks play no part. A node cut off from the database for longer than
//! the silence still finishes the attempts it had started; another node
//! may then attempt the same deliveries (at least once, as after any lease
//! lost), and the late node's outcomes are refused by their lease tokens.
//! A node that never beat (an older version, during an upgrade) keeps its
//! leases until they run out, as before.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

/// How often a node says it is alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(2);

/// How long a node may be silent before its leases are freed: five beats,
/// and more than the listener's longest wait before reconnecting (5 s).
pub const NODE_SILENCE: Duration = Duration::from_secs(10);

/// The longest pause between beats that still counts as beating without
/// a gap: two and a half beats.
const GAP: Duration = Duration::from_millis(5_000);

/// How long the row of a node silent since is kept (so a dead node can
/// still be told apart from one that never beat).
const FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// [`NODE_SILENCE`] in milliseconds, as SQL compares it.
pub(crate) fn silence_ms() -> i64 {
    millis(NODE_SILENCE)
}

/// [`GAP`] in milliseconds, as SQL compares it.
pub(crate) fn gap_ms() -> i64 {
    millis(GAP)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// How often a claim beats too.
const CLAIMS_BEAT: Duration = Duration::from_secs(1);

/// Spaces the beats that ride on claims, which come many a second.
#[derive(Default)]
pub(crate) struct Pace(Mutex<Option<Instant>>);

impl Pace {
    /// Whether a claim should beat now; if so, counts it as done.
    pub(crate) fn due(&self) -> bool {
        let mut last = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < CLAIMS_BEAT) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// Says node `$1` is alive now; a beat more than `$2` ms after the last
/// starts a new run of beats.
pub(crate) const BEAT: &str = "INSERT INTO nodes (id, heartbeat_at, since)
     SELECT $1, now, now FROM (SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT AS now) c
     ON CONFLICT (id) DO UPDATE SET
         since = CASE WHEN nodes.heartbeat_at < EXCLUDED.heartbeat_at - $2
             THEN EXCLUDED.heartbeat_at ELSE nodes.since END,
         heartbeat_at = EXCLUDED.heartbeat_at";

/// Says `node` is alive now, on a connection of its own.
pub(crate) async fn beat(client: &Client, node: &str) -> Result<(), tokio_postgres::Error> {
    client.execute(BEAT, &[&node, &gap_ms()]).await.map(|_| ())
}

/// Forgets nodes silent for a week: each process start is a node of its
/// own, and nothing of theirs is leased any more.
pub(crate) async fn forget_long_gone(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM nodes
             WHERE heartbeat_at < (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT - $1",
            &[&millis(FORGET_AFTER)],
        )
        .await
        .map(|_| ())
}
