//! Messages, their fan-out into deliveries, and the attempt log.

use deadpool_postgres::GenericClient;
use herald_core::model::{Attempt, Delivery, DeliveryStatus, Message};
use herald_core::{AppId, AttemptId, EndpointId, MessageId, Timestamp};
use herald_store::{
    AttemptFilter, CreatedMessage, DeliveryBucket, DeliveryStats, MessageFilter, Page, PageRequest,
    StoreError,
};

use crate::error::Result;
use crate::paging::{param, Select};
use crate::rows::{self, as_bigint, code, to_json};

/// Which endpoints a new message is fanned out to.
pub(crate) enum FanOut<'a> {
    /// Every enabled endpoint whose filters match.
    Matching,
    /// This endpoint alone.
    Only(&'a EndpointId),
}

/// The message insert both creations start with (`$1`–`$12`). A message whose
/// idempotency key is taken returns no row, and so has no deliveries. Its
/// deliveries are first due at `first_due`, its creation or its scheduled
/// time.
macro_rules! insert_message {
    ($deliveries:literal) => {
        concat!(
            "WITH message AS (
                 INSERT INTO messages (id, app_id, event_type, event_id, payload, channels,
                     tags, idempotency_key, created_at, headers, deliver_at, payload_expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (app_id, idempotency_key) WHERE idempotency_key IS NOT NULL
                 DO NOTHING
                 RETURNING id, app_id, created_at,
                     GREATEST(created_at, COALESCE(deliver_at, created_at)) AS first_due
             ), fanned AS (
                 INSERT INTO deliveries (msg_id, endpoint_id, app_id, status, attempt_count,
                     next_attempt_at, trigger_type, msg_created_at, updated_at) ",
            $deliveries,
            " RETURNING 1
             )
             SELECT (SELECT COUNT(*) FROM message), (SELECT COUNT(*) FROM fanned)"
        )
    };
}

/// Every enabled endpoint of the app whose filters match.
const CREATE_FANNED_OUT: &str = insert_message!(
    "SELECT m.id, e.id, m.app_id, 1, 0, m.first_due, 0, m.created_at, m.created_at
     FROM message m JOIN endpoints e ON e.app_id = m.app_id
     WHERE NOT e.disabled
         AND (e.filter_types IS NULL OR $3 = ANY(e.filter_types))
         AND (e.channels IS NULL OR e.channels && $6)"
);

/// The one endpoint in `$13`.
const CREATE_FOR_ENDPOINT: &str = insert_message!(
    "SELECT m.id, $13::text, m.app_id, 1, 0, m.first_due, 0, m.created_at, m.created_at
     FROM message m"
);

/// Inserts the message and its deliveries; the caller's transaction makes
/// them one unit. An idempotency key already used in the app answers the
/// first message, also when another node is inserting it right now: the
/// unique index makes the insert wait for that transaction and then skip.
pub(crate) async fn create_message(
    client: &impl GenericClient,
    message: &Message,
    idempotency_key: Option<&str>,
    fan_out: FanOut<'_>,
) -> Result<CreatedMessage> {
    let channels: Vec<&str> = message
        .channels
        .iter()
        .map(|channel| channel.as_str())
        .collect();
    // One statement, one round trip: the message, then (only if it was
    // inserted) its deliveries. Fan-out is computed from the endpoints in
    // the statement's snapshot, by the rule of `Endpoint::subscribes_to`:
    // no filter matches everything, a channel filter needs one channel in
    // common.
    let headers = to_json(&message.headers);
    let deliver_at = message.deliver_at.map(|at| at.0);
    let payload_expires_at = message.payload_expires_at.map(|at| at.0);
    let fields: [&(dyn tokio_postgres::types::ToSql + Sync); 12] = [
        &message.id.as_str(),
        &message.app_id.as_str(),
        &message.event_type.as_str(),
        &message.event_id,
        &message.payload,
        &channels,
        &message.tags,
        &idempotency_key,
        &message.created_at.0,
        &headers,
        &deliver_at,
        &payload_expires_at,
    ];
    let mut params = fields.to_vec();
    let only = match fan_out {
        FanOut::Matching => None,
        FanOut::Only(endpoint) => Some(endpoint.as_str()),
    };
    let statement = match &only {
        None => CREATE_FANNED_OUT,
        Some(endpoint) => {
            params.push(endpoint);
            CREATE_FOR_ENDPOINT
        }
    };
    let statement = client.prepare_cached(statement).await?;
    let created = client.query_one(&statement, &params).await?;
    let inserted: i64 = created.try_get(0)?;
    let deliveries: i64 = created.try_get(1)?;
    if inserted == 0 {
        let sql = format!(
            "SELECT {} FROM messages WHERE app_id = $1 AND idempotency_key = $2",
            rows::MESSAGE_COLUMNS
        );
        let statement = client.prepare_cached(&sql).await?;
        let earlier = client
            .query_one(&statement, &[&message.app_id.as_str(), &idempotency_key])
            .await?;
        return Ok(CreatedMessage {
            message: rows::message(&earlier)?,
            is_new: false,
            deliveries: 0,
        });
    }
    Ok(CreatedMessage {
        message: message.clone(),
        is_new: true,
        deliveries: usize::try_from(deliveries).unwrap_or(usize::MAX),
    })
}

pub(crate) async fn expunge_content(
    client: &impl GenericClient,
    app: &AppId,
    msg: &MessageId,
    now: Timestamp,
) -> Result<bool> {
    // One statement, so the message and its logged requests change together.
    let statement = client
        .prepare_cached(
            "WITH expunged AS (
                 UPDATE messages SET payload = '{}', content_expunged_at = $3
                 WHERE id = $1 AND app_id = $2 RETURNING id
             ), requests AS (
                 UPDATE inbound_requests SET body = ''::bytea
                 WHERE msg_id IN (SELECT id FROM expunged)
             )
             SELECT COUNT(*) FROM expunged",
        )
        .await?;
    let changed: i64 = client
        .query_one(&statement, &[&msg.as_str(), &app.as_str(), &now.0])
        .await?
        .try_get(0)?;
    Ok(changed > 0)
}

/// Deletes the payloads (at most `limit`) whose retention ended by `now`,
/// as `DELETE …/content` does; answers how many. Rows another node is
/// expunging right now are left to it.
pub(crate) async fn expunge_expired_payloads(
    client: &impl GenericClient,
    now: Timestamp,
    limit: usize,
) -> Result<u64> {
    let statement = client
        .prepare_cached(
            "WITH expunged AS (
                 UPDATE messages SET payload = '{}', content_expunged_at = $1
                 WHERE id IN (
                     SELECT id FROM messages
                     WHERE payload_expires_at <= $1 AND content_expunged_at IS NULL
                     ORDER BY payload_expires_at LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 RETURNING id
             ), requests AS (
                 UPDATE inbound_requests SET body = ''::bytea
                 WHERE msg_id IN (SELECT id FROM expunged)
             )
             SELECT COUNT(*) FROM expunged",
        )
        .await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let expunged: i64 = client
        .query_one(&statement, &[&now.0, &limit])
        .await?
        .try_get(0)?;
    Ok(u64::try_from(expunged).unwrap_or(0))
}

pub(crate) async fn message_by_ref(
    client: &impl GenericClient,
    app: &AppId,
    reference: &str,
) -> Result<Option<Message>> {
    let sql = format!(
        "(SELECT {columns} FROM messages WHERE id = $2 AND app_id = $1)
         UNION ALL
         (SELECT {columns} FROM messages WHERE app_id = $1 AND event_id = $2
          ORDER BY id DESC LIMIT 1)
         LIMIT 1",
        columns = rows::MESSAGE_COLUMNS
    );
    let statement = client.prepare_cached(&sql).await?;
    client
        .query_opt(&statement, &[&app.as_str(), &reference])
        .await?
        .as_ref()
        .map(rows::message)
        .transpose()
}

fn time_bounds(
    select: Select,
    column: &str,
    before: Option<Timestamp>,
    after: Option<Timestamp>,
) -> Select {
    let select = match before {
        Some(before) => select.and(&format!("{column} < ?"), [param(before.0)]),
        None => select,
    };
    match after {
        Some(after) => select.and(&format!("{column} > ?"), [param(after.0)]),
        None => select,
    }
}

pub(crate) async fn list_messages(
    client: &impl GenericClient,
    app: &AppId,
    filter: &MessageFilter,
    page: &PageRequest,
) -> Result<Page<Message>> {
    let select = Select::new(rows::MESSAGE_COLUMNS, "messages")
        .and("app_id = ?", [param(app.as_str().to_owned())]);
    message_conditions(select, "messages", filter)
        .page(client, "id", page, rows::message)
        .await
}

/// The conditions of `filter` on the messages table known as `table`.
fn message_conditions(mut select: Select, table: &str, filter: &MessageFilter) -> Select {
    select = select.and_any(&format!("{table}.event_type"), &filter.event_types);
    if let Some(channel) = &filter.channel {
        select = select.and(
            &format!("? = ANY({table}.channels)"),
            [param(channel.clone())],
        );
    }
    if let Some(tag) = &filter.tag {
        select = select.and(&format!("? = ANY({table}.tags)"), [param(tag.clone())]);
    }
    time_bounds(
        select,
        &format!("{table}.created_at"),
        filter.before,
        filter.after,
    )
}

/// Failed messages come from the partial index `deliveries_app_failed`
/// (only failed deliveries enter it, so the delivery path never pays for
/// it); a message with several failed deliveries is kept at its first
/// endpoint only. Other statuses walk the app's messages newest first and
/// keep those with a delivery in that status: delivered ones are most
/// messages, pending or sending ones mostly the newest.
pub(crate) async fn list_messages_with_status(
    client: &impl GenericClient,
    app: &AppId,
    status: DeliveryStatus,
    filter: &MessageFilter,
    page: &PageRequest,
) -> Result<Page<Message>> {
    let columns = rows::prefixed("m", rows::MESSAGE_COLUMNS);
    if status == DeliveryStatus::Fail {
        // Written out, not bound, so the planner can use the partial index.
        let select = Select::new(&columns, "deliveries d JOIN messages m ON m.id = d.msg_id")
            .and(
                "d.app_id = ? AND d.status = 2",
                [param(app.as_str().to_owned())],
            )
            .and(
                "NOT EXISTS (SELECT 1 FROM deliveries other WHERE other.msg_id = d.msg_id
                     AND other.status = 2 AND other.endpoint_id < d.endpoint_id)",
                [],
            );
        return message_conditions(select, "m", filter)
            .page(client, "d.msg_id", page, rows::message)
            .await;
    }
    let select = Select::new(&columns, "messages m")
        .and("m.app_id = ?", [param(app.as_str().to_owned())])
        .and(
            "EXISTS (SELECT 1 FROM deliveries d WHERE d.msg_id = m.id AND d.status = ?)",
            [param(code(status.code()))],
        );
    message_conditions(select, "m", filter)
        .page(client, "m.id", page, rows::message)
        .await
}

/// Counts by bucket over `deliveries_endpoint` (endpoint, status, message
/// time): one range read per endpoint and status, never the whole table.
pub(crate) async fn delivery_histogram(
    client: &impl GenericClient,
    app: &AppId,
    endpoint: Option<&EndpointId>,
    since: Timestamp,
    until: Timestamp,
    bucket_millis: i64,
) -> Result<Vec<DeliveryBucket>> {
    let bucket_millis = bucket_millis.max(1);
    let statement = client
        .prepare_cached(
            "SELECT (d.msg_created_at - $3) / $5 AS bucket, d.status, COUNT(*)
             FROM endpoints e JOIN deliveries d ON d.endpoint_id = e.id
             WHERE e.app_id = $1 AND ($2::text IS NULL OR e.id = $2::text)
                 AND d.status IN (0, 1, 2, 3)
                 AND d.msg_created_at >= $3 AND d.msg_created_at < $4
             GROUP BY bucket, d.status
             ORDER BY bucket",
        )
        .await?;
    let counted = client
        .query(
            &statement,
            &[
                &app.as_str(),
                &endpoint.map(EndpointId::as_str),
                &since.0,
                &until.0,
                &bucket_millis,
            ],
        )
        .await?;
    let mut buckets: Vec<DeliveryBucket> = Vec::new();
    for row in counted {
        let bucket: i64 = row.try_get(0)?;
        let status: i32 = row.try_get(1)?;
        let count = u64::try_from(row.try_get::<_, i64>(2)?).unwrap_or(0);
        let start = Timestamp(since.0 + bucket * bucket_millis);
        if buckets.last().is_none_or(|last| last.start != start) {
            buckets.push(DeliveryBucket {
                start,
                succeeded: 0,
                failed: 0,
                waiting: 0,
            });
        }
        let Some(current) = buckets.last_mut() else {
            continue;
        };
        match DeliveryStatus::from_code(i64::from(status)) {
            Some(DeliveryStatus::Success) => current.succeeded += count,
            Some(DeliveryStatus::Fail) => current.failed += count,
            _ => current.waiting += count,
        }
    }
    Ok(buckets)
}

pub(crate) async fn deliveries_of_message(
    client: &impl GenericClient,
    app: &AppId,
    msg: &MessageId,
) -> Result<Vec<Delivery>> {
    Select::new(rows::DELIVERY_COLUMNS, "deliveries")
        .and(
            "msg_id = ? AND app_id = ?",
            [
                param(msg.as_str().to_owned()),
                param(app.as_str().to_owned()),
            ],
        )
        .all(client, rows::delivery)
        .await
}

/// The messages fanned out to one endpoint, newest first, each with its
/// delivery to that endpoint.
pub(crate) async fn list_endpoint_messages(
    client: &impl GenericClient,
    app: &AppId,
    endpoint: &EndpointId,
    status: Option<DeliveryStatus>,
    filter: &MessageFilter,
    page: &PageRequest,
) -> Result<Page<(Message, Delivery)>> {
    let columns = format!(
        "{}, {}",
        rows::prefixed("m", rows::MESSAGE_COLUMNS),
        rows::prefixed("d", rows::DELIVERY_COLUMNS)
    );
    let mut select = Select::new(&columns, "deliveries d JOIN messages m ON m.id = d.msg_id").and(
        "d.endpoint_id = ? AND d.app_id = ?",
        [
            param(endpoint.as_str().to_owned()),
            param(app.as_str().to_owned()),
        ],
    );
    if let Some(status) = status {
        select = select.and("d.status = ?", [param(code(status.code()))]);
    }
    message_conditions(select, "m", filter)
        .page(client, "d.msg_id", page, |row| {
            Ok((
                rows::message(row)?,
                rows::delivery_at(row, rows::MESSAGE_COLUMN_COUNT)?,
            ))
        })
        .await
}

pub(crate) async fn list_attempts(
    client: &impl GenericClient,
    app: &AppId,
    filter: &AttemptFilter,
    page: &PageRequest,
) -> Result<Page<Attempt>> {
    let from = if filter.needs_messages() {
        "attempts a JOIN messages m ON m.id = a.msg_id"
    } else {
        "attempts a"
    };
    let mut select = Select::new(rows::ATTEMPT_COLUMNS, from)
        .and("a.app_id = ?", [param(app.as_str().to_owned())])
        .and_any("m.event_type", &filter.event_types);
    if let Some(msg) = &filter.msg_id {
        select = select.and("a.msg_id = ?", [param(msg.as_str().to_owned())]);
    }
    if let Some(endpoint) = &filter.endpoint_id {
        select = select.and("a.endpoint_id = ?", [param(endpoint.as_str().to_owned())]);
    }
    if let Some(status) = filter.status {
        select = select.and("a.status = ?", [param(code(status.code()))]);
    }
    if let Some((low, high)) = filter.status_code_range() {
        select = select.and(
            "a.response_status_code >= ? AND a.response_status_code < ?",
            [param(low), param(high)],
        );
    }
    if let Some(channel) = &filter.channel {
        select = select.and("? = ANY(m.channels)", [param(channel.clone())]);
    }
    if let Some(tag) = &filter.tag {
        select = select.and("? = ANY(m.tags)", [param(tag.clone())]);
    }
    time_bounds(select, "a.timestamp", filter.before, filter.after)
        .page(client, "a.id", page, rows::attempt)
        .await
}

pub(crate) async fn attempt(
    client: &impl GenericClient,
    app: &AppId,
    msg: &MessageId,
    id: &AttemptId,
) -> Result<Option<Attempt>> {
    Select::new(rows::ATTEMPT_COLUMNS, "attempts a")
        .and(
            "a.id = ? AND a.msg_id = ? AND a.app_id = ?",
            [
                param(id.as_str().to_owned()),
                param(msg.as_str().to_owned()),
                param(app.as_str().to_owned()),
            ],
        )
        .all(client, rows::attempt)
        .await
        .map(|found| found.into_iter().next())
}

pub(crate) async fn expunge_attempt_content(
    client: &impl GenericClient,
    app: &AppId,
    msg: &MessageId,
    id: &AttemptId,
) -> Result<bool> {
    let changed = client
        .execute(
            "UPDATE attempts SET response = '' WHERE id = $1 AND msg_id = $2 AND app_id = $3",
            &[&id.as_str(), &msg.as_str(), &app.as_str()],
        )
        .await?;
    Ok(changed > 0)
}

pub(crate) async fn resend(
    client: &impl GenericClient,
    app: &AppId,
    msg: &MessageId,
    endpoint: &EndpointId,
    now: Timestamp,
) -> Result<()> {
    let created_at: Option<i64> = client
        .query_opt(
            "SELECT created_at FROM messages WHERE id = $1 AND app_id = $2",
            &[&msg.as_str(), &app.as_str()],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    let Some(created_at) = created_at else {
        return Err(StoreError::NotFound("message").into());
    };
    // A delivery being sent keeps its lease; the resend is remembered and
    // queued when that attempt is recorded. A pending delivery keeps its
    // retry schedule and is only brought forward: a failed resend must not
    // end it early. (Every right-hand side reads the row as it was.)
    let statement = client
        .prepare_cached(
            "INSERT INTO deliveries AS d (msg_id, endpoint_id, app_id, status, attempt_count,
                 next_attempt_at, trigger_type, msg_created_at, updated_at)
             VALUES ($1, $2, $3, 1, 0, $4, 1, $5, $4)
             ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET
                 resend_requested = (d.status = 3),
                 next_attempt_at = CASE WHEN d.status = 3 THEN d.next_attempt_at ELSE $4 END,
                 trigger_type = CASE WHEN d.status IN (1, 3) THEN d.trigger_type ELSE 1 END,
                 status = CASE WHEN d.status = 3 THEN 3 ELSE 1 END,
                 updated_at = $4",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &msg.as_str(),
                &endpoint.as_str(),
                &app.as_str(),
                &now.0,
                &created_at,
            ],
        )
        .await?;
    Ok(())
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
/// subscribes to (the rule of fan-out) and has no delivery to yet. Nothing
/// once the endpoint is deleted or disabled.
pub(crate) async fn replay_chunk(
    client: &impl GenericClient,
    endpoint: &EndpointId,
    (after, before): (&str, &str),
    since: Timestamp,
    until: Option<Timestamp>,
    now: Timestamp,
    chunk: usize,
) -> Result<ReplayStep> {
    let statement = client
        .prepare_cached(
            "WITH scanned AS (
                 SELECT m.id, m.app_id, m.event_type, m.channels, m.created_at, m.deliver_at
                 FROM messages m JOIN endpoints e ON e.app_id = m.app_id AND e.id = $1
                 WHERE m.id > $2 AND m.id < $3 AND m.created_at >= $4 AND m.created_at < $5
                     AND m.content_expunged_at IS NULL AND NOT e.disabled
                 ORDER BY m.id LIMIT $7
             ), queued AS (
                 INSERT INTO deliveries (msg_id, endpoint_id, app_id, status, attempt_count,
                     next_attempt_at, trigger_type, msg_created_at, updated_at)
                 SELECT s.id, e.id, s.app_id, 1, 0, GREATEST($6, COALESCE(s.deliver_at, $6)), 1,
                     s.created_at, $6
                 FROM scanned s JOIN endpoints e ON e.id = $1
                 WHERE (e.filter_types IS NULL OR s.event_type = ANY(e.filter_types))
                     AND (e.channels IS NULL OR e.channels && s.channels)
                 ON CONFLICT (msg_id, endpoint_id) DO NOTHING
                 RETURNING 1
             )
             SELECT (SELECT MAX(id) FROM scanned), (SELECT COUNT(*) FROM scanned),
                 (SELECT COUNT(*) FROM queued)",
        )
        .await?;
    let row = client
        .query_one(
            &statement,
            &[
                &endpoint.as_str(),
                &after,
                &before,
                &since.0,
                &until.map_or(i64::MAX, |until| until.0),
                &now.0,
                &as_bigint(chunk),
            ],
        )
        .await?;
    let scanned: i64 = row.try_get(1)?;
    let queued: i64 = row.try_get(2)?;
    Ok(ReplayStep {
        last: row.try_get(0)?,
        scanned: usize::try_from(scanned).unwrap_or(0),
        queued: u64::try_from(queued).unwrap_or(0),
    })
}

/// Re-queues up to `chunk` failed deliveries; the caller repeats until
/// none is left, so a large recovery never holds its row locks for long.
pub(crate) async fn recover_chunk(
    client: &impl GenericClient,
    endpoint: &EndpointId,
    since: Timestamp,
    until: Option<Timestamp>,
    now: Timestamp,
    chunk: usize,
) -> Result<u64> {
    let statement = client
        .prepare_cached(
            "UPDATE deliveries SET status = 1, next_attempt_at = $4, trigger_type = 1,
                 updated_at = $4
             WHERE status = 2 AND (msg_id, endpoint_id) IN (
                 SELECT msg_id, endpoint_id FROM deliveries
                 WHERE endpoint_id = $1 AND status = 2 AND msg_created_at >= $2
                     AND msg_created_at < $3
                     -- failed again since this recovery began: not picked twice
                     AND updated_at < $4
                 LIMIT $5
                 FOR UPDATE)",
        )
        .await?;
    Ok(client
        .execute(
            &statement,
            &[
                &endpoint.as_str(),
                &since.0,
                &until.map_or(i64::MAX, |until| until.0),
                &now.0,
                &as_bigint(chunk),
            ],
        )
        .await?)
}

pub(crate) async fn endpoint_stats(
    client: &impl GenericClient,
    endpoint: &EndpointId,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Result<DeliveryStats> {
    let statement = client
        .prepare_cached(
            "SELECT status, COUNT(*) FROM deliveries
             WHERE endpoint_id = $1 AND msg_created_at >= $2 AND msg_created_at < $3
             GROUP BY status",
        )
        .await?;
    let counts = client
        .query(
            &statement,
            &[
                &endpoint.as_str(),
                &since.map_or(i64::MIN, |since| since.0),
                &until.map_or(i64::MAX, |until| until.0),
            ],
        )
        .await?;
    let mut stats = DeliveryStats::default();
    for row in counts {
        let status: i32 = row.try_get(0)?;
        let count: i64 = row.try_get(1)?;
        let count = u64::try_from(count).unwrap_or(0);
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
