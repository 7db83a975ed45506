//! Idempotency keys of API requests: claimed in the writer, so a retry
//! racing the request it repeats sees the claim.

use herald_store::{IdempotencyClaim, IdempotencyTerms, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::backend;

/// A key's row: the request's fingerprint, its answer (status and body)
/// once it has one, and when the key was claimed.
struct Stored {
    fingerprint: String,
    status: Option<i64>,
    body: Option<Vec<u8>>,
    created_at: i64,
}

pub(crate) fn claim(
    connection: &Connection,
    key: &str,
    fingerprint: &str,
    claim: &str,
    terms: IdempotencyTerms,
) -> Result<IdempotencyClaim, StoreError> {
    // Keys live a day, whatever the retention setting: each claim clears
    // a few expired ones, so the table holds about a day of requests.
    connection
        .prepare_cached(
            "DELETE FROM idempotency_keys WHERE key IN (
                 SELECT key FROM idempotency_keys WHERE created_at < ?1 LIMIT 16)",
        )
        .map_err(backend)?
        .execute([terms.expired_before.0])
        .map_err(backend)?;
    let found = connection
        .prepare_cached(
            "SELECT fingerprint, status, body, created_at FROM idempotency_keys WHERE key = ?1",
        )
        .map_err(backend)?
        .query_row([key], |row| {
            Ok(Stored {
                fingerprint: row.get(0)?,
                status: row.get(1)?,
                body: row.get(2)?,
                created_at: row.get(3)?,
            })
        })
        .optional()
        .map_err(backend)?;
    let claim_it = |connection: &Connection| {
        connection
            .prepare_cached(
                "INSERT OR REPLACE INTO idempotency_keys
                     (key, fingerprint, claim, status, body, created_at)
                 VALUES (?1, ?2, ?3, NULL, NULL, ?4)",
            )
            .map_err(backend)?
            .execute(params![key, fingerprint, claim, terms.now.0])
            .map_err(backend)
    };
    let Some(Stored {
        fingerprint: stored_fingerprint,
        status,
        body,
        created_at,
    }) = found
    else {
        claim_it(connection)?;
        return Ok(IdempotencyClaim::Fresh);
    };
    let answered = status.is_some();
    if created_at < terms.expired_before.0 || (!answered && created_at < terms.abandoned_before.0) {
        claim_it(connection)?;
        return Ok(IdempotencyClaim::Fresh);
    }
    if stored_fingerprint != fingerprint {
        return Ok(IdempotencyClaim::Mismatch);
    }
    Ok(match (status, body) {
        (Some(status), body) => IdempotencyClaim::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body: body.unwrap_or_default(),
        },
        (None, _) => IdempotencyClaim::InProgress,
    })
}

pub(crate) fn complete(
    connection: &Connection,
    key: &str,
    claim: &str,
    status: u16,
    body: &[u8],
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "UPDATE idempotency_keys SET status = ?3, body = ?4 WHERE key = ?1 AND claim = ?2",
        )
        .map_err(backend)?
        .execute(params![key, claim, status, body])
        .map_err(backend)?;
    Ok(())
}

pub(crate) fn release(connection: &Connection, key: &str, claim: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "DELETE FROM idempotency_keys WHERE key = ?1 AND claim = ?2 AND status IS NULL",
        )
        .map_err(backend)?
        .execute([key, claim])
        .map_err(backend)?;
    Ok(())
}

/// Forgets keys claimed before `cutoff` (milliseconds), at most `limit`.
pub(crate) fn purge(connection: &Connection, cutoff: i64, limit: i64) -> Result<u64, StoreError> {
    connection
        .prepare_cached(
            "DELETE FROM idempotency_keys WHERE key IN (
                 SELECT key FROM idempotency_keys WHERE created_at < ?1 LIMIT ?2)",
        )
        .map_err(backend)?
        .execute(params![cutoff, limit])
        .map(|removed| removed as u64)
        .map_err(backend)
}
