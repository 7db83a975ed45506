//! [`SourceStore`] for [`PostgresStore`]: inbound sources, the capped
//! request log and the dedupe keys.
//!
//! An accepted request is one transaction: dedupe key, the message with its
//! fan-out (`messages::create_message`, the same code as the API's message
//! create) and the log entry commit together. The dedupe key is claimed
//! with an upsert, so when two nodes receive the same provider retry at
//! once, exactly one of them forwards it.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use herald_core::model::{App, Message, Metadata};
use herald_core::{AppId, InboundRequestId, MessageId, SourceId, Timestamp, Uid};
use herald_store::{
    Accepted, DedupeKey, Page, PageRequest, ReceivedRequest, RequestOutcome, Source, SourceStore,
    StoreError,
};
use tokio_postgres::Row;

use crate::error::{corrupt, unique, Result, StoreResult};
use crate::paging::{param, Select};
use crate::rows::{as_bigint, json, to_json};
use crate::{catalog, messages, PostgresStore};

const SOURCE_COLUMNS: &str =
    "id, app_id, uid, name, type, config, metadata, created_at, updated_at";

const REQUEST_COLUMNS: &str = "id, source_id, received_at, remote_addr, headers, body, outcome, \
     status_code, reason, msg_id";

fn source_row(row: &Row) -> Result<Source> {
    let uid: Option<String> = row.try_get(2)?;
    Ok(Source {
        id: SourceId::from_stored(row.try_get(0)?),
        app_id: AppId::from_stored(row.try_get(1)?),
        uid: uid
            .map(|text| Uid::parse(&text).map_err(corrupt))
            .transpose()?,
        name: row.try_get(3)?,
        source_type: row.try_get(4)?,
        config: json(row.try_get(5)?)?,
        metadata: json::<Metadata>(row.try_get(6)?)?,
        created_at: Timestamp(row.try_get(7)?),
        updated_at: Timestamp(row.try_get(8)?),
    })
}

fn outcome_code(outcome: RequestOutcome) -> i32 {
    match outcome {
        RequestOutcome::Accepted => 0,
        RequestOutcome::Duplicate => 1,
        RequestOutcome::Rejected => 2,
    }
}

fn outcome_from_code(code: i32) -> Result<RequestOutcome> {
    match code {
        0 => Ok(RequestOutcome::Accepted),
        1 => Ok(RequestOutcome::Duplicate),
        2 => Ok(RequestOutcome::Rejected),
        other => Err(corrupt(format!("request outcome {other}"))),
    }
}

fn request_row(row: &Row) -> Result<ReceivedRequest> {
    let status_code: i32 = row.try_get(7)?;
    let msg_id: Option<String> = row.try_get(9)?;
    Ok(ReceivedRequest {
        id: InboundRequestId::from_stored(row.try_get(0)?),
        source_id: SourceId::from_stored(row.try_get(1)?),
        received_at: Timestamp(row.try_get(2)?),
        remote_addr: row.try_get(3)?,
        headers: json(row.try_get(4)?)?,
        body: row.try_get(5)?,
        outcome: outcome_from_code(row.try_get(6)?)?,
        status_code: u16::try_from(status_code).map_err(corrupt)?,
        reason: row.try_get(8)?,
        msg_id: msg_id.map(MessageId::from_stored),
    })
}

async fn insert_source(client: &impl GenericClient, source: &Source) -> Result<()> {
    let statement = client
        .prepare_cached(
            "INSERT INTO sources (id, app_id, uid, name, type, config, metadata, created_at,
                 updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &source.id.as_str(),
                &source.app_id.as_str(),
                &source.uid.as_ref().map(Uid::as_str),
                &source.name,
                &source.source_type,
                &source.config.to_string(),
                &to_json(&source.metadata),
                &source.created_at.0,
                &source.updated_at.0,
            ],
        )
        .await
        .map_err(unique("source", "uid"))?;
    Ok(())
}

async fn update_source(client: &impl GenericClient, source: &Source) -> Result<()> {
    let statement = client
        .prepare_cached(
            "UPDATE sources SET uid = $2, name = $3, type = $4, config = $5, metadata = $6,
                 updated_at = $7
             WHERE id = $1",
        )
        .await?;
    let changed = client
        .execute(
            &statement,
            &[
                &source.id.as_str(),
                &source.uid.as_ref().map(Uid::as_str),
                &source.name,
                &source.source_type,
                &source.config.to_string(),
                &to_json(&source.metadata),
                &source.updated_at.0,
            ],
        )
        .await
        .map_err(unique("source", "uid"))?;
    if changed == 0 {
        return Err(StoreError::NotFound("source").into());
    }
    Ok(())
}

async fn source_by_ref(client: &impl GenericClient, reference: &str) -> Result<Option<Source>> {
    let sql = format!(
        "(SELECT {SOURCE_COLUMNS} FROM sources WHERE id = $1)
         UNION ALL (SELECT {SOURCE_COLUMNS} FROM sources WHERE uid = $1) LIMIT 1"
    );
    let statement = client.prepare_cached(&sql).await?;
    client
        .query_opt(&statement, &[&reference])
        .await?
        .as_ref()
        .map(source_row)
        .transpose()
}

async fn delete_source(client: &impl GenericClient, id: &SourceId) -> Result<()> {
    let app: Option<String> = client
        .query_opt("SELECT app_id FROM sources WHERE id = $1", &[&id.as_str()])
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    let Some(app) = app else {
        return Err(StoreError::NotFound("source").into());
    };
    for sql in [
        "DELETE FROM sources WHERE id = $1",
        "DELETE FROM inbound_requests WHERE source_id = $1",
        "DELETE FROM inbound_dedupe WHERE source_id = $1",
        "DELETE FROM rate_buckets WHERE key = 'source:' || $1",
    ] {
        client.execute(sql, &[&id.as_str()]).await?;
    }
    // The backing app may have been deleted through the app API already.
    match catalog::delete_app(client, &AppId::from_stored(app)).await {
        Ok(()) => Ok(()),
        Err(crate::error::Error::Store(StoreError::NotFound(_))) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Inserts a log entry and drops the source's entries beyond the newest
/// `cap`. Ids sort by arrival, so "beyond the newest" is an id comparison
/// on the `(source_id, id)` index.
async fn log_request(
    client: &impl GenericClient,
    request: &ReceivedRequest,
    cap: usize,
) -> Result<()> {
    let statement = client
        .prepare_cached(
            "INSERT INTO inbound_requests (id, source_id, received_at, remote_addr, headers, body,
                 outcome, status_code, reason, msg_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &request.id.as_str(),
                &request.source_id.as_str(),
                &request.received_at.0,
                &request.remote_addr,
                &to_json(&request.headers),
                &request.body,
                &outcome_code(request.outcome),
                &i32::from(request.status_code),
                &request.reason,
                &request.msg_id.as_ref().map(MessageId::as_str),
            ],
        )
        .await?;
    let statement = client
        .prepare_cached(
            "DELETE FROM inbound_requests WHERE source_id = $1 AND id <= (
                 SELECT id FROM inbound_requests WHERE source_id = $1
                 ORDER BY id DESC OFFSET $2 LIMIT 1)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[&request.source_id.as_str(), &as_bigint(cap.max(1))],
        )
        .await?;
    Ok(())
}

async fn accept_request(
    client: &impl GenericClient,
    mut request: ReceivedRequest,
    message: &Message,
    dedupe: Option<&DedupeKey>,
    cap: usize,
) -> Result<Accepted> {
    let now = request.received_at;
    if let Some(key) = dedupe {
        // Expired keys of this source go, to keep the table small; the
        // upsert below also takes over an expired key another node has not
        // deleted yet.
        client
            .execute(
                "DELETE FROM inbound_dedupe WHERE source_id = $1 AND expires_at <= $2",
                &[&request.source_id.as_str(), &now.0],
            )
            .await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO inbound_dedupe AS k (source_id, event_id, msg_id, expires_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (source_id, event_id) DO UPDATE
                     SET msg_id = EXCLUDED.msg_id, expires_at = EXCLUDED.expires_at
                     WHERE k.expires_at <= $5",
            )
            .await?;
        let claimed = client
            .execute(
                &statement,
                &[
                    &request.source_id.as_str(),
                    &key.event_id,
                    &message.id.as_str(),
                    &key.expires_at.0,
                    &now.0,
                ],
            )
            .await?;
        if claimed == 0 {
            let first: String = client
                .query_one(
                    "SELECT msg_id FROM inbound_dedupe WHERE source_id = $1 AND event_id = $2",
                    &[&request.source_id.as_str(), &key.event_id],
                )
                .await?
                .try_get(0)?;
            let msg_id = MessageId::from_stored(first);
            request.outcome = RequestOutcome::Duplicate;
            request.reason = Some("duplicate".to_owned());
            request.msg_id = Some(msg_id.clone());
            // A repeat of a message whose content was deleted is logged
            // without its body: it is the same content.
            let expunged = client
                .query_opt(
                    "SELECT 1 FROM messages WHERE id = $1 AND content_expunged_at IS NOT NULL",
                    &[&msg_id.as_str()],
                )
                .await?
                .is_some();
            if expunged {
                request.body.clear();
            }
            log_request(client, &request, cap).await?;
            return Ok(Accepted::Duplicate { msg_id });
        }
    }
    let created =
        messages::create_message(client, message, None, messages::FanOut::Matching).await?;
    request.outcome = RequestOutcome::Accepted;
    request.msg_id = Some(message.id.clone());
    log_request(client, &request, cap).await?;
    Ok(Accepted::Forwarded(Box::new(created)))
}

async fn list_requests(
    client: &impl GenericClient,
    source: &SourceId,
    outcome: Option<RequestOutcome>,
    page: &PageRequest,
) -> Result<Page<ReceivedRequest>> {
    let mut select = Select::new(REQUEST_COLUMNS, "inbound_requests")
        .and("source_id = ?", [param(source.as_str().to_owned())]);
    if let Some(outcome) = outcome {
        select = select.and("outcome = ?", [param(outcome_code(outcome))]);
    }
    select.page(client, "id", page, request_row).await
}

#[async_trait]
impl SourceStore for PostgresStore {
    async fn create_source(&self, source: Source, app: App) -> StoreResult<Source> {
        Ok(transaction!(self, |transaction| {
            catalog::insert_app(&transaction, &app).await?;
            insert_source(&transaction, &source).await?;
            source
        })?)
    }

    async fn source_by_ref(&self, reference: &str) -> StoreResult<Option<Source>> {
        Ok(source_by_ref(&self.client().await?, reference).await?)
    }

    async fn list_sources(&self, page: PageRequest) -> StoreResult<Page<Source>> {
        Ok(Select::new(SOURCE_COLUMNS, "sources")
            .page(&self.client().await?, "id", &page, source_row)
            .await?)
    }

    async fn update_source(&self, source: Source) -> StoreResult<Source> {
        update_source(&self.client().await?, &source).await?;
        Ok(source)
    }

    async fn delete_source(&self, id: &SourceId) -> StoreResult<()> {
        Ok(transaction!(self, |transaction| {
            delete_source(&transaction, id).await?
        })?)
    }

    async fn accept_request(
        &self,
        request: ReceivedRequest,
        message: Message,
        dedupe: Option<DedupeKey>,
        log_cap: usize,
    ) -> StoreResult<Accepted> {
        let accepted = transaction!(self, |transaction| {
            accept_request(&transaction, request, &message, dedupe.as_ref(), log_cap).await?
        })?;
        if let Accepted::Forwarded(created) = &accepted {
            if created.deliveries > 0 {
                self.announce_work();
            }
        }
        Ok(accepted)
    }

    async fn log_request(&self, request: ReceivedRequest, log_cap: usize) -> StoreResult<()> {
        Ok(transaction!(self, |transaction| {
            log_request(&transaction, &request, log_cap).await?
        })?)
    }

    async fn list_requests(
        &self,
        source: &SourceId,
        outcome: Option<RequestOutcome>,
        page: PageRequest,
    ) -> StoreResult<Page<ReceivedRequest>> {
        Ok(list_requests(&self.client().await?, source, outcome, &page).await?)
    }
}
