//! Durable state, behind one trait with a SQLite and a PostgreSQL implementation.
//!
//! [`Store`] is the only way the rest of the relay touches the database. Every method that reads
//! or changes tenant data on a user's behalf takes that user's id and scopes its query by it, or
//! takes a value that only such a query returns (a [`Project`] or [`Task`] the user could see),
//! so a caller cannot reach another user's rows by guessing an id. The few that take neither
//! work for the relay itself, never for a request: the lease sweep (`mark_lost_tasks`), telling
//! a task's audience of a change (`task_with_audience`), revocation sweeps and presence.
//!
//! The SQL is in [`queries`], one named statement each, shared by both databases (the two
//! dialects agree on everything used there); rows come back as `sqlx::FromRow` types. Both
//! implementations are stamped out of one body ([`sql`], [`sql_work`]) and pass the same
//! conformance suite (`tests/tests/store_conformance.rs`).

pub mod activity;
pub mod assistant;
pub mod oauth;
pub mod pipelines;
mod queries;
mod sql;
mod sql_activity;
mod sql_assistant;
mod sql_oauth;
mod sql_pipelines;
mod sql_webhooks;
mod sql_work;
pub mod webhooks;
pub mod work;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulcrum_protocol::{AgentMessage, CoderFacts, Durable, RepoStatus, WorkspaceIdentity};

use crate::secrets::Sealed;
use serde::Serialize;
use uuid::Uuid;

pub mod kinds;

pub use kinds::{
    ClientAuthMethod, Health, ProjectStatus, Scope, Scopes, TaskSource, Theme, TokenKind, UserRole,
};
pub use sql::{PostgresStore, SqliteStore};
pub use work::{
    Invitation, Member, NewProject, NewTask, Project, ProjectPatch, Role, Task, TaskFilter,
    WorkStore,
};

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint would be violated (e.g. the e-mail is taken).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database URL is not one this relay understands.
    #[error("unsupported database URL (expected sqlite://… or postgres://…)")]
    UnsupportedUrl,
    /// Running migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The agent token was revoked while the agent was connecting.
    #[error("the agent token was revoked")]
    TokenRevoked,
    /// A stored value breaks an invariant the store keeps (values that do not even decode come
    /// back as [`StoreError::Database`]).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// Result alias for storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// A user account.
#[derive(Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct User {
    /// The user's id.
    pub id: Uuid,
    /// Lower-cased e-mail address, unique.
    pub email: String,
    /// Argon2 PHC string; never serialized.
    #[serde(skip)]
    pub password_hash: String,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// The name shown for the user (may be empty).
    pub full_name: String,
    /// How the user likes the dashboard.
    #[sqlx(json)]
    pub preferences: Preferences,
    /// When an operator deactivated the account; `None` while it is active.
    #[serde(skip)]
    pub deactivated_at: Option<DateTime<Utc>>,
    /// Member, or administrator of the relay.
    #[sqlx(try_from = "String")]
    pub role: UserRole,
}

impl User {
    /// Whether the account is active.
    pub fn active(&self) -> bool {
        self.deactivated_at.is_none()
    }
}

/// A user's preferences. Unknown or missing fields read as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Preferences {
    /// Light, dark, or as the system says [default: system].
    #[serde(default)]
    pub theme: Theme,
    /// An IANA time zone name, such as `Europe/Berlin` [default: the browser's].
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The project the dashboard opens on.
    #[serde(default)]
    pub default_project: Option<Uuid>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// A token's metadata (the secret itself is only ever stored hashed): every non-interactive
/// credential, whatever its kind.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Token {
    /// The token's id.
    pub id: Uuid,
    /// The user the token acts for.
    #[serde(skip)]
    pub owner_id: Uuid,
    /// A name chosen by the user.
    pub name: String,
    /// The first characters of the secret, to recognise it by.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last used (an agent connecting, a request made with it; recorded at most
    /// once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// The client address it was last used from.
    pub last_used_addr: Option<String>,
    /// When it was revoked; a revoked token no longer authenticates.
    pub revoked_at: Option<DateTime<Utc>>,
    /// What the token is for.
    #[sqlx(try_from = "String")]
    pub kind: TokenKind,
    /// What it may do.
    #[sqlx(try_from = "String")]
    #[schema(value_type = Vec<Scope>)]
    pub scopes: Scopes,
    /// The one project it is limited to, if it is.
    pub project_id: Option<Uuid>,
    /// The one workspace it is limited to, if it is.
    pub workspace_id: Option<Uuid>,
    /// When it stops working, if it does.
    pub expires_at: Option<DateTime<Utc>>,
    /// For a grant to an OAuth client: the client's id.
    pub oauth_client_id: Option<String>,
    /// For a grant to an OAuth client: the client's name (in lists).
    #[sqlx(default)]
    pub oauth_client_name: Option<String>,
}

impl Token {
    /// Whether it had expired at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A token to store.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// Who it acts for.
    pub owner: Uuid,
    /// Its name.
    pub name: &'a str,
    /// SHA-256 of the secret, hex.
    pub token_hash: &'a str,
    /// The secret's first characters.
    pub prefix: &'a str,
    /// What it is for.
    pub kind: TokenKind,
    /// What it may do.
    pub scopes: Scopes,
    /// The one project it is limited to, if any.
    pub project: Option<Uuid>,
    /// The one workspace it is limited to, if any.
    pub workspace: Option<Uuid>,
    /// When it stops working, if it does.
    pub expires_at: Option<DateTime<Utc>>,
    /// The OAuth client it is a grant to, if it is one.
    pub oauth_client: Option<&'a str>,
}

/// A new refresh token to store.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// The user it belongs to.
    pub user_id: Uuid,
    /// The login (family) it belongs to.
    pub family_id: Uuid,
    /// SHA-256 of the secret, hex.
    pub token_hash: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was valid; it is now used up and its successor stored.
    Rotated {
        /// The user it belongs to.
        user_id: Uuid,
        /// Its family: the login it belongs to.
        family_id: Uuid,
    },
    /// The token had already been used: someone replayed it, so the whole family is revoked.
    Reused {
        /// The user it belongs to.
        user_id: Uuid,
        /// The family revoked.
        family_id: Uuid,
    },
    /// Unknown, expired or revoked.
    Invalid,
}

/// One workspace as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Workspace {
    /// The relay's id for the workspace.
    pub id: Uuid,
    /// The owning user.
    #[serde(skip)]
    pub owner_id: Uuid,
    /// Display name.
    pub name: String,
    /// Host name of the machine.
    pub hostname: String,
    /// The directory the agent watches.
    pub root: String,
    /// Whether an agent session is open right now.
    pub online: bool,
    /// When the current (or last) session opened.
    pub connected_at: Option<DateTime<Utc>>,
    /// When the relay last heard from the agent (the end of the last session while offline).
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The agent's version.
    pub agent_version: String,
    /// Coder facts, when the workspace runs in Coder.
    #[sqlx(json(nullable))]
    pub coder: Option<CoderFacts>,
    /// The repositories under the root, sorted by path.
    #[sqlx(skip)]
    pub repos: Vec<RepoRecord>,
    /// What the live session knows of its agent, while one is connected to this relay node.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentFacts>,
}

/// What a live session knows of its agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentFacts {
    /// How it is connected: `websocket` or `quic`.
    pub transport: String,
    /// The last heartbeat's round trip, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// What the workspace allows callers (`write`, `run`), as its agent said.
    #[schema(value_type = Vec<Scope>)]
    pub policy: Scopes,
    /// How many MCP servers it hosts, and how many of them run.
    pub hosted_servers: usize,
    /// How many of those run now.
    pub hosted_running: usize,
}

/// A repository's last reported state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RepoRecord {
    /// The state, as the agent reported it.
    #[serde(flatten)]
    pub status: RepoStatus,
    /// When the relay stored it.
    pub updated_at: DateTime<Utc>,
}

/// An agent connecting: what the relay records about the session.
#[derive(Debug, Clone)]
pub struct AgentConnect<'a> {
    /// Owner of the token the agent presented.
    pub owner_id: Uuid,
    /// The token it presented.
    pub token_id: Uuid,
    /// What the agent says about itself.
    pub identity: &'a WorkspaceIdentity,
    /// The agent's version.
    pub agent_version: &'a str,
    /// The agent's outgoing durable stream.
    pub agent_stream: Uuid,
    /// Now.
    pub now: DateTime<Utc>,
}

/// The workspace an agent session is bound to, as recorded at connect.
#[derive(Debug, Clone)]
pub struct ConnectedWorkspace {
    /// The workspace, now online.
    pub workspace: Workspace,
    /// How far the agent's stream has been applied (0 for a stream new to the relay).
    pub agent_seq: u64,
}

/// What applying a durable agent message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied and recorded.
    Applied,
    /// Already applied before (or empty); nothing changed.
    Duplicate,
    /// Not the next message on the stream; nothing changed.
    OutOfOrder,
}

/// The relay's durable state. See the module docs for the scoping rule.
#[async_trait]
pub trait Store:
    WorkStore
    + oauth::OAuthStore
    + pipelines::PipelineStore
    + activity::ActivityStore
    + assistant::AssistantStore
    + webhooks::WebhookStore
    + Send
    + Sync
    + 'static
{
    /// Checks the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// Connections in the pool: `(open, idle)`.
    fn pool_stats(&self) -> (u32, u32);

    /// Creates a user; [`StoreError::Conflict`] when the e-mail is taken.
    async fn create_user(&self, email: &str, password_hash: &str) -> StoreResult<User>;
    /// Looks a user up by (lower-cased) e-mail.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// Looks a user up by id.
    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>>;
    /// Deactivates user `id` (ending every login of theirs) or activates them again, in one
    /// transaction; false when there is no such user.
    async fn set_user_active(
        &self,
        id: Uuid,
        active: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Users whose status changed at or after `since`, with whether they are active now (the
    /// relay's own use: every node's sweep).
    async fn user_status_changes(&self, since: DateTime<Utc>) -> StoreResult<Vec<(Uuid, bool)>>;
    /// Every deactivated user (the relay's own use: at start).
    async fn deactivated_users(&self) -> StoreResult<Vec<Uuid>>;
    /// Makes user `id` an administrator or a member; false when there is no such user.
    async fn set_user_role(&self, id: Uuid, role: UserRole) -> StoreResult<bool>;
    /// Users by e-mail, from `after` (exclusive), at most `limit` (an administrator's list).
    async fn list_users(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<User>>;
    /// Changes user `id`'s name and preferences (`None` leaves one as it is).
    async fn update_profile(
        &self,
        id: Uuid,
        full_name: Option<&str>,
        preferences: Option<&Preferences>,
    ) -> StoreResult<Option<User>>;
    /// Stores a one-time password reset link for `user`, by its hash.
    async fn create_password_reset(
        &self,
        user: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Whether the reset link with this hash is unused and unexpired.
    async fn password_reset_open(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Uses up the reset link with this hash, sets its user's password hash and ends all their
    /// logins, in one transaction; `None` (and nothing changed) when the link is unknown, used
    /// or expired. Returns the user and the logins ended.
    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Uuid, Vec<Uuid>)>>;
    /// Sets user `id`'s password hash and ends their other logins (all but `keep`), in one
    /// transaction; returns the logins ended.
    async fn set_password(
        &self,
        id: Uuid,
        password_hash: &str,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>>;

    /// Stores the first refresh token of a new login.
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()>;
    /// Uses up the refresh token with hash `presented` and stores `next` as its successor in the
    /// same family, atomically. A token that was already used revokes its whole family.
    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshOutcome>;
    /// Revokes the family of the refresh token with this hash (logout) and returns it with its
    /// user, as `(user, family)`; `None` when the token is unknown or its login had already
    /// ended.
    async fn revoke_refresh_family(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Uuid, Uuid)>>;
    /// Whether login `family` still holds an unrevoked, unexpired refresh token (it was not
    /// logged out or revoked as replayed).
    async fn login_active(&self, family: Uuid, now: DateTime<Utc>) -> StoreResult<bool>;

    /// Creates a token.
    async fn create_token(&self, new: &NewToken<'_>) -> StoreResult<Token>;
    /// Creates an agent token for `owner`.
    async fn create_agent_token(
        &self,
        owner: Uuid,
        name: &str,
        token_hash: &str,
        prefix: &str,
    ) -> StoreResult<Token> {
        self.create_token(&NewToken {
            owner,
            name,
            token_hash,
            prefix,
            kind: TokenKind::Agent,
            scopes: TokenKind::Agent.default_scopes(),
            project: None,
            workspace: None,
            expires_at: None,
            oauth_client: None,
        })
        .await
    }
    /// The owner's agent tokens, newest first, revoked ones included.
    async fn list_tokens(&self, owner: Uuid) -> StoreResult<Vec<Token>>;
    /// Revokes the owner's token `id`; false when the owner has no such token.
    async fn revoke_token(&self, owner: Uuid, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Ids of tokens whose expiry fell after `since` and at or before `until` (the relay's own
    /// use: ending the sessions they opened).
    async fn tokens_expired_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>>;
    /// Ids of tokens revoked at or after `since`, however they were revoked (API, CLI, another
    /// node), so running sessions that use them can be closed.
    async fn tokens_revoked_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<Uuid>>;
    /// The unrevoked token with this hash whose owner is active, of whatever kind; the caller
    /// checks its kind and [`Token::expired`], to say which refused it.
    async fn active_token(&self, token_hash: &str) -> StoreResult<Option<Token>>;
    /// The active (not revoked) agent token with this hash.
    async fn active_agent_token(&self, token_hash: &str) -> StoreResult<Option<Token>> {
        Ok(self
            .active_token(token_hash)
            .await?
            .filter(|t| t.kind == TokenKind::Agent))
    }
    /// Records that token `id` was used at `at` from `addr`.
    async fn token_used(&self, id: Uuid, at: DateTime<Utc>, addr: Option<&str>) -> StoreResult<()>;

    /// Records an agent session opening: creates or updates the workspace for
    /// `(owner, identity.key)`, marks it online and the token used, and resets the stream
    /// position if the agent announced a new stream.
    async fn agent_connected(&self, c: &AgentConnect<'_>) -> StoreResult<ConnectedWorkspace>;
    /// Records an agent session closing; `session_start` is when it opened. A session that
    /// opened later for the same workspace (a reconnect racing this close) stays online.
    async fn agent_disconnected(
        &self,
        owner: Uuid,
        workspace: Uuid,
        session_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Marks every workspace offline (at start, before any session exists).
    async fn mark_all_offline(&self, now: DateTime<Utc>) -> StoreResult<()>;
    /// Applies a batch of durable messages of the agent's `stream` in one transaction, exactly
    /// once: the batch must be contiguous; the messages after the stored position are applied
    /// and the position moves to the batch's last sequence number. A batch wholly at or before
    /// the position is a [`Applied::Duplicate`]; one that starts after a gap, or on another
    /// stream, changes nothing and is [`Applied::OutOfOrder`].
    async fn apply_agent_messages(
        &self,
        owner: Uuid,
        workspace: Uuid,
        stream: Uuid,
        batch: &[Durable<AgentMessage>],
        now: DateTime<Utc>,
    ) -> StoreResult<Applied>;
    /// The owner's workspaces, online first then by name.
    async fn list_workspaces(&self, owner: Uuid) -> StoreResult<Vec<Workspace>>;
    /// One of the owner's workspaces.
    async fn get_workspace(&self, owner: Uuid, id: Uuid) -> StoreResult<Option<Workspace>>;

    /// Stores `owner`'s sealed secret `name`, replacing one of that name.
    async fn put_sealed(
        &self,
        owner: Uuid,
        name: &str,
        sealed: &Sealed,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// `owner`'s sealed secret `name`.
    async fn sealed(&self, owner: Uuid, name: &str) -> StoreResult<Option<Sealed>>;
    /// The names of `owner`'s sealed secrets.
    async fn sealed_names(&self, owner: Uuid) -> StoreResult<Vec<String>>;
    /// Deletes `owner`'s sealed secret `name`; false when there was none.
    async fn delete_sealed(&self, owner: Uuid, name: &str) -> StoreResult<bool>;
    /// How many sealed secrets each master key id holds (the relay's own use: start-up checks,
    /// rotation, metrics).
    async fn sealed_key_counts(&self) -> StoreResult<Vec<(String, u64)>>;
    /// Up to `limit` sealed secrets under keys other than `key_id`, as `(owner, name, sealed)`
    /// (the relay's own use: rotation).
    async fn sealed_not_under(
        &self,
        key_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<(Uuid, String, Sealed)>>;
    /// One sealed secret under `key_id`, if any, as `(owner, name, sealed)` (the relay's own
    /// use: checking at start that the key opens it).
    async fn sealed_sample(&self, key_id: &str) -> StoreResult<Option<(Uuid, String, Sealed)>>;
    /// Replaces the seal of `owner`'s secret `name` with `next` if it is still `was`; false
    /// when it changed in between (the relay's own use: rotation).
    async fn reseal(
        &self,
        owner: Uuid,
        name: &str,
        was: &Sealed,
        next: &Sealed,
    ) -> StoreResult<bool>;

    /// The relay-wide secret `name`, created with `generate` on first use. All nodes sharing the
    /// database get the same value.
    async fn secret(
        &self,
        name: &str,
        generate: &(dyn Fn() -> Vec<u8> + Sync),
    ) -> StoreResult<Vec<u8>>;
}

/// A task's final columns, from the outcome the agent reported.
pub(crate) struct TaskEnd {
    pub state: &'static str,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
}

/// Maps a reported outcome to the task's final columns.
pub(crate) fn work_end(outcome: &fulcrum_protocol::TaskOutcome) -> TaskEnd {
    use fulcrum_protocol::TaskOutcome as O;
    let (exit_code, signal, error) = match outcome {
        O::Exited { code } => (Some(*code), None, None),
        O::Signaled { signal } => (None, Some(*signal), None),
        O::Canceled { killed } => (
            None,
            killed.then_some(9),
            Some(
                if *killed {
                    "canceled; killed after ignoring SIGTERM for the grace period"
                } else {
                    "canceled"
                }
                .to_owned(),
            ),
        ),
        O::TimedOut { killed } => (
            None,
            killed.then_some(9),
            Some(
                if *killed {
                    "timed out; killed after ignoring SIGTERM for the grace period"
                } else {
                    "timed out; stopped with SIGTERM"
                }
                .to_owned(),
            ),
        ),
        O::FailedToStart { message } => (None, None, Some(message.clone())),
        O::Lost { message } => (None, None, Some(message.clone())),
    };
    TaskEnd {
        state: outcome.state().as_str(),
        exit_code,
        signal,
        error,
    }
}

/// Opens the store at `url` migrated up to version `upto` only: for tests of upgrades from an
/// older schema.
pub async fn open_upto(url: &str, upto: i64) -> StoreResult<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open_upto(url, upto).await?))
    } else {
        Ok(Arc::new(PostgresStore::open_upto(url, upto).await?))
    }
}

/// A shared handle to whichever store the relay runs on.
pub type DynStore = Arc<dyn Store>;

/// Opens the store named by `url` (`sqlite://path` or `postgres://…`), creating a SQLite file
/// if needed, and runs migrations.
pub async fn open(url: &str) -> StoreResult<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}
