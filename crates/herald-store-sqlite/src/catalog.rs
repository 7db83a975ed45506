//! Apps, event types and endpoints: the configuration a platform manages.

use herald_core::model::{App, Endpoint, EventType, PortalExpiry};
use herald_core::{AppId, EndpointId, Timestamp};
use herald_store::{Page, PageRequest, StoreError};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{backend, unique};
use crate::paging::Select;
use crate::rows::{self, to_json};

pub(crate) fn insert_app(connection: &Connection, app: &App) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO apps (id, uid, name, rate_limit, metadata, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(backend)?
        .execute(params![
            app.id.as_str(),
            app.uid.as_ref().map(|uid| uid.as_str()),
            app.name,
            app.rate_limit,
            to_json(&app.metadata),
            app.created_at.0,
            app.updated_at.0,
        ])
        .map_err(unique("application", "uid"))?;
    Ok(())
}

pub(crate) fn update_app(connection: &Connection, app: &App) -> Result<(), StoreError> {
    let changed = connection
        .prepare_cached(
            "UPDATE apps SET uid = ?2, name = ?3, rate_limit = ?4, metadata = ?5, updated_at = ?6
             WHERE id = ?1",
        )
        .map_err(backend)?
        .execute(params![
            app.id.as_str(),
            app.uid.as_ref().map(|uid| uid.as_str()),
            app.name,
            app.rate_limit,
            to_json(&app.metadata),
            app.updated_at.0,
        ])
        .map_err(unique("application", "uid"))?;
    if changed == 0 {
        return Err(StoreError::NotFound("application"));
    }
    Ok(())
}

pub(crate) fn app_by_ref(
    connection: &Connection,
    reference: &str,
) -> Result<Option<App>, StoreError> {
    let sql = format!(
        "SELECT {} FROM apps WHERE id = ?1 UNION ALL SELECT {} FROM apps WHERE uid = ?1 LIMIT 1",
        rows::APP_COLUMNS,
        rows::APP_COLUMNS
    );
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let mut found = statement.query([reference]).map_err(backend)?;
    found.next().map_err(backend)?.map(rows::app).transpose()
}

pub(crate) fn list_apps(
    connection: &Connection,
    page: &PageRequest,
) -> Result<Page<App>, StoreError> {
    Select::new(rows::APP_COLUMNS, "apps").page(connection, "id", page, rows::app)
}

/// Deletes an app and everything that hangs off it.
pub(crate) fn delete_app(connection: &Connection, id: &AppId) -> Result<(), StoreError> {
    let deleted = connection
        .execute("DELETE FROM apps WHERE id = ?1", [id.as_str()])
        .map_err(backend)?;
    if deleted == 0 {
        return Err(StoreError::NotFound("application"));
    }
    for table in [
        "endpoints",
        "messages",
        "deliveries",
        "attempts",
        "portal_expiry",
    ] {
        connection
            .execute(
                &format!("DELETE FROM {table} WHERE app_id = ?1"),
                [id.as_str()],
            )
            .map_err(backend)?;
    }
    Ok(())
}

/// Folds one more "expire all portal tokens" order into `app`'s (see
/// `PortalExpiry`), one per session named or one for all its tokens
/// (session ''): the previous grace, once over, voids what it covered;
/// while running, it caps the new one.
pub(crate) fn expire_portal_tokens(
    connection: &Connection,
    app: &AppId,
    sessions: &[String],
    now: Timestamp,
    grace_until: Timestamp,
) -> Result<(), StoreError> {
    let mut statement = connection
        .prepare_cached(
            "INSERT INTO portal_expiry (app_id, session_id, void_before, grace_before, grace_until)
             VALUES (?1, ?2, 0, ?3, ?4)
             ON CONFLICT (app_id, session_id) DO UPDATE SET
                 void_before = CASE WHEN grace_until <= ?3
                     THEN MAX(void_before, grace_before) ELSE void_before END,
                 grace_until = CASE WHEN grace_until <= ?3
                     THEN ?4 ELSE MIN(grace_until, ?4) END,
                 grace_before = ?3",
        )
        .map_err(backend)?;
    for session in herald_store::portal_expiry_scopes(sessions) {
        statement
            .execute(params![app.as_str(), session, now.0, grace_until.0])
            .map_err(backend)?;
    }
    Ok(())
}

pub(crate) fn forget_portal_expiry_before(
    connection: &Connection,
    cutoff: Timestamp,
    limit: usize,
) -> Result<u64, StoreError> {
    let forgotten = connection
        .prepare_cached(
            "DELETE FROM portal_expiry WHERE grace_before <= ?1 AND (app_id, session_id) IN (
                 SELECT app_id, session_id FROM portal_expiry WHERE grace_before <= ?1 LIMIT ?2)",
        )
        .map_err(backend)?
        .execute(params![cutoff.0, i64::try_from(limit).unwrap_or(i64::MAX)])
        .map_err(backend)?;
    Ok(forgotten as u64)
}

pub(crate) fn portal_expiry(
    connection: &Connection,
    app: &AppId,
    session: Option<&str>,
) -> Result<Vec<PortalExpiry>, StoreError> {
    connection
        .prepare_cached(
            "SELECT void_before, grace_before, grace_until FROM portal_expiry
             WHERE app_id = ?1 AND session_id IN ('', ?2)",
        )
        .map_err(backend)?
        .query_map(params![app.as_str(), session.unwrap_or_default()], |row| {
            Ok(PortalExpiry {
                void_before: Timestamp(row.get(0)?),
                grace_before: Timestamp(row.get(1)?),
                grace_until: Timestamp(row.get(2)?),
            })
        })
        .and_then(Iterator::collect)
        .map_err(backend)
}

pub(crate) fn insert_event_type(
    connection: &Connection,
    event_type: &EventType,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO event_types (name, description, archived, deprecated, schemas,
                 feature_flag, group_name, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(backend)?
        .execute(rusqlite::params_from_iter(event_type_params(event_type)))
        .map_err(unique("event type", "name"))?;
    Ok(())
}

fn event_type_params(event_type: &EventType) -> Vec<Value> {
    vec![
        Value::Text(event_type.name.as_str().to_owned()),
        Value::Text(event_type.description.clone()),
        Value::Integer(i64::from(event_type.archived)),
        Value::Integer(i64::from(event_type.deprecated)),
        event_type
            .schemas
            .as_ref()
            .map_or(Value::Null, |schemas| Value::Text(schemas.to_string())),
        event_type
            .feature_flag
            .clone()
            .map_or(Value::Null, Value::Text),
        event_type
            .group_name
            .clone()
            .map_or(Value::Null, Value::Text),
        Value::Integer(event_type.created_at.0),
        Value::Integer(event_type.updated_at.0),
    ]
}

pub(crate) fn update_event_type(
    connection: &Connection,
    event_type: &EventType,
) -> Result<(), StoreError> {
    let changed = connection
        .prepare_cached(
            "UPDATE event_types SET description = ?2, archived = ?3, deprecated = ?4,
                 schemas = ?5, feature_flag = ?6, group_name = ?7, updated_at = ?9
             WHERE name = ?1",
        )
        .map_err(backend)?
        // ?8 (created_at) is bound but unused: creation time never changes.
        .execute(rusqlite::params_from_iter(event_type_params(event_type)))
        .map_err(backend)?;
    if changed == 0 {
        return Err(StoreError::NotFound("event type"));
    }
    Ok(())
}

pub(crate) fn event_type(
    connection: &Connection,
    name: &str,
) -> Result<Option<EventType>, StoreError> {
    let sql = format!(
        "SELECT {} FROM event_types WHERE name = ?1",
        rows::EVENT_TYPE_COLUMNS
    );
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let mut found = statement.query([name]).map_err(backend)?;
    found
        .next()
        .map_err(backend)?
        .map(rows::event_type)
        .transpose()
}

pub(crate) fn list_event_types(
    connection: &Connection,
    page: &PageRequest,
    include_archived: bool,
) -> Result<Page<EventType>, StoreError> {
    let mut select = Select::new(rows::EVENT_TYPE_COLUMNS, "event_types");
    if !include_archived {
        select = select.and("archived = 0", []);
    }
    select.page(connection, "name", page, rows::event_type)
}

pub(crate) fn delete_event_type(connection: &Connection, name: &str) -> Result<(), StoreError> {
    let deleted = connection
        .execute("DELETE FROM event_types WHERE name = ?1", [name])
        .map_err(backend)?;
    if deleted == 0 {
        return Err(StoreError::NotFound("event type"));
    }
    Ok(())
}

fn endpoint_params(endpoint: &Endpoint) -> Vec<Value> {
    let names =
        |list: Option<Vec<String>>| list.map_or(Value::Null, |list| Value::Text(to_json(&list)));
    vec![
        Value::Text(endpoint.id.as_str().to_owned()),
        Value::Text(endpoint.app_id.as_str().to_owned()),
        endpoint
            .uid
            .as_ref()
            .map_or(Value::Null, |uid| Value::Text(uid.as_str().to_owned())),
        Value::Text(endpoint.url.as_str().to_owned()),
        Value::Text(endpoint.description.clone()),
        Value::Integer(i64::from(endpoint.version)),
        Value::Integer(i64::from(endpoint.disabled)),
        names(
            endpoint
                .filter_types
                .as_ref()
                .map(|types| types.iter().map(|name| name.as_str().to_owned()).collect()),
        ),
        names(endpoint.channels.as_ref().map(|channels| {
            channels
                .iter()
                .map(|name| name.as_str().to_owned())
                .collect()
        })),
        endpoint
            .rate_limit
            .map_or(Value::Null, |rate| Value::Integer(i64::from(rate))),
        Value::Text(to_json(&endpoint.metadata)),
        Value::Text(to_json(&endpoint.headers)),
        Value::Text(endpoint.key.expose()),
        Value::Text(rows::retired_keys_json(&endpoint.retired_keys)),
        Value::Integer(endpoint.created_at.0),
        Value::Integer(endpoint.updated_at.0),
    ]
}

pub(crate) fn insert_endpoint(
    connection: &Connection,
    endpoint: &Endpoint,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO endpoints ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        rows::ENDPOINT_COLUMNS
    );
    connection
        .prepare_cached(&sql)
        .map_err(backend)?
        .execute(rusqlite::params_from_iter(endpoint_params(endpoint)))
        .map_err(unique("endpoint", "uid"))?;
    Ok(())
}

pub(crate) fn update_endpoint(
    connection: &Connection,
    endpoint: &Endpoint,
) -> Result<(), StoreError> {
    let changed = connection
        .prepare_cached(
            "UPDATE endpoints SET uid = ?3, url = ?4, description = ?5, version = ?6,
                 disabled = ?7, filter_types = ?8, channels = ?9, rate_limit = ?10,
                 metadata = ?11, headers = ?12, signing_key = ?13, retired_keys = ?14,
                 updated_at = ?16
             WHERE id = ?1 AND app_id = ?2",
        )
        .map_err(backend)?
        // ?15 (created_at) is bound but unused: creation time never changes.
        .execute(rusqlite::params_from_iter(endpoint_params(endpoint)))
        .map_err(unique("endpoint", "uid"))?;
    if changed == 0 {
        return Err(StoreError::NotFound("endpoint"));
    }
    Ok(())
}

pub(crate) fn endpoint_by_ref(
    connection: &Connection,
    app: &AppId,
    reference: &str,
) -> Result<Option<Endpoint>, StoreError> {
    let sql = format!(
        "SELECT {columns} FROM endpoints WHERE id = ?2 AND app_id = ?1
         UNION ALL SELECT {columns} FROM endpoints WHERE app_id = ?1 AND uid = ?2 LIMIT 1",
        columns = rows::ENDPOINT_COLUMNS
    );
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let mut found = statement
        .query([app.as_str(), reference])
        .map_err(backend)?;
    found
        .next()
        .map_err(backend)?
        .map(rows::endpoint)
        .transpose()
}

pub(crate) fn endpoint_by_id(
    connection: &Connection,
    id: &EndpointId,
) -> Result<Option<Endpoint>, StoreError> {
    let sql = format!(
        "SELECT {} FROM endpoints WHERE id = ?1",
        rows::ENDPOINT_COLUMNS
    );
    connection
        .prepare_cached(&sql)
        .map_err(backend)?
        .query_row([id.as_str()], |row| Ok(rows::endpoint(row)))
        .optional()
        .map_err(backend)?
        .transpose()
}

pub(crate) fn list_endpoints(
    connection: &Connection,
    app: &AppId,
    page: &PageRequest,
) -> Result<Page<Endpoint>, StoreError> {
    Select::new(rows::ENDPOINT_COLUMNS, "endpoints")
        .and("app_id = ?", [Value::Text(app.as_str().to_owned())])
        .page(connection, "id", page, rows::endpoint)
}

/// The enabled endpoints of an app with their filters, for fan-out. Only
/// the columns fan-out needs are read: this runs in the writer for every
/// message, so decoding whole endpoints (URLs, keys, headers) would cost the
/// one thread every write waits on.
pub(crate) fn fan_out_targets(
    connection: &Connection,
    app: &AppId,
) -> Result<Vec<(EndpointId, FanOutFilter)>, StoreError> {
    let mut statement = connection
        .prepare_cached(
            "SELECT id, filter_types, channels FROM endpoints WHERE app_id = ?1 AND disabled = 0",
        )
        .map_err(backend)?;
    let mut found = statement.query([app.as_str()]).map_err(backend)?;
    let mut targets = Vec::new();
    while let Some(row) = found.next().map_err(backend)? {
        let id: String = row.get(0).map_err(backend)?;
        let list = |index: usize| -> Result<Option<Vec<String>>, StoreError> {
            let text: Option<String> = row.get(index).map_err(backend)?;
            text.map(|text| {
                serde_json::from_str(&text).map_err(|error| StoreError::Corrupt(error.to_string()))
            })
            .transpose()
        };
        targets.push((
            EndpointId::from_stored(id),
            FanOutFilter {
                event_types: list(1)?,
                channels: list(2)?,
            },
        ));
    }
    Ok(targets)
}

/// An endpoint's subscription, as plain strings.
pub(crate) struct FanOutFilter {
    event_types: Option<Vec<String>>,
    channels: Option<Vec<String>>,
}

impl FanOutFilter {
    /// The same rule as [`herald_core::model::Endpoint::subscribes_to`].
    pub(crate) fn matches(&self, event_type: &str, channels: &[herald_core::Channel]) -> bool {
        let type_matches = self
            .event_types
            .as_ref()
            .is_none_or(|types| types.iter().any(|wanted| wanted == event_type));
        let channel_matches = self.channels.as_ref().is_none_or(|wanted| {
            channels
                .iter()
                .any(|channel| wanted.iter().any(|name| name == channel.as_str()))
        });
        type_matches && channel_matches
    }
}

/// Deletes an endpoint; its unfinished deliveries end as failed in the same
/// transaction so the queue never holds work for a target that is gone.
pub(crate) fn delete_endpoint(
    connection: &Connection,
    app: &AppId,
    id: &EndpointId,
    now: Timestamp,
) -> Result<(), StoreError> {
    let deleted = connection
        .execute(
            "DELETE FROM endpoints WHERE id = ?1 AND app_id = ?2",
            [id.as_str(), app.as_str()],
        )
        .map_err(backend)?;
    if deleted == 0 {
        return Err(StoreError::NotFound("endpoint"));
    }
    connection
        .execute(
            "UPDATE deliveries SET status = 2, next_attempt_at = NULL, lease_until = NULL,
                 updated_at = ?2
             WHERE endpoint_id = ?1 AND status IN (1, 3)",
            params![id.as_str(), now.0],
        )
        .map_err(backend)?;
    Ok(())
}
