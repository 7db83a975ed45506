//! Migrations, applied in order when a node connects. Several nodes may
//! start at once: the whole check-and-apply runs in one transaction under
//! an advisory lock, so one node migrates and the others wait, then find
//! nothing left to do. PostgreSQL's DDL is transactional, so a migration
//! either lands whole with its version bump or not at all.
//!
//! Every key column is `COLLATE "C"`: ids sort by creation time only when
//! compared byte by byte, whatever the database's default collation is.

use tokio_postgres::Client;

use crate::error::Result;

/// Distinguishes Herald's advisory locks from any other application's.
pub(crate) const LOCK_CLASS_MIGRATE: i32 = 0x4865_7201;
/// The lock that serialises claims (see `queue::claim_due`).
pub(crate) const LOCK_CLASS_CLAIM: i32 = 0x4865_7202;

const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite backend has after its fifth migration.
    r#"
CREATE TABLE apps (
    id TEXT COLLATE "C" PRIMARY KEY,
    uid TEXT COLLATE "C" UNIQUE,
    name TEXT NOT NULL,
    rate_limit BIGINT,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE event_types (
    name TEXT COLLATE "C" PRIMARY KEY,
    description TEXT NOT NULL,
    archived BOOLEAN NOT NULL,
    deprecated BOOLEAN NOT NULL,
    schemas TEXT,
    feature_flag TEXT,
    group_name TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE endpoints (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL,
    uid TEXT COLLATE "C",
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    version INTEGER NOT NULL,
    disabled BOOLEAN NOT NULL,
    filter_types TEXT[],
    channels TEXT[],
    rate_limit BIGINT,
    metadata TEXT NOT NULL,
    headers TEXT NOT NULL,
    signing_key TEXT NOT NULL,
    retired_keys TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- When the endpoint began failing without a success since (NULL while
    -- healthy), so "failing for five days" outlasts restarts.
    failing_since BIGINT,
    UNIQUE (app_id, uid)
);
CREATE INDEX endpoints_app ON endpoints (app_id, id);

CREATE TABLE messages (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C",
    payload TEXT NOT NULL,
    channels TEXT[] NOT NULL,
    tags TEXT[] NOT NULL,
    headers TEXT NOT NULL,
    idempotency_key TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX messages_app ON messages (app_id, id);
CREATE INDEX messages_app_type ON messages (app_id, event_type, id);
CREATE INDEX messages_event_id ON messages (app_id, event_id) WHERE event_id IS NOT NULL;
CREATE UNIQUE INDEX messages_idempotency ON messages (app_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- One row per message x endpoint. status: 0 success, 1 pending, 2 fail, 3 sending.
-- A leased (sending) row carries its lease: when it ends, a fencing token
-- unique over every claim on every node, and the node holding it.
CREATE TABLE deliveries (
    msg_id TEXT COLLATE "C" NOT NULL,
    endpoint_id TEXT COLLATE "C" NOT NULL,
    app_id TEXT COLLATE "C" NOT NULL,
    status INTEGER NOT NULL,
    attempt_count INTEGER NOT NULL,
    next_attempt_at BIGINT,
    lease_until BIGINT,
    lease_token BIGINT,
    lease_owner TEXT,
    trigger_type INTEGER NOT NULL,
    -- A resend asked for while an attempt was in flight.
    resend_requested BOOLEAN NOT NULL DEFAULT false,
    msg_created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (msg_id, endpoint_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 1;
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE status = 3;
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, status, msg_created_at);
CREATE INDEX deliveries_app_status ON deliveries (app_id, status, msg_id);
CREATE SEQUENCE lease_tokens;

CREATE TABLE attempts (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL,
    msg_id TEXT COLLATE "C" NOT NULL,
    endpoint_id TEXT COLLATE "C" NOT NULL,
    url TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    status INTEGER NOT NULL,
    response_status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    trigger_type INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX attempts_msg ON attempts (msg_id, id);
CREATE INDEX attempts_endpoint ON attempts (endpoint_id, id);
CREATE INDEX attempts_app ON attempts (app_id, id);

CREATE TABLE api_tokens (
    hash TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- Keys shared by every node (console sessions, portal links).
CREATE TABLE instance_keys (
    name TEXT PRIMARY KEY,
    key BYTEA NOT NULL
);

CREATE TABLE sources (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL,
    uid TEXT COLLATE "C" UNIQUE,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    config TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The capped request log. outcome: 0 accepted, 1 duplicate, 2 rejected.
CREATE TABLE inbound_requests (
    id TEXT COLLATE "C" PRIMARY KEY,
    source_id TEXT COLLATE "C" NOT NULL,
    received_at BIGINT NOT NULL,
    remote_addr TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BYTEA NOT NULL,
    outcome INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    reason TEXT,
    msg_id TEXT
);
CREATE INDEX inbound_requests_source ON inbound_requests (source_id, id);

-- Provider event ids seen per source, until they expire.
CREATE TABLE inbound_dedupe (
    source_id TEXT COLLATE "C" NOT NULL,
    event_id TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (source_id, event_id)
);
CREATE INDEX inbound_dedupe_expiry ON inbound_dedupe (expires_at);
"#,
    // 2: as SQLite's sixth: the console's failed-message search reads a
    // partial index only failed deliveries enter, instead of an index every
    // delivery's every status change rewrote.
    r#"
DROP INDEX deliveries_app_status;
CREATE INDEX deliveries_app_failed ON deliveries (app_id, msg_id) WHERE status = 2;
"#,
    // 3: as SQLite's seventh: when an endpoint last failed, so a streak
    // with a long quiet gap in it ends.
    r#"
ALTER TABLE endpoints ADD COLUMN last_failure_at BIGINT;
"#,
    // 4: as SQLite's ninth: scheduled messages (`deliverAt`).
    r#"
ALTER TABLE messages ADD COLUMN deliver_at BIGINT;
"#,
    // 5: as SQLite's tenth: what tells API tokens apart.
    r#"
ALTER TABLE api_tokens ADD COLUMN name TEXT;
ALTER TABLE api_tokens ADD COLUMN hint TEXT;
"#,
    // 6: as SQLite's eleventh: background tasks.
    r#"
CREATE TABLE background_tasks (
    id TEXT COLLATE "C" PRIMARY KEY,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
"#,
    // 7: as SQLite's twelfth: idempotency keys of API requests.
    r#"
CREATE TABLE idempotency_keys (
    key TEXT COLLATE "C" PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    claim TEXT NOT NULL,
    status INTEGER,
    body BYTEA,
    created_at BIGINT NOT NULL
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
"#,
    // 8: as SQLite's thirteenth: when a message's payload was deleted.
    r#"
ALTER TABLE messages ADD COLUMN content_expunged_at BIGINT;
"#,
    // 9: as SQLite's fourteenth: when a message's payload is to be deleted.
    r#"
ALTER TABLE messages ADD COLUMN payload_expires_at BIGINT;
CREATE INDEX messages_payload_expiry ON messages (payload_expires_at)
    WHERE payload_expires_at IS NOT NULL AND content_expunged_at IS NULL;
"#,
    // 10: as SQLite's fifteenth: the logged requests a message came from.
    r#"
CREATE INDEX inbound_requests_msg ON inbound_requests (msg_id) WHERE msg_id IS NOT NULL;
"#,
    // 11: as SQLite's sixteenth: expired portal tokens per app.
    r#"
CREATE TABLE portal_expiry (
    app_id TEXT PRIMARY KEY,
    void_before BIGINT NOT NULL,
    grace_before BIGINT NOT NULL,
    grace_until BIGINT NOT NULL
);
"#,
    // 12: keys compared with message and application ids take their
    // collation ("C"), or the planner cannot use their indexes for it.
    r#"
DROP INDEX inbound_requests_msg;
CREATE INDEX inbound_requests_msg ON inbound_requests (msg_id COLLATE "C")
    WHERE msg_id IS NOT NULL;
ALTER TABLE portal_expiry ALTER COLUMN app_id TYPE TEXT COLLATE "C";
"#,
    // 13: endpoints' rate limits hold across nodes: the next free delivery
    // slot of each rate-limited endpoint, in microseconds.
    r#"
CREATE TABLE endpoint_rate_slots (
    endpoint_id TEXT COLLATE "C" PRIMARY KEY REFERENCES endpoints (id) ON DELETE CASCADE,
    next_slot BIGINT NOT NULL
);
"#,
    // 14: applications' message rates and sources' request rates hold
    // across nodes: one token bucket per key (`app:…`, `source:…`).
    r#"
CREATE TABLE rate_buckets (
    key TEXT COLLATE "C" PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    refilled_at BIGINT NOT NULL
);
"#,
    // 15: nodes running a delivery engine, with when each last said it was
    // alive and since when it has without a gap (the database's clock, in
    // milliseconds): the leases of a node that stopped beating are freed
    // without waiting for them to run out.
    r#"
CREATE TABLE nodes (
    id TEXT COLLATE "C" PRIMARY KEY,
    heartbeat_at BIGINT NOT NULL,
    since BIGINT NOT NULL
);
"#,
    // 16: "expire all" orders for the portal tokens of named sessions
    // beside those for all of an app's tokens (`session_id` '').
    r#"
ALTER TABLE portal_expiry ADD COLUMN session_id TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE portal_expiry DROP CONSTRAINT portal_expiry_pkey;
ALTER TABLE portal_expiry ADD PRIMARY KEY (app_id, session_id);
"#,
];

/// Brings the schema of the connection's `search_path` up to date.
pub(crate) async fn migrate(client: &mut Client) -> Result<()> {
    let transaction = client.transaction().await?;
    // Held until COMMIT: a node starting beside this one waits here, then
    // reads the version this one wrote.
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
            &[&LOCK_CLASS_MIGRATE],
        )
        .await?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS herald_migrations (
                 version INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let applied: i32 = transaction
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM herald_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    for (index, migration) in MIGRATIONS.iter().enumerate() {
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        if version <= applied {
            continue;
        }
        transaction.batch_execute(migration).await?;
        transaction
            .execute(
                "INSERT INTO herald_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await?;
    }
    transaction.commit().await?;
    Ok(())
}
