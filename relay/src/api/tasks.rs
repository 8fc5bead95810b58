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
use chrono::Utc;
use fulcrum_protocol::{TaskRun, tasks};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::{ApiJson, AuthErrors, BodyErrors, Envelope, ErrorBody, created, ok, ok_with_meta},
    error::{ApiError, ApiResult, ErrorKind},
    projects::member_project,
};
use crate::{
    gateway::Control,
    state::AppState,
    store::{NewTask, Role, Task, TaskFilter, work::TASK_STATES},
};

/// Most tasks per page.
const MAX_PER_PAGE: u32 = 200;

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

fn offline(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Conflict, "workspace_offline", message)
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Forbidden, "forbidden", message)
}

/// Where a run goes and on whose behalf, after the permission checks.
struct Target {
    owner: Uuid,
    project: Option<Uuid>,
    workspace: Uuid,
}

/// Checks the caller may run in the named workspace or project, and picks the workspace.
async fn target(
    app: &AppState,
    user: Uuid,
    workspace: Option<Uuid>,
    project: Option<Uuid>,
) -> ApiResult<Target> {
    match (workspace, project) {
        (None, None) => Err(ApiError::invalid("name a workspace_id or a project_id")),
        (Some(ws), None) => {
            let found = app
                .store
                .get_workspace(user, ws)
                .await?
                .ok_or_else(|| ApiError::not_found("workspace"))?;
            if !app.sessions.is_online(found.id) {
                return Err(offline(&format!(
                    "the workspace {} is offline: its agent is not connected",
                    found.name
                )));
            }
            Ok(Target {
                owner: user,
                project: None,
                workspace: found.id,
            })
        }
        (ws, Some(project_id)) => {
            let project = member_project(app, user, project_id).await?;
            if !project.role.can_run() {
                return Err(forbidden("a viewer of this project cannot run tasks"));
            }
            if project.status != "active" {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    "project_archived",
                    "the project is archived",
                ));
            }
            let candidates: Vec<Uuid> = match ws {
                Some(ws) if project.workspace_ids.contains(&ws) => vec![ws],
                Some(_) => return Err(ApiError::not_found("workspace")),
                None => project.workspace_ids.clone(),
            };
            if candidates.is_empty() {
                return Err(offline("the project has no workspaces; attach one first"));
            }
            let Some(chosen) = candidates
                .iter()
                .copied()
                .find(|w| app.sessions.is_online(*w))
            else {
                return Err(offline("no workspace of this project is online"));
            };
            let owner = workspace_owner(app, &project, chosen).await?;
            Ok(Target {
                owner,
                project: Some(project.id),
                workspace: chosen,
            })
        }
    }
}

/// The owner of a project's workspace (a member who attached it).
async fn workspace_owner(
    app: &AppState,
    project: &crate::store::Project,
    workspace: Uuid,
) -> ApiResult<Uuid> {
    for member in app.store.project_members(project.id).await? {
        if app
            .store
            .get_workspace(member.user_id, workspace)
            .await?
            .is_some()
        {
            return Ok(member.user_id);
        }
    }
    Err(ApiError::not_found("workspace"))
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
    )
)]
pub async fn create(
    State(app): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<RunBody>,
) -> ApiResult<Response> {
    Ok(created(start_run(&app, user.id, body, "api").await?))
}

/// Checks a run and the caller's right to it, records it and dispatches it: the one path for
/// the REST API and the MCP endpoint (`source` says which).
pub async fn start_run(
    app: &AppState,
    user: Uuid,
    body: RunBody,
    source: &'static str,
) -> ApiResult<Task> {
    let run = match (body.command, body.step) {
        (Some(command), None) => TaskRun::Command { command },
        (None, Some(name)) => TaskRun::Step { name },
        _ => return Err(ApiError::invalid("give exactly one of command and step")),
    };
    run.check().map_err(ApiError::invalid)?;
    tasks::check_env(&body.env).map_err(ApiError::invalid)?;
    let repo = body.repo.unwrap_or_else(|| ".".into());
    tasks::check_repo_path(&repo).map_err(ApiError::invalid)?;
    let timeout = match body.timeout_s {
        Some(t) if t < 1 => return Err(ApiError::invalid("timeout_s must be at least 1")),
        other => other.map(|t| t as u64),
    };
    let timeout_s = crate::tasks::timeout_for(app, timeout).map_err(ApiError::invalid)?;
    let target = target(app, user, body.workspace_id, body.project_id).await?;
    Ok(crate::tasks::create_and_dispatch(
        app,
        NewTask {
            id: Uuid::now_v7(),
            owner_id: target.owner,
            project_id: target.project,
            workspace_id: target.workspace,
            repo,
            run,
            env: body.env,
            timeout_s,
            triggered_by: user,
            source,
            log_limit: app.config.agents.task_log_limit_bytes,
            now: Utc::now(),
        },
    )
    .await?)
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
    params(("project" = Option<String>, Query, description = "Only this project's tasks"), ("workspace" = Option<String>, Query, description = "Only this workspace's tasks"), ("state" = Option<String>, Query, description = "Only tasks in this state"), ("page" = Option<i32>, Query, minimum = 1, description = "1-based page"), ("per_page" = Option<i32>, Query, minimum = 1, maximum = 200, description = "Tasks per page")),
    responses(
        (status = 200, description = "A page of tasks, newest first; `meta` has page, per_page and total", body = Envelope<Vec<Task>>),
        (status = 422, description = "Invalid input", body = ErrorBody),
        AuthErrors
    )
)]
pub async fn list(
    State(app): State<AppState>,
    user: AuthUser,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let state = q.get("state").filter(|s| !s.is_empty()).cloned();
    if let Some(s) = &state
        && !TASK_STATES.contains(&s.as_str())
    {
        return Err(ApiError::invalid(format!(
            "state must be one of {}",
            TASK_STATES.join(", ")
        )));
    }
    let page = parse_number(&q, "page", 1, (1, i32::MAX as u64))?;
    let per_page = parse_number(&q, "per_page", 50, (1, MAX_PER_PAGE as u64))?;
    let (page, per_page) = (page as u32, per_page as u32);
    let filter = TaskFilter {
        project: parse_uuid(&q, "project")?,
        workspace: parse_uuid(&q, "workspace")?,
        state,
        page,
        per_page,
    };
    let (mut tasks, total) = app.store.list_tasks(user.id, &filter).await?;
    app.live_tasks.overlay(&mut tasks);
    let meta = json!({ "page": page, "per_page": per_page, "total": total });
    let serde_json::Value::Object(meta) = meta else {
        unreachable!("a JSON object literal")
    };
    Ok(ok_with_meta(tasks, meta))
}

/// The task if `user` may see it, else 404.
pub async fn visible_task(app: &AppState, user: Uuid, id: &str) -> ApiResult<Task> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::not_found("task"))?;
    let mut found: Vec<Task> = app.store.get_task(user, id).await?.into_iter().collect();
    app.live_tasks.overlay(&mut found);
    found.pop().ok_or_else(|| ApiError::not_found("task"))
}

/// Checks the caller may run or cancel `task`: its workspace's owner, or a project owner or
/// maintainer.
async fn may_run(app: &AppState, user: Uuid, task: &Task) -> ApiResult<()> {
    if task.owner_id == user {
        return Ok(());
    }
    let role = match task.project_id {
        Some(p) => app.store.get_project(user, p).await?.map(|p| p.role),
        None => None,
    };
    match role {
        Some(Role::Owner | Role::Maintainer) => Ok(()),
        _ => Err(forbidden(
            "only the workspace's owner or a project maintainer may do this",
        )),
    }
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
    )
)]
pub async fn get(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(visible_task(&app, user.id, &id).await?))
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
    )
)]
pub async fn cancel(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let task = visible_task(&app, user.id, &id).await?;
    may_run(&app, user.id, &task).await?;
    if task.is_finished() {
        return Err(ApiError::new(
            ErrorKind::Conflict,
            "task_finished",
            format!("the task already ended ({})", task.state),
        ));
    }
    let task = app
        .store
        .request_cancel(task.id)
        .await?
        .ok_or_else(|| ApiError::not_found("task"))?;
    // Offline: the next session of the workspace passes the cancel on, or the lease ends it.
    app.sessions
        .send(task.workspace_id, Control::Cancel(task.id))
        .await;
    crate::tasks::publish(&app, task.id).await;
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
    )
)]
pub async fn rerun(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let old = visible_task(&app, user.id, &id).await?;
    may_run(&app, user.id, &old).await?;
    // The same checks as a new run: the workspace must still be the caller's, or still be in a
    // project where the caller may run, and be online.
    let target = target(&app, user.id, Some(old.workspace_id), old.project_id).await?;
    let task = crate::tasks::create_and_dispatch(
        &app,
        NewTask {
            id: Uuid::now_v7(),
            owner_id: target.owner,
            project_id: target.project,
            workspace_id: target.workspace,
            repo: old.repo.clone(),
            run: old.run(),
            env: old.env.clone(),
            timeout_s: old.timeout_s.max(1) as u64,
            triggered_by: user.id,
            source: "api",
            log_limit: app.config.agents.task_log_limit_bytes,
            now: Utc::now(),
        },
    )
    .await?;
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
    )
)]
pub async fn logs(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let task = visible_task(&app, user.id, &id).await?;
    let offset = parse_number(&q, "offset", 0, (0, crate::tasks::MAX_LOG_OFFSET))?;
    let limit = parse_number(&q, "limit", 1024 * 1024, (1, u64::MAX))?;
    let limit = limit.min(crate::tasks::MAX_LOG_READ as u64) as usize;
    let slice = crate::tasks::read_log(&app, task.id, offset, limit).await?;
    let next_offset = offset + slice.data.len() as u64;
    Ok(ok(LogPage {
        offset,
        next_offset,
        data: base64::engine::general_purpose::STANDARD.encode(&slice.data),
        end: task.is_finished() && next_offset >= task.log_bytes as u64,
    }))
}
