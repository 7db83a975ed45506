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
use serde::de::DeserializeOwned;
use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

use crate::error::{corrupt, Result};

fn column<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T> {
    Ok(row.try_get(index)?)
}

pub(crate) fn json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(corrupt)
}

/// Serializes a JSON column (maps and lists of strings cannot fail).
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn uid(value: Option<String>) -> Result<Option<Uid>> {
    value
        .map(|text| Uid::parse(&text).map_err(corrupt))
        .transpose()
}

fn names<T>(
    value: Option<Vec<String>>,
    parse: impl Fn(&str) -> std::result::Result<T, herald_core::ValidationError>,
) -> Result<Option<Vec<T>>> {
    value
        .map(|list| {
            list.iter()
                .map(|name| parse(name).map_err(corrupt))
                .collect()
        })
        .transpose()
}

/// A `u32` stored as `BIGINT`.
fn small(value: Option<i64>) -> Result<Option<u32>> {
    value
        .map(|number| u32::try_from(number).map_err(corrupt))
        .transpose()
}

pub(crate) const APP_COLUMNS: &str = "id, uid, name, rate_limit, metadata, created_at, updated_at";

pub(crate) fn app(row: &Row) -> Result<App> {
    Ok(App {
        id: AppId::from_stored(column(row, 0)?),
        uid: uid(column(row, 1)?)?,
        name: column(row, 2)?,
        rate_limit: small(column(row, 3)?)?,
        metadata: json(column(row, 4)?)?,
        created_at: Timestamp(column(row, 5)?),
        updated_at: Timestamp(column(row, 6)?),
    })
}

pub(crate) const EVENT_TYPE_COLUMNS: &str = "name, description, archived, deprecated, schemas, \
     feature_flag, group_name, created_at, updated_at";

pub(crate) fn event_type(row: &Row) -> Result<EventType> {
    let schemas: Option<&str> = column(row, 4)?;
    Ok(EventType {
        name: EventTypeName::parse(column(row, 0)?).map_err(corrupt)?,
        description: column(row, 1)?,
        archived: column(row, 2)?,
        deprecated: column(row, 3)?,
        schemas: schemas.map(json).transpose()?,
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

pub(crate) fn endpoint(row: &Row) -> Result<Endpoint> {
    let retired: Vec<(String, i64)> = json(column(row, 13)?)?;
    Ok(Endpoint {
        id: EndpointId::from_stored(column(row, 0)?),
        app_id: AppId::from_stored(column(row, 1)?),
        uid: uid(column(row, 2)?)?,
        url: EndpointUrl::parse(column(row, 3)?).map_err(corrupt)?,
        description: column(row, 4)?,
        version: column(row, 5)?,
        disabled: column(row, 6)?,
        filter_types: names(column(row, 7)?, EventTypeName::parse)?,
        channels: names(column(row, 8)?, Channel::parse)?,
        rate_limit: small(column(row, 9)?)?,
        metadata: json(column(row, 10)?)?,
        headers: json::<BTreeMap<String, String>>(column(row, 11)?)?,
        key: SigningKey::parse(column(row, 12)?).map_err(corrupt)?,
        retired_keys: retired
            .into_iter()
            .map(|(key, expires_at)| {
                Ok(RetiredKey {
                    key: SigningKey::parse(&key).map_err(corrupt)?,
                    expires_at: Timestamp(expires_at),
                })
            })
            .collect::<Result<_>>()?,
        created_at: Timestamp(column(row, 14)?),
        updated_at: Timestamp(column(row, 15)?),
    })
}

pub(crate) const MESSAGE_COLUMNS: &str =
    "id, app_id, event_type, event_id, payload, channels, tags, created_at, headers, deliver_at, \
     content_expunged_at, payload_expires_at";

/// Columns of [`MESSAGE_COLUMNS`] in one message row.
pub(crate) const MESSAGE_COLUMN_COUNT: usize = 12;

/// `columns` with every name qualified by a table alias, for joins.
pub(crate) fn prefixed(alias: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|name| format!("{alias}.{}", name.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn message(row: &Row) -> Result<Message> {
    message_at(row, 0)
}

/// A message whose [`MESSAGE_COLUMNS`] start at column `at`.
pub(crate) fn message_at(row: &Row, at: usize) -> Result<Message> {
    Ok(Message {
        id: MessageId::from_stored(column(row, at)?),
        app_id: AppId::from_stored(column(row, at + 1)?),
        event_type: EventTypeName::parse(column(row, at + 2)?).map_err(corrupt)?,
        event_id: column(row, at + 3)?,
        payload: column(row, at + 4)?,
        channels: names(Some(column(row, at + 5)?), Channel::parse)?.unwrap_or_default(),
        tags: column(row, at + 6)?,
        created_at: Timestamp(column(row, at + 7)?),
        headers: json(column(row, at + 8)?)?,
        deliver_at: column::<Option<i64>>(row, at + 9)?.map(Timestamp),
        content_expunged_at: column::<Option<i64>>(row, at + 10)?.map(Timestamp),
        payload_expires_at: column::<Option<i64>>(row, at + 11)?.map(Timestamp),
    })
}

fn status(code: i32) -> Result<DeliveryStatus> {
    DeliveryStatus::from_code(i64::from(code))
        .ok_or_else(|| corrupt(format!("delivery status {code}")))
}

pub(crate) const DELIVERY_COLUMNS: &str =
    "msg_id, endpoint_id, status, attempt_count, next_attempt_at, trigger_type, updated_at";

pub(crate) fn delivery(row: &Row) -> Result<Delivery> {
    delivery_at(row, 0)
}

/// A delivery whose [`DELIVERY_COLUMNS`] start at column `at`.
pub(crate) fn delivery_at(row: &Row, at: usize) -> Result<Delivery> {
    Ok(Delivery {
        msg_id: MessageId::from_stored(column(row, at)?),
        endpoint_id: EndpointId::from_stored(column(row, at + 1)?),
        status: status(column(row, at + 2)?)?,
        attempt_count: count(column(row, at + 3)?)?,
        next_attempt_at: column::<Option<i64>>(row, at + 4)?.map(Timestamp),
        trigger: TriggerType::from_code(i64::from(column::<i32>(row, at + 5)?)),
        updated_at: Timestamp(column(row, at + 6)?),
    })
}

/// An attempt counter stored as `INTEGER`.
pub(crate) fn count(value: i32) -> Result<u32> {
    u32::try_from(value).map_err(corrupt)
}

/// A Rust count as an `INTEGER` parameter.
pub(crate) fn as_int(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// A Rust size as a `BIGINT` parameter (`LIMIT`, `OFFSET`).
pub(crate) fn as_bigint(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A Svix numeric code as an `INTEGER` parameter.
pub(crate) fn code(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

pub(crate) const ATTEMPT_COLUMNS: &str = "a.id, a.app_id, a.msg_id, a.endpoint_id, a.url, \
     a.timestamp, a.status, a.response_status_code, a.response, a.duration_ms, a.trigger_type, \
     a.error";

pub(crate) fn attempt(row: &Row) -> Result<Attempt> {
    let error: Option<&str> = column(row, 11)?;
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
        trigger: TriggerType::from_code(i64::from(column::<i32>(row, 10)?)),
        error: error.and_then(AttemptError::parse),
    })
}
