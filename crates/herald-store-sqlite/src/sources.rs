//! [`SourceStore`] for [`SqliteStore`]: inbound sources, the capped request
//! log and the dedupe keys (tables of migration 2 in `schema.rs`).
//!
//! An accepted request is one writer job: dedupe check, dedupe key, the
//! message with its fan-out (`messages::create_message`, the same code as
//! the API's message create) and the log entry all commit together, so the
//! gateway answers the provider only once every one of them is durable.

use async_trait::async_trait;
use herald_core::model::{App, Message, Metadata};
use herald_core::{AppId, InboundRequestId, MessageId, SourceId, Timestamp, Uid};
use herald_store::{
    Accepted, DedupeKey, Page, PageRequest, ReceivedRequest, RequestOutcome, Source, SourceStore,
    StoreError,
};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::{backend, unique};
use crate::paging::Select;
use crate::rows::to_json;
use crate::{catalog, messages, payload, SqliteStore};

type Result<T> = std::result::Result<T, StoreError>;

const SOURCE_COLUMNS: &str =
    "id, app_id, uid, name, type, config, metadata, created_at, updated_at";

const REQUEST_COLUMNS: &str = "id, source_id, received_at, remote_addr, headers, body, outcome, \
     status_code, reason, msg_id";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn column<T: rusqlite::types::FromSql>(row: &Row<'_>, index: usize) -> Result<T> {
    row.get(index).map_err(backend)
}

fn source_row(row: &Row<'_>) -> Result<Source> {
    let uid: Option<String> = column(row, 2)?;
    let config: String = column(row, 5)?;
    let metadata: String = column(row, 6)?;
    Ok(Source {
        id: SourceId::from_stored(column(row, 0)?),
        app_id: AppId::from_stored(column(row, 1)?),
        uid: uid
            .map(|text| Uid::parse(&text).map_err(corrupt))
            .transpose()?,
        name: column(row, 3)?,
        source_type: column(row, 4)?,
        config: serde_json::from_str(&config).map_err(corrupt)?,
        metadata: serde_json::from_str::<Metadata>(&metadata).map_err(corrupt)?,
        created_at: Timestamp(column(row, 7)?),
        updated_at: Timestamp(column(row, 8)?),
    })
}

fn outcome_code(outcome: RequestOutcome) -> i64 {
    match outcome {
        RequestOutcome::Accepted => 0,
        RequestOutcome::Duplicate => 1,
        RequestOutcome::Rejected => 2,
    }
}

fn outcome_from_code(code: i64) -> Result<RequestOutcome> {
    match code {
        0 => Ok(RequestOutcome::Accepted),
        1 => Ok(RequestOutcome::Duplicate),
        2 => Ok(RequestOutcome::Rejected),
        other => Err(corrupt(format!("request outcome {other}"))),
    }
}

fn request_row(row: &Row<'_>) -> Result<ReceivedRequest> {
    let headers: String = column(row, 4)?;
    let status_code: i64 = column(row, 7)?;
    let msg_id: Option<String> = column(row, 9)?;
    Ok(ReceivedRequest {
        id: InboundRequestId::from_stored(column(row, 0)?),
        source_id: SourceId::from_stored(column(row, 1)?),
        received_at: Timestamp(column(row, 2)?),
        remote_addr: column(row, 3)?,
        headers: serde_json::from_str(&headers).map_err(corrupt)?,
        body: column(row, 5)?,
        outcome: outcome_from_code(column(row, 6)?)?,
        status_code: u16::try_from(status_code).map_err(corrupt)?,
        reason: column(row, 8)?,
        msg_id: msg_id.map(MessageId::from_stored),
    })
}

fn insert_source(connection: &Connection, source: &Source) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO sources (id, app_id, uid, name, type, config, metadata, created_at,
                 updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(backend)?
        .execute(params![
            source.id.as_str(),
            source.app_id.as_str(),
            source.uid.as_ref().map(Uid::as_str),
            source.name,
            source.source_type,
            source.config.to_string(),
            to_json(&source.metadata),
            source.created_at.0,
            source.updated_at.0,
        ])
        .map_err(unique("source", "uid"))?;
    Ok(())
}

fn update_source(connection: &Connection, source: &Source) -> Result<()> {
    let changed = connection
        .prepare_cached(
            "UPDATE sources SET uid = ?2, name = ?3, type = ?4, config = ?5, metadata = ?6,
                 updated_at = ?7
             WHERE id = ?1",
        )
        .map_err(backend)?
        .execute(params![
            source.id.as_str(),
            source.uid.as_ref().map(Uid::as_str),
            source.name,
            source.source_type,
            source.config.to_string(),
            to_json(&source.metadata),
            source.updated_at.0,
        ])
        .map_err(unique("source", "uid"))?;
    if changed == 0 {
        return Err(StoreError::NotFound("source"));
    }
    Ok(())
}

fn source_by_ref(connection: &Connection, reference: &str) -> Result<Option<Source>> {
    let sql = format!(
        "SELECT {SOURCE_COLUMNS} FROM sources WHERE id = ?1
         UNION ALL SELECT {SOURCE_COLUMNS} FROM sources WHERE uid = ?1 LIMIT 1"
    );
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let mut found = statement.query([reference]).map_err(backend)?;
    found.next().map_err(backend)?.map(source_row).transpose()
}

fn delete_source(connection: &Connection, id: &SourceId) -> Result<()> {
    let app: Option<String> = connection
        .prepare_cached("SELECT app_id FROM sources WHERE id = ?1")
        .map_err(backend)?
        .query_row([id.as_str()], |row| row.get(0))
        .optional()
        .map_err(backend)?;
    let Some(app) = app else {
        return Err(StoreError::NotFound("source"));
    };
    for table in ["sources", "inbound_requests", "inbound_dedupe"] {
        let key = if table == "sources" {
            "id"
        } else {
            "source_id"
        };
        connection
            .execute(
                &format!("DELETE FROM {table} WHERE {key} = ?1"),
                [id.as_str()],
            )
            .map_err(backend)?;
    }
    // The backing app may have been deleted through the app API already.
    match catalog::delete_app(connection, &AppId::from_stored(app)) {
        Ok(()) | Err(StoreError::NotFound(_)) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Inserts a log entry and drops the source's entries beyond the newest
/// `cap`. Ids sort by arrival, so "beyond the newest" is an id comparison
/// on the `(source_id, id)` index.
fn log_request(connection: &Connection, request: &ReceivedRequest, cap: usize) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO inbound_requests (id, source_id, received_at, remote_addr, headers, body,
                 outcome, status_code, reason, msg_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(backend)?
        .execute(params![
            request.id.as_str(),
            request.source_id.as_str(),
            request.received_at.0,
            request.remote_addr,
            to_json(&request.headers),
            request.body,
            outcome_code(request.outcome),
            i64::from(request.status_code),
            request.reason,
            request.msg_id.as_ref().map(MessageId::as_str),
        ])
        .map_err(backend)?;
    let keep = i64::try_from(cap.max(1)).unwrap_or(i64::MAX);
    connection
        .prepare_cached(
            "DELETE FROM inbound_requests WHERE source_id = ?1 AND id <= (
                 SELECT id FROM inbound_requests WHERE source_id = ?1
                 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )
        .map_err(backend)?
        .execute(params![request.source_id.as_str(), keep])
        .map_err(backend)?;
    Ok(())
}

fn accept_request(
    connection: &Connection,
    mut request: ReceivedRequest,
    message: &Message,
    dedupe: Option<&DedupeKey>,
    cap: usize,
) -> Result<Accepted> {
    let now = request.received_at;
    if let Some(key) = dedupe {
        // Expired keys go first, so an expired one does not count as seen.
        connection
            .prepare_cached("DELETE FROM inbound_dedupe WHERE expires_at <= ?1")
            .map_err(backend)?
            .execute([now.0])
            .map_err(backend)?;
        let seen: Option<String> = connection
            .prepare_cached(
                "SELECT msg_id FROM inbound_dedupe WHERE source_id = ?1 AND event_id = ?2",
            )
            .map_err(backend)?
            .query_row([request.source_id.as_str(), key.event_id.as_str()], |row| {
                row.get(0)
            })
            .optional()
            .map_err(backend)?;
        if let Some(first) = seen {
            let msg_id = MessageId::from_stored(first);
            request.outcome = RequestOutcome::Duplicate;
            request.reason = Some("duplicate".to_owned());
            request.msg_id = Some(msg_id.clone());
            // A repeat of a message whose content was deleted is logged
            // without its body: it is the same content.
            let expunged = connection
                .prepare_cached(
                    "SELECT 1 FROM messages WHERE id = ?1 AND content_expunged_at IS NOT NULL",
                )
                .map_err(backend)?
                .exists([msg_id.as_str()])
                .map_err(backend)?;
            if expunged {
                request.body.clear();
            }
            log_request(connection, &request, cap)?;
            return Ok(Accepted::Duplicate { msg_id });
        }
        connection
            .prepare_cached(
                "INSERT INTO inbound_dedupe (source_id, event_id, msg_id, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(backend)?
            .execute(params![
                request.source_id.as_str(),
                key.event_id,
                message.id.as_str(),
                key.expires_at.0,
            ])
            .map_err(backend)?;
    }
    let packed = payload::pack(&message.payload);
    let created = messages::create_message(
        connection,
        (message, &packed),
        None,
        messages::FanOut::Matching,
    )?;
    request.outcome = RequestOutcome::Accepted;
    request.msg_id = Some(message.id.clone());
    log_request(connection, &request, cap)?;
    Ok(Accepted::Forwarded(Box::new(created)))
}

fn list_requests(
    connection: &Connection,
    source: &SourceId,
    outcome: Option<RequestOutcome>,
    page: &PageRequest,
) -> Result<Page<ReceivedRequest>> {
    let mut select = Select::new(REQUEST_COLUMNS, "inbound_requests")
        .and("source_id = ?", [Value::Text(source.as_str().to_owned())]);
    if let Some(outcome) = outcome {
        select = select.and("outcome = ?", [Value::Integer(outcome_code(outcome))]);
    }
    select.page(connection, "id", page, request_row)
}

#[async_trait]
impl SourceStore for SqliteStore {
    async fn create_source(&self, source: Source, app: App) -> Result<Source> {
        self.writer
            .write(move |connection| {
                catalog::insert_app(connection, &app)?;
                insert_source(connection, &source).map(|()| source)
            })
            .await
    }

    async fn source_by_ref(&self, reference: &str) -> Result<Option<Source>> {
        let reference = reference.to_owned();
        self.readers
            .read(move |connection| source_by_ref(connection, &reference))
            .await
    }

    async fn list_sources(&self, page: PageRequest) -> Result<Page<Source>> {
        self.readers
            .read(move |connection| {
                Select::new(SOURCE_COLUMNS, "sources").page(connection, "id", &page, source_row)
            })
            .await
    }

    async fn update_source(&self, source: Source) -> Result<Source> {
        self.writer
            .write(move |connection| update_source(connection, &source).map(|()| source))
            .await
    }

    async fn delete_source(&self, id: &SourceId) -> Result<()> {
        let id = id.clone();
        let caches = self.caches.clone();
        let result = self
            .writer
            .write(move |connection| {
                caches.apps_changed();
                caches.endpoints_changed();
                caches.messages_deleted();
                delete_source(connection, &id)
            })
            .await;
        // Again after the commit, as `Store::delete_app` does: a reader that
        // fetched the old rows in between cannot have its copy kept.
        self.caches.apps_changed();
        self.caches.endpoints_changed();
        self.caches.messages_deleted();
        result
    }

    async fn accept_request(
        &self,
        request: ReceivedRequest,
        message: Message,
        dedupe: Option<DedupeKey>,
        log_cap: usize,
    ) -> Result<Accepted> {
        let accepted = self
            .writer
            .write(move |connection| {
                accept_request(connection, request, &message, dedupe.as_ref(), log_cap)
            })
            .await?;
        if let Accepted::Forwarded(created) = &accepted {
            if created.deliveries > 0 {
                self.caches.store_message(created.message.clone());
            }
        }
        Ok(accepted)
    }

    async fn log_request(&self, request: ReceivedRequest, log_cap: usize) -> Result<()> {
        self.writer
            .write(move |connection| log_request(connection, &request, log_cap))
            .await
    }

    async fn list_requests(
        &self,
        source: &SourceId,
        outcome: Option<RequestOutcome>,
        page: PageRequest,
    ) -> Result<Page<ReceivedRequest>> {
        let source = source.clone();
        self.readers
            .read(move |connection| list_requests(connection, &source, outcome, &page))
            .await
    }
}
