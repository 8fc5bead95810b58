//! Tasks: who may run, cancel and see them, and how a run starts, whatever the door.
//!
//! Who may run in a workspace: its owner, or an owner or maintainer of a project the workspace
//! belongs to (naming that project). Who may see a task: its workspace's owner and the members
//! of its project; anyone else is told it does not exist.

use std::collections::BTreeMap;

use chrono::Utc;
use fulcrum_protocol::{TaskRun, tasks};
use uuid::Uuid;

use super::{
    Caller, DomainError, DomainResult,
    audit::{self, Record},
};
use crate::{
    sessions::Control,
    state::AppState,
    store::{NewTask, Project, ProjectStatus, Role, Task},
};

/// A run to start: where, what, and how.
#[derive(Clone)]
pub struct RunInput {
    /// A workspace of the caller's, or of the named project.
    pub workspace: Option<Uuid>,
    /// A project the caller may run in; the relay picks its online workspace unless one is named.
    pub project: Option<Uuid>,
    /// The repository, relative to the workspace root [default: `.`].
    pub repo: Option<String>,
    /// The command or QA step ([`run_of`] makes one from a door's two fields).
    pub run: TaskRun,
    /// Extra environment (values are secrets: never logged).
    pub env: BTreeMap<String, String>,
    /// Time limit in seconds [default: the relay's].
    pub timeout_s: Option<i64>,
}

/// A command or a step, exactly one of them.
pub fn run_of(command: Option<String>, step: Option<String>) -> DomainResult<TaskRun> {
    match (command, step) {
        (Some(command), None) => Ok(TaskRun::Command { command }),
        (None, Some(name)) => Ok(TaskRun::Step { name }),
        _ => Err(DomainError::Invalid(
            "give exactly one of command and step".into(),
        )),
    }
}

/// What a filter naming an unknown task state is told.
pub fn bad_state() -> String {
    let names: Vec<&str> = fulcrum_protocol::TaskState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    format!("state must be one of {}", names.join(", "))
}

fn offline(message: impl Into<String>) -> DomainError {
    DomainError::conflict("workspace_offline", message)
}

/// Where a run goes and on whose behalf, after the permission checks.
struct Target {
    owner: Uuid,
    project: Option<Uuid>,
    workspace: Uuid,
}

/// The project if `user` is a member.
async fn member_project(app: &AppState, user: Uuid, id: Uuid) -> DomainResult<Project> {
    app.store
        .get_project(user, id)
        .await?
        .ok_or(DomainError::NotFound("project"))
}

/// Checks the caller may run in the named workspace or project, and picks the workspace.
async fn target(
    app: &AppState,
    user: Uuid,
    workspace: Option<Uuid>,
    project: Option<Uuid>,
) -> DomainResult<Target> {
    match (workspace, project) {
        (None, None) => Err(DomainError::Invalid(
            "name a workspace_id or a project_id".into(),
        )),
        (Some(ws), None) => {
            let found = app
                .store
                .get_workspace(user, ws)
                .await?
                .ok_or(DomainError::NotFound("workspace"))?;
            if !app.sessions.is_online(found.id) {
                return Err(offline(format!(
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
                return Err(DomainError::Forbidden(
                    "a viewer of this project cannot run tasks".into(),
                ));
            }
            if project.status != ProjectStatus::Active {
                return Err(DomainError::conflict(
                    "project_archived",
                    "the project is archived",
                ));
            }
            let candidates: Vec<Uuid> = match ws {
                Some(ws) if project.workspace_ids.contains(&ws) => vec![ws],
                Some(_) => return Err(DomainError::NotFound("workspace")),
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
async fn workspace_owner(app: &AppState, project: &Project, workspace: Uuid) -> DomainResult<Uuid> {
    for member in app.store.project_members(project).await? {
        if app
            .store
            .get_workspace(member.user_id, workspace)
            .await?
            .is_some()
        {
            return Ok(member.user_id);
        }
    }
    Err(DomainError::NotFound("workspace"))
}

/// Records and dispatches a run for `target`, and says so to the audit hook.
async fn launch(
    app: &AppState,
    caller: Caller,
    target: Target,
    (repo, run, env, timeout_s): (String, TaskRun, BTreeMap<String, String>, u64),
    action: &str,
) -> DomainResult<Task> {
    let task = crate::tasks::create_and_dispatch(
        app,
        NewTask {
            id: Uuid::now_v7(),
            owner_id: target.owner,
            project_id: target.project,
            workspace_id: target.workspace,
            repo,
            run,
            env,
            timeout_s,
            triggered_by: caller.user,
            source: caller.door.task_source(),
            log_limit: app.config.agents.task_log_limit_bytes,
            now: Utc::now(),
        },
    )
    .await?;
    audit::record(Record {
        caller,
        action,
        subject: task.id,
    });
    Ok(task)
}

/// Starts a run: checks it and the caller's right to it, records it and dispatches it. The one
/// path for the REST API, MCP and workspace terminals (the task's `source` says which).
pub async fn start(app: &AppState, caller: Caller, input: RunInput) -> DomainResult<Task> {
    let run = input.run;
    run.check()?;
    tasks::check_env(&input.env)?;
    let repo = input.repo.unwrap_or_else(|| ".".into());
    tasks::check_repo_path(&repo)?;
    let timeout = match input.timeout_s {
        Some(t) if t < 1 => {
            return Err(DomainError::Invalid("timeout_s must be at least 1".into()));
        }
        other => other.map(|t| t as u64),
    };
    let timeout_s = crate::tasks::timeout_for(app, timeout).map_err(DomainError::Invalid)?;
    let target = target(app, caller.user, input.workspace, input.project).await?;
    launch(
        app,
        caller,
        target,
        (repo, run, input.env, timeout_s),
        "task.start",
    )
    .await
}

/// The task if `user` may see it, as it is now (its live state when that is ahead of the
/// store).
pub async fn visible(app: &AppState, user: Uuid, id: Uuid) -> DomainResult<Task> {
    let mut found: Vec<Task> = app.store.get_task(user, id).await?.into_iter().collect();
    app.live_tasks.overlay(&mut found);
    found.pop().ok_or(DomainError::NotFound("task"))
}

/// Checks `user` may run or cancel `task`: its workspace's owner, or a project owner or
/// maintainer.
async fn may_run(app: &AppState, user: Uuid, task: &Task) -> DomainResult<()> {
    if task.owner_id == user {
        return Ok(());
    }
    let role = match task.project_id {
        Some(p) => app.store.get_project(user, p).await?.map(|p| p.role),
        None => None,
    };
    match role {
        Some(Role::Owner | Role::Maintainer) => Ok(()),
        _ => Err(DomainError::Forbidden(
            "only the workspace's owner or a project maintainer may do this".into(),
        )),
    }
}

/// Asks for a task to be canceled.
pub async fn cancel(app: &AppState, caller: Caller, id: Uuid) -> DomainResult<Task> {
    let task = visible(app, caller.user, id).await?;
    may_run(app, caller.user, &task).await?;
    if task.is_finished() {
        return Err(DomainError::conflict(
            "task_finished",
            format!("the task already ended ({})", task.state),
        ));
    }
    let task = app
        .store
        .request_cancel(&task)
        .await?
        .ok_or(DomainError::NotFound("task"))?;
    // Offline: the next session of the workspace passes the cancel on, or the lease ends it.
    app.sessions
        .send(task.workspace_id, Control::Cancel(task.id))
        .await;
    crate::tasks::publish(app, task.id).await;
    audit::record(Record {
        caller,
        action: "task.cancel",
        subject: task.id,
    });
    Ok(task)
}

/// Runs a task again, in the same place, with the same checks as a new run.
pub async fn rerun(app: &AppState, caller: Caller, id: Uuid) -> DomainResult<Task> {
    let old = visible(app, caller.user, id).await?;
    may_run(app, caller.user, &old).await?;
    // The workspace must still be the caller's, or still be in a project where the caller may
    // run, and be online.
    let target = target(app, caller.user, Some(old.workspace_id), old.project_id).await?;
    launch(
        app,
        caller,
        target,
        (
            old.repo.clone(),
            old.run(),
            old.env.clone(),
            old.timeout_s.max(1) as u64,
        ),
        "task.rerun",
    )
    .await
}
