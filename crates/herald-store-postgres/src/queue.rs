//! The delivery queue shared by every node: leasing due deliveries and
//! recording their attempts.

use deadpool_postgres::GenericClient;
use herald_core::model::{Attempt, Endpoint, Message, TriggerType};
use herald_core::{AppId, EndpointId, MessageId, Timestamp};
use herald_store::{Claim, DeliveryOutcome, Recorded};

use crate::catalog::endpoint_by_id;
use crate::error::Result;
use crate::liveness;
use crate::rows::{self, as_bigint, as_int, code, count};
use crate::schema::LOCK_CLASS_CLAIM;

/// How many due deliveries a claim looks at per delivery it may lease.
const CLAIM_WINDOW: usize = 4;

/// Leases due deliveries to `node`. Runs inside the caller's transaction.
///
/// The transaction first takes the claim lock, so claims of all nodes run
/// one at a time and each sees every lease committed before it: an
/// endpoint's deliveries leased (and not expired) by *other* nodes count
/// toward `per_endpoint`, which keeps the per-endpoint cap across nodes
/// instead of multiplying it by their number. This node's own leases are
/// already bounded by its engine (it passes its saturated endpoints).
/// `FOR UPDATE SKIP LOCKED` passes over rows another transaction is
/// writing (an attempt being recorded, a resend) instead of waiting.
///
/// A claim commits with `synchronous_commit = off`: `COMMIT` returns
/// before its WAL is flushed (the WAL writer flushes it within a few
/// hundred milliseconds), so claims no longer hold the claim lock, and
/// every node's claims wait, through a disk flush each. What that risks:
/// * a Herald node killed with `kill -9` loses nothing: the commit
///   happened in the database, and the lease is freed once the node is
///   seen to be silent (or it runs out);
/// * PostgreSQL crashing (or the machine losing power) may lose the last
///   claims committed before it. Those deliveries come back as they were
///   before the claim, pending and due, and are sent again: a duplicate,
///   which at-least-once delivery allows, never a loss. A claim's effects
///   cannot outlive it either: anything committed after it that depends
///   on it (an attempt record, a message) commits synchronously, and a
///   synchronous commit flushes all WAL before it, this claim's included;
/// * the lease token sequence may hand out a lost claim's token again
///   after such a crash. A node still holding that token would then have
///   its outcome accepted for the newer claim of the same delivery: the
///   delivery was attempted by both, and the newer attempt's outcome
///   comes back stale; it ends or is retried once, as with any duplicate.
///
/// Messages, inbound requests and attempt records keep synchronous
/// commits: their `Ok` must mean durable.
pub(crate) async fn claim_due(
    client: &impl GenericClient,
    node: &str,
    now: Timestamp,
    limit: usize,
    per_endpoint: usize,
    saturated: &[EndpointId],
    lease_until: Timestamp,
) -> Result<Vec<Claim>> {
    // The same round trip makes this transaction's commit asynchronous
    // (see the function's comment).
    let statement = client
        .prepare_cached(
            "SELECT set_config('synchronous_commit', 'off', true),
                 pg_advisory_xact_lock($1, hashtext(current_schema()))",
        )
        .await?;
    client.execute(&statement, &[&LOCK_CLASS_CLAIM]).await?;
    let saturated: Vec<&str> = saturated.iter().map(EndpointId::as_str).collect();
    // The innermost query walks the partial index on due pending deliveries
    // in due order and stops after a bounded window, so a large backlog
    // costs no more than the window.
    let statement = client
        .prepare_cached(
            "WITH due AS (
                 SELECT msg_id, endpoint_id, next_attempt_at FROM deliveries
                 WHERE status = 1 AND next_attempt_at <= $1 AND NOT (endpoint_id = ANY($2))
                 ORDER BY next_attempt_at
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED
             ), held AS (
                 SELECT endpoint_id, COUNT(*) AS leases FROM deliveries
                 WHERE status = 3 AND lease_until > $1 AND lease_owner <> $4
                     AND endpoint_id IN (SELECT endpoint_id FROM due)
                 GROUP BY endpoint_id
             ), chosen AS (
                 SELECT msg_id, endpoint_id FROM (
                     SELECT due.msg_id, due.endpoint_id, due.next_attempt_at,
                         ROW_NUMBER() OVER (
                             PARTITION BY due.endpoint_id ORDER BY due.next_attempt_at
                         ) + COALESCE(held.leases, 0) AS rank
                     FROM due LEFT JOIN held ON held.endpoint_id = due.endpoint_id
                 ) ranked
                 WHERE rank <= $5
                 ORDER BY next_attempt_at
                 LIMIT $6
             )
             UPDATE deliveries d SET status = 3, lease_until = $7,
                 lease_token = nextval('lease_tokens'), lease_owner = $4, updated_at = $1
             FROM chosen
             WHERE d.msg_id = chosen.msg_id AND d.endpoint_id = chosen.endpoint_id
             RETURNING d.app_id, d.msg_id, d.endpoint_id, d.attempt_count, d.trigger_type,
                 d.next_attempt_at, d.lease_token",
        )
        .await?;
    let found = client
        .query(
            &statement,
            &[
                &now.0,
                &saturated,
                &as_bigint(limit.saturating_mul(CLAIM_WINDOW)),
                &node,
                &as_bigint(per_endpoint),
                &as_bigint(limit),
                &lease_until.0,
            ],
        )
        .await?;
    let mut claims = Vec::with_capacity(found.len());
    for row in found {
        let due: i64 = row.try_get(5)?;
        let claim = Claim {
            app_id: AppId::from_stored(row.try_get(0)?),
            msg_id: MessageId::from_stored(row.try_get(1)?),
            endpoint_id: EndpointId::from_stored(row.try_get(2)?),
            attempt_count: count(row.try_get(3)?)?,
            trigger: TriggerType::from_code(i64::from(row.try_get::<_, i32>(4)?)),
            lease_until,
            lease_token: row.try_get(6)?,
        };
        claims.push((due, claim));
    }
    // RETURNING yields rows in no promised order, so the due order the
    // window picked by is restored here.
    claims.sort_by_key(|(due, _)| *due);
    Ok(claims.into_iter().map(|(_, claim)| claim).collect())
}

/// Says `node` is alive, in the caller's transaction (see `crate::liveness`).
pub(crate) async fn beat(client: &impl GenericClient, node: &str) -> Result<()> {
    let statement = client.prepare_cached(liveness::BEAT).await?;
    client
        .execute(&statement, &[&node, &liveness::gap_ms()])
        .await?;
    Ok(())
}

pub(crate) async fn next_due_at(client: &impl GenericClient) -> Result<Option<Timestamp>> {
    let statement = client
        .prepare_cached("SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 1")
        .await?;
    let next: Option<i64> = client.query_one(&statement, &[]).await?.try_get(0)?;
    Ok(next.map(Timestamp))
}

pub(crate) async fn claim_target(
    client: &impl GenericClient,
    claim: &Claim,
) -> Result<Option<(Message, Option<Endpoint>)>> {
    let sql = format!(
        "SELECT {} FROM messages WHERE id = $1",
        rows::MESSAGE_COLUMNS
    );
    let statement = client.prepare_cached(&sql).await?;
    // Both reads go out together (the connection pipelines them).
    let msg_id = claim.msg_id.as_str();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&msg_id];
    let (message, endpoint) = tokio::join!(
        client.query_opt(&statement, &params),
        endpoint_by_id(client, &claim.endpoint_id)
    );
    let Some(message) = message?.as_ref().map(rows::message).transpose()? else {
        return Ok(None);
    };
    Ok(Some((message, endpoint?)))
}

/// The leased delivery an outcome is for, if `$7` still holds its lease,
/// locked, with whether a resend was asked for during the attempt.
const LEASED: &str = "leased AS (
        SELECT resend_requested AS resend FROM deliveries
        WHERE msg_id = $1 AND endpoint_id = $2 AND status = 3 AND lease_token = $7
        FOR UPDATE
    )";

/// Moves [`LEASED`]'s delivery on with its outcome (`$1`–`$7`); `$8` keeps
/// its trigger (no attempt was made: a manual resend put off stays
/// manual). Answers whether a queued resend took the outcome's place.
const APPLY_OUTCOME: &str = "UPDATE deliveries SET
        status = CASE WHEN leased.resend THEN 1 ELSE $3::integer END,
        next_attempt_at = CASE WHEN leased.resend THEN $6::bigint ELSE $5::bigint END,
        trigger_type = CASE WHEN leased.resend THEN 1
            WHEN $8::boolean THEN deliveries.trigger_type ELSE 0 END,
        resend_requested = false,
        attempt_count = $4::integer, lease_until = NULL, lease_token = NULL,
        lease_owner = NULL, updated_at = $6
    FROM leased
    WHERE msg_id = $1 AND endpoint_id = $2 AND status = 3 AND lease_token = $7
    RETURNING leased.resend";

/// Logs the attempt and moves the delivery, in the caller's transaction.
pub(crate) async fn record_attempt(
    client: &impl GenericClient,
    attempt: Option<&Attempt>,
    outcome: &DeliveryOutcome,
) -> Result<Recorded> {
    // Fenced by the lease token: if it no longer matches, another claim
    // (on this node or another) owns the delivery now, or it was ended,
    // and this outcome is stale. The attempt is logged in the same
    // statement (one round trip), whether or not the outcome applies, and
    // only while the message exists: an attempt that ends after its app
    // was deleted leaves no orphan row behind.
    let keep_trigger = attempt.is_none();
    let outcome_params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
        &outcome.msg_id.as_str(),
        &outcome.endpoint_id.as_str(),
        &code(outcome.status.code()),
        &as_int(outcome.attempt_count),
        &outcome.next_attempt_at.map(|at| at.0),
        &outcome.updated_at.0,
        &outcome.lease_token,
        &keep_trigger,
    ];
    // No row means the lease was gone.
    let found = match attempt {
        Some(attempt) => {
            let statement = client
                .prepare_cached(&format!(
                    "WITH logged AS (
                         INSERT INTO attempts (id, app_id, msg_id, endpoint_id, url, timestamp,
                             status, response_status_code, response, duration_ms, trigger_type,
                             error)
                         SELECT $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20
                         WHERE EXISTS (SELECT 1 FROM messages WHERE id = $11)
                     ), {LEASED} {APPLY_OUTCOME}"
                ))
                .await?;
            let error = attempt.error.map(|error| error.as_str());
            let attempt_params: [&(dyn tokio_postgres::types::ToSql + Sync); 12] = [
                &attempt.id.as_str(),
                &attempt.app_id.as_str(),
                &attempt.msg_id.as_str(),
                &attempt.endpoint_id.as_str(),
                &attempt.url,
                &attempt.timestamp.0,
                &code(attempt.status.code()),
                &attempt.response_status_code,
                &attempt.response,
                &attempt.response_duration_ms,
                &code(attempt.trigger.code()),
                &error,
            ];
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                outcome_params.into_iter().chain(attempt_params).collect();
            client.query_opt(&statement, &params).await?
        }
        None => {
            let statement = client
                .prepare_cached(&format!("WITH {LEASED} {APPLY_OUTCOME}"))
                .await?;
            client.query_opt(&statement, &outcome_params).await?
        }
    };
    let resend: Option<bool> = found.map(|row| row.try_get(0)).transpose()?;
    Ok(match resend {
        None => {
            tracing::warn!(
                msg = %outcome.msg_id,
                endpoint = %outcome.endpoint_id,
                "delivery changed hands during its attempt; outcome not applied"
            );
            Recorded::Stale
        }
        Some(true) => Recorded::ResendQueued,
        Some(false) => Recorded::Applied,
    })
}

pub(crate) async fn release_leases(
    client: &impl GenericClient,
    node: &str,
    now: Timestamp,
    all: bool,
) -> Result<u64> {
    // Leases run out by the nodes' clock, as they were taken; a node is
    // silent by the database's, as it beat, and only while another node
    // has beaten without a gap all that time (see `crate::liveness`).
    let statement = client
        .prepare_cached(
            "UPDATE deliveries SET status = 1, lease_until = NULL, lease_token = NULL,
                 lease_owner = NULL, updated_at = $1
             WHERE status = 3 AND ($2 OR lease_until < $1 OR lease_owner IN (
                 SELECT silent.id
                 FROM nodes silent,
                     (SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT AS now) c
                 WHERE silent.id <> $4 AND silent.heartbeat_at < c.now - $3
                     AND EXISTS (
                         SELECT 1 FROM nodes witness
                         WHERE witness.id <> silent.id
                             AND witness.heartbeat_at >= c.now - $5
                             AND witness.since <= c.now - $3
                     )
             ))",
        )
        .await?;
    let (silence, gap) = (liveness::silence_ms(), liveness::gap_ms());
    Ok(client
        .execute(&statement, &[&now.0, &all, &silence, &node, &gap])
        .await?)
}
