//! Endpoint health, retention and backlog figures: what the engine's
//! background duties read and write besides the delivery queue.

use std::time::Duration;

use herald_core::model::Endpoint;
use herald_core::{AppId, AttemptId, EndpointId, MessageId, TaskId, Timestamp};
use herald_store::{QueueDepth, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::backend;
use crate::rows;

pub(crate) fn disable_endpoint(
    connection: &Connection,
    app: &AppId,
    endpoint: &EndpointId,
    now: Timestamp,
) -> Result<Option<Endpoint>, StoreError> {
    let sql = format!(
        "UPDATE endpoints SET disabled = 1, updated_at = ?3
         WHERE id = ?1 AND app_id = ?2 AND disabled = 0 RETURNING {}",
        rows::ENDPOINT_COLUMNS
    );
    connection
        .prepare_cached(&sql)
        .map_err(backend)?
        .query_row(params![endpoint.as_str(), app.as_str(), now.0], |row| {
            Ok(rows::endpoint(row))
        })
        .optional()
        .map_err(backend)?
        .transpose()
}

pub(crate) fn set_endpoint_failing(
    connection: &Connection,
    endpoint: &EndpointId,
    failure_at: Option<Timestamp>,
    quiet_gap: Duration,
) -> Result<Option<Timestamp>, StoreError> {
    // A streak goes on while failures keep coming; NULL ends it.
    let stored: Option<Option<i64>> = connection
        .prepare_cached(
            "UPDATE endpoints SET
                 failing_since = CASE
                     WHEN ?2 IS NULL THEN NULL
                     WHEN failing_since IS NULL OR last_failure_at IS NULL
                         OR last_failure_at < ?2 - ?3 THEN ?2
                     ELSE failing_since END,
                 last_failure_at = ?2
             WHERE id = ?1 RETURNING failing_since",
        )
        .map_err(backend)?
        .query_row(
            params![
                endpoint.as_str(),
                failure_at.map(|at| at.0),
                i64::try_from(quiet_gap.as_millis()).unwrap_or(i64::MAX)
            ],
            |row| row.get(0),
        )
        .optional()
        .map_err(backend)?;
    Ok(stored.flatten().map(Timestamp))
}

pub(crate) fn purge_before(
    connection: &Connection,
    cutoff: Timestamp,
    limit: usize,
) -> Result<u64, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // Ids are time-ordered, so the cut-off is a primary-key range: each
    // batch reads only what it deletes.
    let attempts = connection
        .prepare_cached(
            "DELETE FROM attempts WHERE id IN (
                 SELECT id FROM attempts WHERE id < ?1 ORDER BY id LIMIT ?2)",
        )
        .map_err(backend)?
        .execute(params![AttemptId::first_at(cutoff).as_str(), limit])
        .map_err(backend)?;
    let tasks = connection
        .prepare_cached(
            "DELETE FROM background_tasks WHERE id IN (
                 SELECT id FROM background_tasks WHERE id < ?1 ORDER BY id LIMIT ?2)",
        )
        .map_err(backend)?
        .execute(params![TaskId::first_at(cutoff).as_str(), limit])
        .map_err(backend)?;
    // A message still owed to an endpoint stays, however old.
    let purged: Vec<String> = connection
        .prepare_cached(
            "SELECT id FROM messages m WHERE id < ?1 AND NOT EXISTS (
                 SELECT 1 FROM deliveries d WHERE d.msg_id = m.id AND d.status IN (1, 3))
             ORDER BY id LIMIT ?2",
        )
        .map_err(backend)?
        .query_map(
            params![MessageId::first_at(cutoff).as_str(), limit],
            |row| row.get(0),
        )
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    let keys = crate::idempotency::purge(connection, cutoff.0, limit)?;
    let mut removed = (attempts + tasks) as u64 + keys;
    for id in &purged {
        for sql in [
            "DELETE FROM attempts WHERE msg_id = ?1",
            "DELETE FROM deliveries WHERE msg_id = ?1",
            "DELETE FROM messages WHERE id = ?1",
        ] {
            removed += connection
                .prepare_cached(sql)
                .map_err(backend)?
                .execute([id])
                .map_err(backend)? as u64;
        }
    }
    Ok(removed)
}

/// Pending deliveries per endpoint. Read through the partial index of
/// pending rows: left to itself the planner walks `deliveries_endpoint`
/// for the `GROUP BY`, i.e. every delivery kept (months of finished ones),
/// on every scrape of `/metrics`; this reads only what is pending.
/// First attempts put off past now (`?2`) do not age the backlog; with
/// nothing owed yet its age is nil.
const QUEUE_DEPTHS: &str = "SELECT app_id, endpoint_id, COUNT(*),
         COALESCE(MIN(CASE WHEN attempt_count = 0 AND next_attempt_at > ?2
             THEN NULL ELSE msg_created_at END), ?2)
     FROM deliveries INDEXED BY deliveries_due
     WHERE status = 1 GROUP BY endpoint_id ORDER BY COUNT(*) DESC LIMIT ?1";

pub(crate) fn queue_depths(
    connection: &Connection,
    limit: usize,
    now: Timestamp,
) -> Result<Vec<QueueDepth>, StoreError> {
    let mut statement = connection.prepare_cached(QUEUE_DEPTHS).map_err(backend)?;
    let mut rows = statement
        .query(params![i64::try_from(limit).unwrap_or(i64::MAX), now.0])
        .map_err(backend)?;
    let mut depths = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        depths.push(QueueDepth {
            app_id: AppId::from_stored(row.get(0).map_err(backend)?),
            endpoint_id: EndpointId::from_stored(row.get(1).map_err(backend)?),
            pending: row.get::<_, i64>(2).map_err(backend)?.max(0) as u64,
            oldest_created_at: Timestamp(row.get(3).map_err(backend)?),
        });
    }
    Ok(depths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_depths_read_only_pending_deliveries() {
        let mut connection = crate::connect_in_memory().expect("an in-memory database");
        crate::schema::migrate(&mut connection).expect("migrations run");
        let plan: Vec<String> = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {QUEUE_DEPTHS}"))
            .expect("the query plans")
            .query_map([100, 0], |row| row.get::<_, String>(3))
            .expect("the plan is read")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX deliveries_due")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("deliveries_endpoint")),
            "{plan:?}"
        );
    }
}
