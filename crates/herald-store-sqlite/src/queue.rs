//! The delivery queue: leasing due deliveries and recording their attempts.

use herald_core::model::{Attempt, Endpoint, Message, TriggerType};
use herald_core::{AppId, EndpointId, MessageId, Timestamp};
use herald_store::{Claim, DeliveryOutcome, Recorded, StoreError};
use rusqlite::types::Value;
use std::collections::{HashMap, HashSet};

use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::catalog::endpoint_by_id;
use crate::error::backend;
use crate::rows;

/// How many due deliveries a claim looks at per delivery it may lease.
const CLAIM_WINDOW: usize = 4;

/// A due delivery a claim picked, before it is leased.
struct Pick {
    msg_id: String,
    endpoint_id: String,
    due: i64,
}

pub(crate) fn claim_due(
    connection: &Connection,
    now: Timestamp,
    limit: usize,
    per_endpoint: usize,
    saturated: &[EndpointId],
    lease_until: Timestamp,
) -> Result<Vec<Claim>, StoreError> {
    let mut picker = Picker {
        limit,
        per_endpoint: per_endpoint.max(1),
        taken: HashMap::new(),
        passed_over: saturated.iter().map(|id| id.as_str().to_owned()).collect(),
        picks: Vec::new(),
    };
    let mut claims = Vec::new();
    // The head of the due queue, in due order, skipping saturated and
    // capped endpoints row by row: the scan is bounded however much of the
    // head belongs to them, and no sort is needed.
    let mut head = connection
        .prepare_cached(
            "SELECT msg_id, endpoint_id, next_attempt_at FROM deliveries
             WHERE status = 1 AND next_attempt_at <= ?1
             ORDER BY next_attempt_at LIMIT ?2",
        )
        .map_err(backend)?;
    picker.scan(&mut head, now, false)?;
    drop(head);
    let from_head = picker.picks.len();
    lease(connection, &mut picker.picks, lease_until, now, &mut claims)?;
    if from_head == 0 && !picker.passed_over.is_empty() {
        // The head is all busy endpoints: look past them for others, letting
        // SQLite skip their rows (a busy endpoint's backlog must not hide
        // every other endpoint's deliveries behind it).
        let placeholders = vec!["?"; picker.passed_over.len()].join(", ");
        let sql = format!(
            "SELECT msg_id, endpoint_id, next_attempt_at FROM deliveries
             WHERE status = 1 AND next_attempt_at <= ? AND endpoint_id NOT IN ({placeholders})
             ORDER BY next_attempt_at LIMIT ?"
        );
        let mut beyond = connection.prepare(&sql).map_err(backend)?;
        picker.scan(&mut beyond, now, true)?;
        drop(beyond);
        lease(connection, &mut picker.picks, lease_until, now, &mut claims)?;
    }
    Ok(claims)
}

/// Chooses due deliveries row by row, at most `per_endpoint` per endpoint.
struct Picker {
    limit: usize,
    per_endpoint: usize,
    taken: HashMap<String, usize>,
    /// Endpoints whose rows are passed over: saturated ones, and those that
    /// reached their cap in this claim.
    passed_over: HashSet<String>,
    picks: Vec<Pick>,
}

impl Picker {
    /// Reads `statement`'s rows until the claim is full or the scan has
    /// looked far enough; `exclude` binds the passed-over endpoints for a
    /// statement that leaves them out itself.
    fn scan(
        &mut self,
        statement: &mut rusqlite::Statement<'_>,
        now: Timestamp,
        exclude: bool,
    ) -> Result<(), StoreError> {
        let window = self.limit.saturating_mul(CLAIM_WINDOW);
        let mut values = vec![Value::Integer(now.0)];
        if exclude {
            values.extend(self.passed_over.iter().cloned().map(Value::Text));
        }
        values.push(Value::Integer(i64::try_from(window).unwrap_or(i64::MAX)));
        let mut rows = statement.query(params_from_iter(values)).map_err(backend)?;
        let mut visited = 0;
        while let Some(row) = rows.next().map_err(backend)? {
            visited += 1;
            let endpoint = row
                .get_ref(1)
                .map_err(backend)?
                .as_str()
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            if !self.passed_over.contains(endpoint) {
                let taken = self.taken.entry(endpoint.to_owned()).or_insert(0);
                *taken += 1;
                if *taken >= self.per_endpoint {
                    self.passed_over.insert(endpoint.to_owned());
                }
                self.picks.push(Pick {
                    msg_id: row.get(0).map_err(backend)?,
                    endpoint_id: endpoint.to_owned(),
                    due: row.get(2).map_err(backend)?,
                });
                if self.picks.len() >= self.limit {
                    break;
                }
            }
            // Rows of passed-over endpoints cost a step each: stop once the
            // scan has looked well past what it found, instead of walking a
            // busy endpoint's whole backlog to the end of the window.
            if visited >= CLAIM_WINDOW * (self.picks.len() + self.per_endpoint) {
                break;
            }
        }
        Ok(())
    }
}

/// Leases `picks` (emptying it), appending the claims in due order.
fn lease(
    connection: &Connection,
    picks: &mut Vec<Pick>,
    lease_until: Timestamp,
    now: Timestamp,
    claims: &mut Vec<Claim>,
) -> Result<(), StoreError> {
    let mut statement = connection
        .prepare_cached(
            "UPDATE deliveries SET status = 3, lease_until = ?3, updated_at = ?4
             WHERE msg_id = ?1 AND endpoint_id = ?2 AND status = 1
             RETURNING app_id, attempt_count, trigger_type",
        )
        .map_err(backend)?;
    picks.sort_by_key(|pick| pick.due);
    for pick in picks.drain(..) {
        let leased = statement
            .query_row(
                params![pick.msg_id, pick.endpoint_id, lease_until.0, now.0],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, u32>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(backend)?;
        let Some((app_id, attempt_count, trigger)) = leased else {
            continue;
        };
        claims.push(Claim {
            app_id: AppId::from_stored(app_id),
            msg_id: MessageId::from_stored(pick.msg_id),
            endpoint_id: EndpointId::from_stored(pick.endpoint_id),
            attempt_count,
            trigger: TriggerType::from_code(trigger),
            lease_until,
            // One node owns the file and a delivery is claimed again only
            // after its lease ended, so the lease's end tells claims apart.
            lease_token: lease_until.0,
        });
    }
    Ok(())
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
