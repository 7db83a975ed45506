//! Idempotency keys of API requests: claimed in one transaction that locks
//! the key's row, so a retry racing the request it repeats (on any node)
//! sees the claim.

use deadpool_postgres::GenericClient;
use herald_store::{IdempotencyClaim, IdempotencyTerms};

use crate::error::Result;

pub(crate) async fn claim(
    client: &impl GenericClient,
    key: &str,
    fingerprint: &str,
    claim: &str,
    terms: IdempotencyTerms,
) -> Result<IdempotencyClaim> {
    // Keys live a day, whatever the retention setting: each claim clears
    // a few expired ones, so the table holds about a day of requests.
    client
        .execute(
            "DELETE FROM idempotency_keys WHERE key IN (
                 SELECT key FROM idempotency_keys WHERE created_at < $1 LIMIT 16)",
            &[&terms.expired_before.0],
        )
        .await?;
    // The row can go between the insert and the read (released, or cleared
    // as expired by another claim): then the insert is tried again.
    let row = loop {
        let inserted = client
            .execute(
                "INSERT INTO idempotency_keys (key, fingerprint, claim, created_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key) DO NOTHING",
                &[&key, &fingerprint, &claim, &terms.now.0],
            )
            .await?;
        if inserted == 1 {
            return Ok(IdempotencyClaim::Fresh);
        }
        let found = client
            .query_opt(
                "SELECT fingerprint, status, body, created_at FROM idempotency_keys
                 WHERE key = $1 FOR UPDATE",
                &[&key],
            )
            .await?;
        if let Some(row) = found {
            break row;
        }
    };
    let stored_fingerprint: String = row.try_get(0)?;
    let status: Option<i32> = row.try_get(1)?;
    let body: Option<Vec<u8>> = row.try_get(2)?;
    let created_at: i64 = row.try_get(3)?;
    if created_at < terms.expired_before.0
        || (status.is_none() && created_at < terms.abandoned_before.0)
    {
        client
            .execute(
                "UPDATE idempotency_keys SET fingerprint = $2, claim = $3, status = NULL,
                     body = NULL, created_at = $4
                 WHERE key = $1",
                &[&key, &fingerprint, &claim, &terms.now.0],
            )
            .await?;
        return Ok(IdempotencyClaim::Fresh);
    }
    if stored_fingerprint != fingerprint {
        return Ok(IdempotencyClaim::Mismatch);
    }
    Ok(match status {
        Some(status) => IdempotencyClaim::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body: body.unwrap_or_default(),
        },
        None => IdempotencyClaim::InProgress,
    })
}

pub(crate) async fn complete(
    client: &impl GenericClient,
    key: &str,
    claim: &str,
    status: u16,
    body: &[u8],
) -> Result<()> {
    client
        .execute(
            "UPDATE idempotency_keys SET status = $3, body = $4 WHERE key = $1 AND claim = $2",
            &[&key, &claim, &i32::from(status), &body],
        )
        .await?;
    Ok(())
}

pub(crate) async fn release(client: &impl GenericClient, key: &str, claim: &str) -> Result<()> {
    client
        .execute(
            "DELETE FROM idempotency_keys WHERE key = $1 AND claim = $2 AND status IS NULL",
            &[&key, &claim],
        )
        .await?;
    Ok(())
}
