//! API token hashes.

use deadpool_postgres::GenericClient;
use herald_core::Timestamp;
use herald_store::ApiToken;

use crate::error::Result;

pub(crate) async fn add_api_token(client: &impl GenericClient, token: &ApiToken) -> Result<()> {
    client
        .execute(
            "INSERT INTO api_tokens (hash, created_at, name, hint) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&token.hash, &token.created_at.0, &token.name, &token.hint],
        )
        .await?;
    Ok(())
}

pub(crate) async fn list_api_tokens(client: &impl GenericClient) -> Result<Vec<ApiToken>> {
    let rows = client
        .query(
            "SELECT hash, name, hint, created_at FROM api_tokens ORDER BY created_at, hash",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ApiToken {
                hash: row.try_get(0)?,
                name: row.try_get(1)?,
                hint: row.try_get(2)?,
                created_at: Timestamp(row.try_get(3)?),
            })
        })
        .collect()
}

pub(crate) async fn remove_api_token(client: &impl GenericClient, hash: &str) -> Result<bool> {
    let removed = client
        .execute("DELETE FROM api_tokens WHERE hash = $1", &[&hash])
        .await?;
    Ok(removed > 0)
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
