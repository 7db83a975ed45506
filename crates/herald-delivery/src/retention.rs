//! Retention: attempts and finished messages older than the retention
//! period are deleted in the background, in small batches with a pause
//! between them, so the writer is never held long enough to stall delivery.

use std::sync::Arc;
use std::time::Duration;

use herald_core::Clock;
use herald_store::Store;
use tokio_util::sync::CancellationToken;

/// Rows per table per purge call.
const BATCH: usize = 500;

/// The pause between two batches of one purge round.
const BETWEEN_BATCHES: Duration = Duration::from_millis(50);

/// Purges every `interval` until `shutdown`.
pub(crate) async fn purge_loop(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    period: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let cutoff = herald_core::Timestamp(
            clock
                .now()
                .0
                .saturating_sub(i64::try_from(period.as_millis()).unwrap_or(i64::MAX)),
        );
        let mut purged = 0u64;
        loop {
            match store.purge_before(cutoff, BATCH).await {
                Ok(0) => break,
                Ok(removed) => purged += removed,
                Err(error) => {
                    tracing::warn!(%error, "retention purge failed; retrying next round");
                    break;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(BETWEEN_BATCHES) => {}
                () = shutdown.cancelled() => return,
            }
        }
        if purged > 0 {
            tracing::info!(purged, %cutoff, "purged rows past the retention period");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
