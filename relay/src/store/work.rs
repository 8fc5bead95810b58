//! Projects, their members and workspaces, tasks and task logs: the part of the store behind
//! build and QA jobs.
//!
//! Access rules, applied in every query that takes a `user`:
//! - a project is visible to its members (its owner is a member with role `owner`);
//! - a task is visible to the owner of its workspace and, when it belongs to a project, to the
//!   project's members.
//!
//! Who may *run* or *cancel* is decided by the domain layer (`crate::domain::tasks`) from
//! [`Role`] and workspace ownership.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulcrum_protocol::{TaskRun, TaskState, TestSummary};
use serde::Serialize;
use uuid::Uuid;

use super::StoreResult;
pub use super::kinds::{ProjectStatus, Role, TaskSource};

/// An invitation to join a project, pending until the invited user accepts or declines it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Invitation {
    /// Its id.
    pub id: Uuid,
    /// The project.
    pub project_id: Uuid,
    /// The project's name.
    pub project_name: String,
    /// Who is invited.
    pub email: String,
    /// The role they get on accepting (`maintainer` or `viewer`).
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Who invited them.
    pub invited_by_email: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Until when it can be accepted.
    pub expires_at: DateTime<Utc>,
}

/// A project, as one of its members sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Project {
    /// Its id.
    pub id: Uuid,
    /// The user who created it.
    pub owner_id: Uuid,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Where its code lives.
    pub repository_url: Option<String>,
    /// Languages and frameworks.
    #[sqlx(json)]
    pub tech_stack: Vec<String>,
    /// Whether it takes new work.
    #[sqlx(try_from = "String")]
    pub status: ProjectStatus,
    /// Where its generation stands (draft, generating, ready, failed).
    #[sqlx(try_from = "String")]
    pub generation: fulcrum_protocol::kinds::ProjectGeneration,
    /// The caller's role in it.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// The workspaces that check it out.
    #[sqlx(skip)]
    pub workspace_ids: Vec<Uuid>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The fields of a new project.
#[derive(Debug, Clone)]
pub struct NewProject {
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Where its code lives.
    pub repository_url: Option<String>,
    /// Languages and frameworks.
    pub tech_stack: Vec<String>,
}

/// Changes to a project; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProjectPatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New repository URL (`Some(None)` clears it).
    pub repository_url: Option<Option<String>>,
    /// New tech stack.
    pub tech_stack: Option<Vec<String>>,
    /// New status.
    pub status: Option<ProjectStatus>,
}

/// A project member.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Member {
    /// The user.
    pub user_id: Uuid,
    /// Their e-mail address.
    pub email: String,
    /// Their role.
    #[sqlx(try_from = "String")]
    pub role: Role,
}

/// A task, as the API shows it. Its `Debug` output hides the environment's values, and its
/// JSON only the variables' names.
#[derive(Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Task {
    /// Its id.
    pub id: Uuid,
    /// Owner of the workspace it runs in.
    #[serde(skip)]
    pub owner_id: Uuid,
    /// The project it belongs to, if any.
    pub project_id: Option<Uuid>,
    /// The workspace it runs in.
    pub workspace_id: Uuid,
    /// The repository, relative to the workspace root.
    pub repo: String,
    /// The shell command, for command tasks.
    pub command: Option<String>,
    /// The QA step, for step tasks.
    pub step: Option<String>,
    /// The environment it runs with. Values are secrets: the JSON shows only the names, as
    /// `env_keys`.
    #[serde(rename = "env_keys", serialize_with = "names_only")]
    #[schema(value_type = Vec<String>)]
    #[sqlx(json)]
    pub env: BTreeMap<String, String>,
    /// Its time limit, in seconds.
    pub timeout_s: i64,
    /// Where it is in its life.
    #[sqlx(try_from = "String")]
    pub state: TaskState,
    /// The exit code, when the process exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Why it failed to start or was lost.
    pub error: Option<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it was sent to the agent.
    pub dispatched_at: Option<DateTime<Utc>>,
    /// When its process started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// How long it ran, in milliseconds.
    pub duration_ms: Option<i64>,
    /// The commit it ran on.
    pub commit_sha: Option<String>,
    /// The branch it ran on.
    pub branch: Option<String>,
    /// Who asked for it.
    pub triggered_by: Uuid,
    /// Their e-mail address.
    pub triggered_by_email: String,
    /// The door it was started through.
    #[sqlx(try_from = "String")]
    pub source: TaskSource,
    /// Test results, when it ran tests.
    #[sqlx(json(nullable))]
    pub test_summary: Option<TestSummary>,
    /// Log bytes stored.
    pub log_bytes: i64,
    /// True when the log was cut at the limit.
    pub log_truncated: bool,
    /// Most log bytes kept for it (fixed when it was created).
    #[serde(skip)]
    pub log_limit: i64,
    /// True once a cancel was asked for.
    pub cancel_requested: bool,
    /// Its number in its workspace (`#17`), unique per workspace: a short handle.
    pub number: Option<i64>,
}

/// Serializes a map as the list of its keys.
fn names_only<S: serde::Serializer>(
    env: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(env.keys())
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("workspace_id", &self.workspace_id)
            .field("repo", &self.repo)
            .field("command", &self.command)
            .field("step", &self.step)
            .field("env", &fulcrum_protocol::tasks::RedactedEnv(&self.env))
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Task {
    /// True once the task reached a final state.
    pub fn is_finished(&self) -> bool {
        self.state.is_final()
    }

    /// What the agent runs.
    pub fn run(&self) -> TaskRun {
        match (&self.command, &self.step) {
            (Some(command), _) => TaskRun::Command {
                command: command.clone(),
            },
            (None, Some(name)) => TaskRun::Step { name: name.clone() },
            (None, None) => TaskRun::Command {
                command: String::new(),
            },
        }
    }
}

/// A task to record. Its `Debug` output hides the environment's values.
#[derive(Clone)]
pub struct NewTask {
    /// Its id.
    pub id: Uuid,
    /// Owner of the workspace.
    pub owner_id: Uuid,
    /// The project, if it was asked for through one.
    pub project_id: Option<Uuid>,
    /// The workspace.
    pub workspace_id: Uuid,
    /// The repository.
    pub repo: String,
    /// What to run.
    pub run: TaskRun,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Time limit in seconds.
    pub timeout_s: u64,
    /// Who asked.
    pub triggered_by: Uuid,
    /// The door it was started through.
    pub source: TaskSource,
    /// Most log bytes kept.
    pub log_limit: u64,
    /// Now.
    pub now: DateTime<Utc>,
}

impl std::fmt::Debug for NewTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTask")
            .field("id", &self.id)
            .field("workspace_id", &self.workspace_id)
            .field("repo", &self.repo)
            .field("run", &self.run)
            .field("env", &fulcrum_protocol::tasks::RedactedEnv(&self.env))
            .finish_non_exhaustive()
    }
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this project's.
    pub project: Option<Uuid>,
    /// Only this workspace's.
    pub workspace: Option<Uuid>,
    /// Only in this state.
    pub state: Option<TaskState>,
    /// Only started through this door.
    pub source: Option<TaskSource>,
    /// 1-based page.
    pub page: u32,
    /// Tasks per page.
    pub per_page: u32,
}

/// Projects, members, tasks and logs.
#[async_trait]
pub trait WorkStore: Send + Sync {
    /// Creates a project owned by `owner` (who becomes its first member).
    async fn create_project(
        &self,
        owner: Uuid,
        p: &NewProject,
        now: DateTime<Utc>,
    ) -> StoreResult<Project>;
    /// The projects `user` is a member of, newest first.
    async fn list_projects(&self, user: Uuid) -> StoreResult<Vec<Project>>;
    /// One project, if `user` is a member.
    async fn get_project(&self, user: Uuid, id: Uuid) -> StoreResult<Option<Project>>;
    /// Applies `patch`; the caller has checked the role.
    async fn update_project(
        &self,
        user: Uuid,
        id: Uuid,
        patch: &ProjectPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Project>>;
    /// Attaches or detaches one of `owner`'s workspaces; false when the workspace is not
    /// theirs (or, detaching, was not attached).
    async fn set_project_workspace(
        &self,
        owner: Uuid,
        project: Uuid,
        workspace: Uuid,
        attach: bool,
    ) -> StoreResult<bool>;
    /// The project's members. The project is one the caller could see (from
    /// [`WorkStore::get_project`] or [`WorkStore::list_projects`]).
    async fn project_members(&self, project: &Project) -> StoreResult<Vec<Member>>;
    /// Adds a member or changes their role.
    async fn set_project_member(
        &self,
        project: Uuid,
        user: Uuid,
        role: Role,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Removes a member (never the owner); false when they were not one.
    async fn remove_project_member(&self, project: Uuid, user: Uuid) -> StoreResult<bool>;

    /// Invites `email` to `project` with `role` (an invitation already pending for that address
    /// is renewed with the new role). The caller has checked that `invited_by` owns it.
    async fn invite(
        &self,
        project: Uuid,
        email: &str,
        role: Role,
        invited_by: Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Invitation>;
    /// The project's pending, unexpired invitations.
    async fn project_invitations(
        &self,
        project: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Invitation>>;
    /// The pending, unexpired invitations of the user with this e-mail address.
    async fn invitations_for(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Invitation>>;
    /// Withdraws one of `project`'s invitations; false when it had none with this id.
    async fn withdraw_invitation(&self, project: Uuid, id: Uuid) -> StoreResult<bool>;
    /// Declines an invitation addressed to `email`; false when there was none.
    async fn decline_invitation(&self, email: &str, id: Uuid) -> StoreResult<bool>;
    /// Accepts an unexpired invitation addressed to `email` for `user`, in one transaction:
    /// the invitation goes, the membership comes. Returns the project, or `None` when there
    /// was no such invitation.
    async fn accept_invitation(
        &self,
        user: Uuid,
        email: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>>;

    /// Records a task as dispatched.
    async fn create_task(&self, t: &NewTask) -> StoreResult<Task>;
    /// Task `number` of `workspace`, if `user` may see it.
    async fn task_by_number(
        &self,
        user: Uuid,
        workspace: Uuid,
        number: i64,
    ) -> StoreResult<Option<Task>>;
    /// One task, if `user` may see it.
    async fn get_task(&self, user: Uuid, id: Uuid) -> StoreResult<Option<Task>>;
    /// The tasks `user` may see that match `filter`, newest first, and how many match in all.
    async fn list_tasks(&self, user: Uuid, filter: &TaskFilter) -> StoreResult<(Vec<Task>, u64)>;
    /// One task, unscoped, with the users who may see it (for events).
    async fn task_with_audience(&self, id: Uuid) -> StoreResult<Option<(Task, Vec<Uuid>)>>;
    /// A workspace's tasks the agent still has to hear about: not yet started, or running
    /// with a cancel pending.
    /// Only `owner`'s workspace.
    async fn tasks_to_resume(&self, owner: Uuid, workspace: Uuid) -> StoreResult<Vec<Task>>;
    /// Marks a cancel as asked for on a task the caller could see; `None` when it is gone.
    async fn request_cancel(&self, task: &Task) -> StoreResult<Option<Task>>;
    /// Log chunks of a task from byte `offset`, up to about `limit` bytes, in order, as
    /// `(offset, bytes)`; the first may start before `offset`.
    /// The task is one the caller could see (from [`WorkStore::get_task`]).
    async fn read_log(
        &self,
        task: &Task,
        offset: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>>;
    /// Declares `lost` the unfinished tasks of workspaces offline since before `cutoff`;
    /// returns their ids.
    async fn mark_lost_tasks(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        message: &str,
    ) -> StoreResult<Vec<Uuid>>;
}
