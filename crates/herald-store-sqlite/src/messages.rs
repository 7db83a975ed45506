//! Messages, their fan-out into deliveries, and the attempt log.

use herald_core::model::{Attempt, Delivery, DeliveryStatus, Endpoint, Message, TriggerType};
use herald_core::{AppId, AttemptId, EndpointId, MessageId, Timestamp};
use herald_store::{
    AttemptFilter, Claim, CreatedMessage, DeliveryBucket, DeliveryStats, HandOffTerms, HandedOff,
    MessageFilter, Page, PageRequest, StoreError,
};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use crate::catalog::fan_out_targets;
use crate::error::backend;
use crate::paging::Select;
use crate::payload::Packed;
use crate::rows::{self, to_json};

/// Which endpoints a new message is fanned out to.
pub(crate) enum FanOut<'a> {
    /// Every enabled endpoint whose filters match.
    Matching,
    /// This endpoint alone.
    Only(&'a EndpointId),
}

/// Inserts the message and its deliveries; the caller's transaction makes
/// them one unit.
pub(crate) fn create_message(
    connection: &Connection,
    (message, packed): (&Message, &Packed),
    idempotency_key: Option<&str>,
    fan_out: FanOut<'_>,
) -> Result<CreatedMessage, StoreError> {
    create(
        connection,
        (message, packed),
        idempotency_key,
        fan_out,
        None,
    )
    .map(|(created, _)| created)
}

/// Finds the endpoint a delivery would be handed off with; `None` keeps
/// the delivery pending (an endpoint that cannot be read is left to the
/// claim path, which fails such deliveries visibly).
pub(crate) type Resolve<'a> = dyn FnMut(&Connection, &EndpointId) -> Option<Endpoint> + 'a;

/// Like [`create_message`], leasing new deliveries on `terms` (see
/// `Store::create_message_handing_off`).
pub(crate) fn create_message_handing_off(
    connection: &Connection,
    (message, packed): (&Message, &Packed),
    idempotency_key: Option<&str>,
    terms: &HandOffTerms,
    resolve: &mut Resolve<'_>,
) -> Result<(CreatedMessage, Vec<HandedOff>), StoreError> {
    create(
        connection,
        (message, packed),
        idempotency_key,
        FanOut::Matching,
        Some((terms, resolve)),
    )
}

/// Inserts `message`, its payload stored as `packed` (made from it by
/// [`crate::payload::pack`]).
fn create(
    connection: &Connection,
    (message, packed): (&Message, &Packed),
    idempotency_key: Option<&str>,
    fan_out: FanOut<'_>,
    mut hand_off: Option<(&HandOffTerms, &mut Resolve<'_>)>,
) -> Result<(CreatedMessage, Vec<HandedOff>), StoreError> {
    if let Some(key) = idempotency_key {
        let sql = format!(
            "SELECT {} FROM messages WHERE app_id = ?1 AND idempotency_key = ?2",
            rows::MESSAGE_COLUMNS
        );
        let earlier = connection
            .prepare_cached(&sql)
            .map_err(backend)?
            .query_row([message.app_id.as_str(), key], |row| Ok(rows::message(row)))
            .optional()
            .map_err(backend)?
            .transpose()?;
        if let Some(earlier) = earlier {
            let created = CreatedMessage {
                message: earlier,
                is_new: false,
                deliveries: 0,
            };
            return Ok((created, Vec::new()));
        }
    }
    let channels: Vec<&str> = message
        .channels
        .iter()
        .map(|channel| channel.as_str())
        .collect();
    connection
        .prepare_cached(
            "INSERT INTO messages (id, app_id, event_type, event_id, payload, channels, tags,
                 idempotency_key, created_at, headers, deliver_at, payload_expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .map_err(backend)?
        .execute(params![
            message.id.as_str(),
            message.app_id.as_str(),
            message.event_type.as_str(),
            message.event_id,
            packed.stored(&message.payload),
            to_json(&channels),
            to_json(&message.tags),
            idempotency_key,
            message.created_at.0,
            to_json(&message.headers),
            message.deliver_at.map(|at| at.0),
            message.payload_expires_at.map(|at| at.0),
        ])
        .map_err(backend)?;

    // Fan-out is computed from the endpoints that exist at commit time.
    let mut insert = connection
        .prepare_cached(
            "INSERT INTO deliveries (msg_id, endpoint_id, app_id, status, attempt_count,
                 next_attempt_at, lease_until, trigger_type, msg_created_at, updated_at)
             VALUES (?1, ?2, ?3, ?5, 0, ?7, ?6, 0, ?4, ?4)",
        )
        .map_err(backend)?;
    let targets: Vec<EndpointId> = match fan_out {
        FanOut::Only(endpoint) => vec![endpoint.clone()],
        FanOut::Matching => fan_out_targets(connection, &message.app_id)?
            .into_iter()
            .filter(|(_, filter)| filter.matches(message.event_type.as_str(), &message.channels))
            .map(|(id, _)| id)
            .collect(),
    };
    let mut leased = Vec::new();
    // A scheduled message's deliveries wait in the queue for their time.
    if message.is_scheduled() {
        hand_off = None;
    }
    for endpoint in &targets {
        let lease = match hand_off.as_mut() {
            Some((terms, resolve))
                if leased.len() < terms.max
                    && !terms.busy.contains(endpoint)
                    && !has_due(connection, endpoint, message.created_at)? =>
            {
                resolve(connection, endpoint).map(|found| (terms.lease_until, found))
            }
            _ => None,
        };
        let status = match lease {
            Some(_) => DeliveryStatus::Sending,
            None => DeliveryStatus::Pending,
        };
        insert
            .execute(params![
                message.id.as_str(),
                endpoint.as_str(),
                message.app_id.as_str(),
                message.created_at.0,
                status.code(),
                lease.as_ref().map(|(until, _)| until.0),
                message.first_due().0,
            ])
            .map_err(backend)?;
        if let Some((lease_until, found)) = lease {
            let claim = Claim {
                app_id: message.app_id.clone(),
                msg_id: message.id.clone(),
                endpoint_id: endpoint.clone(),
                attempt_count: 0,
                trigger: TriggerType::Scheduled,
                lease_until,
                // As for claims (see `queue::lease`): one node owns the file.
                lease_token: lease_until.0,
            };
            leased.push(HandedOff {
                claim,
                endpoint: found,
            });
        }
    }
    let created = CreatedMessage {
        message: message.clone(),
        is_new: true,
        deliveries: targets.len(),
    };
    Ok((created, leased))
}

/// Whether `endpoint` has a pending delivery due at `now`: a backlog that a
/// new delivery must queue behind rather than be handed off past.
fn has_due(
    connection: &Connection,
    endpoint: &EndpointId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    connection
        .prepare_cached(
            "SELECT 1 FROM deliveries INDEXED BY deliveries_endpoint_due
             WHERE status = 1 AND endpoint_id = ?1 AND next_attempt_at <= ?2",
        )
        .map_err(backend)?
        .exists(params![endpoint.as_str(), now.0])
        .map_err(backend)
}

pub(crate) fn expunge_content(
    connection: &Connection,
    app: &AppId,
    msg: &MessageId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let found = connection
        .prepare_cached(
            "UPDATE messages SET payload = '{}', content_expunged_at = ?3
             WHERE id = ?1 AND app_id = ?2",
        )
        .map_err(backend)?
        .execute(params![msg.as_str(), app.as_str(), now.0])
        .map_err(backend)?
        > 0;
    if found {
        forget_request_bodies(connection, msg.as_str())?;
    }
    Ok(found)
}

/// Empties the logged bodies of the inbound requests message `msg` came
/// from (the accepted one and its duplicates): they hold the same content.
fn forget_request_bodies(connection: &Connection, msg: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "UPDATE inbound_requests INDEXED BY inbound_requests_msg SET body = x''
             WHERE msg_id = ?1 AND msg_id IS NOT NULL",
        )
        .map_err(backend)?
        .execute([msg])
        .map_err(backend)?;
    Ok(())
}

/// Deletes the payloads (at most `limit`) whose retention ended by `now`,
/// as `DELETE …/content` does; answers whose they were.
pub(crate) fn expunge_expired_payloads(
    connection: &Connection,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<MessageId>, StoreError> {
    let expired = connection
        .prepare_cached(
            "SELECT id FROM messages INDEXED BY messages_payload_expiry
             WHERE payload_expires_at <= ?1 AND payload_expires_at IS NOT NULL
                 AND content_expunged_at IS NULL
             ORDER BY payload_expires_at LIMIT ?2",
        )
        .map_err(backend)?
        .query_map(
            params![now.0, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| row.get::<_, String>(0),
        )
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    let mut expunge = connection
        .prepare_cached(
            "UPDATE messages SET payload = '{}', content_expunged_at = ?2 WHERE id = ?1",
        )
        .map_err(backend)?;
    for id in &expired {
        expunge.execute(params![id, now.0]).map_err(backend)?;
        forget_request_bodies(connection, id)?;
    }
    Ok(expired.into_iter().map(MessageId::from_stored).collect())
}

pub(crate) fn message_by_ref(
    connection: &Connection,
    app: &AppId,
    reference: &str,
) -> Result<Option<Message>, StoreError> {
    let sql = format!(
        "SELECT {columns} FROM messages WHERE id = ?2 AND app_id = ?1
         UNION ALL
         SELECT * FROM (SELECT {columns} FROM messages WHERE app_id = ?1 AND event_id = ?2
                        ORDER BY id DESC LIMIT 1)
         LIMIT 1",
        columns = rows::MESSAGE_COLUMNS
    );
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let mut found = statement
        .query([app.as_str(), reference])
        .map_err(backend)?;
    found
        .next()
        .map_err(backend)?
        .map(rows::message)
        .transpose()
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

fn time_bounds(
    select: Select,
    column: &str,
    before: Option<Timestamp>,
    after: Option<Timestamp>,
) -> Select {
    let select = match before {
        Some(before) => select.and(&format!("{column} < ?"), [Value::Integer(before.0)]),
        None => select,
    };
    match after {
        Some(after) => select.and(&format!("{column} > ?"), [Value::Integer(after.0)]),
        None => select,
    }
}

pub(crate) fn list_messages(
    connection: &Connection,
    app: &AppId,
    filter: &MessageFilter,
    page: &PageRequest,
) -> Result<Page<Message>, StoreError> {
    let select =
        Select::new(rows::MESSAGE_COLUMNS, "messages").and("app_id = ?", [text(app.as_str())]);
    message_conditions(select, "messages", filter).page(connection, "id", page, rows::message)
}

/// The conditions of `filter` on the messages table known as `table`.
fn message_conditions(mut select: Select, table: &str, filter: &MessageFilter) -> Select {
    select = select.and_in(&format!("{table}.event_type"), &filter.event_types);
    if let Some(channel) = &filter.channel {
        select = select.and(
            &format!("EXISTS (SELECT 1 FROM json_each({table}.channels) WHERE value = ?)"),
            [text(channel)],
        );
    }
    if let Some(tag) = &filter.tag {
        select = select.and(
            &format!("EXISTS (SELECT 1 FROM json_each({table}.tags) WHERE value = ?)"),
            [text(tag)],
        );
    }
    time_bounds(
        select,
        &format!("{table}.created_at"),
        filter.before,
        filter.after,
    )
}

/// Failed messages — the few an operator hunts for among many delivered
/// ones — come from the partial index `deliveries_app_failed`, which only
/// failed deliveries enter, so the delivery path never pays for it (a
/// full index on every delivery's status cost ~10 % of ingest). A message
/// with several failed deliveries is kept at its first endpoint only.
/// Other statuses walk the app's messages newest first and keep those with
/// a delivery in that status: delivered ones are most messages, and
/// pending or sending ones are mostly the newest.
pub(crate) fn list_messages_with_status(
    connection: &Connection,
    app: &AppId,
    status: DeliveryStatus,
    filter: &MessageFilter,
    page: &PageRequest,
) -> Result<Page<Message>, StoreError> {
    let columns = rows::prefixed("m", rows::MESSAGE_COLUMNS);
    if status == DeliveryStatus::Fail {
        // The status is written out (not bound) so the planner can prove
        // the partial index applies.
        let select = Select::new(&columns, "deliveries d JOIN messages m ON m.id = d.msg_id")
            .and("d.app_id = ? AND d.status = 2", [text(app.as_str())])
            .and(
                "NOT EXISTS (SELECT 1 FROM deliveries other WHERE other.msg_id = d.msg_id
                     AND other.status = 2 AND other.endpoint_id < d.endpoint_id)",
                [],
            );
        return message_conditions(select, "m", filter).page(
            connection,
            "d.msg_id",
            page,
            rows::message,
        );
    }
    let select = Select::new(&columns, "messages m")
        .and("m.app_id = ?", [text(app.as_str())])
        .and(
            "EXISTS (SELECT 1 FROM deliveries d WHERE d.msg_id = m.id AND d.status = ?)",
            [Value::Integer(status.code())],
        );
    message_conditions(select, "m", filter).page(connection, "m.id", page, rows::message)
}

/// Counts by bucket over `deliveries_endpoint` (endpoint, status, message
/// time): one range read per endpoint and status, never the whole table.
pub(crate) fn delivery_histogram(
    connection: &Connection,
    app: &AppId,
    endpoint: Option<&EndpointId>,
    since: Timestamp,
    until: Timestamp,
    bucket_millis: i64,
) -> Result<Vec<DeliveryBucket>, StoreError> {
    let bucket_millis = bucket_millis.max(1);
    let mut statement = connection
        .prepare_cached(
            "SELECT (d.msg_created_at - ?3) / ?5 AS bucket, d.status, COUNT(*)
             FROM endpoints e JOIN deliveries d ON d.endpoint_id = e.id
             WHERE e.app_id = ?1 AND (?2 IS NULL OR e.id = ?2)
                 AND d.status IN (0, 1, 2, 3)
                 AND d.msg_created_at >= ?3 AND d.msg_created_at < ?4
             GROUP BY bucket, d.status
             ORDER BY bucket",
        )
        .map_err(backend)?;
    let mut counted = statement
        .query(params![
            app.as_str(),
            endpoint.map(EndpointId::as_str),
            since.0,
            until.0,
            bucket_millis
        ])
        .map_err(backend)?;
    let mut buckets: Vec<DeliveryBucket> = Vec::new();
    while let Some(row) = counted.next().map_err(backend)? {
        let bucket: i64 = row.get(0).map_err(backend)?;
        let status: i64 = row.get(1).map_err(backend)?;
        let count = row.get::<_, i64>(2).map_err(backend)? as u64;
        let start = Timestamp(since.0 + bucket * bucket_millis);
        if buckets.last().is_none_or(|last| last.start != start) {
            buckets.push(DeliveryBucket {
                start,
                succeeded: 0,
                failed: 0,
                waiting: 0,
            });
        }
        let current = buckets.last_mut().expect("a bucket was just pushed");
        match DeliveryStatus::from_code(status) {
            Some(DeliveryStatus::Success) => current.succeeded += count,
            Some(DeliveryStatus::Fail) => current.failed += count,
            _ => current.waiting += count,
        }
    }
    Ok(buckets)
}

pub(crate) fn deliveries_of_message(
    connection: &Connection,
    app: &AppId,
    msg: &MessageId,
) -> Result<Vec<Delivery>, StoreError> {
    Select::new(rows::DELIVERY_COLUMNS, "deliveries")
        .and(
            "msg_id = ? AND app_id = ?",
            [text(msg.as_str()), text(app.as_str())],
        )
        .all(connection, rows::delivery)
}

/// The messages fanned out to one endpoint, newest first, each with its
/// delivery to that endpoint.
pub(crate) fn list_endpoint_messages(
    connection: &Connection,
    app: &AppId,
    endpoint: &EndpointId,
    status: Option<herald_core::model::DeliveryStatus>,
    filter: &MessageFilter,
    page: &PageRequest,
) -> Result<Page<(Message, Delivery)>, StoreError> {
    let columns = format!(
        "{}, {}",
        rows::prefixed("m", rows::MESSAGE_COLUMNS),
        rows::prefixed("d", rows::DELIVERY_COLUMNS)
    );
    let mut select = Select::new(&columns, "deliveries d JOIN messages m ON m.id = d.msg_id").and(
        "d.endpoint_id = ? AND d.app_id = ?",
        [text(endpoint.as_str()), text(app.as_str())],
    );
    if let Some(status) = status {
        select = select.and("d.status = ?", [Value::Integer(status.code())]);
    }
    message_conditions(select, "m", filter).page(connection, "d.msg_id", page, |row| {
        Ok((
            rows::message(row)?,
            rows::delivery_at(row, rows::MESSAGE_COLUMN_COUNT)?,
        ))
    })
}

pub(crate) fn list_attempts(
    connection: &Connection,
    app: &AppId,
    filter: &AttemptFilter,
    page: &PageRequest,
) -> Result<Page<Attempt>, StoreError> {
    let from = if filter.needs_messages() {
        "attempts a JOIN messages m ON m.id = a.msg_id"
    } else {
        "attempts a"
    };
    let mut select = Select::new(rows::ATTEMPT_COLUMNS, from)
        .and("a.app_id = ?", [text(app.as_str())])
        .and_in("m.event_type", &filter.event_types);
    if let Some(msg) = &filter.msg_id {
        select = select.and("a.msg_id = ?", [text(msg.as_str())]);
    }
    if let Some(endpoint) = &filter.endpoint_id {
        select = select.and("a.endpoint_id = ?", [text(endpoint.as_str())]);
    }
    if let Some(status) = filter.status {
        select = select.and("a.status = ?", [Value::Integer(status.code())]);
    }
    if let Some((low, high)) = filter.status_code_range() {
        select = select.and(
            "a.response_status_code >= ? AND a.response_status_code < ?",
            [Value::Integer(low.into()), Value::Integer(high.into())],
        );
    }
    if let Some(channel) = &filter.channel {
        select = select.and(
            "EXISTS (SELECT 1 FROM json_each(m.channels) WHERE value = ?)",
            [text(channel)],
        );
    }
    if let Some(tag) = &filter.tag {
        select = select.and(
            "EXISTS (SELECT 1 FROM json_each(m.tags) WHERE value = ?)",
            [text(tag)],
        );
    }
    time_bounds(select, "a.timestamp", filter.before, filter.after).page(
        connection,
        "a.id",
        page,
        rows::attempt,
    )
}

pub(crate) fn attempt(
    connection: &Connection,
    app: &AppId,
    msg: &MessageId,
    id: &AttemptId,
) -> Result<Option<Attempt>, StoreError> {
    Select::new(rows::ATTEMPT_COLUMNS, "attempts a")
        .and(
            "a.id = ? AND a.msg_id = ? AND a.app_id = ?",
            [text(id.as_str()), text(msg.as_str()), text(app.as_str())],
        )
        .all(connection, rows::attempt)
        .map(|found| found.into_iter().next())
}

pub(crate) fn expunge_attempt_content(
    connection: &Connection,
    app: &AppId,
    msg: &MessageId,
    id: &AttemptId,
) -> Result<bool, StoreError> {
    connection
        .prepare_cached(
            "UPDATE attempts SET response = '' WHERE id = ?1 AND msg_id = ?2 AND app_id = ?3",
        )
        .map_err(backend)?
        .execute([id.as_str(), msg.as_str(), app.as_str()])
        .map(|changed| changed > 0)
        .map_err(backend)
}

pub(crate) fn resend(
    connection: &Connection,
    app: &AppId,
    msg: &MessageId,
    endpoint: &EndpointId,
    now: Timestamp,
) -> Result<(), StoreError> {
    let created_at: Option<i64> = connection
        .query_row(
            "SELECT created_at FROM messages WHERE id = ?1 AND app_id = ?2",
            [msg.as_str(), app.as_str()],
            |row| row.get(0),
        )
        .optional()
        .map_err(backend)?;
    let Some(created_at) = created_at else {
        return Err(StoreError::NotFound("message"));
    };
    // A delivery being sent keeps its lease; the resend is remembered and
    // queued when that attempt is recorded.
    connection
        .prepare_cached(
            "INSERT INTO deliveries (msg_id, endpoint_id, app_id, status, attempt_count,
                 next_attempt_at, lease_until, trigger_type, msg_created_at, updated_at)
             VALUES (?1, ?2, ?3, 1, 0, ?4, NULL, 1, ?5, ?4)
             ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET
                 resend_requested = (status = 3),
                 next_attempt_at = CASE WHEN status = 3 THEN next_attempt_at ELSE ?4 END,
                 -- A pending delivery keeps its retry schedule and is only
                 -- brought forward: a failed resend must not end it early.
                 trigger_type = CASE WHEN status IN (1, 3) THEN trigger_type ELSE 1 END,
                 status = CASE WHEN status = 3 THEN 3 ELSE 1 END,
                 updated_at = ?4",
        )
        .map_err(backend)?
        .execute(params![
            msg.as_str(),
            endpoint.as_str(),
            app.as_str(),
            now.0,
            created_at
        ])
        .map_err(backend)?;
    Ok(())
}

/// Re-queues up to `chunk` failed deliveries; the caller repeats until
/// none is left, so a large recovery never holds the writer for long.
pub(crate) fn recover_chunk(
    connection: &Connection,
    endpoint: &EndpointId,
    since: Timestamp,
    until: Option<Timestamp>,
    now: Timestamp,
    chunk: usize,
) -> Result<u64, StoreError> {
    let changed = connection
        .prepare_cached(
            "UPDATE deliveries SET status = 1, next_attempt_at = ?4, trigger_type = 1,
                 updated_at = ?4
             WHERE (msg_id, endpoint_id) IN (
                 SELECT msg_id, endpoint_id FROM deliveries
                 WHERE endpoint_id = ?1 AND status = 2 AND msg_created_at >= ?2
                     AND msg_created_at < ?3
                     -- failed again since this recovery began: not picked twice
                     AND updated_at < ?4
                 LIMIT ?5)",
        )
        .map_err(backend)?
        .execute(params![
            endpoint.as_str(),
            since.0,
            until.map_or(i64::MAX, |until| until.0),
            now.0,
            i64::try_from(chunk).unwrap_or(i64::MAX),
        ])
        .map_err(backend)?;
    Ok(changed as u64)
}

/// How far a replay got: the last message id it looked at, how many it
/// looked at and how many deliveries it queued.
pub(crate) struct ReplayStep {
    pub(crate) last: Option<String>,
    pub(crate) scanned: usize,
    pub(crate) queued: u64,
}

/// Queues a delivery to `endpoint`, due at `now` (or at a scheduled
/// message's time, if later), for each of up to `chunk` messages of its
/// app with ids in `(after, before)` created in `[since, until)` that it
/// subscribes to and has no delivery to yet. The endpoint is read here, in
/// the chunk's own write, so a replay follows a filter changed meanwhile
/// and stops when the endpoint is deleted or disabled.
#[allow(clippy::too_many_arguments)]
pub(crate) fn replay_chunk(
    connection: &Connection,
    endpoint: &EndpointId,
    (after, before): (&str, &str),
    since: Timestamp,
    until: Option<Timestamp>,
    now: Timestamp,
    chunk: usize,
) -> Result<ReplayStep, StoreError> {
    let mut step = ReplayStep {
        last: None,
        scanned: 0,
        queued: 0,
    };
    let Some(endpoint) = crate::catalog::endpoint_by_id(connection, endpoint)? else {
        return Ok(step);
    };
    if endpoint.disabled {
        return Ok(step);
    }
    let mut scan = connection
        .prepare_cached(
            "SELECT id, created_at, deliver_at, event_type, channels FROM messages
             WHERE app_id = ?1 AND id > ?2 AND id < ?3 AND created_at >= ?4 AND created_at < ?5
                 AND content_expunged_at IS NULL
             ORDER BY id LIMIT ?6",
        )
        .map_err(backend)?;
    let mut insert = connection
        .prepare_cached(
            "INSERT OR IGNORE INTO deliveries (msg_id, endpoint_id, app_id, status,
                 attempt_count, next_attempt_at, lease_until, trigger_type, msg_created_at,
                 updated_at)
             VALUES (?1, ?2, ?3, 1, 0, ?4, NULL, 1, ?5, ?6)",
        )
        .map_err(backend)?;
    let mut rows = scan
        .query(params![
            endpoint.app_id.as_str(),
            after,
            before,
            since.0,
            until.map_or(i64::MAX, |until| until.0),
            i64::try_from(chunk).unwrap_or(i64::MAX),
        ])
        .map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let id: String = row.get(0).map_err(backend)?;
        let created_at: i64 = row.get(1).map_err(backend)?;
        let deliver_at: Option<i64> = row.get(2).map_err(backend)?;
        let (event_type, channels) = rows::subscription(row, 3)?;
        step.scanned += 1;
        if endpoint.subscribes_to(&event_type, &channels) {
            let due = deliver_at.map_or(now.0, |at| at.max(now.0));
            let inserted = insert
                .execute(params![
                    id,
                    endpoint.id.as_str(),
                    endpoint.app_id.as_str(),
                    due,
                    created_at,
                    now.0,
                ])
                .map_err(backend)?;
            step.queued += inserted as u64;
        }
        step.last = Some(id);
    }
    Ok(step)
}

pub(crate) fn endpoint_stats(
    connection: &Connection,
    endpoint: &EndpointId,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Result<DeliveryStats, StoreError> {
    let mut statement = connection
        .prepare_cached(
            "SELECT status, COUNT(*) FROM deliveries
             WHERE endpoint_id = ?1 AND msg_created_at >= ?2 AND msg_created_at < ?3
             GROUP BY status",
        )
        .map_err(backend)?;
    let mut counts = statement
        .query(params![
            endpoint.as_str(),
            since.map_or(i64::MIN, |since| since.0),
            until.map_or(i64::MAX, |until| until.0)
        ])
        .map_err(backend)?;
    let mut stats = DeliveryStats::default();
    while let Some(row) = counts.next().map_err(backend)? {
        let status: i64 = row.get(0).map_err(backend)?;
        let count: i64 = row.get(1).map_err(backend)?;
        let count = count as u64;
        match status {
            0 => stats.success = count,
            1 => stats.pending = count,
            2 => stats.fail = count,
            3 => stats.sending = count,
            _ => {}
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod plan_tests {

    /// The failed-message search must come from the partial index, never
    /// from a walk over every delivery of the app.
    #[test]
    fn failed_messages_are_found_through_the_partial_index() {
        let mut connection = crate::connect_in_memory().expect("an in-memory database");
        crate::schema::migrate(&mut connection).expect("migrations run");
        let plan: Vec<String> = connection
            .prepare(
                "EXPLAIN QUERY PLAN SELECT m.id FROM deliveries d
                 JOIN messages m ON m.id = d.msg_id
                 WHERE d.app_id = ?1 AND d.status = 2
                 ORDER BY d.msg_id DESC LIMIT 26",
            )
            .expect("the query plans")
            .query_map(["app_x"], |row| row.get::<_, String>(3))
            .expect("the plan is read")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        assert!(
            plan.iter()
                .any(|step| step.contains("deliveries_app_failed")),
            "{plan:?}"
        );
    }
}
