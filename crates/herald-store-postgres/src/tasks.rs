//! Background tasks: what recover and replay did, kept for lookups by id.

use deadpool_postgres::GenericClient;
use herald_core::model::{BackgroundTask, TaskKind, TaskStatus};
use herald_core::{TaskId, Timestamp};
use herald_store::{Page, PageRequest, TaskFilter};
use tokio_postgres::Row;

use crate::error::{corrupt, Result};
use crate::paging::{param, Select};

const COLUMNS: &str = "id, task, status, data, created_at, updated_at";

pub(crate) async fn record_task(client: &impl GenericClient, task: &BackgroundTask) -> Result<()> {
    let data = serde_json::Value::Object(task.data.clone()).to_string();
    client
        .execute(
            "INSERT INTO background_tasks (id, task, status, data, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET
                 status = excluded.status, data = excluded.data, updated_at = excluded.updated_at",
            &[
                &task.id.as_str(),
                &task.kind.as_str(),
                &task.status.as_str(),
                &data,
                &task.created_at.0,
                &task.updated_at.0,
            ],
        )
        .await?;
    Ok(())
}

pub(crate) async fn task_by_id(
    client: &impl GenericClient,
    id: &TaskId,
) -> Result<Option<BackgroundTask>> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM background_tasks WHERE id = $1"
        ))
        .await?;
    client
        .query_opt(&statement, &[&id.as_str()])
        .await?
        .as_ref()
        .map(task)
        .transpose()
}

pub(crate) async fn list_tasks(
    client: &impl GenericClient,
    filter: &TaskFilter,
    page: &PageRequest,
) -> Result<Page<BackgroundTask>> {
    let mut select = Select::new(COLUMNS, "background_tasks");
    if let Some(status) = filter.status {
        select = select.and("status = ?", [param(status.as_str())]);
    }
    if let Some(kind) = filter.kind {
        select = select.and("task = ?", [param(kind.as_str())]);
    }
    select.page(client, "id", page, task).await
}

fn task(row: &Row) -> Result<BackgroundTask> {
    let kind: String = row.try_get(1)?;
    let status: String = row.try_get(2)?;
    let data: String = row.try_get(3)?;
    let data = match serde_json::from_str(&data) {
        Ok(serde_json::Value::Object(data)) => data,
        _ => return Err(corrupt("background task data")),
    };
    Ok(BackgroundTask {
        id: TaskId::from_stored(row.try_get::<_, String>(0)?),
        kind: TaskKind::parse(&kind).ok_or_else(|| corrupt("background task kind"))?,
        status: TaskStatus::parse(&status).ok_or_else(|| corrupt("background task status"))?,
        data,
        created_at: Timestamp(row.try_get(4)?),
        updated_at: Timestamp(row.try_get(5)?),
    })
}
