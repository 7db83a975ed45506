//! The delivery queue: leasing due deliveries and recording their attempts.

use herald_core::model::{Attempt, Endpoint, Message, TriggerType};
use herald_core::{AppId, EndpointId, MessageId, Timestamp};
use herald_store::{Claim, DeliveryOutcome, Recorded, StoreError};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::catalog::endpoint_by_id;
use crate::error::backend;
use crate::rows;

/// How many due deliveries a claim looks at per delivery it may lease.
const CLAIM_WINDOW: usize = 4;

pub(crate) fn claim_due(
    connection: &Connection,
    now: Timestamp,
    limit: usize,
    per_endpoint: usize,
    saturated: &[EndpointId],
    lease_until: Timestamp,
) -> Result<Vec<Claim>, StoreError> {
    let skip = if saturated.is_empty() {
        String::new()
    } else {
        format!(
            " AND endpoint_id NOT IN ({})",
            vec!["?"; saturated.len()].join(", ")
        )
    };
    // The innermost query walks the partial index on due pending deliveries
    // in due order and stops after a bounded window, so a large backlog
    // costs no more than the window; the ranking keeps at most
    // `per_endpoint` of that window per endpoint.
    let sql = format!(
        "UPDATE deliveries SET status = 3, lease_until = ?, updated_at = ?
         WHERE (msg_id, endpoint_id) IN (
             SELECT msg_id, endpoint_id FROM (
                 SELECT msg_id, endpoint_id, next_attempt_at, ROW_NUMBER() OVER (
                     PARTITION BY endpoint_id ORDER BY next_attempt_at) AS rank
                 FROM (
                     SELECT msg_id, endpoint_id, next_attempt_at FROM deliveries
                     WHERE status = 1 AND next_attempt_at <= ?{skip}
                     ORDER BY next_attempt_at LIMIT ?))
             WHERE rank <= ?
             ORDER BY next_attempt_at LIMIT ?)
         RETURNING app_id, msg_id, endpoint_id, attempt_count, trigger_type, next_attempt_at"
    );
    let as_sql = |count: usize| Value::Integer(i64::try_from(count).unwrap_or(i64::MAX));
    let mut values = vec![
        Value::Integer(lease_until.0),
        Value::Integer(now.0),
        Value::Integer(now.0),
    ];
    values.extend(
        saturated
            .iter()
            .map(|id| Value::Text(id.as_str().to_owned())),
    );
    values.push(as_sql(limit.saturating_mul(CLAIM_WINDOW)));
    values.push(as_sql(per_endpoint));
    values.push(as_sql(limit));
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let mut rows = statement.query(params_from_iter(values)).map_err(backend)?;
    let mut claims = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let due: i64 = row.get(5).map_err(backend)?;
        let claim = Claim {
            app_id: AppId::from_stored(row.get(0).map_err(backend)?),
            msg_id: MessageId::from_stored(row.get(1).map_err(backend)?),
            endpoint_id: EndpointId::from_stored(row.get(2).map_err(backend)?),
            attempt_count: row.get(3).map_err(backend)?,
            trigger: TriggerType::from_code(row.get(4).map_err(backend)?),
            lease_until,
            // One node owns the file and a delivery is claimed again only
            // after its lease ended, so the lease's end tells claims apart.
            lease_token: lease_until.0,
        };
        claims.push((due, claim));
    }
    // RETURNING yields rows in no promised order (in practice key order), so
    // the due order the subquery picked by is restored here.
    claims.sort_by_key(|(due, _)| *due);
    Ok(claims.into_iter().map(|(_, claim)| claim).collect())
}

pub(crate) fn next_due_at(connection: &Connection) -> Result<Option<Timestamp>, StoreError> {
    let next: Option<i64> = connection
        .prepare_cached("SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 1")
        .map_err(backend)?
        .query_row([], |row| row.get(0))
        .map_err(backend)?;
    Ok(next.map(Timestamp))
}

pub(crate) fn claim_target(
    connection: &Connection,
    claim: &Claim,
) -> Result<Option<(Message, Option<Endpoint>)>, StoreError> {
    let sql = format!(
        "SELECT {} FROM messages WHERE id = ?1",
        rows::MESSAGE_COLUMNS
    );
    let message = connection
        .prepare_cached(&sql)
        .map_err(backend)?
        .query_row([claim.msg_id.as_str()], |row| Ok(rows::message(row)))
        .optional()
        .map_err(backend)?
        .transpose()?;
    let Some(message) = message else {
        return Ok(None);
    };
    let endpoint = endpoint_by_id(connection, &claim.endpoint_id)?;
    Ok(Some((message, endpoint)))
}

pub(crate) fn record_attempt(
    connection: &Connection,
    attempt: Option<&Attempt>,
    outcome: &DeliveryOutcome,
) -> Result<Recorded, StoreError> {
    if let Some(attempt) = attempt {
        // Only while the message exists: an attempt that ends after its app
        // was deleted leaves no orphan row behind.
        connection
            .prepare_cached(
                "INSERT INTO attempts (id, app_id, msg_id, endpoint_id, url, timestamp, status,
                     response_status_code, response, duration_ms, trigger_type, error)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12
                 WHERE EXISTS (SELECT 1 FROM messages WHERE id = ?3)",
            )
            .map_err(backend)?
            .execute(params![
                attempt.id.as_str(),
                attempt.app_id.as_str(),
                attempt.msg_id.as_str(),
                attempt.endpoint_id.as_str(),
                attempt.url,
                attempt.timestamp.0,
                attempt.status.code(),
                attempt.response_status_code,
                attempt.response,
                attempt.response_duration_ms,
                attempt.trigger.code(),
                attempt.error.map(|error| error.as_str()),
            ])
            .map_err(backend)?;
    }
    // Fenced by the lease: if it no longer matches, someone else owns the
    // delivery now (or it was ended), and this outcome is stale. The new
    // trigger type tells whether a queued resend took the outcome's place.
    let trigger: Option<i64> = connection
        .prepare_cached(
            "UPDATE deliveries SET
                 status = CASE WHEN resend_requested = 1 THEN 1 ELSE ?3 END,
                 next_attempt_at = CASE WHEN resend_requested = 1 THEN ?6 ELSE ?5 END,
                 trigger_type = resend_requested,
                 resend_requested = 0,
                 attempt_count = ?4, lease_until = NULL, updated_at = ?6
             WHERE msg_id = ?1 AND endpoint_id = ?2 AND status = 3 AND lease_until = ?7
             RETURNING trigger_type",
        )
        .map_err(backend)?
        .query_row(
            params![
                outcome.msg_id.as_str(),
                outcome.endpoint_id.as_str(),
                outcome.status.code(),
                outcome.attempt_count,
                outcome.next_attempt_at.map(|at| at.0),
                outcome.updated_at.0,
                outcome.lease_token,
            ],
            |row| row.get(0),
        )
        .optional()
        .map_err(backend)?;
    Ok(match trigger {
        None => {
            tracing::warn!(
                msg = %outcome.msg_id,
                endpoint = %outcome.endpoint_id,
                "delivery changed hands during its attempt; outcome not applied"
            );
            Recorded::Stale
        }
        Some(1) => Recorded::ResendQueued,
        Some(_) => Recorded::Applied,
    })
}

pub(crate) fn release_leases(
    connection: &Connection,
    now: Timestamp,
    all: bool,
) -> Result<u64, StoreError> {
    let released = connection
        .prepare_cached(
            "UPDATE deliveries SET status = 1, lease_until = NULL, updated_at = ?1
             WHERE status = 3 AND (?2 OR lease_until < ?1)",
        )
        .map_err(backend)?
        .execute(params![now.0, all])
        .map_err(backend)?;
    Ok(released as u64)
}
