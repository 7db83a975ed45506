//! Rows to records. Column lists live next to their decoders so the two
//! cannot drift apart.

use std::collections::BTreeMap;

use herald_core::model::{
    App, Attempt, AttemptError, Delivery, DeliveryStatus, Endpoint, EventType, Message, RetiredKey,
    TriggerType,
};
use herald_core::{
    AppId, AttemptId, Channel, EndpointId, EndpointUrl, EventTypeName, MessageId, SigningKey,
    Timestamp, Uid,
};
use herald_store::StoreError;
use rusqlite::Row;
use serde::de::DeserializeOwned;

use crate::error::backend;
use crate::payload;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn column<T: rusqlite::types::FromSql>(row: &Row<'_>, index: usize) -> Result<T, StoreError> {
    row.get(index).map_err(backend)
}

fn json<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(corrupt)
}

/// Serializes a JSON column (maps and lists of strings cannot fail).
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn uid(value: Option<String>) -> Result<Option<Uid>, StoreError> {
    value
        .map(|text| Uid::parse(&text).map_err(corrupt))
        .transpose()
}

fn names<T>(
    value: Option<String>,
    parse: impl Fn(&str) -> Result<T, herald_core::ValidationError>,
) -> Result<Option<Vec<T>>, StoreError> {
    value
        .map(|text| {
            json::<Vec<String>>(&text)?
                .iter()
                .map(|name| parse(name).map_err(corrupt))
                .collect()
        })
        .transpose()
}

pub(crate) const APP_COLUMNS: &str = "id, uid, name, rate_limit, metadata, created_at, updated_at";

pub(crate) fn app(row: &Row<'_>) -> Result<App, StoreError> {
    Ok(App {
        id: AppId::from_stored(column(row, 0)?),
        uid: uid(column(row, 1)?)?,
        name: column(row, 2)?,
        rate_limit: column(row, 3)?,
        metadata: json(&column::<String>(row, 4)?)?,
        created_at: Timestamp(column(row, 5)?),
        updated_at: Timestamp(column(row, 6)?),
    })
}

pub(crate) const EVENT_TYPE_COLUMNS: &str = "name, description, archived, deprecated, schemas, \
     feature_flag, group_name, created_at, updated_at";

pub(crate) fn event_type(row: &Row<'_>) -> Result<EventType, StoreError> {
    let schemas: Option<String> = column(row, 4)?;
    Ok(EventType {
        name: EventTypeName::parse(&column::<String>(row, 0)?).map_err(corrupt)?,
        description: column(row, 1)?,
        archived: column(row, 2)?,
        deprecated: column(row, 3)?,
        schemas: schemas.map(|text| json(&text)).transpose()?,
        feature_flag: column(row, 5)?,
        group_name: column(row, 6)?,
        created_at: Timestamp(column(row, 7)?),
        updated_at: Timestamp(column(row, 8)?),
    })
}

pub(crate) const ENDPOINT_COLUMNS: &str = "id, app_id, uid, url, description, version, disabled, \
     filter_types, channels, rate_limit, metadata, headers, signing_key, retired_keys, created_at, \
     updated_at";

/// Retired keys as stored: `[["whsec_…", expires_at_millis], …]`.
pub(crate) fn retired_keys_json(keys: &[RetiredKey]) -> String {
    let pairs: Vec<(String, i64)> = keys
        .iter()
        .map(|retired| (retired.key.expose(), retired.expires_at.0))
        .collect();
    to_json(&pairs)
}

pub(crate) fn endpoint(row: &Row<'_>) -> Result<Endpoint, StoreError> {
    let retired: Vec<(String, i64)> = json(&column::<String>(row, 13)?)?;
    Ok(Endpoint {
        id: EndpointId::from_stored(column(row, 0)?),
        app_id: AppId::from_stored(column(row, 1)?),
        uid: uid(column(row, 2)?)?,
        url: EndpointUrl::parse(&column::<String>(row, 3)?).map_err(corrupt)?,
        description: column(row, 4)?,
        version: column(row, 5)?,
        disabled: column(row, 6)?,
        filter_types: names(column(row, 7)?, EventTypeName::parse)?,
        channels: names(column(row, 8)?, Channel::parse)?,
        rate_limit: column(row, 9)?,
        metadata: json(&column::<String>(row, 10)?)?,
        headers: json::<BTreeMap<String, String>>(&column::<String>(row, 11)?)?,
        key: SigningKey::parse(&column::<String>(row, 12)?).map_err(corrupt)?,
        retired_keys: retired
            .into_iter()
            .map(|(key, expires_at)| {
                Ok(RetiredKey {
                    key: SigningKey::parse(&key).map_err(corrupt)?,
                    expires_at: Timestamp(expires_at),
                })
            })
            .collect::<Result<_, StoreError>>()?,
        created_at: Timestamp(column(row, 14)?),
        updated_at: Timestamp(column(row, 15)?),
    })
}

pub(crate) const MESSAGE_COLUMNS: &str =
    "id, app_id, event_type, event_id, payload, channels, tags, created_at, headers, deliver_at, \
     content_expunged_at, payload_expires_at";

/// `columns` with every name qualified by a table alias, for joins.
pub(crate) fn prefixed(alias: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|name| format!("{alias}.{}", name.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn message(row: &Row<'_>) -> Result<Message, StoreError> {
    message_at(row, 0)
}

/// A message whose [`MESSAGE_COLUMNS`] start at column `at`.
pub(crate) fn message_at(row: &Row<'_>, at: usize) -> Result<Message, StoreError> {
    Ok(Message {
        id: MessageId::from_stored(column(row, at)?),
        app_id: AppId::from_stored(column(row, at + 1)?),
        event_type: EventTypeName::parse(&column::<String>(row, at + 2)?).map_err(corrupt)?,
        event_id: column(row, at + 3)?,
        payload: payload::decode(row.get_ref(at + 4).map_err(backend)?)?,
        channels: names(Some(column(row, at + 5)?), Channel::parse)?.unwrap_or_default(),
        tags: json(&column::<String>(row, at + 6)?)?,
        created_at: Timestamp(column(row, at + 7)?),
        headers: json(&column::<String>(row, at + 8)?)?,
        deliver_at: column::<Option<i64>>(row, at + 9)?.map(Timestamp),
        content_expunged_at: column::<Option<i64>>(row, at + 10)?.map(Timestamp),
        payload_expires_at: column::<Option<i64>>(row, at + 11)?.map(Timestamp),
    })
}

/// What decides whether an endpoint subscribes to a message: its event
/// type and channels, read from `event_type, channels` starting at `at`.
pub(crate) fn subscription(
    row: &Row<'_>,
    at: usize,
) -> Result<(EventTypeName, Vec<Channel>), StoreError> {
    Ok((
        EventTypeName::parse(&column::<String>(row, at)?).map_err(corrupt)?,
        names(Some(column(row, at + 1)?), Channel::parse)?.unwrap_or_default(),
    ))
}

/// Columns of [`MESSAGE_COLUMNS`] in one message row.
pub(crate) const MESSAGE_COLUMN_COUNT: usize = 12;

fn status(code: i64) -> Result<DeliveryStatus, StoreError> {
    DeliveryStatus::from_code(code).ok_or_else(|| corrupt(format!("delivery status {code}")))
}

pub(crate) const DELIVERY_COLUMNS: &str =
    "msg_id, endpoint_id, status, attempt_count, next_attempt_at, trigger_type, updated_at";

pub(crate) fn delivery(row: &Row<'_>) -> Result<Delivery, StoreError> {
    delivery_at(row, 0)
}

/// A delivery whose [`DELIVERY_COLUMNS`] start at column `at`.
pub(crate) fn delivery_at(row: &Row<'_>, at: usize) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        msg_id: MessageId::from_stored(column(row, at)?),
        endpoint_id: EndpointId::from_stored(column(row, at + 1)?),
        status: status(column(row, at + 2)?)?,
        attempt_count: column(row, at + 3)?,
        next_attempt_at: column::<Option<i64>>(row, at + 4)?.map(Timestamp),
        trigger: TriggerType::from_code(column(row, at + 5)?),
        updated_at: Timestamp(column(row, at + 6)?),
    })
}

pub(crate) const ATTEMPT_COLUMNS: &str = "a.id, a.app_id, a.msg_id, a.endpoint_id, a.url, \
     a.timestamp, a.status, a.response_status_code, a.response, a.duration_ms, a.trigger_type, \
     a.error";

pub(crate) fn attempt(row: &Row<'_>) -> Result<Attempt, StoreError> {
    let error: Option<String> = column(row, 11)?;
    Ok(Attempt {
        id: AttemptId::from_stored(column(row, 0)?),
        app_id: AppId::from_stored(column(row, 1)?),
        msg_id: MessageId::from_stored(column(row, 2)?),
        endpoint_id: EndpointId::from_stored(column(row, 3)?),
        url: column(row, 4)?,
        timestamp: Timestamp(column(row, 5)?),
        status: status(column(row, 6)?)?,
        response_status_code: column(row, 7)?,
        response: column(row, 8)?,
        response_duration_ms: column(row, 9)?,
        trigger: TriggerType::from_code(column(row, 10)?),
        error: error.as_deref().and_then(AttemptError::parse),
    })
}
