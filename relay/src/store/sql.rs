//! The SQL behind [`Store`], written once for both SQLite and PostgreSQL.
//!
//! The two dialects agree on everything used here: `$N` placeholders, `ON CONFLICT … DO UPDATE`
//! with `excluded`, `RETURNING`, and sqlx's encodings of UUIDs, timestamps and JSON. The
//! [`sql_store!`] macro stamps the one implementation out for each pool type; only opening the
//! pool and the migration files differ.
//!
//! SQLite note: a deferred transaction that reads first and writes later can fail with
//! `SQLITE_BUSY` when another writer got in between, so every transaction here starts with its
//! write.

use std::{borrow::Cow, str::FromStr, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulcrum_protocol::{AgentMessage, Durable, RepoStatus};
use sqlx::{
    migrate::{Migration, MigrationType, Migrator},
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    types::Json,
};
use uuid::Uuid;

use super::{queries as q, *};

/// Builds a migrator from the migration files embedded in the binary, up to version `upto`
/// (all of them with `i64::MAX`).
fn migrator(files: &[(i64, &'static str, &'static str)], upto: i64) -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            files
                .iter()
                .filter(|(version, _, _)| *version <= upto)
                .map(|(version, desc, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*desc),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect(),
        ),
        ..Migrator::DEFAULT
    }
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "projects and tasks",
        include_str!("../../../migrations/sqlite/0002_projects_tasks.sql"),
    ),
    (
        3,
        "token kinds",
        include_str!("../../../migrations/sqlite/0003_token_kinds.sql"),
    ),
    (
        4,
        "invitations",
        include_str!("../../../migrations/sqlite/0004_invitations.sql"),
    ),
    (
        5,
        "closed sets",
        // The rebuild's text is in the marker's comment, so its checksum covers the rebuild.
        concat!(
            "/* The table rebuild ran just before this was recorded:\n",
            include_str!("../../../migrations/sqlite/0005_closed_sets.sql"),
            "*/ SELECT 1;"
        ),
    ),
    (
        6,
        "sealed secrets",
        include_str!("../../../migrations/sqlite/0006_sealed_secrets.sql"),
    ),
    (
        7,
        "user profile",
        include_str!("../../../migrations/sqlite/0007_user_profile.sql"),
    ),
    (
        8,
        "user status",
        include_str!("../../../migrations/sqlite/0008_user_status.sql"),
    ),
    (
        9,
        "password resets",
        include_str!("../../../migrations/sqlite/0009_password_resets.sql"),
    ),
    (
        10,
        "token expiry",
        include_str!("../../../migrations/sqlite/0010_token_expiry.sql"),
    ),
    (
        11,
        "token scopes",
        include_str!("../../../migrations/sqlite/0011_token_scopes.sql"),
    ),
    (
        12,
        "oauth",
        include_str!("../../../migrations/sqlite/0012_oauth.sql"),
    ),
    (
        13,
        "task numbers",
        include_str!("../../../migrations/sqlite/0013_task_numbers.sql"),
    ),
    (
        14,
        "pipelines",
        include_str!("../../../migrations/sqlite/0014_pipelines.sql"),
    ),
    (
        15,
        "pipeline tasks",
        concat!(
            "/* The table rebuild ran just before this was recorded:\n",
            include_str!("../../../migrations/sqlite/0015_pipeline_tasks.sql"),
            "*/ SELECT 1;"
        ),
    ),
    (
        16,
        "deployments",
        include_str!("../../../migrations/sqlite/0016_deployments.sql"),
    ),
    (
        17,
        "ai activities",
        include_str!("../../../migrations/sqlite/0017_ai_activities.sql"),
    ),
    (
        18,
        "assistant",
        include_str!("../../../migrations/sqlite/0018_assistant.sql"),
    ),
    (
        19,
        "prompts and AI commits",
        include_str!("../../../migrations/sqlite/0019_prompts_commits.sql"),
    ),
    (
        20,
        "outgoing webhooks",
        include_str!("../../../migrations/sqlite/0020_webhooks.sql"),
    ),
];

/// SQLite migrations that rebuild tables (to add CHECK constraints, which SQLite cannot add in
/// place). They need foreign keys off, which cannot change inside the transaction sqlx runs
/// every migration in, so they run on a connection of their own just before sqlx records their
/// version (with a marker above). A rebuild interrupted before that record runs again: it only
/// copies rows.
const SQLITE_REBUILDS: &[(i64, &str)] = &[
    (
        5,
        include_str!("../../../migrations/sqlite/0005_closed_sets.sql"),
    ),
    (
        15,
        include_str!("../../../migrations/sqlite/0015_pipeline_tasks.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "projects and tasks",
        include_str!("../../../migrations/postgres/0002_projects_tasks.sql"),
    ),
    (
        3,
        "token kinds",
        include_str!("../../../migrations/postgres/0003_token_kinds.sql"),
    ),
    (
        4,
        "invitations",
        include_str!("../../../migrations/postgres/0004_invitations.sql"),
    ),
    (
        5,
        "closed sets",
        include_str!("../../../migrations/postgres/0005_closed_sets.sql"),
    ),
    (
        6,
        "sealed secrets",
        include_str!("../../../migrations/postgres/0006_sealed_secrets.sql"),
    ),
    (
        7,
        "user profile",
        include_str!("../../../migrations/postgres/0007_user_profile.sql"),
    ),
    (
        8,
        "user status",
        include_str!("../../../migrations/postgres/0008_user_status.sql"),
    ),
    (
        9,
        "password resets",
        include_str!("../../../migrations/postgres/0009_password_resets.sql"),
    ),
    (
        10,
        "token expiry",
        include_str!("../../../migrations/postgres/0010_token_expiry.sql"),
    ),
    (
        11,
        "token scopes",
        include_str!("../../../migrations/postgres/0011_token_scopes.sql"),
    ),
    (
        12,
        "oauth",
        include_str!("../../../migrations/postgres/0012_oauth.sql"),
    ),
    (
        13,
        "task numbers",
        include_str!("../../../migrations/postgres/0013_task_numbers.sql"),
    ),
    (
        14,
        "pipelines",
        include_str!("../../../migrations/postgres/0014_pipelines.sql"),
    ),
    (
        15,
        "pipeline tasks",
        include_str!("../../../migrations/postgres/0015_pipeline_tasks.sql"),
    ),
    (
        16,
        "deployments",
        include_str!("../../../migrations/postgres/0016_deployments.sql"),
    ),
    (
        17,
        "ai activities",
        include_str!("../../../migrations/postgres/0017_ai_activities.sql"),
    ),
    (
        18,
        "assistant",
        include_str!("../../../migrations/postgres/0018_assistant.sql"),
    ),
    (
        19,
        "prompts and AI commits",
        include_str!("../../../migrations/postgres/0019_prompts_commits.sql"),
    ),
    (
        20,
        "outgoing webhooks",
        include_str!("../../../migrations/postgres/0020_webhooks.sql"),
    ),
];

pub(super) fn unique_violation(e: sqlx::Error, what: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(e),
    }
}

fn seq_to_db(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("sequence number {seq} too large")))
}

/// A repository's row, with its workspace.
#[derive(sqlx::FromRow)]
struct RepoRow {
    workspace_id: Uuid,
    #[sqlx(json)]
    status: RepoStatus,
    updated_at: DateTime<Utc>,
}

/// A live refresh token just used up.
#[derive(sqlx::FromRow)]
struct UsedRefresh {
    user_id: Uuid,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
}

/// Where an agent's stream stands.
#[derive(sqlx::FromRow)]
struct StreamPosition {
    agent_stream: Option<Uuid>,
    agent_seq: i64,
}

/// Stamps out a [`Store`] implementation for one sqlx database; the SQL is in [`q`].
macro_rules! sql_store {
    ($name:ident) => {
        impl $name {
            /// Loads the owner's workspaces (one, when `only` is given) with their repositories.
            async fn load_workspaces(
                &self,
                owner: Uuid,
                only: Option<Uuid>,
            ) -> StoreResult<Vec<Workspace>> {
                let mut workspaces: Vec<Workspace> = match only {
                    Some(id) => {
                        sqlx::query_as(q::WORKSPACE)
                            .bind(owner)
                            .bind(id)
                            .fetch_all(&self.pool)
                            .await?
                    }
                    None => {
                        sqlx::query_as(q::WORKSPACES_OF)
                            .bind(owner)
                            .fetch_all(&self.pool)
                            .await?
                    }
                };
                if workspaces.is_empty() {
                    return Ok(workspaces);
                }
                let repos: Vec<RepoRow> = sqlx::query_as(q::REPOS_OF)
                    .bind(owner)
                    .bind(only)
                    .fetch_all(&self.pool)
                    .await?;
                for repo in repos {
                    if let Some(w) = workspaces.iter_mut().find(|w| w.id == repo.workspace_id) {
                        w.repos.push(RepoRecord {
                            status: repo.status,
                            updated_at: repo.updated_at,
                        });
                    }
                }
                Ok(workspaces)
            }
        }

        #[async_trait]
        impl Store for $name {
            fn pool_stats(&self) -> (u32, u32) {
                (self.pool.size(), self.pool.num_idle() as u32)
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query(q::PING).execute(&self.pool).await?;
                Ok(())
            }

            async fn create_user(&self, email: &str, password_hash: &str) -> StoreResult<User> {
                sqlx::query_as(q::INSERT_USER)
                    .bind(Uuid::now_v7())
                    .bind(email)
                    .bind(password_hash)
                    .bind(Utc::now())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| unique_violation(e, "a user with this e-mail"))
            }

            async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
                Ok(sqlx::query_as(q::USER_BY_EMAIL)
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
                Ok(sqlx::query_as(q::USER_BY_ID)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn set_user_role(&self, id: Uuid, role: UserRole) -> StoreResult<bool> {
                Ok(sqlx::query(q::SET_USER_ROLE)
                    .bind(id)
                    .bind(role.as_str())
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    > 0)
            }

            async fn list_users(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<User>> {
                Ok(sqlx::query_as(q::LIST_USERS)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn set_user_active(
                &self,
                id: Uuid,
                active: bool,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let found: Option<Uuid> = sqlx::query_scalar(q::SET_USER_STATUS)
                    .bind(id)
                    .bind((!active).then_some(now))
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                if found.is_none() {
                    tx.rollback().await?;
                    return Ok(false);
                }
                if !active {
                    sqlx::query(q::END_LOGINS)
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn user_status_changes(
                &self,
                since: DateTime<Utc>,
            ) -> StoreResult<Vec<(Uuid, bool)>> {
                Ok(sqlx::query_as(q::STATUS_CHANGES)
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn deactivated_users(&self) -> StoreResult<Vec<Uuid>> {
                Ok(sqlx::query_scalar(q::DEACTIVATED)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn update_profile(
                &self,
                id: Uuid,
                full_name: Option<&str>,
                preferences: Option<&Preferences>,
            ) -> StoreResult<Option<User>> {
                Ok(sqlx::query_as(q::UPDATE_PROFILE)
                    .bind(id)
                    .bind(full_name)
                    .bind(preferences.map(Json))
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn create_password_reset(
                &self,
                user: Uuid,
                token_hash: &str,
                expires_at: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(q::INSERT_RESET)
                    .bind(token_hash)
                    .bind(user)
                    .bind(now)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn password_reset_open(
                &self,
                token_hash: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let found: Option<Uuid> = sqlx::query_scalar(q::OPEN_RESET)
                    .bind(token_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(found.is_some())
            }

            async fn reset_password(
                &self,
                token_hash: &str,
                password_hash: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<(Uuid, Vec<Uuid>)>> {
                let mut tx = self.pool.begin().await?;
                let user: Option<Uuid> = sqlx::query_scalar(q::USE_RESET)
                    .bind(token_hash)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(user) = user else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                sqlx::query(q::SET_PASSWORD)
                    .bind(user)
                    .bind(password_hash)
                    .execute(&mut *tx)
                    .await?;
                let mut ended: Vec<Uuid> = sqlx::query_scalar(q::END_OTHER_LOGINS)
                    .bind(user)
                    .bind(None::<Uuid>)
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                sqlx::query(q::CLOSE_RESETS)
                    .bind(user)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                ended.sort();
                ended.dedup();
                Ok(Some((user, ended)))
            }

            async fn set_password(
                &self,
                id: Uuid,
                password_hash: &str,
                keep: Option<Uuid>,
                now: DateTime<Utc>,
            ) -> StoreResult<Vec<Uuid>> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(q::SET_PASSWORD)
                    .bind(id)
                    .bind(password_hash)
                    .execute(&mut *tx)
                    .await?;
                let mut ended: Vec<Uuid> = sqlx::query_scalar(q::END_OTHER_LOGINS)
                    .bind(id)
                    .bind(keep)
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                sqlx::query(q::CLOSE_RESETS)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                ended.sort();
                ended.dedup();
                Ok(ended)
            }

            async fn insert_refresh_token(&self, t: &NewRefreshToken) -> StoreResult<()> {
                sqlx::query(q::INSERT_REFRESH_TOKEN)
                    .bind(Uuid::now_v7())
                    .bind(t.user_id)
                    .bind(t.family_id)
                    .bind(&t.token_hash)
                    .bind(t.expires_at)
                    .bind(Utc::now())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn rotate_refresh_token(
                &self,
                presented: &str,
                next_hash: &str,
                next_expires_at: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> StoreResult<RefreshOutcome> {
                let mut tx = self.pool.begin().await?;
                let used: Option<UsedRefresh> = sqlx::query_as(q::USE_REFRESH_TOKEN)
                    .bind(presented)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(used) = used else {
                    // Unknown, revoked, or used before. A used, unrevoked token is a replay.
                    let replayed: Vec<(Uuid, Uuid)> = sqlx::query_as(q::REVOKE_REPLAYED_FAMILY)
                        .bind(presented)
                        .bind(now)
                        .fetch_all(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    return Ok(match replayed.first() {
                        Some(&(user_id, family_id)) => {
                            RefreshOutcome::Reused { user_id, family_id }
                        }
                        None => RefreshOutcome::Invalid,
                    });
                };
                if used.expires_at <= now {
                    tx.rollback().await?;
                    return Ok(RefreshOutcome::Invalid);
                }
                sqlx::query(q::INSERT_REFRESH_TOKEN)
                    .bind(Uuid::now_v7())
                    .bind(used.user_id)
                    .bind(used.family_id)
                    .bind(next_hash)
                    .bind(next_expires_at)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(RefreshOutcome::Rotated {
                    user_id: used.user_id,
                    family_id: used.family_id,
                })
            }

            async fn revoke_refresh_family(
                &self,
                token_hash: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<(Uuid, Uuid)>> {
                let login: Option<(Uuid, Uuid)> = sqlx::query_as(q::REFRESH_FAMILY)
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                let revoked = sqlx::query(q::REVOKE_FAMILY)
                    .bind(login.map(|(_, family)| family))
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(login.filter(|_| revoked > 0))
            }

            async fn login_active(&self, family: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
                let live: Option<Uuid> = sqlx::query_scalar(q::LIVE_LOGIN)
                    .bind(family)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(live.is_some())
            }

            async fn create_token(&self, new: &NewToken<'_>) -> StoreResult<Token> {
                sqlx::query_as(q::INSERT_TOKEN)
                    .bind(Uuid::now_v7())
                    .bind(new.owner)
                    .bind(new.name)
                    .bind(new.prefix)
                    .bind(new.token_hash)
                    .bind(Utc::now())
                    .bind(new.kind.as_str())
                    .bind(new.scopes.to_string())
                    .bind(new.project)
                    .bind(new.workspace)
                    .bind(new.expires_at)
                    .bind(new.oauth_client)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| unique_violation(e, "an agent token with this secret"))
            }

            async fn list_tokens(&self, owner: Uuid) -> StoreResult<Vec<Token>> {
                Ok(sqlx::query_as(q::TOKENS_OF)
                    .bind(owner)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn revoke_token(
                &self,
                owner: Uuid,
                id: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let found = sqlx::query(q::REVOKE_TOKEN)
                    .bind(owner)
                    .bind(id)
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(found > 0)
            }

            async fn tokens_expired_between(
                &self,
                since: DateTime<Utc>,
                until: DateTime<Utc>,
            ) -> StoreResult<Vec<Uuid>> {
                Ok(sqlx::query_scalar(q::TOKENS_EXPIRED_BETWEEN)
                    .bind(since)
                    .bind(until)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn tokens_revoked_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<Uuid>> {
                Ok(sqlx::query_scalar(q::TOKENS_REVOKED_SINCE)
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn active_token(&self, token_hash: &str) -> StoreResult<Option<Token>> {
                Ok(sqlx::query_as(q::ACTIVE_TOKEN)
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn token_used(
                &self,
                id: Uuid,
                at: DateTime<Utc>,
                addr: Option<&str>,
            ) -> StoreResult<()> {
                sqlx::query(q::TOKEN_USED)
                    .bind(id)
                    .bind(at)
                    .bind(addr)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn agent_connected(
                &self,
                c: &AgentConnect<'_>,
            ) -> StoreResult<ConnectedWorkspace> {
                let id = &c.identity;
                let mut tx = self.pool.begin().await?;
                // The token may have been revoked since the socket was accepted.
                let active = sqlx::query(q::TOUCH_TOKEN)
                    .bind(c.token_id)
                    .bind(c.now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if active == 0 {
                    tx.rollback().await?;
                    return Err(StoreError::TokenRevoked);
                }
                let (ws_id, agent_seq): (Uuid, i64) = sqlx::query_as(q::UPSERT_WORKSPACE)
                    .bind(Uuid::now_v7())
                    .bind(c.owner_id)
                    .bind(&id.key)
                    .bind(&id.name)
                    .bind(&id.hostname)
                    .bind(&id.root)
                    .bind(id.coder.clone().map(Json))
                    .bind(c.agent_version)
                    .bind(c.now)
                    .bind(c.agent_stream)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                let workspace = self
                    .load_workspaces(c.owner_id, Some(ws_id))
                    .await?
                    .pop()
                    .ok_or_else(|| StoreError::Corrupt("workspace vanished after upsert".into()))?;
                Ok(ConnectedWorkspace {
                    workspace,
                    agent_seq: agent_seq.max(0) as u64,
                })
            }

            async fn agent_disconnected(
                &self,
                owner: Uuid,
                workspace: Uuid,
                session_start: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(q::WORKSPACE_OFFLINE)
                    .bind(owner)
                    .bind(workspace)
                    .bind(now)
                    .bind(session_start)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn mark_all_offline(&self, now: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query(q::ALL_OFFLINE)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn apply_agent_messages(
                &self,
                owner: Uuid,
                workspace: Uuid,
                stream: Uuid,
                batch: &[Durable<AgentMessage>],
                now: DateTime<Utc>,
            ) -> StoreResult<Applied> {
                let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                    return Ok(Applied::Duplicate);
                };
                if batch.windows(2).any(|w| w[1].seq != w[0].seq + 1) {
                    return Ok(Applied::OutOfOrder);
                }
                let (first, last) = (seq_to_db(first.seq)?, seq_to_db(last.seq)?);
                let mut tx = self.pool.begin().await?;
                // The common case in one statement: the batch follows the stored position.
                let advanced = sqlx::query(q::ADVANCE_STREAM)
                    .bind(owner)
                    .bind(workspace)
                    .bind(stream)
                    .bind(first)
                    .bind(last)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let at = if advanced == 1 {
                    first - 1
                } else {
                    // Otherwise read the position under the row lock and decide: a replay
                    // overlapping what another session of the same stream committed applies
                    // only what follows it.
                    let row: Option<StreamPosition> = sqlx::query_as(q::LOCK_STREAM)
                        .bind(owner)
                        .bind(workspace)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let position =
                        row.and_then(|p| (p.agent_stream == Some(stream)).then_some(p.agent_seq));
                    match position {
                        Some(at) if at >= last => {
                            tx.rollback().await?;
                            return Ok(Applied::Duplicate);
                        }
                        Some(at) if at >= first - 1 => {
                            sqlx::query(q::SET_STREAM)
                                .bind(owner)
                                .bind(workspace)
                                .bind(last)
                                .execute(&mut *tx)
                                .await?;
                            at
                        }
                        _ => {
                            tx.rollback().await?;
                            return Ok(Applied::OutOfOrder);
                        }
                    }
                };
                for message in batch.iter().filter(|m| m.seq as i64 > at) {
                    match &message.body {
                        AgentMessage::RepoState(status) => {
                            sqlx::query(q::UPSERT_REPO)
                                .bind(workspace)
                                .bind(&status.path)
                                .bind(Json(status))
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                        }
                        task @ (AgentMessage::TaskStarted { .. }
                        | AgentMessage::TaskOutput { .. }
                        | AgentMessage::TaskFinished(_)) => {
                            Self::apply_task_message(&mut *tx, workspace, task, now).await?;
                        }
                        AgentMessage::RepoSet { paths } => {
                            let known: Vec<String> = sqlx::query_scalar(q::REPO_PATHS)
                                .bind(workspace)
                                .fetch_all(&mut *tx)
                                .await?;
                            let keep: std::collections::HashSet<&String> = paths.iter().collect();
                            for gone in known.iter().filter(|p| !keep.contains(p)) {
                                sqlx::query(q::DELETE_REPO)
                                    .bind(workspace)
                                    .bind(gone)
                                    .execute(&mut *tx)
                                    .await?;
                            }
                        }
                    }
                }
                tx.commit().await?;
                Ok(Applied::Applied)
            }

            async fn list_workspaces(&self, owner: Uuid) -> StoreResult<Vec<Workspace>> {
                self.load_workspaces(owner, None).await
            }

            async fn get_workspace(&self, owner: Uuid, id: Uuid) -> StoreResult<Option<Workspace>> {
                Ok(self.load_workspaces(owner, Some(id)).await?.pop())
            }

            async fn put_sealed(
                &self,
                owner: Uuid,
                name: &str,
                sealed: &Sealed,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(q::PUT_SEALED)
                    .bind(owner)
                    .bind(name)
                    .bind(&sealed.key_id)
                    .bind(&sealed.blob)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn sealed(&self, owner: Uuid, name: &str) -> StoreResult<Option<Sealed>> {
                let row: Option<(String, Vec<u8>)> = sqlx::query_as(q::SEALED)
                    .bind(owner)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(key_id, blob)| Sealed { key_id, blob }))
            }

            async fn sealed_names(&self, owner: Uuid) -> StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(q::SEALED_NAMES)
                    .bind(owner)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn delete_sealed(&self, owner: Uuid, name: &str) -> StoreResult<bool> {
                let n = sqlx::query(q::DELETE_SEALED)
                    .bind(owner)
                    .bind(name)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n > 0)
            }

            async fn sealed_key_counts(&self) -> StoreResult<Vec<(String, u64)>> {
                let rows: Vec<(String, i64)> = sqlx::query_as(q::SEALED_KEY_COUNTS)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|(k, n)| (k, n.max(0) as u64))
                    .collect())
            }

            async fn sealed_not_under(
                &self,
                key_id: &str,
                limit: u32,
            ) -> StoreResult<Vec<(Uuid, String, Sealed)>> {
                let rows: Vec<(Uuid, String, String, Vec<u8>)> =
                    sqlx::query_as(q::SEALED_NOT_UNDER)
                        .bind(key_id)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows
                    .into_iter()
                    .map(|(owner, name, key_id, blob)| (owner, name, Sealed { key_id, blob }))
                    .collect())
            }

            async fn sealed_sample(
                &self,
                key_id: &str,
            ) -> StoreResult<Option<(Uuid, String, Sealed)>> {
                let row: Option<(Uuid, String, String, Vec<u8>)> =
                    sqlx::query_as(q::SEALED_UNDER_ONE)
                        .bind(key_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(owner, name, key_id, blob)| (owner, name, Sealed { key_id, blob })))
            }

            async fn reseal(
                &self,
                owner: Uuid,
                name: &str,
                was: &Sealed,
                next: &Sealed,
            ) -> StoreResult<bool> {
                let n = sqlx::query(q::RESEAL)
                    .bind(owner)
                    .bind(name)
                    .bind(&was.key_id)
                    .bind(&was.blob)
                    .bind(&next.key_id)
                    .bind(&next.blob)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n > 0)
            }

            async fn secret(
                &self,
                name: &str,
                generate: &(dyn Fn() -> Vec<u8> + Sync),
            ) -> StoreResult<Vec<u8>> {
                sqlx::query(q::INSERT_SECRET)
                    .bind(name)
                    .bind(generate())
                    .bind(Utc::now())
                    .execute(&self.pool)
                    .await?;
                Ok(sqlx::query_scalar(q::SECRET)
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await?)
            }
        }
    };
}

/// The embedded default store: one SQLite file in WAL mode.
pub struct SqliteStore {
    pub(super) pool: sqlx::SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the SQLite database at `url` and migrates it.
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::open_upto(url, i64::MAX).await
    }

    /// Opens the database at `url` migrated up to version `upto` only (for upgrade tests).
    pub async fn open_upto(url: &str, upto: i64) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged update survives a power cut too. Group commit keeps the cost
            // per batch, not per message.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // 32 MiB of page cache per connection (the default is 2 MiB), taken as it is used:
            // batches of writes that land all over an index (a history import of activities)
            // read it back from the cache instead of the file.
            .pragma("cache_size", "-32768");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        for (version, script) in SQLITE_REBUILDS.iter().filter(|(v, _)| *v <= upto) {
            let tracked: Option<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            )
            .fetch_optional(&pool)
            .await?;
            let applied: Option<i64> = match tracked {
                Some(_) => {
                    sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                        .fetch_one(&pool)
                        .await?
                }
                // A new database.
                None => None,
            };
            if applied.unwrap_or(0) < *version {
                migrator(SQLITE_MIGRATIONS, version - 1).run(&pool).await?;
                rebuild(&pool, script).await?;
            }
        }
        migrator(SQLITE_MIGRATIONS, upto).run(&pool).await?;
        Ok(Self { pool })
    }
}

/// Runs a table-rebuilding script on a connection of its own (closed after): the script turns
/// foreign keys off and opens a transaction; here the foreign keys are checked, and the
/// transaction committed only if none is broken.
async fn rebuild(pool: &sqlx::SqlitePool, script: &str) -> StoreResult<()> {
    let mut conn = pool.acquire().await?.detach();
    let outcome = async {
        sqlx::raw_sql(script).execute(&mut conn).await?;
        let broken = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&mut conn)
            .await?;
        if broken.is_empty() {
            sqlx::query("COMMIT").execute(&mut conn).await?;
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "{} rows would break foreign keys after the rebuild; nothing was changed",
                broken.len()
            )))
        }
    }
    .await;
    if outcome.is_err() {
        let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
    }
    let _ = sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut conn)
        .await;
    outcome
}

/// The production store: PostgreSQL.
pub struct PostgresStore {
    pub(super) pool: sqlx::PgPool,
}

impl PostgresStore {
    /// Connects to PostgreSQL at `url` and migrates it.
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::open_upto(url, i64::MAX).await
    }

    /// Connects to PostgreSQL at `url` migrated up to version `upto` only (for upgrade tests).
    pub async fn open_upto(url: &str, upto: i64) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        migrator(POSTGRES_MIGRATIONS, upto).run(&pool).await?;
        Ok(Self { pool })
    }
}

sql_store!(SqliteStore);
sql_store!(PostgresStore);
