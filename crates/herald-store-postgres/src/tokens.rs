//! API token hashes.

use deadpool_postgres::GenericClient;
use herald_core::Timestamp;

use crate::error::Result;

pub(crate) async fn add_api_token(
    client: &impl GenericClient,
    hash: &str,
    now: Timestamp,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO api_tokens (hash, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&hash, &now.0],
        )
        .await?;
    Ok(())
}

pub(crate) async fn api_token_exists(client: &impl GenericClient, hash: &str) -> Result<bool> {
    let statement = client
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM api_tokens WHERE hash = $1)")
        .await?;
    Ok(client.query_one(&statement, &[&hash]).await?.try_get(0)?)
}

pub(crate) async fn api_token_count(client: &impl GenericClient) -> Result<u64> {
    let count: i64 = client
        .query_one("SELECT COUNT(*) FROM api_tokens", &[])
        .await?
        .try_get(0)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The key named `name`, inserting `candidate` if none is stored. The
/// insert skips on conflict, so when two nodes start at once both read the
/// key that was stored first.
pub(crate) async fn instance_key(
    client: &impl GenericClient,
    name: &str,
    candidate: &[u8],
) -> Result<Vec<u8>> {
    client
        .execute(
            "INSERT INTO instance_keys (name, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&name, &candidate],
        )
        .await?;
    Ok(client
        .query_one("SELECT key FROM instance_keys WHERE name = $1", &[&name])
        .await?
        .try_get(0)?)
}
