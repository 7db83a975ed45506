//! Migrations, applied in order on open; `PRAGMA user_version` records how
//! many have run, and each runs in its own transaction with its bump.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: the outbound core.
    r#"
CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    uid TEXT UNIQUE,
    name TEXT NOT NULL,
    rate_limit INTEGER,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE event_types (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    archived INTEGER NOT NULL,
    deprecated INTEGER NOT NULL,
    schemas TEXT,
    feature_flag TEXT,
    group_name TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE endpoints (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    uid TEXT,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    version INTEGER NOT NULL,
    disabled INTEGER NOT NULL,
    filter_types TEXT,
    channels TEXT,
    rate_limit INTEGER,
    metadata TEXT NOT NULL,
    headers TEXT NOT NULL,
    signing_key TEXT NOT NULL,
    retired_keys TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (app_id, uid)
);
CREATE INDEX endpoints_app ON endpoints (app_id, id);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_id TEXT,
    payload TEXT NOT NULL,
    channels TEXT NOT NULL,
    tags TEXT NOT NULL,
    idempotency_key TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX messages_app ON messages (app_id, id);
CREATE INDEX messages_event_id ON messages (app_id, event_id) WHERE event_id IS NOT NULL;
CREATE UNIQUE INDEX messages_idempotency ON messages (app_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- One row per message x endpoint. status: 0 success, 1 pending, 2 fail, 3 sending.
CREATE TABLE deliveries (
    msg_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    attempt_count INTEGER NOT NULL,
    next_attempt_at INTEGER,
    lease_until INTEGER,
    trigger_type INTEGER NOT NULL,
    -- 1 when a resend was asked for while an attempt was in flight.
    resend_requested INTEGER NOT NULL DEFAULT 0,
    msg_created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (msg_id, endpoint_id)
) WITHOUT ROWID;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 1;
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE status = 3;
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, status, msg_created_at);

CREATE TABLE attempts (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    url TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    status INTEGER NOT NULL,
    response_status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    trigger_type INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX attempts_msg ON attempts (msg_id, id);
CREATE INDEX attempts_endpoint ON attempts (endpoint_id, id);
CREATE INDEX attempts_app ON attempts (app_id, id);

CREATE TABLE api_tokens (
    hash TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
"#,
    // 2: the inbound gateway. A source points at the app its messages go to.
    r#"
CREATE TABLE sources (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    uid TEXT UNIQUE,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    config TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The capped request log. outcome: 0 accepted, 1 duplicate, 2 rejected.
CREATE TABLE inbound_requests (
    id TEXT PRIMARY KEY,
    source_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    remote_addr TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    outcome INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    reason TEXT,
    msg_id TEXT
);
CREATE INDEX inbound_requests_source ON inbound_requests (source_id, id);

-- Provider event ids seen per source, until they expire.
CREATE TABLE inbound_dedupe (
    source_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (source_id, event_id)
) WITHOUT ROWID;
CREATE INDEX inbound_dedupe_expiry ON inbound_dedupe (expires_at);
"#,
    // 3: headers a message carries to every delivery (inbound forwardHeaders).
    r#"
ALTER TABLE messages ADD COLUMN headers TEXT NOT NULL DEFAULT '{}';
"#,
    // 4: the console. Messages of an app by delivery status and by event
    // type without reading the others; keys that sign console sessions and
    // portal links.
    r#"
CREATE INDEX deliveries_app_status ON deliveries (app_id, status, msg_id);
CREATE INDEX messages_app_type ON messages (app_id, event_type, id);
CREATE TABLE instance_keys (
    name TEXT PRIMARY KEY,
    key BLOB NOT NULL
);
"#,
    // 5: endpoint health. When an endpoint began failing without a success
    // since (NULL while healthy), so "failing for five days" outlasts restarts.
    r#"
ALTER TABLE endpoints ADD COLUMN failing_since INTEGER;
"#,
    // 6: the console's failed-message search reads a partial index that only
    // failed deliveries enter; the full (app, status) index it replaces was
    // updated on every delivery's every status change.
    r#"
DROP INDEX deliveries_app_status;
CREATE INDEX deliveries_app_failed ON deliveries (app_id, msg_id) WHERE status = 2;
"#,
    // 7: when an endpoint last failed, so a streak with a long quiet gap in
    // it ends (one failure, days of silence, one failure is not "failing
    // for days").
    r#"
ALTER TABLE endpoints ADD COLUMN last_failure_at INTEGER;
"#,
    // 8: a claim whose due queue starts with busy endpoints' backlogs finds
    // other endpoints' due deliveries endpoint by endpoint, instead of
    // walking the backlogs in due order.
    r#"
CREATE INDEX deliveries_endpoint_due ON deliveries (endpoint_id, next_attempt_at) WHERE status = 1;
"#,
    // 9: scheduled messages (`deliverAt`): when their deliveries are first
    // due, if later than their creation.
    r#"
ALTER TABLE messages ADD COLUMN deliver_at INTEGER;
"#,
    // 10: what tells API tokens apart when they are listed or revoked.
    r#"
ALTER TABLE api_tokens ADD COLUMN name TEXT;
ALTER TABLE api_tokens ADD COLUMN hint TEXT;
"#,
    // 11: background tasks (recover, replay), looked up by id afterwards.
    r#"
CREATE TABLE background_tasks (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
"#,
    // 12: idempotency keys of API requests other than message creation:
    // the request's fingerprint, and its answer once it has one.
    r#"
CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    claim TEXT NOT NULL,
    status INTEGER,
    body BLOB,
    created_at INTEGER NOT NULL
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
"#,
    // 13: when a message's payload was deleted on request.
    r#"
ALTER TABLE messages ADD COLUMN content_expunged_at INTEGER;
"#,
    // 14: when a message's payload is to be deleted (its own retention);
    // the index holds only payloads still waiting for that.
    r#"
ALTER TABLE messages ADD COLUMN payload_expires_at INTEGER;
CREATE INDEX messages_payload_expiry ON messages (payload_expires_at)
    WHERE payload_expires_at IS NOT NULL AND content_expunged_at IS NULL;
"#,
    // 15: the logged requests a message came from, so deleting its content
    // reaches their bodies too.
    r#"
CREATE INDEX inbound_requests_msg ON inbound_requests (msg_id) WHERE msg_id IS NOT NULL;
"#,
    // 16: what expiring an app's portal tokens left standing (see
    // `PortalExpiry`).
    r#"
CREATE TABLE portal_expiry (
    app_id TEXT PRIMARY KEY,
    void_before INTEGER NOT NULL,
    grace_before INTEGER NOT NULL,
    grace_until INTEGER NOT NULL
);
"#,
    // 17: changes no table. Payloads may now be stored compressed (see
    // `payload.rs`), which versions before it cannot read; they know 16
    // migrations, and versions from this one on refuse a newer schema.
    "SELECT 1;",
    // 18: "expire all" orders for the portal tokens of named sessions
    // beside those for all of an app's tokens (`session_id` '').
    r#"
CREATE TABLE portal_expiry_by_session (
    app_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    void_before INTEGER NOT NULL,
    grace_before INTEGER NOT NULL,
    grace_until INTEGER NOT NULL,
    PRIMARY KEY (app_id, session_id)
) WITHOUT ROWID;
INSERT INTO portal_expiry_by_session
    SELECT app_id, '', void_before, grace_before, grace_until FROM portal_expiry;
DROP TABLE portal_expiry;
ALTER TABLE portal_expiry_by_session RENAME TO portal_expiry;
"#,
];

/// Brings the schema up to date.
pub(crate) fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let applied: usize =
        connection.query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))? as usize;
    if applied > MIGRATIONS.len() {
        // A newer Herald wrote this file: its rows may be in forms this
        // version would misread.
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "the database was written by a newer Herald (schema {applied}; this one \
                 knows {})",
                MIGRATIONS.len()
            )),
        ));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(migration)?;
        // user_version cannot be bound as a parameter; the value is our own index.
        transaction.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
        transaction.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_expiry_orders_given_before_sessions_apply_to_all_tokens_after() {
        let mut connection = Connection::open_in_memory().expect("opens");
        for migration in &MIGRATIONS[..17] {
            connection.execute_batch(migration).expect("migrates");
        }
        connection
            .execute_batch(
                "INSERT INTO portal_expiry VALUES ('app_1', 10, 20, 30);
                 PRAGMA user_version = 17;",
            )
            .expect("an order of old");
        migrate(&mut connection).expect("migrates to sessions");
        let kept: (String, String, i64, i64, i64) = connection
            .query_row("SELECT * FROM portal_expiry", [], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            })
            .expect("the order is kept");
        assert_eq!(kept, ("app_1".into(), String::new(), 10, 20, 30));
    }
}
