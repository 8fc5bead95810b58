//! The SQL behind [`WorkStore`] (projects, members, tasks, logs), written once for both SQLite
//! and PostgreSQL like [`super::sql`] (the statements are in [`super::queries`]), plus how task
//! messages from agents are applied inside the agent-message transaction.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulcrum_protocol::{AgentMessage, TaskRun, TaskState};
use sqlx::types::Json;
use uuid::Uuid;

use super::{
    PostgresStore, SqliteStore, StoreError, StoreResult, queries as q,
    work::{
        Invitation, Member, NewProject, NewTask, Project, ProjectPatch, ProjectStatus, Role, Task,
        TaskFilter, WorkStore,
    },
};

/// Slack past the log limit for the cut marker.
const MARKER_ROOM: u64 = 4096;

fn to_db(n: u64) -> StoreResult<i64> {
    i64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{n} is too large")))
}

/// A project's workspace.
#[derive(sqlx::FromRow)]
struct ProjectLink {
    project_id: Uuid,
    workspace_id: Uuid,
}

/// Stamps out a [`WorkStore`] implementation for one sqlx database; the SQL is in [`q`].
macro_rules! sql_work_store {
    ($name:ident, $db:ty) => {
        impl $name {
            async fn project_workspace_ids(&self, project: Uuid) -> StoreResult<Vec<Uuid>> {
                Ok(sqlx::query_scalar(q::PROJECT_WORKSPACES)
                    .bind(project)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn task_unscoped(&self, id: Uuid) -> StoreResult<Option<Task>> {
                Ok(sqlx::query_as(q::TASK_UNSCOPED)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
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
                        sqlx::query(q::TASK_STARTED)
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
                        let advanced = sqlx::query(q::ADVANCE_LOG)
                            .bind(task_id)
                            .bind(workspace)
                            .bind(to_db(*offset)?)
                            .bind(to_db(end)?)
                            .bind(MARKER_ROOM as i64)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected();
                        if advanced == 0 {
                            let stored: Option<(i64, i64)> = sqlx::query_as(q::LOG_POSITION)
                                .bind(task_id)
                                .bind(workspace)
                                .fetch_optional(&mut *conn)
                                .await?;
                            match stored.map(|(at, limit)| (at as u64, limit as u64)) {
                                Some((_, limit)) if end > limit + MARKER_ROOM => {
                                    tracing::warn!(
                                        task = %task_id,
                                        "output past the log limit dropped"
                                    );
                                    return Ok(());
                                }
                                // A replay of what is stored already.
                                Some((at, _)) if at >= end || at > *offset => {
                                    return Ok(());
                                }
                                Some((at, _)) => {
                                    tracing::warn!(
                                        task = %task_id,
                                        stored = at,
                                        offset,
                                        "log gap: storing the chunk where it belongs"
                                    );
                                    sqlx::query(q::SET_LOG_POSITION)
                                        .bind(task_id)
                                        .bind(to_db(end)?)
                                        .execute(&mut *conn)
                                        .await?;
                                }
                                None => return Ok(()),
                            }
                        }
                        sqlx::query(q::INSERT_LOG_CHUNK)
                            .bind(task_id)
                            .bind(to_db(*offset)?)
                            .bind(data.as_slice())
                            .execute(&mut *conn)
                            .await?;
                    }
                    AgentMessage::TaskFinished(result) => {
                        let end = crate::store::work_end(&result.outcome);
                        let finished = sqlx::query(q::TASK_FINISHED)
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
                        // The outbox: the webhook event is written with the end it tells of,
                        // when an endpoint may want it.
                        if finished.rows_affected() == 1 {
                            sqlx::query(q::TASK_FINISHED_EVENT)
                                .bind(Uuid::now_v7())
                                .bind(result.task_id)
                                .bind(now)
                                .execute(&mut *conn)
                                .await?;
                        }
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
                sqlx::query(q::INSERT_PROJECT)
                    .bind(id)
                    .bind(owner)
                    .bind(&p.name)
                    .bind(&p.description)
                    .bind(&p.repository_url)
                    .bind(Json(&p.tech_stack))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(q::INSERT_OWNER)
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
                let mut projects: Vec<Project> = sqlx::query_as(q::PROJECTS_OF)
                    .bind(user)
                    .fetch_all(&self.pool)
                    .await?;
                let links: Vec<ProjectLink> = sqlx::query_as(q::PROJECT_LINKS_OF)
                    .bind(user)
                    .fetch_all(&self.pool)
                    .await?;
                let mut by_project: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
                for link in links {
                    by_project
                        .entry(link.project_id)
                        .or_default()
                        .push(link.workspace_id);
                }
                for p in &mut projects {
                    p.workspace_ids = by_project.remove(&p.id).unwrap_or_default();
                }
                Ok(projects)
            }

            async fn get_project(&self, user: Uuid, id: Uuid) -> StoreResult<Option<Project>> {
                let found: Option<Project> = sqlx::query_as(q::PROJECT)
                    .bind(user)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                match found {
                    Some(mut project) => {
                        project.workspace_ids = self.project_workspace_ids(id).await?;
                        Ok(Some(project))
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
                sqlx::query(q::UPDATE_PROJECT)
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
                let owned: Option<Uuid> = sqlx::query_scalar(q::OWNED_WORKSPACE)
                    .bind(workspace)
                    .bind(owner)
                    .fetch_optional(&self.pool)
                    .await?;
                if owned.is_none() {
                    return Ok(false);
                }
                let sql = if attach { q::ATTACH_WORKSPACE } else { q::DETACH_WORKSPACE };
                let n = sqlx::query(sql)
                    .bind(project)
                    .bind(workspace)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(attach || n > 0)
            }

            async fn project_members(&self, project: &Project) -> StoreResult<Vec<Member>> {
                Ok(sqlx::query_as(q::MEMBERS)
                    .bind(project.id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn set_project_member(
                &self,
                project: Uuid,
                user: Uuid,
                role: Role,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(q::UPSERT_MEMBER)
                    .bind(project)
                    .bind(user)
                    .bind(role.as_str())
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn remove_project_member(&self, project: Uuid, user: Uuid) -> StoreResult<bool> {
                let n = sqlx::query(q::REMOVE_MEMBER)
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
                let id: Uuid = sqlx::query_scalar(q::UPSERT_INVITATION)
                    .bind(Uuid::now_v7())
                    .bind(project)
                    .bind(email)
                    .bind(role.as_str())
                    .bind(invited_by)
                    .bind(now)
                    .bind(expires_at)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(sqlx::query_as(q::INVITATION)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn project_invitations(
                &self,
                project: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<Vec<Invitation>> {
                Ok(sqlx::query_as(q::PROJECT_INVITATIONS)
                    .bind(project)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn invitations_for(
                &self,
                email: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Vec<Invitation>> {
                Ok(sqlx::query_as(q::INVITATIONS_FOR)
                    .bind(email)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn withdraw_invitation(&self, project: Uuid, id: Uuid) -> StoreResult<bool> {
                let n = sqlx::query(q::WITHDRAW_INVITATION)
                    .bind(id)
                    .bind(project)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n > 0)
            }

            async fn decline_invitation(&self, email: &str, id: Uuid) -> StoreResult<bool> {
                let n = sqlx::query(q::DECLINE_INVITATION)
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
                let taken: Option<(Uuid, String)> = sqlx::query_as(q::TAKE_INVITATION)
                    .bind(id)
                    .bind(email)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((project, role)) = taken else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                sqlx::query(q::UPSERT_MEMBER)
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
                // Two tasks of one workspace inserted at once may pick the same number: the
                // unique index refuses the second, which tries again with the next.
                let mut attempt = 0;
                loop {
                    let inserted = sqlx::query(q::INSERT_TASK)
                        .bind(t.id)
                        .bind(t.owner_id)
                        .bind(t.project_id)
                        .bind(t.workspace_id)
                        .bind(&t.repo)
                        .bind(command.clone())
                        .bind(step.clone())
                        .bind(Json(&t.env))
                        .bind(to_db(t.timeout_s)?)
                        .bind(t.now)
                        .bind(t.triggered_by)
                        .bind(t.source.as_str())
                        .bind(to_db(t.log_limit)?)
                        .execute(&self.pool)
                        .await;
                    match inserted {
                        Ok(_) => break,
                        Err(sqlx::Error::Database(e)) if e.is_unique_violation() && attempt < 8 => {
                            attempt += 1;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                self.task_unscoped(t.id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("task vanished".into()))
            }

            async fn task_by_number(
                &self,
                user: Uuid,
                workspace: Uuid,
                number: i64,
            ) -> StoreResult<Option<Task>> {
                Ok(sqlx::query_as(q::TASK_BY_NUMBER)
                    .bind(user)
                    .bind(workspace)
                    .bind(number)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn get_task(&self, user: Uuid, id: Uuid) -> StoreResult<Option<Task>> {
                Ok(sqlx::query_as(q::TASK)
                    .bind(user)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn list_tasks(
                &self,
                user: Uuid,
                f: &TaskFilter,
            ) -> StoreResult<(Vec<Task>, u64)> {
                let total: i64 = sqlx::query_scalar(q::COUNT_TASKS)
                    .bind(user)
                    .bind(f.project)
                    .bind(f.workspace)
                    .bind(f.state.map(TaskState::as_str))
                    .bind(f.source.map(super::TaskSource::as_str))
                    .fetch_one(&self.pool)
                    .await?;
                let per_page = i64::from(f.per_page.max(1));
                let skip = i64::from(f.page.max(1) - 1) * per_page;
                let tasks = sqlx::query_as(q::TASKS)
                    .bind(user)
                    .bind(f.project)
                    .bind(f.workspace)
                    .bind(f.state.map(TaskState::as_str))
                    .bind(f.source.map(super::TaskSource::as_str))
                    .bind(per_page)
                    .bind(skip)
                    .fetch_all(&self.pool)
                    .await?;
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
                    let members: Vec<Uuid> = sqlx::query_scalar(q::MEMBER_IDS)
                        .bind(project)
                        .fetch_all(&self.pool)
                        .await?;
                    audience.extend(members.into_iter().filter(|m| *m != task.owner_id));
                }
                Ok(Some((task, audience)))
            }

            async fn tasks_to_resume(
                &self,
                owner: Uuid,
                workspace: Uuid,
            ) -> StoreResult<Vec<Task>> {
                Ok(sqlx::query_as(q::TASKS_TO_RESUME)
                    .bind(workspace)
                    .bind(owner)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn request_cancel(&self, task: &Task) -> StoreResult<Option<Task>> {
                sqlx::query(q::REQUEST_CANCEL)
                    .bind(task.id)
                    .execute(&self.pool)
                    .await?;
                self.task_unscoped(task.id).await
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
                    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(q::LOG_CHUNKS)
                        .bind(task.id)
                        .bind(from)
                        .bind(chunk)
                        .bind(rows_wanted)
                        .bind(before)
                        .fetch_all(&self.pool)
                        .await?;
                    let got = rows.len() as i64;
                    for (at, data) in rows {
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
                let mut tx = self.pool.begin().await?;
                let lost: Vec<Uuid> = sqlx::query_scalar(q::MARK_LOST)
                    .bind(cutoff)
                    .bind(now)
                    .bind(message)
                    .fetch_all(&mut *tx)
                    .await?;
                // Each lost task's webhook event, with its end.
                for task in &lost {
                    sqlx::query(q::TASK_FINISHED_EVENT)
                        .bind(Uuid::now_v7())
                        .bind(task)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(lost)
            }
        }
    };
}

sql_work_store!(SqliteStore, sqlx::Sqlite);
sql_work_store!(PostgresStore, sqlx::Postgres);

#[cfg(test)]
mod tests {
    #[test]
    fn the_cut_marker_fits_the_room_left_for_it() {
        let marker = fulcrum_protocol::tasks::cut_marker(u64::MAX);
        assert!(marker.len() as u64 <= super::MARKER_ROOM);
    }
}
