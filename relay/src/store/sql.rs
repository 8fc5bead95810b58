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
use fulcrum_protocol::{AgentMessage, CoderFacts, Durable, RepoStatus};
use sqlx::{
    Row,
    migrate::{Migration, MigrationType, Migrator},
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    types::Json,
};
use uuid::Uuid;

use super::*;

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
];

/// SQLite migrations that rebuild tables (to add CHECK constraints, which SQLite cannot add in
/// place). They need foreign keys off, which cannot change inside the transaction sqlx runs
/// every migration in, so they run on a connection of their own just before sqlx records their
/// version (with a marker above). A rebuild interrupted before that record runs again: it only
/// copies rows.
const SQLITE_REBUILDS: &[(i64, &str)] = &[(
    5,
    include_str!("../../../migrations/sqlite/0005_closed_sets.sql"),
)];
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
];

fn unique_violation(e: sqlx::Error, what: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(e),
    }
}

fn seq_to_db(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("sequence number {seq} too large")))
}

/// Stamps out a [`Store`] implementation for one sqlx database.
macro_rules! sql_store {
    ($name:ident, $pool:ty, $row:ty) => {
        impl $name {
            fn user_from_row(row: &$row) -> StoreResult<User> {
                Ok(User {
                    id: row.try_get("id")?,
                    email: row.try_get("email")?,
                    password_hash: row.try_get("password_hash")?,
                    created_at: row.try_get("created_at")?,
                })
            }

            fn token_from_row(row: &$row) -> StoreResult<AgentToken> {
                Ok(AgentToken {
                    id: row.try_get("id")?,
                    owner_id: row.try_get("owner_id")?,
                    name: row.try_get("name")?,
                    prefix: row.try_get("prefix")?,
                    created_at: row.try_get("created_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    kind: super::parse_named(row.try_get("kind")?, TokenKind::parse)?,
                    read_only: row.try_get("read_only")?,
                })
            }

            fn workspace_from_row(row: &$row) -> StoreResult<Workspace> {
                let coder: Option<Json<CoderFacts>> = row.try_get("coder")?;
                Ok(Workspace {
                    id: row.try_get("id")?,
                    owner_id: row.try_get("owner_id")?,
                    name: row.try_get("name")?,
                    hostname: row.try_get("hostname")?,
                    root: row.try_get("root")?,
                    online: row.try_get("online")?,
                    connected_at: row.try_get("connected_at")?,
                    last_seen_at: row.try_get("last_seen_at")?,
                    agent_version: row.try_get("agent_version")?,
                    coder: coder.map(|c| c.0),
                    repos: Vec::new(),
                })
            }

            /// Loads the owner's workspaces (one, when `only` is given) with their repositories.
            async fn load_workspaces(
                &self,
                owner: Uuid,
                only: Option<Uuid>,
            ) -> StoreResult<Vec<Workspace>> {
                const COLUMNS: &str = "id, owner_id, name, hostname, root, online, connected_at, \
                     last_seen_at, agent_version, coder";
                let rows = match only {
                    Some(id) => {
                        sqlx::query(&format!(
                            "SELECT {COLUMNS} FROM workspaces WHERE owner_id = $1 AND id = $2"
                        ))
                        .bind(owner)
                        .bind(id)
                        .fetch_all(&self.pool)
                        .await?
                    }
                    None => {
                        sqlx::query(&format!(
                            "SELECT {COLUMNS} FROM workspaces WHERE owner_id = $1 \
                             ORDER BY online DESC, name, id"
                        ))
                        .bind(owner)
                        .fetch_all(&self.pool)
                        .await?
                    }
                };
                let mut workspaces =
                    rows.iter().map(Self::workspace_from_row).collect::<StoreResult<Vec<_>>>()?;
                if workspaces.is_empty() {
                    return Ok(workspaces);
                }
                let repos = sqlx::query(
                    "SELECT r.workspace_id, r.status, r.updated_at FROM workspace_repos r \
                     JOIN workspaces w ON w.id = r.workspace_id \
                     WHERE w.owner_id = $1 AND ($2 IS NULL OR w.id = $2) ORDER BY r.path",
                )
                .bind(owner)
                .bind(only)
                .fetch_all(&self.pool)
                .await?;
                for row in &repos {
                    let ws: Uuid = row.try_get("workspace_id")?;
                    let status: Json<RepoStatus> = row.try_get("status")?;
                    let record = RepoRecord { status: status.0, updated_at: row.try_get("updated_at")? };
                    if let Some(w) = workspaces.iter_mut().find(|w| w.id == ws) {
                        w.repos.push(record);
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
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn create_user(&self, email: &str, password_hash: &str) -> StoreResult<User> {
                let row = sqlx::query(
                    "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4) \
                     RETURNING id, email, password_hash, created_at",
                )
                .bind(Uuid::now_v7())
                .bind(email)
                .bind(password_hash)
                .bind(Utc::now())
                .fetch_one(&self.pool)
                .await
                .map_err(|e| unique_violation(e, "a user with this e-mail"))?;
                Self::user_from_row(&row)
            }

            async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
                let row = sqlx::query(
                    "SELECT id, email, password_hash, created_at FROM users WHERE email = $1",
                )
                .bind(email)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::user_from_row).transpose()
            }

            async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
                let row = sqlx::query(
                    "SELECT id, email, password_hash, created_at FROM users WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::user_from_row).transpose()
            }

            async fn insert_refresh_token(&self, t: &NewRefreshToken) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
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
                let used = sqlx::query(
                    "UPDATE refresh_tokens SET used_at = $2 \
                     WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL \
                     RETURNING user_id, family_id, expires_at",
                )
                .bind(presented)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = used else {
                    // Unknown, revoked, or used before. A used, unrevoked token is a replay.
                    let replayed: Vec<Uuid> = sqlx::query_scalar(
                        "UPDATE refresh_tokens SET revoked_at = $2 WHERE revoked_at IS NULL AND family_id IN \
                         (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL) \
                         RETURNING family_id",
                    )
                    .bind(presented)
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok(match replayed.first() {
                        Some(family_id) => RefreshOutcome::Reused { family_id: *family_id },
                        None => RefreshOutcome::Invalid,
                    });
                };
                let expires_at: DateTime<Utc> = row.try_get("expires_at")?;
                if expires_at <= now {
                    tx.rollback().await?;
                    return Ok(RefreshOutcome::Invalid);
                }
                let user_id: Uuid = row.try_get("user_id")?;
                let family_id: Uuid = row.try_get("family_id")?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(Uuid::now_v7())
                .bind(user_id)
                .bind(family_id)
                .bind(next_hash)
                .bind(next_expires_at)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(RefreshOutcome::Rotated { user_id, family_id })
            }

            async fn revoke_refresh_family(
                &self,
                token_hash: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<Uuid>> {
                let family: Option<Uuid> = sqlx::query_scalar(
                    "SELECT family_id FROM refresh_tokens WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $2 WHERE revoked_at IS NULL AND family_id = $1",
                )
                .bind(family)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(family)
            }

            async fn login_active(&self, family: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
                let live: Option<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NULL \
                     AND expires_at > $2 LIMIT 1",
                )
                .bind(family)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(live.is_some())
            }

            async fn create_token(&self, new: &NewToken<'_>) -> StoreResult<AgentToken> {
                let row = sqlx::query(
                    "INSERT INTO agent_tokens (id, owner_id, name, prefix, token_hash, created_at, kind, read_only) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     RETURNING id, owner_id, name, prefix, created_at, last_used_at, revoked_at, kind, read_only",
                )
                .bind(Uuid::now_v7())
                .bind(new.owner)
                .bind(new.name)
                .bind(new.prefix)
                .bind(new.token_hash)
                .bind(Utc::now())
                .bind(new.kind.as_str())
                .bind(new.read_only)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| unique_violation(e, "an agent token with this secret"))?;
                Self::token_from_row(&row)
            }

            async fn list_agent_tokens(&self, owner: Uuid) -> StoreResult<Vec<AgentToken>> {
                sqlx::query(
                    "SELECT id, owner_id, name, prefix, created_at, last_used_at, revoked_at, kind, read_only \
                     FROM agent_tokens WHERE owner_id = $1 ORDER BY created_at DESC, id DESC",
                )
                .bind(owner)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(Self::token_from_row)
                .collect()
            }

            async fn revoke_agent_token(
                &self,
                owner: Uuid,
                id: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let found = sqlx::query(
                    "UPDATE agent_tokens SET revoked_at = COALESCE(revoked_at, $3) \
                     WHERE owner_id = $1 AND id = $2",
                )
                .bind(owner)
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(found > 0)
            }

            async fn tokens_revoked_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<Uuid>> {
                Ok(sqlx::query_scalar("SELECT id FROM agent_tokens WHERE revoked_at >= $1")
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn active_token(&self, token_hash: &str, kind: TokenKind) -> StoreResult<Option<AgentToken>> {
                let row = sqlx::query(
                    "SELECT id, owner_id, name, prefix, created_at, last_used_at, revoked_at, kind, read_only \
                     FROM agent_tokens WHERE token_hash = $1 AND revoked_at IS NULL AND kind = $2",
                )
                .bind(token_hash)
                .bind(kind.as_str())
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::token_from_row).transpose()
            }

            async fn agent_connected(&self, c: &AgentConnect<'_>) -> StoreResult<ConnectedWorkspace> {
                let id = &c.identity;
                let mut tx = self.pool.begin().await?;
                // The token may have been revoked since the socket was accepted.
                let active = sqlx::query(
                    "UPDATE agent_tokens SET last_used_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(c.token_id)
                .bind(c.now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if active == 0 {
                    tx.rollback().await?;
                    return Err(StoreError::TokenRevoked);
                }
                let row = sqlx::query(
                    "INSERT INTO workspaces (id, owner_id, key, name, hostname, root, coder, agent_version, \
                         online, connected_at, last_seen_at, agent_stream, agent_seq, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, TRUE, $9, $9, $10, 0, $9) \
                     ON CONFLICT (owner_id, key) DO UPDATE SET \
                         name = excluded.name, hostname = excluded.hostname, root = excluded.root, \
                         coder = excluded.coder, agent_version = excluded.agent_version, online = TRUE, \
                         connected_at = excluded.connected_at, last_seen_at = excluded.last_seen_at, \
                         agent_seq = CASE WHEN workspaces.agent_stream = excluded.agent_stream \
                             THEN workspaces.agent_seq ELSE 0 END, \
                         agent_stream = excluded.agent_stream \
                     RETURNING id, agent_seq",
                )
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
                let ws_id: Uuid = row.try_get("id")?;
                let agent_seq: i64 = row.try_get("agent_seq")?;
                tx.commit().await?;
                let workspace = self
                    .load_workspaces(c.owner_id, Some(ws_id))
                    .await?
                    .pop()
                    .ok_or_else(|| StoreError::Corrupt("workspace vanished after upsert".into()))?;
                Ok(ConnectedWorkspace { workspace, agent_seq: agent_seq.max(0) as u64 })
            }

            async fn agent_disconnected(
                &self,
                owner: Uuid,
                workspace: Uuid,
                session_start: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE workspaces SET online = FALSE, last_seen_at = $3 WHERE owner_id = $1 \
                     AND id = $2 AND (connected_at IS NULL OR connected_at <= $4)",
                )
                .bind(owner)
                .bind(workspace)
                .bind(now)
                .bind(session_start)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn mark_all_offline(&self, now: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query("UPDATE workspaces SET online = FALSE, last_seen_at = $1 WHERE online")
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
                let advanced = sqlx::query(
                    "UPDATE workspaces SET agent_seq = $5, last_seen_at = $6 \
                     WHERE owner_id = $1 AND id = $2 AND agent_stream = $3 AND agent_seq = $4 - 1",
                )
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
                    // Otherwise read the position under the row lock (the write takes it, also
                    // on SQLite) and decide: a replay overlapping what another session of the
                    // same stream committed applies only what follows it.
                    let row = sqlx::query(
                        "UPDATE workspaces SET last_seen_at = $3 WHERE owner_id = $1 AND id = $2 \
                         RETURNING agent_stream, agent_seq",
                    )
                    .bind(owner)
                    .bind(workspace)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let position = match row {
                        Some(row) => {
                            let on: Option<Uuid> = row.try_get("agent_stream")?;
                            let at: i64 = row.try_get("agent_seq")?;
                            (on == Some(stream)).then_some(at)
                        }
                        None => None,
                    };
                    match position {
                        Some(at) if at >= last => {
                            tx.rollback().await?;
                            return Ok(Applied::Duplicate);
                        }
                        Some(at) if at >= first - 1 => {
                            sqlx::query("UPDATE workspaces SET agent_seq = $3 WHERE owner_id = $1 AND id = $2")
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
                            sqlx::query(
                                "INSERT INTO workspace_repos (workspace_id, path, status, updated_at) \
                                 VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, path) DO UPDATE SET \
                                 status = excluded.status, updated_at = excluded.updated_at",
                            )
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
                            let known: Vec<String> = sqlx::query_scalar(
                                "SELECT path FROM workspace_repos WHERE workspace_id = $1",
                            )
                            .bind(workspace)
                            .fetch_all(&mut *tx)
                            .await?;
                            let keep: std::collections::HashSet<&String> = paths.iter().collect();
                            for gone in known.iter().filter(|p| !keep.contains(p)) {
                                sqlx::query(
                                    "DELETE FROM workspace_repos WHERE workspace_id = $1 AND path = $2",
                                )
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

            async fn secret(
                &self,
                name: &str,
                generate: &(dyn Fn() -> Vec<u8> + Sync),
            ) -> StoreResult<Vec<u8>> {
                sqlx::query(
                    "INSERT INTO relay_secrets (name, value, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(generate())
                .bind(Utc::now())
                .execute(&self.pool)
                .await?;
                Ok(sqlx::query_scalar("SELECT value FROM relay_secrets WHERE name = $1")
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
            .foreign_keys(true);
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

sql_store!(SqliteStore, sqlx::SqlitePool, sqlx::sqlite::SqliteRow);
sql_store!(PostgresStore, sqlx::PgPool, sqlx::postgres::PgRow);
