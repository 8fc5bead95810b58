//! Tasks: who may run, cancel and see them, and how a run starts, whatever the door.
//!
//! Who may run in a workspace: its owner, or an owner or maintainer of a project the workspace
//! belongs to (naming that project). Who may see a task: its workspace's owner and the members
//! of its project; anyone else is told it does not exist.

use std::{collections::BTreeMap, sync::Arc};

use chrono::Utc;
use fulcrum_protocol::{TaskRun, tasks, tasks::MAX_TIMEOUT_S};
use uuid::Uuid;

use super::{
    Caller, DomainError, DomainResult, Limit,
    audit::{self, Record},
};
use crate::{
    sessions::{Control, Registry},
    store::{DynStore, NewTask, Project, ProjectStatus, Role, Scope, Task, TaskFilter},
    tasks::{Dispatch, LogSlice, TaskFeed},
};

/// Most tasks one page of a list holds.
pub const MAX_PER_PAGE: u32 = 200;

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

/// The relay's task settings.
#[derive(Debug, Clone, Copy)]
pub struct TaskLimits {
    /// A task's time limit when none is asked for, in seconds.
    pub default_timeout_s: u64,
    /// Seconds between SIGTERM and SIGKILL when a task is stopped.
    pub grace_s: u64,
    /// Most log bytes kept per task.
    pub log_limit: u64,
}

impl TaskLimits {
    /// The time limit for a run that asked for `asked` seconds.
    fn timeout_for(&self, asked: Option<i64>) -> DomainResult<u64> {
        match asked {
            None => Ok(self.default_timeout_s.clamp(1, MAX_TIMEOUT_S)),
            Some(t) if t < 1 => Err(DomainError::Invalid("timeout_s must be at least 1".into())),
            Some(t) if t as u64 > MAX_TIMEOUT_S => Err(DomainError::Invalid(format!(
                "timeout_s must be at most {MAX_TIMEOUT_S}"
            ))),
            Some(t) => Ok(t as u64),
        }
    }
}

/// Starting, stopping and reading tasks: with exactly what that uses.
pub struct Tasks {
    store: DynStore,
    sessions: Arc<Registry>,
    feed: Arc<TaskFeed>,
    limits: TaskLimits,
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

impl Tasks {
    /// Tasks on `store`, dispatched to `sessions`, told on `feed`.
    pub fn new(
        store: DynStore,
        sessions: Arc<Registry>,
        feed: Arc<TaskFeed>,
        limits: TaskLimits,
    ) -> Self {
        Self {
            store,
            sessions,
            feed,
            limits,
        }
    }

    /// The settings in force.
    pub fn limits(&self) -> TaskLimits {
        self.limits
    }

    /// The project if `user` is a member.
    async fn member_project(&self, user: Uuid, id: Uuid) -> DomainResult<Project> {
        self.store
            .get_project(user, id)
            .await?
            .ok_or(DomainError::NotFound("project"))
    }

    /// Checks the caller may run in the named workspace or project, and picks the workspace.
    async fn target(
        &self,
        caller: Caller,
        workspace: Option<Uuid>,
        project: Option<Uuid>,
    ) -> DomainResult<Target> {
        let target = self.pick(caller, workspace, project).await?;
        self.allows_runs(target.workspace)?;
        Ok(target)
    }

    /// The workspace a pipeline run of `project` works in: `workspace` if it is still one of the
    /// project's, online, that the caller may run in; else any such one, as a task picks it.
    pub async fn workspace_for(
        &self,
        caller: Caller,
        project: Uuid,
        workspace: Option<Uuid>,
    ) -> DomainResult<Uuid> {
        Ok(self.pick(caller, workspace, Some(project)).await?.workspace)
    }

    /// Refuses a workspace whose policy does not allow runs (as its agent last said).
    fn allows_runs(&self, workspace: Uuid) -> DomainResult<()> {
        match self.sessions.policy(workspace) {
            Some(policy) if !policy.contains(Scope::Run) => Err(DomainError::Denied {
                code: "workspace_policy",
                message: "the workspace's policy does not allow `run` (its agent was started \
                          without `run` in --allow)"
                    .into(),
            }),
            _ => Ok(()),
        }
    }

    /// Picks the workspace the caller may run in.
    async fn pick(
        &self,
        caller: Caller,
        workspace: Option<Uuid>,
        project: Option<Uuid>,
    ) -> DomainResult<Target> {
        let user = caller.user;
        // A project-limited token runs in its project when none is named.
        let (project, from_limit) = match (project, caller.grant.limit) {
            (None, Limit::Project(p)) => (Some(p), true),
            (named, _) => (named, false),
        };
        match (workspace, project) {
            (None, None) => Err(DomainError::Invalid(
                "name a workspace_id or a project_id".into(),
            )),
            (Some(ws), None) => {
                let found = self
                    .store
                    .get_workspace(user, ws)
                    .await?
                    .ok_or(DomainError::NotFound("workspace"))?;
                if !caller.reaches_task(None, found.id) {
                    return Err(DomainError::Denied {
                        code: "token_limited",
                        message: "this token is limited to one project: start the task with \
                                  that project's id"
                            .into(),
                    });
                }
                if !self.sessions.is_online(found.id) {
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
                let project = self.member_project(user, project_id).await?;
                if !caller.reaches_project(project.id, &project.workspace_ids) {
                    return Err(DomainError::NotFound("project"));
                }
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
                    Some(_) if from_limit => {
                        return Err(DomainError::Denied {
                            code: "token_limited",
                            message: "this token is limited to one project, which does not \
                                      hold this workspace"
                                .into(),
                        });
                    }
                    Some(_) => return Err(DomainError::NotFound("workspace")),
                    None => project.workspace_ids.clone(),
                };
                let candidates: Vec<Uuid> = candidates
                    .into_iter()
                    .filter(|w| caller.reaches_task(Some(project.id), *w))
                    .collect();
                if candidates.is_empty() {
                    return Err(offline("the project has no workspaces; attach one first"));
                }
                let Some(chosen) = candidates
                    .iter()
                    .copied()
                    .find(|w| self.sessions.is_online(*w))
                else {
                    return Err(offline("no workspace of this project is online"));
                };
                let owner = self.workspace_owner(&project, chosen).await?;
                Ok(Target {
                    owner,
                    project: Some(project.id),
                    workspace: chosen,
                })
            }
        }
    }

    /// The owner of a project's workspace (a member who attached it).
    async fn workspace_owner(&self, project: &Project, workspace: Uuid) -> DomainResult<Uuid> {
        for member in self.store.project_members(project).await? {
            if self
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

    /// Records a task and sends it to its workspace's session on this node. The caller has
    /// checked that the workspace is online and the user may run there.
    async fn dispatch(&self, new: NewTask) -> DomainResult<Task> {
        let task = self.store.create_task(&new).await?;
        let epoch = self.feed.epoch(task.project_id);
        let audience = match self.store.task_with_audience(task.id).await? {
            Some((_, audience)) => audience,
            None => vec![task.owner_id],
        };
        self.feed.publish_to(&task, &audience);
        let dispatch = Dispatch {
            spec: crate::tasks::spec(&task, self.limits.grace_s),
            task: task.clone(),
            audience,
            epoch,
        };
        if !self
            .sessions
            .send(task.workspace_id, Control::Run(Box::new(dispatch)))
            .await
        {
            // The session ended in between: the next one resumes the task, or the lease ends it.
            tracing::info!(task = %task.id, "workspace went offline while dispatching; the task waits for it");
        }
        Ok(task)
    }

    /// Records and dispatches a run for `target`, and says so to the audit hook.
    async fn launch(
        &self,
        caller: Caller,
        target: Target,
        (id, repo, run, env, timeout_s): (Uuid, String, TaskRun, BTreeMap<String, String>, u64),
        action: &str,
    ) -> DomainResult<Task> {
        let task = self
            .dispatch(NewTask {
                id,
                owner_id: target.owner,
                project_id: target.project,
                workspace_id: target.workspace,
                repo,
                run,
                env,
                timeout_s,
                triggered_by: caller.user,
                source: caller.door.task_source(),
                log_limit: self.limits.log_limit,
                now: Utc::now(),
            })
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
    pub async fn start(&self, caller: Caller, input: RunInput) -> DomainResult<Task> {
        self.start_as(caller, input, Uuid::now_v7()).await
    }

    /// [`Tasks::start`], the task getting the id `id`: a pipeline stage's attempt names its
    /// task by the run, stage and attempt, so a run that resumes finds the task it started.
    pub async fn start_as(&self, caller: Caller, input: RunInput, id: Uuid) -> DomainResult<Task> {
        caller.need(Scope::Run)?;
        let run = input.run;
        run.check()?;
        tasks::check_env(&input.env)?;
        let repo = input.repo.unwrap_or_else(|| ".".into());
        tasks::check_repo_path(&repo)?;
        let timeout_s = self.limits.timeout_for(input.timeout_s)?;
        let target = self.target(caller, input.workspace, input.project).await?;
        self.launch(
            caller,
            target,
            (id, repo, run, input.env, timeout_s),
            "task.start",
        )
        .await
    }

    /// The task if the caller may read it, as it is now (its live state when that is ahead of
    /// the store).
    pub async fn visible(&self, caller: Caller, id: Uuid) -> DomainResult<Task> {
        caller.need(Scope::Read)?;
        self.reached(caller, id).await
    }

    /// Task `number` of `workspace` (its short handle, `#17`), if the caller may read it.
    pub async fn by_number(
        &self,
        caller: Caller,
        workspace: Uuid,
        number: i64,
    ) -> DomainResult<Task> {
        caller.need(Scope::Read)?;
        let found = self
            .store
            .task_by_number(caller.user, workspace, number)
            .await?
            .ok_or(DomainError::NotFound("task"))?;
        self.reached(caller, found.id).await
    }

    /// The task if the caller may see it and its token reaches it (no scope checked).
    async fn reached(&self, caller: Caller, id: Uuid) -> DomainResult<Task> {
        let mut found: Vec<Task> = self
            .store
            .get_task(caller.user, id)
            .await?
            .into_iter()
            .filter(|t| caller.reaches_task(t.project_id, t.workspace_id))
            .collect();
        self.feed.live.overlay(&mut found);
        found.pop().ok_or(DomainError::NotFound("task"))
    }

    /// Checks `user` may run or cancel `task`: its workspace's owner, or a project owner or
    /// maintainer.
    async fn may_run(&self, user: Uuid, task: &Task) -> DomainResult<()> {
        if task.owner_id == user {
            return Ok(());
        }
        let role = match task.project_id {
            Some(p) => self.store.get_project(user, p).await?.map(|p| p.role),
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
    pub async fn cancel(&self, caller: Caller, id: Uuid) -> DomainResult<Task> {
        caller.need(Scope::Run)?;
        let task = self.reached(caller, id).await?;
        self.may_run(caller.user, &task).await?;
        if task.is_finished() {
            return Err(DomainError::conflict(
                "task_finished",
                format!("the task already ended ({})", task.state),
            ));
        }
        let task = self
            .store
            .request_cancel(&task)
            .await?
            .ok_or(DomainError::NotFound("task"))?;
        // Offline: the next session of the workspace passes the cancel on, or the lease ends it.
        self.sessions
            .send(task.workspace_id, Control::Cancel(task.id))
            .await;
        self.feed.publish(task.id).await;
        audit::record(Record {
            caller,
            action: "task.cancel",
            subject: task.id,
        });
        Ok(task)
    }

    /// Runs a task again, in the same place, with the same checks as a new run.
    pub async fn rerun(&self, caller: Caller, id: Uuid) -> DomainResult<Task> {
        caller.need(Scope::Run)?;
        let old = self.reached(caller, id).await?;
        self.may_run(caller.user, &old).await?;
        // The workspace must still be the caller's, or still be in a project where the caller may
        // run, and be online.
        let target = self
            .target(caller, Some(old.workspace_id), old.project_id)
            .await?;
        self.launch(
            caller,
            target,
            (
                Uuid::now_v7(),
                old.repo.clone(),
                old.run(),
                old.env.clone(),
                old.timeout_s.max(1) as u64,
            ),
            "task.rerun",
        )
        .await
    }

    /// The tasks the caller may see that match `filter`, newest first, as they are now, and how
    /// many match in all. A limited token's filter is narrowed to what it reaches.
    pub async fn list(
        &self,
        caller: Caller,
        filter: &TaskFilter,
    ) -> DomainResult<(Vec<Task>, u64)> {
        caller.need(Scope::Read)?;
        let mut filter = filter.clone();
        match caller.grant.limit {
            Limit::None => {}
            Limit::Project(p) if filter.project.is_none_or(|f| f == p) => filter.project = Some(p),
            Limit::Workspace(w) if filter.workspace.is_none_or(|f| f == w) => {
                filter.workspace = Some(w);
            }
            // Asking for something else: nothing of it is reached.
            _ => return Ok((Vec::new(), 0)),
        }
        let filter = &filter;
        let user = caller.user;
        if filter.page < 1 || !(1..=MAX_PER_PAGE).contains(&filter.per_page) {
            return Err(DomainError::Invalid(format!(
                "page must be at least 1 and per_page from 1 to {MAX_PER_PAGE}"
            )));
        }
        let (mut tasks, total) = self.store.list_tasks(user, filter).await?;
        self.feed.live.overlay(&mut tasks);
        Ok((tasks, total))
    }

    /// Up to `limit` bytes of a log `user` may see, from byte `offset`, with the task as it is
    /// now.
    pub async fn log(
        &self,
        caller: Caller,
        id: Uuid,
        offset: u64,
        limit: usize,
    ) -> DomainResult<(Task, LogSlice)> {
        let task = self.visible(caller, id).await?;
        if offset > crate::tasks::MAX_LOG_OFFSET {
            return Err(DomainError::Invalid(format!(
                "offset must be at most {}",
                crate::tasks::MAX_LOG_OFFSET
            )));
        }
        let slice = crate::tasks::read_log(&*self.store, &task, offset, limit).await?;
        Ok((task, slice))
    }
}
