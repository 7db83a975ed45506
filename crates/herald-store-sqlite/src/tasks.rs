//! Background tasks: what recover and replay did, kept for lookups by id.

use herald_core::model::{BackgroundTask, TaskKind, TaskStatus};
use herald_core::{TaskId, Timestamp};
use herald_store::{Page, PageRequest, StoreError, TaskFilter};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::backend;
use crate::paging::Select;

const COLUMNS: &str = "id, task, status, data, created_at, updated_at";

pub(crate) fn record_task(
    connection: &Connection,
    task: &BackgroundTask,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO background_tasks (id, task, status, data, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET
                 status = excluded.status, data = excluded.data, updated_at = excluded.updated_at",
        )
        .map_err(backend)?
        .execute(params![
            task.id.as_str(),
            task.kind.as_str(),
            task.status.as_str(),
            serde_json::Value::Object(task.data.clone()).to_string(),
            task.created_at.0,
            task.updated_at.0,
        ])
        .map_err(backend)?;
    Ok(())
}

pub(crate) fn task_by_id(
    connection: &Connection,
    id: &TaskId,
) -> Result<Option<BackgroundTask>, StoreError> {
    connection
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM background_tasks WHERE id = ?1"
        ))
        .map_err(backend)?
        .query_row([id.as_str()], |row| Ok(task(row)))
        .optional()
        .map_err(backend)?
        .transpose()
}

pub(crate) fn list_tasks(
    connection: &Connection,
    filter: &TaskFilter,
    page: &PageRequest,
) -> Result<Page<BackgroundTask>, StoreError> {
    let mut select = Select::new(COLUMNS, "background_tasks");
    if let Some(status) = filter.status {
        select = select.and("status = ?", [Value::Text(status.as_str().to_owned())]);
    }
    if let Some(kind) = filter.kind {
        select = select.and("task = ?", [Value::Text(kind.as_str().to_owned())]);
    }
    select.page(connection, "id", page, task)
}

fn task(row: &Row<'_>) -> Result<BackgroundTask, StoreError> {
    let read = |index| row.get::<_, String>(index).map_err(backend);
    let corrupt = |what: &str| StoreError::Corrupt(format!("background task {what}"));
    let kind = read(1)?;
    let status = read(2)?;
    let data = match serde_json::from_str(&read(3)?) {
        Ok(serde_json::Value::Object(data)) => data,
        _ => return Err(corrupt("data")),
    };
    Ok(BackgroundTask {
        id: TaskId::from_stored(read(0)?),
        kind: TaskKind::parse(&kind).ok_or_else(|| corrupt("kind"))?,
        status: TaskStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        data,
        created_at: Timestamp(row.get(4).map_err(backend)?),
        updated_at: Timestamp(row.get(5).map_err(backend)?),
    })
}
