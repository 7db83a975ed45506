//! Wake-ups between nodes over `LISTEN/NOTIFY`.
//!
//! A commit that makes work due (a message with deliveries, a resend, a
//! recover, an accepted inbound request) pulses a local `Notify`; the
//! announcer turns pulses into `NOTIFY herald_work` sent on their own,
//! after the commit. Sending them from the writing transaction would be
//! simpler but costly: PostgreSQL serialises the commits of transactions
//! that notify, which would undo the server's group commit. Pulses that
//! arrive while one is being sent collapse into the next, so a burst of
//! messages costs a handful of notifications, not one each.
//!
//! Each node listens on a connection of its own and wakes its engine when
//! a notification names its schema. A lost connection is re-opened with a
//! backoff, and the engine is woken after each reconnect because
//! notifications sent meanwhile are gone. Wake-ups are only a shortcut:
//! the engine's sweep finds due work without them, just later.
//!
//! The same connection carries the node's heartbeat (see
//! [`crate::liveness`]): only a node whose engine listens holds leases, and
//! a beat that fails means the connection is lost.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Config, NoTls};
use tokio_util::sync::CancellationToken;

use crate::error::describe;
use crate::liveness::{self, HEARTBEAT};

/// The channel every Herald node listens on; the payload is the schema.
const CHANNEL: &str = "herald_work";

/// Sends a notification for each burst of pulses on `work_added`.
pub(crate) async fn announce(
    pool: Pool,
    schema: String,
    work_added: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = work_added.notified() => {}
        }
        let sent = async {
            let client = pool.get().await.map_err(|error| error.to_string())?;
            client
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &schema])
                .await
                .map_err(|error| describe(&error))
        };
        if let Err(error) = sent.await {
            tracing::warn!(%error, "cannot notify other nodes; they will find the work at their next sweep");
        }
    }
}

/// Listens for other nodes' notifications until `stop`, reconnecting when
/// the connection is lost.
pub(crate) async fn listen(
    config: Config,
    schema: String,
    node: String,
    remote_work: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen_once(&config, &schema, &node, &remote_work, &stop).await {
            Ok(()) => return, // stopped
            Err(ListenError::BeforeListening(error)) => {
                tracing::warn!(%error, "cannot listen for other nodes' work; retrying");
            }
            Err(ListenError::Lost(error)) => {
                backoff = Duration::from_millis(100);
                tracing::warn!(%error, "lost the connection listening for other nodes' work; reconnecting");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

enum ListenError {
    BeforeListening(String),
    Lost(String),
}

async fn listen_once(
    config: &Config,
    schema: &str,
    node: &str,
    remote_work: &Arc<Notify>,
    stop: &CancellationToken,
) -> Result<(), ListenError> {
    let (client, mut connection) = config
        .connect(NoTls)
        .await
        .map_err(|error| ListenError::BeforeListening(describe(&error)))?;
    let wanted = schema.to_owned();
    let wake = remote_work.clone();
    // The connection must be polled for the client's queries to run; the
    // same polling hands over the notifications.
    let mut driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    if notification.payload() == wanted {
                        wake.notify_one();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return describe(&error),
                None => return "connection closed".to_owned(),
            }
        }
    });
    // LISTEN takes an identifier, not a parameter; the channel is a constant.
    let started = async {
        client.batch_execute("LISTEN herald_work").await?;
        liveness::beat(&client, node).await?;
        liveness::forget_long_gone(&client).await
    };
    if let Err(error) = started.await {
        driver.abort();
        return Err(ListenError::BeforeListening(describe(&error)));
    }
    // Notifications sent before this connection listened are lost (while
    // reconnecting, or while the node started): look once now.
    remote_work.notify_one();
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                driver.abort();
                return Ok(());
            }
            ended = &mut driver => {
                return Err(ListenError::Lost(ended.unwrap_or_else(|error| error.to_string())));
            }
            () = tokio::time::sleep(HEARTBEAT) => {
                // A beat also proves the connection alive, so one that died
                // silently is replaced.
                let beat = tokio::time::timeout(HEARTBEAT, liveness::beat(&client, node)).await;
                if !matches!(beat, Ok(Ok(()))) {
                    driver.abort();
                    return Err(ListenError::Lost("heartbeat failed".to_owned()));
                }
            }
        }
    }
}
