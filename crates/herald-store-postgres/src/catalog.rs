//! Apps, event types and endpoints: the configuration a platform manages.

use deadpool_postgres::GenericClient;
use herald_core::model::{App, Endpoint, EventType, PortalExpiry};
use herald_core::{AppId, EndpointId, Timestamp};
use herald_store::{Page, PageRequest, StoreError};
use tokio_postgres::types::ToSql;

use crate::error::{unique, Result};
use crate::paging::{param, Select};
use crate::rows::{self, to_json};

fn uid_text(uid: Option<&herald_core::Uid>) -> Option<&str> {
    uid.map(|uid| uid.as_str())
}

pub(crate) async fn insert_app(client: &impl GenericClient, app: &App) -> Result<()> {
    let statement = client
        .prepare_cached(
            "INSERT INTO apps (id, uid, name, rate_limit, metadata, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &app.id.as_str(),
                &uid_text(app.uid.as_ref()),
                &app.name,
                &app.rate_limit.map(i64::from),
                &to_json(&app.metadata),
                &app.created_at.0,
                &app.updated_at.0,
            ],
        )
        .await
        .map_err(unique("application", "uid"))?;
    Ok(())
}

pub(crate) async fn update_app(client: &impl GenericClient, app: &App) -> Result<()> {
    let statement = client
        .prepare_cached(
            "UPDATE apps SET uid = $2, name = $3, rate_limit = $4, metadata = $5, updated_at = $6
             WHERE id = $1",
        )
        .await?;
    let changed = client
        .execute(
            &statement,
            &[
                &app.id.as_str(),
                &uid_text(app.uid.as_ref()),
                &app.name,
                &app.rate_limit.map(i64::from),
                &to_json(&app.metadata),
                &app.updated_at.0,
            ],
        )
        .await
        .map_err(unique("application", "uid"))?;
    if changed == 0 {
        return Err(StoreError::NotFound("application").into());
    }
    Ok(())
}

pub(crate) async fn app_by_ref(
    client: &impl GenericClient,
    reference: &str,
) -> Result<Option<App>> {
    let sql = format!(
        "(SELECT {columns} FROM apps WHERE id = $1)
         UNION ALL (SELECT {columns} FROM apps WHERE uid = $1) LIMIT 1",
        columns = rows::APP_COLUMNS
    );
    let statement = client.prepare_cached(&sql).await?;
    client
        .query_opt(&statement, &[&reference])
        .await?
        .as_ref()
        .map(rows::app)
        .transpose()
}

pub(crate) async fn list_apps(
    client: &impl GenericClient,
    page: &PageRequest,
) -> Result<Page<App>> {
    Select::new(rows::APP_COLUMNS, "apps")
        .page(client, "id", page, rows::app)
        .await
}

/// Deletes an app and everything that hangs off it.
pub(crate) async fn delete_app(client: &impl GenericClient, id: &AppId) -> Result<()> {
    let deleted = client
        .execute("DELETE FROM apps WHERE id = $1", &[&id.as_str()])
        .await?;
    if deleted == 0 {
        return Err(StoreError::NotFound("application").into());
    }
    for sql in [
        "DELETE FROM endpoints WHERE app_id = $1",
        "DELETE FROM deliveries WHERE app_id = $1",
        "DELETE FROM attempts WHERE app_id = $1",
        "DELETE FROM messages WHERE app_id = $1",
        "DELETE FROM portal_expiry WHERE app_id = $1",
        "DELETE FROM rate_buckets WHERE key = 'app:' || $1",
    ] {
        client.execute(sql, &[&id.as_str()]).await?;
    }
    Ok(())
}

/// As SQLite's: folds one more "expire all portal tokens" order into
/// `app`'s (per session named, or for all its tokens: session ''), in one
/// statement, so concurrent orders fold one after another.
pub(crate) async fn expire_portal_tokens(
    client: &impl GenericClient,
    app: &AppId,
    sessions: &[String],
    now: Timestamp,
    grace_until: Timestamp,
) -> Result<()> {
    let scopes = herald_store::portal_expiry_scopes(sessions);
    let statement = client
        .prepare_cached(
            "INSERT INTO portal_expiry (app_id, session_id, void_before, grace_before, grace_until)
             SELECT $1, session_id, 0, $2, $3 FROM UNNEST($4::text[]) AS session_id
             ON CONFLICT (app_id, session_id) DO UPDATE SET
                 void_before = CASE WHEN portal_expiry.grace_until <= $2
                     THEN GREATEST(portal_expiry.void_before, portal_expiry.grace_before)
                     ELSE portal_expiry.void_before END,
                 grace_until = CASE WHEN portal_expiry.grace_until <= $2
                     THEN $3 ELSE LEAST(portal_expiry.grace_until, $3) END,
                 grace_before = $2",
        )
        .await?;
    client
        .execute(
            &statement,
            &[&app.as_str(), &now.0, &grace_until.0, &scopes],
        )
        .await?;
    Ok(())
}

pub(crate) async fn forget_portal_expiry_before(
    client: &impl GenericClient,
    cutoff: Timestamp,
    limit: usize,
) -> Result<u64> {
    let statement = client
        .prepare_cached(
            // The outer condition too: an order given meanwhile updates the row,
            // and PostgreSQL checks the updated row against the outer one only.
            "DELETE FROM portal_expiry WHERE grace_before <= $1 AND (app_id, session_id) IN (
                 SELECT app_id, session_id FROM portal_expiry WHERE grace_before <= $1 LIMIT $2)",
        )
        .await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(client.execute(&statement, &[&cutoff.0, &limit]).await?)
}

pub(crate) async fn portal_expiry(
    client: &impl GenericClient,
    app: &AppId,
    session: Option<&str>,
) -> Result<Vec<PortalExpiry>> {
    let statement = client
        .prepare_cached(
            "SELECT void_before, grace_before, grace_until FROM portal_expiry
             WHERE app_id = $1 AND session_id IN ('', $2)",
        )
        .await?;
    let rows = client
        .query(&statement, &[&app.as_str(), &session.unwrap_or_default()])
        .await?;
    rows.iter()
        .map(|row| {
            Ok(PortalExpiry {
                void_before: Timestamp(row.try_get(0)?),
                grace_before: Timestamp(row.try_get(1)?),
                grace_until: Timestamp(row.try_get(2)?),
            })
        })
        .collect()
}

pub(crate) async fn insert_event_type(
    client: &impl GenericClient,
    event_type: &EventType,
) -> Result<()> {
    let statement = client
        .prepare_cached(
            "INSERT INTO event_types (name, description, archived, deprecated, schemas,
                 feature_flag, group_name, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &event_type.name.as_str(),
                &event_type.description,
                &event_type.archived,
                &event_type.deprecated,
                &event_type
                    .schemas
                    .as_ref()
                    .map(|schemas| schemas.to_string()),
                &event_type.feature_flag,
                &event_type.group_name,
                &event_type.created_at.0,
                &event_type.updated_at.0,
            ],
        )
        .await
        .map_err(unique("event type", "name"))?;
    Ok(())
}

pub(crate) async fn update_event_type(
    client: &impl GenericClient,
    event_type: &EventType,
) -> Result<()> {
    let statement = client
        .prepare_cached(
            "UPDATE event_types SET description = $2, archived = $3, deprecated = $4,
                 schemas = $5, feature_flag = $6, group_name = $7, updated_at = $8
             WHERE name = $1",
        )
        .await?;
    let changed = client
        .execute(
            &statement,
            &[
                &event_type.name.as_str(),
                &event_type.description,
                &event_type.archived,
                &event_type.deprecated,
                &event_type
                    .schemas
                    .as_ref()
                    .map(|schemas| schemas.to_string()),
                &event_type.feature_flag,
                &event_type.group_name,
                &event_type.updated_at.0,
            ],
        )
        .await?;
    if changed == 0 {
        return Err(StoreError::NotFound("event type").into());
    }
    Ok(())
}

pub(crate) async fn event_type(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<EventType>> {
    let sql = format!(
        "SELECT {} FROM event_types WHERE name = $1",
        rows::EVENT_TYPE_COLUMNS
    );
    let statement = client.prepare_cached(&sql).await?;
    client
        .query_opt(&statement, &[&name])
        .await?
        .as_ref()
        .map(rows::event_type)
        .transpose()
}

pub(crate) async fn list_event_types(
    client: &impl GenericClient,
    page: &PageRequest,
    include_archived: bool,
) -> Result<Page<EventType>> {
    let mut select = Select::new(rows::EVENT_TYPE_COLUMNS, "event_types");
    if !include_archived {
        select = select.and("NOT archived", []);
    }
    select.page(client, "name", page, rows::event_type).await
}

pub(crate) async fn delete_event_type(client: &impl GenericClient, name: &str) -> Result<()> {
    let deleted = client
        .execute("DELETE FROM event_types WHERE name = $1", &[&name])
        .await?;
    if deleted == 0 {
        return Err(StoreError::NotFound("event type").into());
    }
    Ok(())
}

/// Writes an endpoint with `sql`, whose parameters are the columns of
/// [`rows::ENDPOINT_COLUMNS`] in order, leaving out `created_at` when
/// `with_created_at` is false (an update never changes it).
async fn write_endpoint(
    client: &impl GenericClient,
    sql: &str,
    endpoint: &Endpoint,
    with_created_at: bool,
) -> Result<u64> {
    let filter_types: Option<Vec<&str>> = endpoint
        .filter_types
        .as_ref()
        .map(|types| types.iter().map(|name| name.as_str()).collect());
    let channels: Option<Vec<&str>> = endpoint
        .channels
        .as_ref()
        .map(|channels| channels.iter().map(|name| name.as_str()).collect());
    let (id, app_id, uid, url) = (
        endpoint.id.as_str(),
        endpoint.app_id.as_str(),
        uid_text(endpoint.uid.as_ref()),
        endpoint.url.as_str(),
    );
    let rate_limit = endpoint.rate_limit.map(i64::from);
    let (metadata, headers, key, retired) = (
        to_json(&endpoint.metadata),
        to_json(&endpoint.headers),
        endpoint.key.expose(),
        rows::retired_keys_json(&endpoint.retired_keys),
    );
    let mut values: Vec<&(dyn ToSql + Sync)> = vec![
        &id,
        &app_id,
        &uid,
        &url,
        &endpoint.description,
        &endpoint.version,
        &endpoint.disabled,
        &filter_types,
        &channels,
        &rate_limit,
        &metadata,
        &headers,
        &key,
        &retired,
        &endpoint.created_at.0,
        &endpoint.updated_at.0,
    ];
    if !with_created_at {
        values.remove(14);
    }
    let statement = client.prepare_cached(sql).await?;
    let changed = client
        .execute(&statement, &values)
        .await
        .map_err(unique("endpoint", "uid"))?;
    Ok(changed)
}

pub(crate) async fn insert_endpoint(
    client: &impl GenericClient,
    endpoint: &Endpoint,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO endpoints ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
             $13, $14, $15, $16)",
        rows::ENDPOINT_COLUMNS
    );
    write_endpoint(client, &sql, endpoint, true).await?;
    Ok(())
}

pub(crate) async fn update_endpoint(
    client: &impl GenericClient,
    endpoint: &Endpoint,
) -> Result<()> {
    let changed = write_endpoint(
        client,
        "UPDATE endpoints SET uid = $3, url = $4, description = $5, version = $6,
             disabled = $7, filter_types = $8, channels = $9, rate_limit = $10,
             metadata = $11, headers = $12, signing_key = $13, retired_keys = $14,
             updated_at = $15
         WHERE id = $1 AND app_id = $2",
        endpoint,
        false,
    )
    .await?;
    if changed == 0 {
        return Err(StoreError::NotFound("endpoint").into());
    }
    Ok(())
}

pub(crate) async fn endpoint_by_ref(
    client: &impl GenericClient,
    app: &AppId,
    reference: &str,
) -> Result<Option<Endpoint>> {
    let sql = format!(
        "(SELECT {columns} FROM endpoints WHERE id = $2 AND app_id = $1)
         UNION ALL (SELECT {columns} FROM endpoints WHERE app_id = $1 AND uid = $2) LIMIT 1",
        columns = rows::ENDPOINT_COLUMNS
    );
    let statement = client.prepare_cached(&sql).await?;
    client
        .query_opt(&statement, &[&app.as_str(), &reference])
        .await?
        .as_ref()
        .map(rows::endpoint)
        .transpose()
}

pub(crate) async fn endpoint_by_id(
    client: &impl GenericClient,
    id: &EndpointId,
) -> Result<Option<Endpoint>> {
    let sql = format!(
        "SELECT {} FROM endpoints WHERE id = $1",
        rows::ENDPOINT_COLUMNS
    );
    let statement = client.prepare_cached(&sql).await?;
    client
        .query_opt(&statement, &[&id.as_str()])
        .await?
        .as_ref()
        .map(rows::endpoint)
        .transpose()
}

pub(crate) async fn list_endpoints(
    client: &impl GenericClient,
    app: &AppId,
    page: &PageRequest,
) -> Result<Page<Endpoint>> {
    Select::new(rows::ENDPOINT_COLUMNS, "endpoints")
        .and("app_id = ?", [param(app.as_str().to_owned())])
        .page(client, "id", page, rows::endpoint)
        .await
}

/// Deletes an endpoint; its unfinished deliveries end as failed in the same
/// transaction so the queue never holds work for a target that is gone.
pub(crate) async fn delete_endpoint(
    client: &impl GenericClient,
    app: &AppId,
    id: &EndpointId,
    now: Timestamp,
) -> Result<()> {
    let deleted = client
        .execute(
            "DELETE FROM endpoints WHERE id = $1 AND app_id = $2",
            &[&id.as_str(), &app.as_str()],
        )
        .await?;
    if deleted == 0 {
        return Err(StoreError::NotFound("endpoint").into());
    }
    client
        .execute(
            "UPDATE deliveries SET status = 2, next_attempt_at = NULL, lease_until = NULL,
                 lease_token = NULL, lease_owner = NULL, updated_at = $2
             WHERE endpoint_id = $1 AND status IN (1, 3)",
            &[&id.as_str(), &now.0],
        )
        .await?;
    Ok(())
}
