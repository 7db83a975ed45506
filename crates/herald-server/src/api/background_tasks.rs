//! `/background-task`: what a recover or replay did, by the id it answered
//! with, in Svix's `BackgroundTaskOut` shape.

use axum::extract::{Path, State};
use herald_core::model::{BackgroundTask, TaskKind, TaskStatus};
use herald_core::{AppId, TaskId};
use herald_delivery::operational::OperationalEvent;
use herald_store::TaskFilter;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::api::openapi::paths::TaskPath;
use crate::api::operational;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::wire::{list_response, page_request, ListResponse};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BackgroundTaskOut {
    id: String,
    /// `running`, `finished` or `failed`.
    status: &'static str,
    /// `endpoint.recover` or `endpoint.replay`.
    task: &'static str,
    /// What the task came to: `messagesSent`, how many deliveries it
    /// queued, as in Svix.
    #[schema(value_type = Object)]
    data: Map<String, Value>,
    updated_at: String,
}

impl From<BackgroundTask> for BackgroundTaskOut {
    fn from(task: BackgroundTask) -> Self {
        Self {
            id: task.id.to_string(),
            status: task.status.as_str(),
            task: task.kind.as_str(),
            data: task.data,
            updated_at: task.updated_at.to_rfc3339(),
        }
    }
}

/// Records a task about one of `app`'s endpoints that ran to its end
/// within the request that asked for it, with what it came to, and raises
/// `background_task.finished`; answers the task as the API shows it.
pub(crate) async fn record_finished(
    state: &AppState,
    app: &AppId,
    kind: TaskKind,
    data: Map<String, Value>,
) -> Result<BackgroundTaskOut, ApiError> {
    let now = state.clock.now();
    let task = BackgroundTask {
        id: TaskId::generate(),
        kind,
        status: TaskStatus::Finished,
        data,
        created_at: now,
        updated_at: now,
    };
    state.store.record_task(&task).await?;
    let event = OperationalEvent::TaskFinished {
        app_id: app.clone(),
        task: Box::new(task.clone()),
    };
    operational::raise(state, event).await;
    Ok(task.into())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TaskListParams {
    /// Items per page, 1 to 250 (50 by default).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// Where to continue: an answer's `iterator` or `prevIterator`.
    iterator: Option<String>,
    /// `ascending` or `descending` (the default: newest first).
    order: Option<String>,
    /// Only tasks in this state: `running`, `finished` or `failed`.
    status: Option<String>,
    /// Only tasks of this kind: `endpoint.recover` or `endpoint.replay`.
    task: Option<String>,
}

/// Background tasks, newest first.
#[utoipa::path(
    get,
    operation_id = "v1.background-task.list",
    path = "/background-task",
    tag = "background tasks",
    params(TaskListParams),
    responses((status = 200, body = ListResponse<BackgroundTaskOut>))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(params): Query<TaskListParams>,
) -> Result<Json<ListResponse<BackgroundTaskOut>>, ApiError> {
    let request = page_request(
        params.limit,
        params.iterator.as_deref(),
        params.order.as_deref(),
        true,
    )?;
    let filter = TaskFilter {
        status: params
            .status
            .as_deref()
            .map(|text| {
                TaskStatus::parse(text).ok_or_else(|| {
                    ApiError::invalid_query("status", "must be running, finished or failed")
                })
            })
            .transpose()?,
        kind: params
            .task
            .as_deref()
            .map(|text| {
                TaskKind::parse(text).ok_or_else(|| {
                    ApiError::invalid_query("task", "must be endpoint.recover or endpoint.replay")
                })
            })
            .transpose()?,
    };
    let page = state.store.list_tasks(filter, request.clone()).await?;
    Ok(Json(list_response(
        page,
        &request,
        |task| task.id.to_string(),
        BackgroundTaskOut::from,
    )))
}

/// One background task.
#[utoipa::path(
    get,
    operation_id = "v1.background-task.get",
    path = "/background-task/{task_id}",
    tag = "background tasks",
    params(TaskPath),
    responses((status = 200, body = BackgroundTaskOut))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
) -> Result<Json<BackgroundTaskOut>, ApiError> {
    let not_found = || ApiError::NotFound("background task");
    let id = TaskId::parse(&task_id).ok_or_else(not_found)?;
    let task = state.store.task_by_id(&id).await?.ok_or_else(not_found)?;
    Ok(Json(task.into()))
}
