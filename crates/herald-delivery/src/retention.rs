//! Retention: attempts and finished messages older than the retention
//! period are deleted in the background, and so are payloads whose own
//! retention (`payloadRetentionHours`) ended and portal token expiry
//! orders no live token can fall under — in small batches with a pause
//! between them, so the writer is never held long enough to stall
//! delivery.

use std::sync::Arc;
use std::time::Duration;

use herald_core::model::PortalExpiry;
use herald_core::Clock;
use herald_store::Store;
use tokio_util::sync::CancellationToken;

/// Rows per table per purge call.
const BATCH: usize = 500;

/// The pause between two batches of one purge round.
const BETWEEN_BATCHES: Duration = Duration::from_millis(50);

/// Every `interval` until `shutdown`: deletes the payloads whose own
/// retention ended, and, with a retention `period`, purges what is older.
pub(crate) async fn purge_loop(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    period: Option<Duration>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let now = clock.now();
        let expunged = in_batches(&shutdown, || store.expunge_expired_payloads(now, BATCH)).await;
        if expunged > 0 {
            tracing::info!(expunged, "deleted payloads past their own retention");
        }
        // A day more than a token lives, so that nodes' clocks may differ.
        let covered_for = PortalExpiry::TOKEN_LIFETIME_MAX + Duration::from_secs(24 * 3600);
        let lifetime = i64::try_from(covered_for.as_millis()).unwrap_or(i64::MAX);
        let covered = herald_core::Timestamp(now.0.saturating_sub(lifetime));
        in_batches(&shutdown, || {
            store.forget_portal_expiry_before(covered, BATCH)
        })
        .await;
        if let Some(period) = period {
            let cutoff = herald_core::Timestamp(
                now.0
                    .saturating_sub(i64::try_from(period.as_millis()).unwrap_or(i64::MAX)),
            );
            let purged = in_batches(&shutdown, || store.purge_before(cutoff, BATCH)).await;
            if purged > 0 {
                tracing::info!(purged, %cutoff, "purged rows past the retention period");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Runs `batch` until it removes nothing (or fails, to be retried next
/// round), pausing between batches; answers how much it removed.
async fn in_batches<F, Fut>(shutdown: &CancellationToken, mut batch: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, herald_store::StoreError>>,
{
    let mut removed = 0;
    loop {
        match batch().await {
            Ok(0) => return removed,
            Ok(count) => removed += count,
            Err(error) => {
                tracing::warn!(%error, "retention batch failed; retrying next round");
                return removed;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(BETWEEN_BATCHES) => {}
            () = shutdown.cancelled() => return removed,
        }
    }
}
