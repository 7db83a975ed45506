//! The delivery queue: leasing due deliveries and recording their attempts.

use std::collections::{HashMap, HashSet};

use herald_core::model::{Attempt, DeliveryStatus, Endpoint, Message, TriggerType};
use herald_core::{AppId, EndpointId, MessageId, Timestamp};
use herald_store::{Claim, DeliveryOutcome, Recorded, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

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
    cursor: &mut String,
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
    picker.scan(&mut head, now)?;
    drop(head);
    let from_head = picker.picks.len();
    lease(connection, &mut picker.picks, lease_until, now, &mut claims)?;
    if from_head == 0 && !picker.passed_over.is_empty() {
        // The head is all busy endpoints: look past them, endpoint by
        // endpoint through the per-endpoint due index, so a busy endpoint's
        // backlog neither hides the others nor has to be walked.
        look_past(connection, &mut picker, now, cursor)?;
        lease(connection, &mut picker.picks, lease_until, now, &mut claims)?;
    }
    Ok(claims)
}

/// Most endpoints one claim visits when it looks past the head; the next
/// claim goes on from where this one stopped.
const ENDPOINTS_PER_LOOK: usize = 256;

/// Picks due deliveries of endpoints not passed over, visiting endpoints
/// with pending deliveries in id order from `cursor` (wrapping around), at
/// most [`ENDPOINTS_PER_LOOK`] of them; leaves `cursor` where it stopped.
fn look_past(
    connection: &Connection,
    picker: &mut Picker,
    now: Timestamp,
    cursor: &mut String,
) -> Result<(), StoreError> {
    let mut next_endpoint = connection
        .prepare_cached(
            "SELECT endpoint_id FROM deliveries INDEXED BY deliveries_endpoint_due
             WHERE status = 1 AND endpoint_id > ?1 ORDER BY endpoint_id LIMIT 1",
        )
        .map_err(backend)?;
    let mut due_of = connection
        .prepare_cached(
            "SELECT msg_id, next_attempt_at FROM deliveries INDEXED BY deliveries_endpoint_due
             WHERE status = 1 AND endpoint_id = ?1 AND next_attempt_at <= ?2
             ORDER BY next_attempt_at LIMIT ?3",
        )
        .map_err(backend)?;
    let start = cursor.clone();
    let mut wrapped = false;
    for _ in 0..ENDPOINTS_PER_LOOK {
        let next: Option<String> = next_endpoint
            .query_row([cursor.as_str()], |row| row.get(0))
            .optional()
            .map_err(backend)?;
        let endpoint = match next {
            // Past where this look began: every endpoint has been seen.
            Some(endpoint) if wrapped && endpoint > start => break,
            Some(endpoint) => endpoint,
            None if wrapped || start.is_empty() => break,
            None => {
                wrapped = true;
                cursor.clear();
                continue;
            }
        };
        cursor.clone_from(&endpoint);
        if picker.passed_over.contains(&endpoint) {
            continue;
        }
        let room = picker.per_endpoint.min(picker.limit - picker.picks.len());
        let mut rows = due_of
            .query(params![
                endpoint,
                now.0,
                i64::try_from(room).unwrap_or(i64::MAX)
            ])
            .map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            picker.picks.push(Pick {
                msg_id: row.get(0).map_err(backend)?,
                endpoint_id: endpoint.clone(),
                due: row.get(1).map_err(backend)?,
            });
        }
        if picker.picks.len() >= picker.limit {
            break;
        }
    }
    Ok(())
}

/// Chooses due deliveries row by row, at most `per_endpoint` per endpoint.
struct Picker {
    limit: usize,
    per_endpoint: usize,
    /// Picks so far per endpoint.
    taken: HashMap<String, usize>,
    /// Endpoints whose rows are passed over: saturated ones, and those that
    /// reached their cap in this claim.
    passed_over: HashSet<String>,
    picks: Vec<Pick>,
}

impl Picker {
    /// Reads the head's rows until the claim is full or the scan has
    /// looked far enough.
    fn scan(
        &mut self,
        head: &mut rusqlite::Statement<'_>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let window = self.limit.saturating_mul(CLAIM_WINDOW);
        let window = i64::try_from(window).unwrap_or(i64::MAX);
        let mut rows = head.query(params![now.0, window]).map_err(backend)?;
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
///
/// Each delivery is read and then updated by its key rather than updated
/// `RETURNING` what the claim needs: SQLite runs `RETURNING` as a trigger,
/// and a statement with a trigger gets a statement journal, which spilled
/// to a temp file whenever the update split a page and then took every
/// page write of the rest of the transaction.
fn lease(
    connection: &Connection,
    picks: &mut Vec<Pick>,
    lease_until: Timestamp,
    now: Timestamp,
    claims: &mut Vec<Claim>,
) -> Result<(), StoreError> {
    let mut pending = connection
        .prepare_cached(
            "SELECT app_id, attempt_count, trigger_type FROM deliveries
             WHERE msg_id = ?1 AND endpoint_id = ?2 AND status = 1",
        )
        .map_err(backend)?;
    let mut update = connection
        .prepare_cached(
            "UPDATE deliveries SET status = 3, lease_until = ?3, updated_at = ?4
             WHERE msg_id = ?1 AND endpoint_id = ?2",
        )
        .map_err(backend)?;
    picks.sort_by_key(|pick| pick.due);
    for pick in picks.drain(..) {
        let found = pending
            .query_row(params![pick.msg_id, pick.endpoint_id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, u32>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .optional()
            .map_err(backend)?;
        let Some((app_id, attempt_count, trigger)) = found else {
            continue;
        };
        update
            .execute(params![pick.msg_id, pick.endpoint_id, lease_until.0, now.0])
            .map_err(backend)?;
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

/// The messages of `ids` that exist.
pub(crate) fn messages_by_id(
    connection: &Connection,
    ids: &[&MessageId],
) -> Result<Vec<Message>, StoreError> {
    let sql = format!(
        "SELECT {} FROM messages WHERE id = ?1",
        rows::MESSAGE_COLUMNS
    );
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let mut messages = Vec::with_capacity(ids.len());
    for id in ids {
        let message = statement
            .query_row([id.as_str()], |row| Ok(rows::message(row)))
            .optional()
            .map_err(backend)?
            .transpose()?;
        messages.extend(message);
    }
    Ok(messages)
}

pub(crate) fn claim_target(
    connection: &Connection,
    claim: &Claim,
) -> Result<Option<(Message, Option<Endpoint>)>, StoreError> {
    let Some(message) = messages_by_id(connection, &[&claim.msg_id])?.pop() else {
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
    // Fenced by the lease: if it no longer matches, someone else owns the
    // delivery now (or it was ended), and this outcome is stale. A resend
    // asked for during the attempt takes the outcome's place. Read, then
    // updated by key, for the reason given at `lease`.
    let resend: Option<bool> = connection
        .prepare_cached(
            "SELECT resend_requested FROM deliveries
             WHERE msg_id = ?1 AND endpoint_id = ?2 AND status = 3 AND lease_until = ?3",
        )
        .map_err(backend)?
        .query_row(
            params![
                outcome.msg_id.as_str(),
                outcome.endpoint_id.as_str(),
                outcome.lease_token,
            ],
            |row| row.get(0),
        )
        .optional()
        .map_err(backend)?;
    // The attempt is logged only while its message exists, so one that
    // ends after its app was deleted leaves no orphan row behind. A
    // delivery row is deleted with its message (app deletion, retention),
    // so a delivery still leased answers that without a second read.
    if let Some(attempt) = attempt {
        let leased = resend.is_some() && attempt.msg_id == outcome.msg_id;
        if leased || message_exists(connection, &attempt.msg_id)? {
            insert_attempt(connection, attempt)?;
        }
    }
    let Some(resend) = resend else {
        tracing::warn!(
            msg = %outcome.msg_id,
            endpoint = %outcome.endpoint_id,
            "delivery changed hands during its attempt; outcome not applied"
        );
        return Ok(Recorded::Stale);
    };
    // `None` keeps the trigger: a delivery given back without an attempt
    // (a manual resend put off) is still what it was.
    let (status, next_attempt_at, trigger) = if resend {
        (
            DeliveryStatus::Pending,
            Some(outcome.updated_at),
            Some(TriggerType::Manual),
        )
    } else {
        (
            outcome.status,
            outcome.next_attempt_at,
            attempt.map(|_| TriggerType::Scheduled),
        )
    };
    connection
        .prepare_cached(
            "UPDATE deliveries SET status = ?3, next_attempt_at = ?4,
                 trigger_type = COALESCE(?5, trigger_type),
                 resend_requested = 0, attempt_count = ?6, lease_until = NULL, updated_at = ?7
             WHERE msg_id = ?1 AND endpoint_id = ?2",
        )
        .map_err(backend)?
        .execute(params![
            outcome.msg_id.as_str(),
            outcome.endpoint_id.as_str(),
            status.code(),
            next_attempt_at.map(|at| at.0),
            trigger.map(TriggerType::code),
            outcome.attempt_count,
            outcome.updated_at.0,
        ])
        .map_err(backend)?;
    Ok(if resend {
        Recorded::ResendQueued
    } else {
        Recorded::Applied
    })
}

/// A plain insert, not `INSERT … SELECT … WHERE EXISTS`: SQLite gives a
/// statement that may write many rows a statement journal, which spilled to
/// a temp file whenever an insert split pages and then took every page
/// write of the rest of the transaction.
fn insert_attempt(connection: &Connection, attempt: &Attempt) -> Result<(), StoreError> {
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
    Ok(())
}

fn message_exists(connection: &Connection, msg: &MessageId) -> Result<bool, StoreError> {
    connection
        .prepare_cached("SELECT 1 FROM messages WHERE id = ?1")
        .map_err(backend)?
        .exists([msg.as_str()])
        .map_err(backend)
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
