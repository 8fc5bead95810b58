//! The SQL behind [`WorkStore`] (projects, members, tasks, logs), written once for both SQLite
//! and PostgreSQL like [`super::sql`], plus how task messages from agents are applied inside the
//! agent-message transaction.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulcrum_protocol::{AgentMessage, TaskRun, TaskState, TestSummary};
use sqlx::{Row, types::Json};
use uuid::Uuid;

use super::{
    PostgresStore, SqliteStore, StoreError, StoreResult,
    work::{
        Invitation, Member, NewProject, NewTask, Project, ProjectPatch, ProjectStatus, Role, Task,
        TaskFilter, TaskSource, WorkStore,
    },
};

/// The columns of a task row, with the triggering user's e-mail.
const TASK_COLUMNS: &str = "t.id, t.owner_id, t.project_id, t.workspace_id, t.repo, t.command, \
    t.step, t.env, t.timeout_s, t.state, t.exit_code, t.signal, t.error, t.created_at, \
    t.dispatched_at, t.started_at, t.finished_at, t.duration_ms, t.commit_sha, t.branch, \
    t.triggered_by, u.email AS triggered_by_email, t.source, t.test_summary, t.log_bytes, \
    t.log_truncated, t.log_limit, t.cancel_requested";

/// Tasks `$1` may see.
const VISIBLE: &str = "(t.owner_id = $1 OR t.project_id IN \
    (SELECT project_id FROM project_members WHERE user_id = $1))";

/// An invitation row, with its project's name and the inviter's e-mail.
const INVITATION_SELECT: &str = "SELECT i.id, i.project_id, p.name AS project_name, i.email, \
    i.role, u.email AS invited_by_email, i.created_at, i.expires_at \
    FROM project_invitations i JOIN projects p ON p.id = i.project_id \
    JOIN users u ON u.id = i.invited_by";

/// Slack past the log limit for the cut marker.
const MARKER_ROOM: u64 = 4096;

fn to_db(n: u64) -> StoreResult<i64> {
    i64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{n} is too large")))
}

macro_rules! sql_work_store {
    ($name:ident, $db:ty, $row:ty) => {
        impl $name {
            fn project_from_row(row: &$row, workspace_ids: Vec<Uuid>) -> StoreResult<Project> {
                let role: String = row.try_get("role")?;
                let tech: Json<Vec<String>> = row.try_get("tech_stack")?;
                Ok(Project {
                    id: row.try_get("id")?,
                    owner_id: row.try_get("owner_id")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    repository_url: row.try_get("repository_url")?,
                    tech_stack: tech.0,
                    status: super::parse_named(row.try_get("status")?, ProjectStatus::parse)?,
                    role: Role::parse(&role)
                        .ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
                    workspace_ids,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            fn invitation_from_row(row: &$row) -> StoreResult<Invitation> {
                let role: String = row.try_get("role")?;
                Ok(Invitation {
                    id: row.try_get("id")?,
                    project_id: row.try_get("project_id")?,
                    project_name: row.try_get("project_name")?,
                    email: row.try_get("email")?,
                    role: Role::parse(&role)
                        .ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
                    invited_by_email: row.try_get("invited_by_email")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                })
            }

            fn task_from_row(row: &$row) -> StoreResult<Task> {
                let env: Json<BTreeMap<String, String>> = row.try_get("env")?;
                let summary: Option<Json<TestSummary>> = row.try_get("test_summary")?;
                Ok(Task {
                    id: row.try_get("id")?,
                    owner_id: row.try_get("owner_id")?,
                    project_id: row.try_get("project_id")?,
                    workspace_id: row.try_get("workspace_id")?,
                    repo: row.try_get("repo")?,
                    command: row.try_get("command")?,
                    step: row.try_get("step")?,
                    env_keys: env.0.keys().cloned().collect(),
                    env: env.0,
                    timeout_s: row.try_get("timeout_s")?,
                    state: super::parse_named(row.try_get("state")?, TaskState::parse)?,
                    exit_code: row.try_get("exit_code")?,
                    signal: row.try_get("signal")?,
                    error: row.try_get("error")?,
                    created_at: row.try_get("created_at")?,
                    dispatched_at: row.try_get("dispatched_at")?,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                    duration_ms: row.try_get("duration_ms")?,
                    commit_sha: row.try_get("commit_sha")?,
                    branch: row.try_get("branch")?,
                    triggered_by: row.try_get("triggered_by")?,
                    triggered_by_email: row.try_get("triggered_by_email")?,
                    source: super::parse_named(row.try_get("source")?, TaskSource::parse)?,
                    test_summary: summary.map(|s| s.0),
                    log_bytes: row.try_get("log_bytes")?,
                    log_truncated: row.try_get("log_truncated")?,
                    log_limit: row.try_get("log_limit")?,
                    cancel_requested: row.try_get("cancel_requested")?,
                })
            }

            async fn project_workspace_ids(&self, project: Uuid) -> StoreResult<Vec<Uuid>> {
                Ok(sqlx::query_scalar(
                    "SELECT workspace_id FROM project_workspaces WHERE project_id = $1 \
                     ORDER BY workspace_id",
                )
                .bind(project)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn task_unscoped(&self, id: Uuid) -> StoreResult<Option<Task>> {
                let row = sqlx::query(&format!(
                    "SELECT {TASK_COLUMNS} FROM tasks t JOIN users u ON u.id = t.triggered_by \
                     WHERE t.id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::task_from_row).transpose()
            }

            /// Applies one task message from the agent of `workspace`, inside the caller's
            /// transaction. Messages about tasks of other workspaces change nothing.
            pub(super) async fn apply_task_message(
                conn: &mut <$db as sqlx::Database>::Connection,
                workspace: Uuid,
                message: &AgentMessage,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                match message {
                    AgentMessage::TaskStarted { task_id, commit, branch } => {
                        sqlx::query(
                            "UPDATE tasks SET state = 'running', started_at = $3, commit_sha = $4, \
                             branch = $5 WHERE id = $1 AND workspace_id = $2 \
                             AND state IN ('queued', 'dispatched')",
                        )
                        .bind(task_id)
                        .bind(workspace)
                        .bind(now)
                        .bind(commit)
                        .bind(branch)
                        .execute(&mut *conn)
                        .await?;
                    }
                    AgentMessage::TaskOutput { task_id, offset, data } => {
                        let end = offset + data.len() as u64;
                        // The common case: the chunk follows what is stored, within the limit.
                        let advanced = sqlx::query(
                            "UPDATE tasks SET log_bytes = $4 WHERE id = $1 AND workspace_id = $2 \
                             AND log_bytes = $3 AND $4 <= log_limit + $5",
                        )
                        .bind(task_id)
                        .bind(workspace)
                        .bind(to_db(*offset)?)
                        .bind(to_db(end)?)
                        .bind(MARKER_ROOM as i64)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                        if advanced == 0 {
                            let stored = sqlx::query(
                                "SELECT log_bytes, log_limit FROM tasks WHERE id = $1 AND workspace_id = $2",
                            )
                            .bind(task_id)
                            .bind(workspace)
                            .fetch_optional(&mut *conn)
                            .await?;
                            let stored = match stored {
                                Some(row) => {
                                    let at: i64 = row.try_get("log_bytes")?;
                                    let limit: i64 = row.try_get("log_limit")?;
                                    Some((at as u64, limit as u64))
                                }
                                None => None,
                            };
                            match stored {
                                Some((_, limit)) if end > limit + MARKER_ROOM => {
                                    tracing::warn!(task = %task_id, "output past the log limit dropped");
                                    return Ok(());
                                }
                                // A replay of what is stored already.
                                Some((at, _)) if at >= end || at > *offset => {
                                    return Ok(());
                                }
                                Some((at, _)) => {
                                    tracing::warn!(task = %task_id, stored = at, offset, "log gap: storing the chunk where it belongs");
                                    sqlx::query("UPDATE tasks SET log_bytes = $2 WHERE id = $1")
                                        .bind(task_id)
                                        .bind(to_db(end)?)
                                        .execute(&mut *conn)
                                        .await?;
                                }
                                None => return Ok(()),
                            }
                        }
                        sqlx::query(
                            "INSERT INTO task_logs (task_id, byte_offset, data) VALUES ($1, $2, $3) \
                             ON CONFLICT (task_id, byte_offset) DO NOTHING",
                        )
                        .bind(task_id)
                        .bind(to_db(*offset)?)
                        .bind(data.as_slice())
                        .execute(&mut *conn)
                        .await?;
                    }
                    AgentMessage::TaskFinished(result) => {
                        let end = crate::store::work_end(&result.outcome);
                        sqlx::query(
                            "UPDATE tasks SET state = $3, exit_code = $4, signal = $5, error = $6, \
                             finished_at = $7, duration_ms = $8, test_summary = $9, \
                             log_truncated = $10, started_at = COALESCE(started_at, $7) \
                             WHERE id = $1 AND workspace_id = $2 AND state NOT IN \
                             ('succeeded', 'failed', 'canceled', 'timed_out', 'lost')",
                        )
                        .bind(result.task_id)
                        .bind(workspace)
                        .bind(end.state)
                        .bind(end.exit_code)
                        .bind(end.signal)
                        .bind(end.error)
                        .bind(now)
                        .bind(to_db(result.duration_ms)?)
                        .bind(result.test_summary.as_ref().map(Json))
                        .bind(result.truncated)
                        .execute(&mut *conn)
                        .await?;
                    }
                    AgentMessage::RepoSet { .. } | AgentMessage::RepoState(_) => {}
                }
                Ok(())
            }
        }

        #[async_trait]
        impl WorkStore for $name {
            async fn create_project(
                &self,
                owner: Uuid,
                p: &NewProject,
                now: DateTime<Utc>,
            ) -> StoreResult<Project> {
                let id = Uuid::now_v7();
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO projects (id, owner_id, name, description, repository_url, \
                     tech_stack, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7)",
                )
                .bind(id)
                .bind(owner)
                .bind(&p.name)
                .bind(&p.description)
                .bind(&p.repository_url)
                .bind(Json(&p.tech_stack))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO project_members (project_id, user_id, role, added_at) \
                     VALUES ($1, $2, 'owner', $3)",
                )
                .bind(id)
                .bind(owner)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                self.get_project(owner, id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("project vanished".into()))
            }

            async fn list_projects(&self, user: Uuid) -> StoreResult<Vec<Project>> {
                let rows = sqlx::query(
                    "SELECT p.*, m.role FROM projects p \
                     JOIN project_members m ON m.project_id = p.id AND m.user_id = $1 \
                     ORDER BY p.created_at DESC, p.id",
                )
                .bind(user)
                .fetch_all(&self.pool)
                .await?;
                let links = sqlx::query(
                    "SELECT pw.project_id, pw.workspace_id FROM project_workspaces pw \
                     JOIN project_members m ON m.project_id = pw.project_id AND m.user_id = $1",
                )
                .bind(user)
                .fetch_all(&self.pool)
                .await?;
                let mut by_project: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
                for link in &links {
                    by_project
                        .entry(link.try_get("project_id")?)
                        .or_default()
                        .push(link.try_get("workspace_id")?);
                }
                rows.iter()
                    .map(|row| {
                        let id: Uuid = row.try_get("id")?;
                        Self::project_from_row(row, by_project.remove(&id).unwrap_or_default())
                    })
                    .collect()
            }

            async fn get_project(&self, user: Uuid, id: Uuid) -> StoreResult<Option<Project>> {
                let row = sqlx::query(
                    "SELECT p.*, m.role FROM projects p \
                     JOIN project_members m ON m.project_id = p.id AND m.user_id = $1 \
                     WHERE p.id = $2",
                )
                .bind(user)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                match row {
                    Some(row) => {
                        let ids = self.project_workspace_ids(id).await?;
                        Ok(Some(Self::project_from_row(&row, ids)?))
                    }
                    None => Ok(None),
                }
            }

            async fn update_project(
                &self,
                user: Uuid,
                id: Uuid,
                patch: &ProjectPatch,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<Project>> {
                let (set_url, url) = match &patch.repository_url {
                    Some(url) => (true, url.clone()),
                    None => (false, None),
                };
                sqlx::query(
                    "UPDATE projects SET name = COALESCE($2, name), \
                     description = COALESCE($3, description), \
                     repository_url = CASE WHEN $4 THEN $5 ELSE repository_url END, \
                     tech_stack = COALESCE($6, tech_stack), status = COALESCE($7, status), \
                     updated_at = $8 WHERE id = $1",
                )
                .bind(id)
                .bind(&patch.name)
                .bind(&patch.description)
                .bind(set_url)
                .bind(url)
                .bind(patch.tech_stack.as_ref().map(Json))
                .bind(patch.status.map(ProjectStatus::as_str))
                .bind(now)
                .execute(&self.pool)
                .await?;
                self.get_project(user, id).await
            }

            async fn set_project_workspace(
                &self,
                owner: Uuid,
                project: Uuid,
                workspace: Uuid,
                attach: bool,
            ) -> StoreResult<bool> {
                let owned: Option<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM workspaces WHERE id = $1 AND owner_id = $2",
                )
                .bind(workspace)
                .bind(owner)
                .fetch_optional(&self.pool)
                .await?;
                if owned.is_none() {
                    return Ok(false);
                }
                let sql = if attach {
                    "INSERT INTO project_workspaces (project_id, workspace_id) VALUES ($1, $2) \
                     ON CONFLICT (project_id, workspace_id) DO NOTHING"
                } else {
                    "DELETE FROM project_workspaces WHERE project_id = $1 AND workspace_id = $2"
                };
                let n = sqlx::query(sql)
                    .bind(project)
                    .bind(workspace)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(attach || n > 0)
            }

            async fn project_members(&self, project: &Project) -> StoreResult<Vec<Member>> {
                let rows = sqlx::query(
                    "SELECT m.user_id, u.email, m.role FROM project_members m \
                     JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 \
                     ORDER BY m.added_at, u.email",
                )
                .bind(project.id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let role: String = row.try_get("role")?;
                        Ok(Member {
                            user_id: row.try_get("user_id")?,
                            email: row.try_get("email")?,
                            role: Role::parse(&role)
                                .ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
                        })
                    })
                    .collect()
            }

            async fn set_project_member(
                &self,
                project: Uuid,
                user: Uuid,
                role: Role,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO project_members (project_id, user_id, role, added_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, user_id) DO UPDATE \
                     SET role = excluded.role WHERE project_members.role <> 'owner'",
                )
                .bind(project)
                .bind(user)
                .bind(role.as_str())
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn remove_project_member(&self, project: Uuid, user: Uuid) -> StoreResult<bool> {
                let n = sqlx::query(
                    "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2 \
                     AND role <> 'owner'",
                )
                .bind(project)
                .bind(user)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n > 0)
            }

            async fn invite(
                &self,
                project: Uuid,
                email: &str,
                role: Role,
                invited_by: Uuid,
                now: DateTime<Utc>,
                expires_at: DateTime<Utc>,
            ) -> StoreResult<Invitation> {
                let id: Uuid = sqlx::query_scalar(
                    "INSERT INTO project_invitations \
                     (id, project_id, email, role, invited_by, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (project_id, email) DO UPDATE \
                     SET role = excluded.role, invited_by = excluded.invited_by, \
                     created_at = excluded.created_at, expires_at = excluded.expires_at \
                     RETURNING id",
                )
                .bind(Uuid::now_v7())
                .bind(project)
                .bind(email)
                .bind(role.as_str())
                .bind(invited_by)
                .bind(now)
                .bind(expires_at)
                .fetch_one(&self.pool)
                .await?;
                let row = sqlx::query(&format!("{INVITATION_SELECT} WHERE i.id = $1"))
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
                Self::invitation_from_row(&row)
            }

            async fn project_invitations(
                &self,
                project: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<Vec<Invitation>> {
                let rows = sqlx::query(&format!(
                    "{INVITATION_SELECT} WHERE i.project_id = $1 AND i.expires_at > $2 \
                     ORDER BY i.created_at"
                ))
                .bind(project)
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::invitation_from_row).collect()
            }

            async fn invitations_for(
                &self,
                email: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Vec<Invitation>> {
                let rows = sqlx::query(&format!(
                    "{INVITATION_SELECT} WHERE i.email = $1 AND i.expires_at > $2 \
                     ORDER BY i.created_at"
                ))
                .bind(email)
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::invitation_from_row).collect()
            }

            async fn withdraw_invitation(&self, project: Uuid, id: Uuid) -> StoreResult<bool> {
                let n = sqlx::query(
                    "DELETE FROM project_invitations WHERE id = $1 AND project_id = $2",
                )
                .bind(id)
                .bind(project)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n > 0)
            }

            async fn decline_invitation(&self, email: &str, id: Uuid) -> StoreResult<bool> {
                let n = sqlx::query("DELETE FROM project_invitations WHERE id = $1 AND email = $2")
                    .bind(id)
                    .bind(email)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n > 0)
            }

            async fn accept_invitation(
                &self,
                user: Uuid,
                email: &str,
                id: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<Uuid>> {
                let mut tx = self.pool.begin().await?;
                let taken = sqlx::query(
                    "DELETE FROM project_invitations WHERE id = $1 AND email = $2 \
                     AND expires_at > $3 RETURNING project_id, role",
                )
                .bind(id)
                .bind(email)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = taken else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let project: Uuid = row.try_get("project_id")?;
                let role: String = row.try_get("role")?;
                sqlx::query(
                    "INSERT INTO project_members (project_id, user_id, role, added_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, user_id) DO UPDATE \
                     SET role = excluded.role WHERE project_members.role <> 'owner'",
                )
                .bind(project)
                .bind(user)
                .bind(&role)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(project))
            }

            async fn create_task(&self, t: &NewTask) -> StoreResult<Task> {
                let (command, step) = match &t.run {
                    TaskRun::Command { command } => (Some(command.clone()), None),
                    TaskRun::Step { name } => (None, Some(name.clone())),
                };
                sqlx::query(
                    "INSERT INTO tasks (id, owner_id, project_id, workspace_id, repo, command, step, \
                     env, timeout_s, state, created_at, dispatched_at, triggered_by, source, log_limit) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'dispatched', $10, $10, $11, $12, $13)",
                )
                .bind(t.id)
                .bind(t.owner_id)
                .bind(t.project_id)
                .bind(t.workspace_id)
                .bind(&t.repo)
                .bind(command)
                .bind(step)
                .bind(Json(&t.env))
                .bind(to_db(t.timeout_s)?)
                .bind(t.now)
                .bind(t.triggered_by)
                .bind(t.source.as_str())
                .bind(to_db(t.log_limit)?)
                .execute(&self.pool)
                .await?;
                self.task_unscoped(t.id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("task vanished".into()))
            }

            async fn get_task(&self, user: Uuid, id: Uuid) -> StoreResult<Option<Task>> {
                let row = sqlx::query(&format!(
                    "SELECT {TASK_COLUMNS} FROM tasks t JOIN users u ON u.id = t.triggered_by \
                     WHERE {VISIBLE} AND t.id = $2"
                ))
                .bind(user)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::task_from_row).transpose()
            }

            async fn list_tasks(
                &self,
                user: Uuid,
                f: &TaskFilter,
            ) -> StoreResult<(Vec<Task>, u64)> {
                let filter = "($2 IS NULL OR t.project_id = $2) AND \
                    ($3 IS NULL OR t.workspace_id = $3) AND ($4 IS NULL OR t.state = $4)";
                let total: i64 = sqlx::query_scalar(&format!(
                    "SELECT COUNT(*) FROM tasks t WHERE {VISIBLE} AND {filter}"
                ))
                .bind(user)
                .bind(f.project)
                .bind(f.workspace)
                .bind(f.state.map(TaskState::as_str))
                .fetch_one(&self.pool)
                .await?;
                let per_page = i64::from(f.per_page.max(1));
                let skip = i64::from(f.page.max(1) - 1) * per_page;
                let rows = sqlx::query(&format!(
                    "SELECT {TASK_COLUMNS} FROM tasks t JOIN users u ON u.id = t.triggered_by \
                     WHERE {VISIBLE} AND {filter} ORDER BY t.created_at DESC, t.id DESC \
                     LIMIT $5 OFFSET $6"
                ))
                .bind(user)
                .bind(f.project)
                .bind(f.workspace)
                .bind(f.state.map(TaskState::as_str))
                .bind(per_page)
                .bind(skip)
                .fetch_all(&self.pool)
                .await?;
                let tasks = rows.iter().map(Self::task_from_row).collect::<StoreResult<_>>()?;
                Ok((tasks, total.max(0) as u64))
            }

            async fn task_with_audience(
                &self,
                id: Uuid,
            ) -> StoreResult<Option<(Task, Vec<Uuid>)>> {
                let Some(task) = self.task_unscoped(id).await? else {
                    return Ok(None);
                };
                let mut audience = vec![task.owner_id];
                if let Some(project) = task.project_id {
                    let members: Vec<Uuid> = sqlx::query_scalar(
                        "SELECT user_id FROM project_members WHERE project_id = $1",
                    )
                    .bind(project)
                    .fetch_all(&self.pool)
                    .await?;
                    audience.extend(members.into_iter().filter(|m| *m != task.owner_id));
                }
                Ok(Some((task, audience)))
            }

            async fn tasks_to_resume(&self, owner: Uuid, workspace: Uuid) -> StoreResult<Vec<Task>> {
                let rows = sqlx::query(&format!(
                    "SELECT {TASK_COLUMNS} FROM tasks t JOIN users u ON u.id = t.triggered_by \
                     WHERE t.workspace_id = $1 AND t.owner_id = $2 AND (t.state IN ('queued', 'dispatched') \
                     OR (t.state = 'running' AND t.cancel_requested)) ORDER BY t.created_at, t.id"
                ))
                .bind(workspace)
                .bind(owner)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::task_from_row).collect()
            }

            async fn request_cancel(&self, task: &Task) -> StoreResult<Option<Task>> {
                let id = task.id;
                sqlx::query(
                    "UPDATE tasks SET cancel_requested = TRUE WHERE id = $1 AND state NOT IN \
                     ('succeeded', 'failed', 'canceled', 'timed_out', 'lost')",
                )
                .bind(id)
                .execute(&self.pool)
                .await?;
                self.task_unscoped(id).await
            }

            async fn read_log(
                &self,
                task: &Task,
                offset: u64,
                limit: usize,
            ) -> StoreResult<Vec<(u64, Vec<u8>)>> {
                // Chunks vary from a few bytes to 256 KiB: ask for a few rows at a time, more
                // each round, so a read never drags in much more than `limit`.
                let chunk = fulcrum_protocol::tasks::MAX_OUTPUT_CHUNK as i64;
                let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
                let mut total = 0usize;
                let mut from = to_db(offset)?;
                let mut rows_wanted: i64 = 4;
                // Chunks are contiguous, so none starting at or past `offset + limit` is needed:
                // a read never holds much more than `limit` and one chunk.
                let before = to_db(offset.saturating_add(limit as u64))?;
                loop {
                    let rows = sqlx::query(
                        "SELECT byte_offset, data FROM task_logs WHERE task_id = $1 \
                         AND byte_offset > $2 - $3 AND byte_offset + length(data) > $2 \
                         AND byte_offset < $5 ORDER BY byte_offset LIMIT $4",
                    )
                    .bind(task.id)
                    .bind(from)
                    .bind(chunk)
                    .bind(rows_wanted)
                    .bind(before)
                    .fetch_all(&self.pool)
                    .await?;
                    let got = rows.len() as i64;
                    for row in &rows {
                        let at: i64 = row.try_get("byte_offset")?;
                        let data: Vec<u8> = row.try_get("data")?;
                        from = at + data.len() as i64;
                        total += data.len();
                        out.push((at as u64, data));
                        if total >= limit {
                            return Ok(out);
                        }
                    }
                    if got < rows_wanted {
                        return Ok(out);
                    }
                    rows_wanted = (rows_wanted * 4).min(1024);
                }
            }

            async fn mark_lost_tasks(
                &self,
                cutoff: DateTime<Utc>,
                now: DateTime<Utc>,
                message: &str,
            ) -> StoreResult<Vec<Uuid>> {
                Ok(sqlx::query_scalar(
                    "UPDATE tasks SET state = 'lost', error = $3, finished_at = $2 \
                     WHERE state IN ('queued', 'dispatched', 'running') AND workspace_id IN \
                     (SELECT id FROM workspaces WHERE NOT online AND last_seen_at < $1) \
                     RETURNING id",
                )
                .bind(cutoff)
                .bind(now)
                .bind(message)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

sql_work_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow);
sql_work_store!(PostgresStore, sqlx::Postgres, sqlx::postgres::PgRow);

#[cfg(test)]
mod tests {
    #[test]
    fn the_cut_marker_fits_the_room_left_for_it() {
        let marker = fulcrum_protocol::tasks::cut_marker(u64::MAX);
        assert!(marker.len() as u64 <= super::MARKER_ROOM);
    }
}
