//! `/api/v1/tasks`: run, list, read, cancel and re-run tasks, and read their logs.
//!
//! Who may run in a workspace: its owner, or an owner or maintainer of a project the workspace
//! belongs to (naming that project). Who may see a task: its workspace's owner and the members
//! of its project. Anyone else gets 404, as for a task that does not exist.

use std::collections::{BTreeMap, HashMap};

use axum::{
    extract::{Path, Query, State},
    response::Response,
};
use base64::Engine;
use fulcrum_protocol::TaskState;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::{ApiJson, AuthErrors, BodyErrors, Envelope, ErrorBody, created, ok, ok_with_meta},
    error::{ApiError, ApiResult},
};
use crate::{
    domain::tasks::MAX_PER_PAGE,
    domain::{
        self,
        tasks::{RunInput, bad_state},
    },
    state::AppState,
    store::{Task, TaskFilter},
};

/// Body of `POST /api/v1/tasks` (no `Debug`: the environment may hold secrets). Name a
/// workspace or a project, and a command or a step.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    pub(crate) workspace_id: Option<Uuid>,
    pub(crate) project_id: Option<Uuid>,
    pub(crate) repo: Option<String>,
    pub(crate) command: Option<String>,
    pub(crate) step: Option<String>,
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) timeout_s: Option<i64>,
}

/// `POST /api/v1/tasks`.
#[utoipa::path(
    post,
    path = "/api/v1/tasks",
    operation_id = "create_task",
    tag = "tasks",
    request_body = RunBody,
    responses(
        (status = 201, description = "The task, dispatched", body = Envelope<Task>),
        (status = 403, description = "Not allowed for this role", body = ErrorBody),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        (status = 409, description = "Conflicts with the current state", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["run"]))
)]
pub async fn create(
    State(app): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<RunBody>,
) -> ApiResult<Response> {
    let input = RunInput {
        workspace: body.workspace_id,
        project: body.project_id,
        repo: body.repo,
        run: domain::tasks::run_of(body.command, body.step)?,
        env: body.env,
        timeout_s: body.timeout_s,
    };
    Ok(created(app.domain.tasks.start(user.caller(), input).await?))
}

/// A task id from a path: a malformed one is a task that does not exist.
fn task_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("task"))
}

fn parse_uuid(q: &HashMap<String, String>, key: &str) -> ApiResult<Option<Uuid>> {
    q.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| Uuid::parse_str(v).map_err(|_| ApiError::invalid(format!("{key} must be a UUID"))))
        .transpose()
}

/// A numeric query parameter from `min` to `max` (422 outside, or when not a whole number).
fn parse_number(
    q: &HashMap<String, String>,
    key: &str,
    default: u64,
    (min, max): (u64, u64),
) -> ApiResult<u64> {
    let bad = || ApiError::invalid(format!("{key} must be a whole number from {min} to {max}"));
    match q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(bad),
    }
}

/// `GET /api/v1/tasks?project=&workspace=&state=&page=&per_page=`.
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    operation_id = "list_tasks",
    tag = "tasks",
    params(("project" = Option<String>, Query, description = "Only this project's tasks"), ("workspace" = Option<String>, Query, description = "Only this workspace's tasks"), ("state" = Option<TaskState>, Query, description = "Only tasks in this state"), ("source" = Option<crate::store::TaskSource>, Query, description = "Only tasks started through this door"), ("page" = Option<i32>, Query, minimum = 1, description = "1-based page"), ("per_page" = Option<i32>, Query, minimum = 1, maximum = 200, description = "Tasks per page")),
    responses(
        (status = 200, description = "A page of tasks, newest first; `meta` has page, per_page and total", body = Envelope<Vec<Task>>),
        (status = 422, description = "Invalid input", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn list(
    State(app): State<AppState>,
    user: AuthUser,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let state = q
        .get("state")
        .map(|s| TaskState::parse(s).ok_or_else(|| ApiError::invalid(bad_state())))
        .transpose()?;
    let source = q
        .get("source")
        .map(|s| {
            crate::store::TaskSource::parse(s)
                .ok_or_else(|| ApiError::invalid("source must be api, terminal or mcp"))
        })
        .transpose()?;
    let page = parse_number(&q, "page", 1, (1, i32::MAX as u64))?;
    let per_page = parse_number(&q, "per_page", 50, (1, MAX_PER_PAGE as u64))?;
    let (page, per_page) = (page as u32, per_page as u32);
    let filter = TaskFilter {
        project: parse_uuid(&q, "project")?,
        workspace: parse_uuid(&q, "workspace")?,
        state,
        source,
        page,
        per_page,
    };
    let (tasks, total) = app.domain.tasks.list(user.caller(), &filter).await?;
    let meta = json!({ "page": page, "per_page": per_page, "total": total });
    let serde_json::Value::Object(meta) = meta else {
        unreachable!("a JSON object literal")
    };
    Ok(ok_with_meta(tasks, meta))
}

/// `GET /api/v1/workspaces/{id}/tasks/{number}`: a task by its number in its workspace (`#17`).
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{id}/tasks/{number}",
    operation_id = "get_task_by_number",
    tag = "tasks",
    params(
        ("id" = String, Path, description = "The workspace's id"),
        ("number" = i64, Path, minimum = 1, description = "The task's number in the workspace"),
    ),
    responses(
        (status = 200, description = "The task", body = Envelope<Task>),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn by_number(
    State(app): State<AppState>,
    user: AuthUser,
    Path((workspace, number)): Path<(String, String)>,
) -> ApiResult<Response> {
    let workspace = uuid::Uuid::parse_str(&workspace).map_err(|_| ApiError::not_found("task"))?;
    let number = number
        .trim_start_matches('#')
        .parse::<i64>()
        .map_err(|_| ApiError::not_found("task"))?;
    Ok(ok(app
        .domain
        .tasks
        .by_number(user.caller(), workspace, number)
        .await?))
}

/// `GET /api/v1/tasks/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}",
    operation_id = "get_task",
    tag = "tasks",
    params(("id" = String, Path, description = "The task's id")),
    responses(
        (status = 200, description = "The task", body = Envelope<Task>),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn get(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(app
        .domain
        .tasks
        .visible(user.caller(), task_id(&id)?)
        .await?))
}

/// `POST /api/v1/tasks/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/cancel",
    operation_id = "cancel_task",
    tag = "tasks",
    params(("id" = String, Path, description = "The task's id")),
    responses(
        (status = 200, description = "The task, cancel requested", body = Envelope<Task>),
        (status = 403, description = "Not allowed for this role", body = ErrorBody),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        (status = 409, description = "Conflicts with the current state", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["run"]))
)]
pub async fn cancel(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let task = app
        .domain
        .tasks
        .cancel(user.caller(), task_id(&id)?)
        .await?;
    Ok(ok(task))
}

/// `POST /api/v1/tasks/{id}/rerun`: the same run again, in the same place.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/rerun",
    operation_id = "rerun_task",
    tag = "tasks",
    params(("id" = String, Path, description = "The task's id")),
    responses(
        (status = 201, description = "The new task", body = Envelope<Task>),
        (status = 403, description = "Not allowed for this role", body = ErrorBody),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        (status = 409, description = "Conflicts with the current state", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["run"]))
)]
pub async fn rerun(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let task = app.domain.tasks.rerun(user.caller(), task_id(&id)?).await?;
    Ok(created(task))
}

/// A page of a task's log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogPage {
    /// Where `data` starts.
    pub offset: u64,
    /// Where the next read starts.
    pub next_offset: u64,
    /// The bytes, base64.
    pub data: String,
    /// True when the task ended and nothing follows `next_offset`.
    pub end: bool,
}

/// `GET /api/v1/tasks/{id}/logs?offset=N&limit=M`.
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}/logs",
    operation_id = "task_log",
    tag = "tasks",
    params(("id" = String, Path, description = "The task's id"), ("offset" = Option<i64>, Query, minimum = 0, maximum = 4611686018427387904_i64, description = "Byte offset to read from"), ("limit" = Option<i64>, Query, minimum = 1, description = "Most bytes to return (at most 4 MiB are)")),
    responses(
        (status = 200, description = "A page of the log", body = Envelope<LogPage>),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn logs(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let id = task_id(&id)?;
    let offset = parse_number(&q, "offset", 0, (0, crate::tasks::MAX_LOG_OFFSET))?;
    let limit = parse_number(&q, "limit", 1024 * 1024, (1, u64::MAX))?;
    let limit = limit.min(crate::tasks::MAX_LOG_READ as u64) as usize;
    let (task, slice) = app
        .domain
        .tasks
        .log(user.caller(), id, offset, limit)
        .await?;
    let next_offset = offset + slice.data.len() as u64;
    Ok(ok(LogPage {
        offset,
        next_offset,
        data: base64::engine::general_purpose::STANDARD.encode(&slice.data),
        end: task.is_finished() && next_offset >= task.log_bytes as u64,
    }))
}
