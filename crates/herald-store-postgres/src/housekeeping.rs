//! Endpoint health, retention and backlog figures: what the engine's
//! background duties read and write besides the delivery queue.

use deadpool_postgres::GenericClient;
use herald_core::model::Endpoint;
use herald_core::{AppId, AttemptId, EndpointId, MessageId, TaskId, Timestamp};
use herald_store::{QueueDepth, RateSlot, RateToken};

use crate::error::Result;
use crate::rows::{self, as_bigint};

/// Turns an endpoint off, touching no other field.
pub(crate) async fn disable_endpoint(
    client: &impl GenericClient,
    app: &AppId,
    endpoint: &EndpointId,
    now: Timestamp,
) -> Result<Option<Endpoint>> {
    let sql = format!(
        "UPDATE endpoints SET disabled = true, updated_at = $3
         WHERE id = $1 AND app_id = $2 AND NOT disabled RETURNING {}",
        rows::ENDPOINT_COLUMNS
    );
    let statement = client.prepare_cached(&sql).await?;
    client
        .query_opt(&statement, &[&endpoint.as_str(), &app.as_str(), &now.0])
        .await?
        .map(|row| rows::endpoint(&row))
        .transpose()
}

pub(crate) async fn set_endpoint_failing(
    client: &impl GenericClient,
    endpoint: &EndpointId,
    failure_at: Option<Timestamp>,
    quiet_gap: std::time::Duration,
) -> Result<Option<Timestamp>> {
    // A streak goes on while failures keep coming (also ones another node
    // recorded); NULL ends it.
    let statement = client
        .prepare_cached(
            "UPDATE endpoints SET
                 failing_since = CASE
                     WHEN $2::bigint IS NULL THEN NULL
                     WHEN failing_since IS NULL OR last_failure_at IS NULL
                         OR last_failure_at < $2::bigint - $3::bigint THEN $2::bigint
                     ELSE failing_since END,
                 last_failure_at = $2::bigint
             WHERE id = $1 RETURNING failing_since",
        )
        .await?;
    let gap = i64::try_from(quiet_gap.as_millis()).unwrap_or(i64::MAX);
    let stored: Option<Option<i64>> = client
        .query_opt(
            &statement,
            &[&endpoint.as_str(), &failure_at.map(|at| at.0), &gap],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    Ok(stored.flatten().map(Timestamp))
}

/// Deletes one batch; ids are time-ordered, so the cut-off is a
/// primary-key range and each batch reads only what it deletes. Runs in
/// the caller's transaction.
pub(crate) async fn purge_before(
    client: &impl GenericClient,
    cutoff: Timestamp,
    limit: usize,
) -> Result<u64> {
    let limit = as_bigint(limit);
    let attempts = client
        .execute(
            "DELETE FROM attempts WHERE id IN (
                 SELECT id FROM attempts WHERE id < $1 ORDER BY id LIMIT $2)",
            &[&AttemptId::first_at(cutoff).as_str(), &limit],
        )
        .await?;
    let tasks = client
        .execute(
            "DELETE FROM background_tasks WHERE id IN (
                 SELECT id FROM background_tasks WHERE id < $1 ORDER BY id LIMIT $2)",
            &[&TaskId::first_at(cutoff).as_str(), &limit],
        )
        .await?;
    // A message still owed to an endpoint stays, however old.
    let purged: Vec<String> = client
        .query(
            "SELECT id FROM messages m WHERE id < $1 AND NOT EXISTS (
                 SELECT 1 FROM deliveries d WHERE d.msg_id = m.id AND d.status IN (1, 3))
             ORDER BY id LIMIT $2",
            &[&MessageId::first_at(cutoff).as_str(), &limit],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    let keys = client
        .execute(
            "DELETE FROM idempotency_keys WHERE key IN (
                 SELECT key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)",
            &[&cutoff.0, &limit],
        )
        .await?;
    // A bucket left alone for a second is full, the same as no row: those
    // of keys quiet since the cutoff go.
    let buckets = client
        .execute(
            "DELETE FROM rate_buckets WHERE key IN (
                 SELECT key FROM rate_buckets WHERE refilled_at < $1 LIMIT $2)",
            &[&cutoff.0.saturating_mul(1000), &limit],
        )
        .await?;
    let mut removed = attempts + tasks + keys + buckets;
    for sql in [
        "DELETE FROM attempts WHERE msg_id = ANY($1)",
        "DELETE FROM deliveries WHERE msg_id = ANY($1)",
        "DELETE FROM messages WHERE id = ANY($1)",
    ] {
        removed += client.execute(sql, &[&purged]).await?;
    }
    Ok(removed)
}

/// See `Store::take_rate_slot`. One statement: the row lock of the upsert
/// orders nodes taking slots of one endpoint at once.
pub(crate) async fn take_rate_slot(
    client: &impl GenericClient,
    endpoint: &EndpointId,
    per_second: u32,
    now_micros: i64,
    horizon_micros: i64,
) -> Result<RateSlot> {
    let interval = 1_000_000 / i64::from(per_second.max(1));
    let taken = client
        .query_opt(
            "INSERT INTO endpoint_rate_slots AS slots (endpoint_id, next_slot)
             VALUES ($1, $2::BIGINT + $3::BIGINT)
             ON CONFLICT (endpoint_id) DO UPDATE
                 SET next_slot = GREATEST(slots.next_slot, $2::BIGINT) + $3::BIGINT
                 WHERE GREATEST(slots.next_slot, $2::BIGINT) <= $4::BIGINT
             RETURNING next_slot - $3::BIGINT",
            &[&endpoint.as_str(), &now_micros, &interval, &horizon_micros],
        )
        .await?;
    if let Some(row) = taken {
        return Ok(RateSlot {
            at_micros: row.get(0),
            taken: true,
        });
    }
    let next: Option<i64> = client
        .query_opt(
            "SELECT next_slot FROM endpoint_rate_slots WHERE endpoint_id = $1",
            &[&endpoint.as_str()],
        )
        .await?
        .map(|row| row.get(0));
    Ok(RateSlot {
        at_micros: next.unwrap_or(now_micros),
        taken: false,
    })
}

/// See `Store::take_rate_token`: the bucket refilled to `now` and a token
/// taken in one upsert, whose row lock orders nodes at the same bucket. A
/// node whose clock is behind refills nothing rather than going back.
pub(crate) async fn take_rate_token(
    client: &impl GenericClient,
    key: &str,
    rate: u32,
    now_micros: i64,
) -> Result<RateToken> {
    let rate = f64::from(rate.max(1));
    let taken = client
        .query_opt(
            "INSERT INTO rate_buckets AS buckets (key, tokens, refilled_at)
             VALUES ($1, $2::FLOAT8 - 1, $3::BIGINT)
             ON CONFLICT (key) DO UPDATE
                 SET tokens = LEAST($2::FLOAT8, buckets.tokens
                         + GREATEST($3::BIGINT - buckets.refilled_at, 0) * $2::FLOAT8 / 1e6) - 1,
                     refilled_at = GREATEST(buckets.refilled_at, $3::BIGINT)
                 WHERE LEAST($2::FLOAT8, buckets.tokens
                         + GREATEST($3::BIGINT - buckets.refilled_at, 0) * $2::FLOAT8 / 1e6) >= 1
             RETURNING tokens",
            &[&key, &rate, &now_micros],
        )
        .await?;
    if taken.is_some() {
        return Ok(RateToken::Taken);
    }
    let row = client
        .query_opt(
            "SELECT tokens, refilled_at FROM rate_buckets WHERE key = $1",
            &[&key],
        )
        .await?;
    let (tokens, refilled_at): (f64, i64) =
        row.map_or((0.0, now_micros), |row| (row.get(0), row.get(1)));
    let elapsed = (now_micros - refilled_at).max(0) as f64;
    let now_tokens = (tokens + elapsed * rate / 1e6).min(rate);
    let wait = ((1.0 - now_tokens).max(0.0) / rate * 1e6).ceil() as i64;
    Ok(RateToken::Empty {
        wait_micros: wait.max(1),
    })
}

pub(crate) async fn queue_depths(
    client: &impl GenericClient,
    limit: usize,
    now: Timestamp,
) -> Result<Vec<QueueDepth>> {
    let statement = client
        .prepare_cached(
            // As on SQLite: first attempts put off past now do not count.
            "SELECT app_id, endpoint_id, COUNT(*),
                 COALESCE(MIN(CASE WHEN attempt_count = 0 AND next_attempt_at > $2
                     THEN NULL ELSE msg_created_at END), $2)
             FROM deliveries
             WHERE status = 1 GROUP BY app_id, endpoint_id ORDER BY COUNT(*) DESC LIMIT $1",
        )
        .await?;
    let mut depths = Vec::new();
    for row in client
        .query(&statement, &[&as_bigint(limit), &now.0])
        .await?
    {
        depths.push(QueueDepth {
            app_id: AppId::from_stored(row.try_get(0)?),
            endpoint_id: EndpointId::from_stored(row.try_get(1)?),
            pending: u64::try_from(row.try_get::<_, i64>(2)?).unwrap_or(0),
            oldest_created_at: Timestamp(row.try_get(3)?),
        });
    }
    Ok(depths)
}
