//! The delivery queue: leasing due deliveries and recording their attempts.

use herald_core::model::{Attempt, Endpoint, Message, TriggerType};
use herald_core::{AppId, EndpointId, MessageId, Timestamp};
use herald_store::{Claim, DeliveryOutcome, StoreError};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::catalog::endpoint_by_id;
use crate::error::backend;
use crate::rows;

pub(crate) fn claim_due(
    connection: &Connection,
    now: Timestamp,
    limit: usize,
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
    // The inner query walks the partial index on due pending deliveries in
    // due order, so the oldest work goes first and the scan stops at `limit`.
    let sql = format!(
        "UPDATE deliveries SET status = 3, lease_until = ?, updated_at = ?
         WHERE (msg_id, endpoint_id) IN (
             SELECT msg_id, endpoint_id FROM deliveries
             WHERE status = 1 AND next_attempt_at <= ?{skip}
             ORDER BY next_attempt_at LIMIT ?)
         RETURNING app_id, msg_id, endpoint_id, attempt_count, trigger_type, next_attempt_at"
    );
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
    values.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
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
) -> Result<(), StoreError> {
    if let Some(attempt) = attempt {
        connection
            .prepare_cached(
                "INSERT INTO attempts (id, app_id, msg_id, endpoint_id, url, timestamp, status,
                     response_status_code, response, duration_ms, trigger_type, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
    connection
        .prepare_cached(
            "UPDATE deliveries SET status = ?3, attempt_count = ?4, next_attempt_at = ?5,
                 lease_until = NULL, trigger_type = 0, updated_at = ?6
             WHERE msg_id = ?1 AND endpoint_id = ?2",
        )
        .map_err(backend)?
        .execute(params![
            outcome.msg_id.as_str(),
            outcome.endpoint_id.as_str(),
            outcome.status.code(),
            outcome.attempt_count,
            outcome.next_attempt_at.map(|at| at.0),
            outcome.updated_at.0,
        ])
        .map_err(backend)?;
    Ok(())
}

pub(crate) fn release_leases(
    connection: &Connection,
    now: Timestamp,
    all: bool,
) -> Result<u64, StoreError> {
    let released = connection
        .prepare_cached(
            "UPDATE deliveries SET status = 1, lease_until = NULL
             WHERE status = 3 AND (?2 OR lease_until < ?1)",
        )
        .map_err(backend)?
        .execute(params![now.0, all])
        .map_err(backend)?;
    Ok(released as u64)
}
