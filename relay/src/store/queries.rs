//! Every SQL statement the store runs on its tables, by name, for both SQLite and PostgreSQL
//! (see [`super::sql`] for what the two dialects share); only the migration plumbing (reading
//! `_sqlx_migrations`, the SQLite rebuild's pragmas) stays in [`super::sql`]. Each column list
//! is written once, as a macro that expands to a string literal, so the statements stay
//! `const` and are joined at compile time.
//!
//! Rows come back as [`sqlx::FromRow`] types named after them: [`super::User`],
//! [`super::Token`], [`super::Workspace`], [`super::Project`], [`super::Member`],
//! [`super::Invitation`] and [`super::Task`].

// ---- Column lists -----------------------------------------------------------------------------

/// A [`super::User`].
macro_rules! user_columns {
    () => {
        "id, email, password_hash, created_at, full_name, preferences, deactivated_at, role"
    };
}

/// An [`super::Token`] (never the hash).
macro_rules! token_columns {
    () => {
        "id, owner_id, name, prefix, created_at, last_used_at, last_used_addr, revoked_at, kind, \
         scopes, project_id, workspace_id, expires_at, oauth_client_id"
    };
}

/// A [`super::Workspace`], without its repositories.
macro_rules! workspace_columns {
    () => {
        "id, owner_id, name, hostname, root, online, connected_at, last_seen_at, agent_version, \
         coder"
    };
}

/// A [`super::Project`] with the caller's role (`m`: the caller's membership), without its
/// workspaces.
macro_rules! project_select {
    () => {
        "SELECT p.id, p.owner_id, p.name, p.description, p.repository_url, p.tech_stack, \
         p.status, p.generation, m.role, p.created_at, p.updated_at \
         FROM projects p JOIN project_members m ON m.project_id = p.id AND m.user_id = $1"
    };
}

/// A [`super::Task`] (`t`) with the triggering user's e-mail (`u`).
macro_rules! task_select {
    () => {
        "SELECT t.id, t.owner_id, t.project_id, t.workspace_id, t.repo, t.command, t.step, \
         t.env, t.timeout_s, t.state, t.exit_code, t.signal, t.error, t.created_at, \
         t.dispatched_at, t.started_at, t.finished_at, t.duration_ms, t.commit_sha, t.branch, \
         t.triggered_by, u.email AS triggered_by_email, t.source, t.test_summary, t.log_bytes, \
         t.log_truncated, t.log_limit, t.cancel_requested, t.number \
         FROM tasks t JOIN users u ON u.id = t.triggered_by"
    };
}

/// Tasks user `$1` may see: their workspace's, or their projects'.
macro_rules! task_visible {
    () => {
        "(t.owner_id = $1 OR t.project_id IN \
         (SELECT project_id FROM project_members WHERE user_id = $1))"
    };
}

/// The optional filters of a task list (`$2` project, `$3` workspace, `$4` state).
macro_rules! task_filter {
    () => {
        "($2 IS NULL OR t.project_id = $2) AND ($3 IS NULL OR t.workspace_id = $3) \
         AND ($4 IS NULL OR t.state = $4) AND ($5 IS NULL OR t.source = $5)"
    };
}

/// An [`super::Invitation`] (`i`), with its project's name and the inviter's e-mail.
macro_rules! invitation_select {
    () => {
        "SELECT i.id, i.project_id, p.name AS project_name, i.email, i.role, \
         u.email AS invited_by_email, i.created_at, i.expires_at \
         FROM project_invitations i JOIN projects p ON p.id = i.project_id \
         JOIN users u ON u.id = i.invited_by"
    };
}

/// The final task states, for `state NOT IN (…)`.
macro_rules! final_states {
    () => {
        "('succeeded', 'failed', 'canceled', 'timed_out', 'lost')"
    };
}

// ---- Health -----------------------------------------------------------------------------------

pub(super) const PING: &str = "SELECT 1";

// ---- Users and logins -------------------------------------------------------------------------

pub(super) const INSERT_USER: &str = concat!(
    "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING ",
    user_columns!()
);
pub(super) const USER_BY_EMAIL: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1");
pub(super) const USER_BY_ID: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");

/// Sets user `$1`'s role to `$2`.
pub(super) const SET_USER_ROLE: &str = "UPDATE users SET role = $2 WHERE id = $1";
/// Users by e-mail after `$1` (NULL: from the start), at most `$2`.
pub(super) const LIST_USERS: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE email > COALESCE($1, '') ORDER BY email LIMIT $2"
);

/// Changes a profile: NULL leaves a field as it is.
pub(super) const UPDATE_PROFILE: &str = concat!(
    "UPDATE users SET full_name = COALESCE($2, full_name), \
     preferences = COALESCE($3, preferences) WHERE id = $1 RETURNING ",
    user_columns!()
);
/// Deactivates (`$2` a time) or activates (`$2` NULL) user `$1` at `$3`; returns the user.
pub(super) const SET_USER_STATUS: &str = "UPDATE users \
    SET deactivated_at = $2, status_changed_at = $3 WHERE id = $1 RETURNING id";
/// Ends, at `$2`, every live login of user `$1`.
pub(super) const END_LOGINS: &str = "UPDATE refresh_tokens SET revoked_at = $2 \
    WHERE user_id = $1 AND revoked_at IS NULL";
/// Users whose status changed at or after `$1`, and whether they are active now.
pub(super) const STATUS_CHANGES: &str = "SELECT id, deactivated_at IS NULL FROM users \
    WHERE status_changed_at >= $1";
pub(super) const DEACTIVATED: &str = "SELECT id FROM users WHERE deactivated_at IS NOT NULL";
pub(super) const INSERT_RESET: &str = "INSERT INTO password_resets \
    (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";
/// The user of reset link `$1` if it is unused and unexpired at `$2`.
pub(super) const OPEN_RESET: &str = "SELECT user_id FROM password_resets \
    WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2";
/// Uses up reset link `$1` at `$2`, if it is unused and unexpired; returns its user.
pub(super) const USE_RESET: &str = "UPDATE password_resets SET used_at = $2 \
    WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id";
/// Uses up, at `$2`, every unused reset link of user `$1` (the password changed).
pub(super) const CLOSE_RESETS: &str =
    "UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL";
pub(super) const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";
/// Ends, at `$3`, every live login of user `$1` but `$2` (which may be NULL).
pub(super) const END_OTHER_LOGINS: &str = "UPDATE refresh_tokens SET revoked_at = $3 \
    WHERE user_id = $1 AND revoked_at IS NULL AND ($2 IS NULL OR family_id <> $2) \
    RETURNING family_id";

pub(super) const INSERT_REFRESH_TOKEN: &str = "INSERT INTO refresh_tokens \
    (id, user_id, family_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
/// Uses up refresh token `$1` at `$2`, if it is live.
pub(super) const USE_REFRESH_TOKEN: &str = "UPDATE refresh_tokens SET used_at = $2 \
    WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL \
    RETURNING user_id, family_id, expires_at";
/// Revokes, at `$2`, the family of refresh token `$1` if it was used before (a replay).
pub(super) const REVOKE_REPLAYED_FAMILY: &str = "UPDATE refresh_tokens SET revoked_at = $2 \
    WHERE revoked_at IS NULL AND family_id IN \
    (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL) \
    RETURNING user_id, family_id";
/// The user and login of refresh token `$1`.
pub(super) const REFRESH_FAMILY: &str =
    "SELECT user_id, family_id FROM refresh_tokens WHERE token_hash = $1";
pub(super) const REVOKE_FAMILY: &str =
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE revoked_at IS NULL AND family_id = $1";
pub(super) const LIVE_LOGIN: &str = "SELECT id FROM refresh_tokens \
    WHERE family_id = $1 AND revoked_at IS NULL AND expires_at > $2 LIMIT 1";

// ---- Tokens -----------------------------------------------------------------------------------

pub(super) const INSERT_TOKEN: &str = concat!(
    "INSERT INTO tokens \
     (id, owner_id, name, prefix, token_hash, created_at, kind, scopes, project_id, \
      workspace_id, expires_at, oauth_client_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ",
    token_columns!()
);
/// A user's tokens, with the name of the OAuth client of each grant.
pub(super) const TOKENS_OF: &str = concat!(
    "SELECT ",
    token_columns!(),
    ", (SELECT c.name FROM oauth_clients c WHERE c.id = tokens.oauth_client_id) \
     AS oauth_client_name FROM tokens WHERE owner_id = $1 ORDER BY created_at DESC, id DESC"
);
pub(super) const REVOKE_TOKEN: &str = "UPDATE tokens \
    SET revoked_at = COALESCE(revoked_at, $3) WHERE owner_id = $1 AND id = $2";
pub(super) const TOKENS_REVOKED_SINCE: &str = "SELECT id FROM tokens WHERE revoked_at >= $1";
/// The live token with hash `$1`, whose owner is not deactivated.
pub(super) const ACTIVE_TOKEN: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM tokens WHERE token_hash = $1 AND revoked_at IS NULL \
     AND owner_id IN (SELECT id FROM users WHERE deactivated_at IS NULL)"
);
/// Marks token `$1` used at `$2`, if it is still unrevoked (its expiry was checked at the door,
/// and the sweep ends sessions when it passes).
pub(super) const TOUCH_TOKEN: &str =
    "UPDATE tokens SET last_used_at = $2 WHERE id = $1 AND revoked_at IS NULL";
/// Marks token `$1` used at `$2` from address `$3`.
pub(super) const TOKEN_USED: &str =
    "UPDATE tokens SET last_used_at = $2, last_used_addr = $3 WHERE id = $1";
/// Tokens whose expiry fell in `($1, $2]`.
pub(super) const TOKENS_EXPIRED_BETWEEN: &str =
    "SELECT id FROM tokens WHERE expires_at > $1 AND expires_at <= $2";

// ---- OAuth ------------------------------------------------------------------------------------

pub(super) const INSERT_OAUTH_CLIENT: &str = "INSERT INTO oauth_clients \
    (id, name, redirect_uris, client_uri, secret_hash, auth_method, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(super) const OAUTH_CLIENT: &str = "SELECT id, name, redirect_uris, client_uri, secret_hash, \
    auth_method, created_at FROM oauth_clients WHERE id = $1";
pub(super) const OAUTH_CLIENT_COUNT: &str = "SELECT COUNT(*) FROM oauth_clients";
pub(super) const INSERT_OAUTH_CODE: &str = "INSERT INTO oauth_codes \
    (code_hash, client_id, user_id, redirect_uri, code_challenge, scopes, resource, expires_at, \
     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
/// Uses up code `$1` of client `$3` at `$2` if it is unused.
pub(super) const TAKE_OAUTH_CODE: &str = "UPDATE oauth_codes SET used_at = $2 \
    WHERE code_hash = $1 AND used_at IS NULL AND client_id = $3 \
    RETURNING client_id, user_id, redirect_uri, code_challenge, scopes, resource, expires_at";
pub(super) const USED_OAUTH_CODE_GRANT: &str = "SELECT token_id FROM oauth_codes \
    WHERE code_hash = $1 AND used_at IS NOT NULL AND client_id = $2";
pub(super) const SET_OAUTH_CODE_GRANT: &str =
    "UPDATE oauth_codes SET token_id = $2 WHERE code_hash = $1";
pub(super) const INSERT_OAUTH_REFRESH: &str = "INSERT INTO oauth_refresh_tokens \
    (token_hash, token_id, expires_at, created_at) VALUES ($1, $2, $3, $4)";
/// Uses up refresh token `$1` of a grant to client `$3` at `$2` if it is unused.
pub(super) const TAKE_OAUTH_REFRESH: &str = "UPDATE oauth_refresh_tokens SET used_at = $2 \
    WHERE token_hash = $1 AND used_at IS NULL \
    AND token_id IN (SELECT id FROM tokens WHERE oauth_client_id = $3) \
    RETURNING token_id, expires_at";
pub(super) const USED_OAUTH_REFRESH_GRANT: &str = "SELECT token_id FROM oauth_refresh_tokens \
    WHERE token_hash = $1 AND used_at IS NOT NULL \
    AND token_id IN (SELECT id FROM tokens WHERE oauth_client_id = $2)";
/// Codes expired or used before `$1`.
pub(super) const PRUNE_OAUTH_CODES: &str =
    "DELETE FROM oauth_codes WHERE expires_at < $1 OR used_at < $1";
/// Refresh tokens expired or used before `$1`.
pub(super) const PRUNE_OAUTH_REFRESH: &str =
    "DELETE FROM oauth_refresh_tokens WHERE expires_at < $1 OR used_at < $1";
/// Grants revoked, or whose access token ended, before `$1` (their refresh tokens go with
/// them).
pub(super) const PRUNE_OAUTH_GRANTS: &str = "DELETE FROM tokens \
    WHERE oauth_client_id IS NOT NULL AND (revoked_at < $1 OR expires_at < $1)";
/// Clients registered before `$1` that hold no grant and no pending code.
pub(super) const PRUNE_OAUTH_CLIENTS: &str = "DELETE FROM oauth_clients WHERE created_at < $1 \
    AND id NOT IN (SELECT oauth_client_id FROM tokens WHERE oauth_client_id IS NOT NULL) \
    AND id NOT IN (SELECT client_id FROM oauth_codes)";
/// Gives unrevoked token `$1` a new secret hash `$2`, prefix `$3` and expiry `$4`.
pub(super) const ROTATE_TOKEN: &str = "UPDATE tokens SET token_hash = $2, prefix = $3, \
    expires_at = $4 WHERE id = $1 AND revoked_at IS NULL";
pub(super) const REVOKE_TOKEN_BY_ID: &str =
    "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1";
pub(super) const TOKEN_BY_ID: &str =
    concat!("SELECT ", token_columns!(), " FROM tokens WHERE id = $1");

// ---- Workspaces and agent sessions ------------------------------------------------------------

pub(super) const WORKSPACE: &str = concat!(
    "SELECT ",
    workspace_columns!(),
    " FROM workspaces WHERE owner_id = $1 AND id = $2"
);
pub(super) const WORKSPACES_OF: &str = concat!(
    "SELECT ",
    workspace_columns!(),
    " FROM workspaces WHERE owner_id = $1 ORDER BY online DESC, name, id"
);
/// The repositories of owner `$1`'s workspaces (only workspace `$2`'s unless it is NULL).
pub(super) const REPOS_OF: &str = "SELECT r.workspace_id, r.status, r.updated_at \
    FROM workspace_repos r JOIN workspaces w ON w.id = r.workspace_id \
    WHERE w.owner_id = $1 AND ($2 IS NULL OR w.id = $2) ORDER BY r.path";
/// Creates or reopens the workspace `(owner, key)`; the stream position resets when the agent
/// announces a new stream.
pub(super) const UPSERT_WORKSPACE: &str = "INSERT INTO workspaces \
    (id, owner_id, key, name, hostname, root, coder, agent_version, online, connected_at, \
     last_seen_at, agent_stream, agent_seq, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, TRUE, $9, $9, $10, 0, $9) \
    ON CONFLICT (owner_id, key) DO UPDATE SET \
    name = excluded.name, hostname = excluded.hostname, root = excluded.root, \
    coder = excluded.coder, agent_version = excluded.agent_version, online = TRUE, \
    connected_at = excluded.connected_at, last_seen_at = excluded.last_seen_at, \
    agent_seq = CASE WHEN workspaces.agent_stream = excluded.agent_stream \
    THEN workspaces.agent_seq ELSE 0 END, \
    agent_stream = excluded.agent_stream \
    RETURNING id, agent_seq";
/// Marks a workspace offline, unless a later session (opened after `$4`) holds it.
pub(super) const WORKSPACE_OFFLINE: &str = "UPDATE workspaces \
    SET online = FALSE, last_seen_at = $3 \
    WHERE owner_id = $1 AND id = $2 AND (connected_at IS NULL OR connected_at <= $4)";
pub(super) const ALL_OFFLINE: &str =
    "UPDATE workspaces SET online = FALSE, last_seen_at = $1 WHERE online";
/// Moves the stream position from `$4 - 1` to `$5`: the batch follows what is stored.
pub(super) const ADVANCE_STREAM: &str = "UPDATE workspaces SET agent_seq = $5, last_seen_at = $6 \
    WHERE owner_id = $1 AND id = $2 AND agent_stream = $3 AND agent_seq = $4 - 1";
/// Reads the stream position under the row lock (the write takes it, on SQLite too).
pub(super) const LOCK_STREAM: &str = "UPDATE workspaces SET last_seen_at = $3 \
    WHERE owner_id = $1 AND id = $2 RETURNING agent_stream, agent_seq";
pub(super) const SET_STREAM: &str =
    "UPDATE workspaces SET agent_seq = $3 WHERE owner_id = $1 AND id = $2";
pub(super) const UPSERT_REPO: &str = "INSERT INTO workspace_repos \
    (workspace_id, path, status, updated_at) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (workspace_id, path) DO UPDATE SET \
    status = excluded.status, updated_at = excluded.updated_at";
pub(super) const REPO_PATHS: &str = "SELECT path FROM workspace_repos WHERE workspace_id = $1";
pub(super) const DELETE_REPO: &str =
    "DELETE FROM workspace_repos WHERE workspace_id = $1 AND path = $2";

// ---- Relay secrets ----------------------------------------------------------------------------

pub(super) const INSERT_SECRET: &str = "INSERT INTO relay_secrets (name, value, created_at) \
    VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING";
pub(super) const SECRET: &str = "SELECT value FROM relay_secrets WHERE name = $1";

// ---- Sealed secrets ---------------------------------------------------------------------------

/// Stores a sealed secret, replacing one of the same owner and name.
pub(super) const PUT_SEALED: &str = "INSERT INTO sealed_secrets \
    (owner_id, name, key_id, sealed, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
    ON CONFLICT (owner_id, name) DO UPDATE SET key_id = excluded.key_id, \
    sealed = excluded.sealed, updated_at = excluded.updated_at";
pub(super) const SEALED: &str =
    "SELECT key_id, sealed FROM sealed_secrets WHERE owner_id = $1 AND name = $2";
pub(super) const SEALED_NAMES: &str =
    "SELECT name FROM sealed_secrets WHERE owner_id = $1 ORDER BY name";
pub(super) const DELETE_SEALED: &str =
    "DELETE FROM sealed_secrets WHERE owner_id = $1 AND name = $2";
/// How many secrets each master key sealed.
pub(super) const SEALED_KEY_COUNTS: &str =
    "SELECT key_id, COUNT(*) FROM sealed_secrets GROUP BY key_id ORDER BY key_id";
/// Up to `$2` secrets sealed under any key but `$1` (for a rotation).
pub(super) const SEALED_NOT_UNDER: &str = "SELECT owner_id, name, key_id, sealed \
    FROM sealed_secrets WHERE key_id <> $1 ORDER BY owner_id, name LIMIT $2";
/// One secret sealed under key `$1`.
pub(super) const SEALED_UNDER_ONE: &str = "SELECT owner_id, name, key_id, sealed \
    FROM sealed_secrets WHERE key_id = $1 LIMIT 1";
/// Replaces a secret's seal, if it is still the one read (`$3`, `$4`): a rotation never
/// overwrites a value written in between.
pub(super) const RESEAL: &str = "UPDATE sealed_secrets SET key_id = $5, sealed = $6 \
    WHERE owner_id = $1 AND name = $2 AND key_id = $3 AND sealed = $4";

// ---- Projects and members ---------------------------------------------------------------------

pub(super) const INSERT_PROJECT: &str = "INSERT INTO projects \
    (id, owner_id, name, description, repository_url, tech_stack, status, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7)";
pub(super) const INSERT_OWNER: &str = "INSERT INTO project_members \
    (project_id, user_id, role, added_at) VALUES ($1, $2, 'owner', $3)";
pub(super) const PROJECTS_OF: &str =
    concat!(project_select!(), " ORDER BY p.created_at DESC, p.id");
pub(super) const PROJECT: &str = concat!(project_select!(), " WHERE p.id = $2");
/// The workspaces of the projects user `$1` is a member of.
pub(super) const PROJECT_LINKS_OF: &str = "SELECT pw.project_id, pw.workspace_id \
    FROM project_workspaces pw \
    JOIN project_members m ON m.project_id = pw.project_id AND m.user_id = $1";
pub(super) const PROJECT_WORKSPACES: &str = "SELECT workspace_id FROM project_workspaces \
    WHERE project_id = $1 ORDER BY workspace_id";
/// Applies a patch: NULL leaves a field; `$4` says whether to set the repository URL to `$5`.
pub(super) const UPDATE_PROJECT: &str = "UPDATE projects SET name = COALESCE($2, name), \
    description = COALESCE($3, description), \
    repository_url = CASE WHEN $4 THEN $5 ELSE repository_url END, \
    tech_stack = COALESCE($6, tech_stack), status = COALESCE($7, status), updated_at = $8 \
    WHERE id = $1";
pub(super) const OWNED_WORKSPACE: &str =
    "SELECT id FROM workspaces WHERE id = $1 AND owner_id = $2";
pub(super) const ATTACH_WORKSPACE: &str = "INSERT INTO project_workspaces \
    (project_id, workspace_id) VALUES ($1, $2) ON CONFLICT (project_id, workspace_id) DO NOTHING";
pub(super) const DETACH_WORKSPACE: &str =
    "DELETE FROM project_workspaces WHERE project_id = $1 AND workspace_id = $2";
pub(super) const MEMBERS: &str = "SELECT m.user_id, u.email, m.role FROM project_members m \
    JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 ORDER BY m.added_at, u.email";
pub(super) const MEMBER_IDS: &str = "SELECT user_id FROM project_members WHERE project_id = $1";
/// Adds a member or changes their role; the owner's role never changes.
pub(super) const UPSERT_MEMBER: &str = "INSERT INTO project_members \
    (project_id, user_id, role, added_at) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role \
    WHERE project_members.role <> 'owner'";
pub(super) const REMOVE_MEMBER: &str = "DELETE FROM project_members \
    WHERE project_id = $1 AND user_id = $2 AND role <> 'owner'";

// ---- Invitations ------------------------------------------------------------------------------

/// Invites, or renews the pending invitation of the same address.
pub(super) const UPSERT_INVITATION: &str = "INSERT INTO project_invitations \
    (id, project_id, email, role, invited_by, created_at, expires_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (project_id, email) DO UPDATE SET \
    role = excluded.role, invited_by = excluded.invited_by, \
    created_at = excluded.created_at, expires_at = excluded.expires_at RETURNING id";
pub(super) const INVITATION: &str = concat!(invitation_select!(), " WHERE i.id = $1");
pub(super) const PROJECT_INVITATIONS: &str = concat!(
    invitation_select!(),
    " WHERE i.project_id = $1 AND i.expires_at > $2 ORDER BY i.created_at"
);
pub(super) const INVITATIONS_FOR: &str = concat!(
    invitation_select!(),
    " WHERE i.email = $1 AND i.expires_at > $2 ORDER BY i.created_at"
);
pub(super) const WITHDRAW_INVITATION: &str =
    "DELETE FROM project_invitations WHERE id = $1 AND project_id = $2";
pub(super) const DECLINE_INVITATION: &str =
    "DELETE FROM project_invitations WHERE id = $1 AND email = $2";
pub(super) const TAKE_INVITATION: &str = "DELETE FROM project_invitations \
    WHERE id = $1 AND email = $2 AND expires_at > $3 RETURNING project_id, role";

// ---- Tasks ------------------------------------------------------------------------------------

/// A new task, numbered next in its workspace.
pub(super) const INSERT_TASK: &str = "INSERT INTO tasks \
    (id, owner_id, project_id, workspace_id, repo, command, step, env, timeout_s, state, \
     created_at, dispatched_at, triggered_by, source, log_limit, number) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'dispatched', $10, $10, $11, $12, $13, \
     (SELECT COALESCE(MAX(number), 0) + 1 FROM tasks WHERE workspace_id = $4))";
pub(super) const TASK_UNSCOPED: &str = concat!(task_select!(), " WHERE t.id = $1");
pub(super) const TASK: &str = concat!(task_select!(), " WHERE ", task_visible!(), " AND t.id = $2");
/// Task number `$3` of workspace `$2`, if user `$1` may see it.
pub(super) const TASK_BY_NUMBER: &str = concat!(
    task_select!(),
    " WHERE ",
    task_visible!(),
    " AND t.workspace_id = $2 AND t.number = $3"
);
pub(super) const COUNT_TASKS: &str = concat!(
    "SELECT COUNT(*) FROM tasks t WHERE ",
    task_visible!(),
    " AND ",
    task_filter!()
);
pub(super) const TASKS: &str = concat!(
    task_select!(),
    " WHERE ",
    task_visible!(),
    " AND ",
    task_filter!(),
    " ORDER BY t.created_at DESC, t.id DESC LIMIT $6 OFFSET $7"
);
/// Workspace `$1`'s tasks its agent still has to hear about.
pub(super) const TASKS_TO_RESUME: &str = concat!(
    task_select!(),
    " WHERE t.workspace_id = $1 AND t.owner_id = $2 AND (t.state IN ('queued', 'dispatched') \
     OR (t.state = 'running' AND t.cancel_requested)) ORDER BY t.created_at, t.id"
);
pub(super) const REQUEST_CANCEL: &str = concat!(
    "UPDATE tasks SET cancel_requested = TRUE WHERE id = $1 AND state NOT IN ",
    final_states!()
);
/// Log chunks of task `$1` overlapping `[$2, $5)`, `$4` at most; `$3` is the largest chunk.
pub(super) const LOG_CHUNKS: &str = "SELECT byte_offset, data FROM task_logs \
    WHERE task_id = $1 AND byte_offset > $2 - $3 AND byte_offset + length(data) > $2 \
    AND byte_offset < $5 ORDER BY byte_offset LIMIT $4";
/// Declares lost the unfinished tasks of workspaces offline since before `$1`.
pub(super) const MARK_LOST: &str = "UPDATE tasks SET state = 'lost', error = $3, finished_at = $2 \
    WHERE state IN ('queued', 'dispatched', 'running') AND workspace_id IN \
    (SELECT id FROM workspaces WHERE NOT online AND last_seen_at < $1) RETURNING id";

// ---- Task messages from agents ----------------------------------------------------------------

pub(super) const TASK_STARTED: &str = "UPDATE tasks SET state = 'running', started_at = $3, \
    commit_sha = $4, branch = $5 \
    WHERE id = $1 AND workspace_id = $2 AND state IN ('queued', 'dispatched')";
/// Moves the log from `$3` to `$4`: the chunk follows what is stored, within the limit plus
/// `$5` (room for the cut marker).
pub(super) const ADVANCE_LOG: &str = "UPDATE tasks SET log_bytes = $4 \
    WHERE id = $1 AND workspace_id = $2 AND log_bytes = $3 AND $4 <= log_limit + $5";
pub(super) const LOG_POSITION: &str =
    "SELECT log_bytes, log_limit FROM tasks WHERE id = $1 AND workspace_id = $2";
pub(super) const SET_LOG_POSITION: &str = "UPDATE tasks SET log_bytes = $2 WHERE id = $1";
pub(super) const INSERT_LOG_CHUNK: &str = "INSERT INTO task_logs (task_id, byte_offset, data) \
    VALUES ($1, $2, $3) ON CONFLICT (task_id, byte_offset) DO NOTHING";
pub(super) const TASK_FINISHED: &str = concat!(
    "UPDATE tasks SET state = $3, exit_code = $4, signal = $5, error = $6, finished_at = $7, \
     duration_ms = $8, test_summary = $9, log_truncated = $10, \
     started_at = COALESCE(started_at, $7) \
     WHERE id = $1 AND workspace_id = $2 AND state NOT IN ",
    final_states!()
);

/// The `task_finished` webhook event of task `$2`, written only when an enabled endpoint of its
/// owner, or of its project, may want it.
pub(super) const TASK_FINISHED_EVENT: &str = "INSERT INTO webhook_events (id, kind, owner_id, \
    project_id, subject_id, data, created_at) SELECT $1, 'task_finished', t.owner_id, \
    t.project_id, t.id, '{}', $3 FROM tasks t WHERE t.id = $2 AND EXISTS (SELECT 1 FROM \
    webhook_endpoints e WHERE e.enabled AND ((e.project_id IS NULL AND e.owner_id = t.owner_id) \
    OR e.project_id = t.project_id))";

// ---- The AI half: providers, budgets, LLM calls, pipeline runs --------------------------------

/// An [`super::pipelines::LlmProvider`].
macro_rules! provider_columns {
    () => {
        "id, owner_id, project_id, name, kind, base_url, default_model, key_hint, created_at, \
         updated_at"
    };
}

/// A [`super::pipelines::PipelineRun`].
macro_rules! run_columns {
    () => {
        "id, handle, project_id, workspace_id, started_by, provider_id, pipeline, definition, \
         definition_hash, inputs, state, reason, error, budget_micros, cancel_requested, \
         created_at, started_at, finished_at, updated_at"
    };
}

/// A [`super::pipelines::StageRow`].
macro_rules! stage_columns {
    () => {
        "run_id, name, position, kind, state, attempt, reason, error, output, feedback, \
         decided_by, task_id, started_at, finished_at"
    };
}

/// An [`super::pipelines::ArtifactMeta`].
macro_rules! artifact_columns {
    () => {
        "path, stage, attempt, media_type, size, sha256, created_at"
    };
}

/// An [`super::pipelines::LlmCall`].
macro_rules! call_columns {
    () => {
        "id, owner_id, project_id, run_id, stage, attempt, seq, provider_id, provider, \
         operation, request_model, response_model, response_id, finish_reason, input_tokens, \
         output_tokens, cached_tokens, usage_estimated, reserved_micros, cost_micros, \
         latency_ms, ttft_ms, attempts, state, error_code, error, request, response, \
         raw_response, created_at, finished_at"
    };
}

/// What a call counts against a budget: its reservation while it runs, then its cost.
macro_rules! spent_expr {
    () => {
        "SELECT CAST(COALESCE(SUM(CASE WHEN state = 'reserved' THEN reserved_micros \
         ELSE cost_micros END), 0) AS BIGINT) FROM llm_calls "
    };
}

pub(super) const INSERT_PROVIDER: &str = concat!(
    "INSERT INTO llm_providers (",
    provider_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);
pub(super) const PROVIDERS_OF: &str = concat!(
    "SELECT ",
    provider_columns!(),
    " FROM llm_providers WHERE owner_id = $1 ORDER BY name"
);
pub(super) const PROVIDER: &str = concat!(
    "SELECT ",
    provider_columns!(),
    " FROM llm_providers WHERE owner_id = $1 AND id = $2"
);
pub(super) const UPDATE_PROVIDER: &str = "UPDATE llm_providers SET base_url = $3, \
    default_model = $4, key_hint = $5, updated_at = $6 WHERE owner_id = $1 AND id = $2";
pub(super) const DELETE_PROVIDER: &str =
    "DELETE FROM llm_providers WHERE owner_id = $1 AND id = $2";

pub(super) const UPSERT_USER_BUDGET: &str = "INSERT INTO budgets \
    (id, owner_id, project_id, period, limit_micros, updated_at) VALUES ($1, $2, NULL, $3, $4, $5) \
    ON CONFLICT (owner_id, period) WHERE project_id IS NULL \
    DO UPDATE SET limit_micros = excluded.limit_micros, updated_at = excluded.updated_at, \
    alert_level = 0, alert_period = NULL \
    RETURNING id, owner_id, project_id, period, limit_micros, updated_at, alert_level, alert_period";
pub(super) const UPSERT_PROJECT_BUDGET: &str = "INSERT INTO budgets \
    (id, owner_id, project_id, period, limit_micros, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (project_id, period) WHERE project_id IS NOT NULL \
    DO UPDATE SET limit_micros = excluded.limit_micros, updated_at = excluded.updated_at, \
    alert_level = 0, alert_period = NULL, \
    owner_id = excluded.owner_id \
    RETURNING id, owner_id, project_id, period, limit_micros, updated_at, alert_level, alert_period";
pub(super) const USER_BUDGETS: &str = "SELECT id, owner_id, project_id, period, limit_micros, \
    updated_at, alert_level, alert_period FROM budgets WHERE owner_id = $1 AND project_id IS NULL";
pub(super) const PROJECT_BUDGETS: &str = "SELECT id, owner_id, project_id, period, \
    limit_micros, updated_at, alert_level, alert_period FROM budgets WHERE project_id = $1";
pub(super) const DELETE_BUDGET: &str = "DELETE FROM budgets WHERE owner_id = $1 AND id = $2";
pub(super) const SPENT_BY_RUN: &str = concat!(
    spent_expr!(),
    "WHERE run_id = $1 AND ($2 IS NULL OR created_at >= $2)"
);
pub(super) const SPENT_BY_PROJECT: &str = concat!(
    spent_expr!(),
    "WHERE project_id = $1 AND ($2 IS NULL OR created_at >= $2)"
);
pub(super) const SPENT_BY_USER: &str = concat!(
    spent_expr!(),
    "WHERE owner_id = $1 AND ($2 IS NULL OR created_at >= $2)"
);
/// Serializes reservations per user and per project: a no-op write that takes the row's lock
/// (PostgreSQL) or the database's write lock (SQLite) until the transaction ends.
pub(super) const LOCK_USER: &str = "UPDATE users SET id = id WHERE id = $1";
pub(super) const LOCK_PROJECT: &str = "UPDATE projects SET id = id WHERE id = $1";
pub(super) const INSERT_CALL: &str = "INSERT INTO llm_calls (id, owner_id, project_id, run_id, \
    stage, attempt, seq, provider_id, provider, operation, request_model, reserved_micros, \
    state, request, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'reserved', $13, $14)";
pub(super) const SETTLE_CALL: &str = "UPDATE llm_calls SET state = $2, response_model = $3, \
    response_id = $4, finish_reason = $5, input_tokens = $6, output_tokens = $7, \
    cached_tokens = $8, usage_estimated = $9, cost_micros = $10, latency_ms = $11, \
    ttft_ms = $12, attempts = $13, error_code = $14, error = $15, response = $16, \
    raw_response = $17, finished_at = $18 WHERE id = $1 AND state = 'reserved'";
pub(super) const RUN_CALL: &str = concat!(
    "SELECT ",
    call_columns!(),
    " FROM llm_calls WHERE run_id = $1 AND stage = $2 AND attempt = $3 AND seq = $4"
);
pub(super) const RUN_CALLS: &str = concat!(
    "SELECT ",
    call_columns!(),
    " FROM llm_calls WHERE run_id = $1 ORDER BY created_at, seq"
);
pub(super) const RUN_TOTALS: &str = "SELECT COALESCE(stage, '') AS stage, \
    CAST(COUNT(*) AS BIGINT) AS calls, \
    CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
    CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
    CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached_tokens, \
    CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost_micros \
    FROM llm_calls WHERE run_id = $1 GROUP BY stage ORDER BY stage";

pub(super) const INSERT_RUN: &str = concat!(
    "INSERT INTO pipeline_runs (",
    run_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
     $18, $19)"
);
pub(super) const INSERT_STAGE: &str = "INSERT INTO pipeline_stages \
    (run_id, name, position, kind, state, attempt) VALUES ($1, $2, $3, $4, 'pending', 0)";
pub(super) const RUN_IN_PROJECT: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM pipeline_runs WHERE id = $1 AND project_id = $2"
);
pub(super) const RUN_UNSCOPED: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM pipeline_runs WHERE id = $1"
);
pub(super) const RUNS_OF_PROJECT: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM pipeline_runs WHERE project_id = $1 ORDER BY created_at DESC LIMIT $2"
);
pub(super) const STAGES_OF_RUN: &str = concat!(
    "SELECT ",
    stage_columns!(),
    " FROM pipeline_stages WHERE run_id = $1 ORDER BY position"
);
pub(super) const ARTIFACTS_OF_RUN: &str = concat!(
    "SELECT ",
    artifact_columns!(),
    " FROM pipeline_artifacts WHERE run_id = $1 ORDER BY path"
);
pub(super) const ARTIFACT: &str = concat!(
    "SELECT ",
    artifact_columns!(),
    ", content FROM pipeline_artifacts WHERE run_id = $1 AND path = $2"
);
pub(super) const ARTIFACTS_WITH_CONTENT: &str = concat!(
    "SELECT ",
    artifact_columns!(),
    ", content FROM pipeline_artifacts WHERE run_id = $1 ORDER BY path"
);
/// The runs to claim: queued ones, and running ones whose lease ran out.
macro_rules! claimable_runs {
    () => {
        "SELECT id FROM pipeline_runs WHERE state = 'queued' OR (state = 'running' AND \
         (lease_expires_at IS NULL OR lease_expires_at < $2)) ORDER BY created_at LIMIT $4"
    };
}
/// Claims runs (SQLite: one writer at a time, so the one statement is the claim).
pub(super) const CLAIM_RUNS_SQLITE: &str = concat!(
    "UPDATE pipeline_runs SET lease_owner = $1, lease_expires_at = $3, state = 'running', \
     started_at = COALESCE(started_at, $2), updated_at = $2 WHERE id IN (",
    claimable_runs!(),
    ") RETURNING ",
    run_columns!()
);
/// Claims runs (PostgreSQL: rows another node is claiming are skipped, not waited for).
pub(super) const CLAIM_RUNS_POSTGRES: &str = concat!(
    "UPDATE pipeline_runs SET lease_owner = $1, lease_expires_at = $3, state = 'running', \
     started_at = COALESCE(started_at, $2), updated_at = $2 WHERE id IN (",
    claimable_runs!(),
    " FOR UPDATE SKIP LOCKED) RETURNING ",
    run_columns!()
);
pub(super) const RENEW_RUN_LEASE: &str = "UPDATE pipeline_runs SET lease_expires_at = $3 \
    WHERE id = $1 AND lease_owner = $2 AND state = 'running' RETURNING cancel_requested";
pub(super) const RELEASE_RUN: &str = "UPDATE pipeline_runs SET lease_expires_at = NULL \
    WHERE id = $1 AND lease_owner = $2 AND state = 'running'";
pub(super) const RELEASE_ALL_RUNS: &str = "UPDATE pipeline_runs SET lease_expires_at = NULL \
    WHERE lease_owner = $1 AND state = 'running'";
pub(super) const FENCE_RUN: &str = "UPDATE pipeline_runs SET updated_at = $3 \
    WHERE id = $1 AND lease_owner = $2 AND state = 'running'";
pub(super) const UPDATE_STAGE: &str = "UPDATE pipeline_stages SET state = $3, attempt = $4, \
    reason = $5, error = $6, output = $7, task_id = COALESCE($8, task_id), started_at = $9, \
    finished_at = $10 WHERE run_id = $1 AND name = $2";
/// A stage's change that is the result of its running attempt `$11`.
pub(super) const UPDATE_STAGE_RESULT: &str = "UPDATE pipeline_stages SET state = $3, \
    attempt = $4, reason = $5, error = $6, output = $7, task_id = COALESCE($8, task_id), \
    started_at = $9, finished_at = $10 WHERE run_id = $1 AND name = $2 AND state = 'running' \
    AND attempt = $11";
pub(super) const UPSERT_ARTIFACT: &str = "INSERT INTO pipeline_artifacts (run_id, path, stage, \
    attempt, media_type, content, size, sha256, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (run_id, path) DO UPDATE SET \
    stage = excluded.stage, attempt = excluded.attempt, media_type = excluded.media_type, \
    content = excluded.content, size = excluded.size, sha256 = excluded.sha256, \
    created_at = excluded.created_at";
/// Moves a run the engine holds to a new state; a run that leaves `running` drops its lease.
pub(super) const UPDATE_RUN: &str = "UPDATE pipeline_runs SET state = $2, reason = $3, \
    error = $4, workspace_id = COALESCE($5, workspace_id), finished_at = $6, updated_at = $7, \
    lease_owner = CASE WHEN $8 THEN lease_owner ELSE NULL END, \
    lease_expires_at = CASE WHEN $8 THEN lease_expires_at ELSE NULL END WHERE id = $1";
pub(super) const REQUEST_RUN_CANCEL: &str = "UPDATE pipeline_runs SET cancel_requested = TRUE, \
    updated_at = $2 WHERE id = $1 AND state = 'running'";
pub(super) const CANCEL_IDLE_RUN: &str = "UPDATE pipeline_runs SET state = 'canceled', \
    cancel_requested = TRUE, reason = 'canceled', error = NULL, finished_at = $2, \
    updated_at = $2, lease_owner = NULL, lease_expires_at = NULL \
    WHERE id = $1 AND state IN ('queued', 'paused')";
pub(super) const SKIP_OPEN_STAGES: &str = "UPDATE pipeline_stages SET state = 'skipped' \
    WHERE run_id = $1 AND state IN ('pending', 'waiting', 'running')";
pub(super) const DECIDE_GATE: &str = "UPDATE pipeline_stages SET state = $3, decided_by = $4, \
    feedback = $5, finished_at = $6, reason = NULL WHERE run_id = $1 AND name = $2 \
    AND state = 'waiting' AND kind = 'approval'";
pub(super) const RESET_STAGE: &str = "UPDATE pipeline_stages SET state = 'pending', \
    reason = NULL, error = NULL, output = NULL, finished_at = NULL, \
    feedback = COALESCE($3, feedback) WHERE run_id = $1 AND name = $2";
pub(super) const RESET_STUCK_STAGES: &str = "UPDATE pipeline_stages SET state = 'pending', \
    reason = NULL, error = NULL, finished_at = NULL \
    WHERE run_id = $1 AND state IN ('failed', 'skipped', 'running') \
    OR (run_id = $1 AND state = 'waiting' AND kind <> 'approval')";
pub(super) const RUN_STATE: &str = "SELECT state FROM pipeline_runs WHERE id = $1";
pub(super) const SET_RUN_BUDGET: &str = "UPDATE pipeline_runs SET budget_micros = $2 WHERE id = $1";
/// Puts a paused, failed, canceled or finished run back in line.
pub(super) const REQUEUE_RUN: &str = "UPDATE pipeline_runs SET state = 'queued', reason = NULL, \
    error = NULL, finished_at = NULL, cancel_requested = FALSE, updated_at = $2, \
    lease_owner = NULL, lease_expires_at = NULL \
    WHERE id = $1 AND state IN ('paused', 'failed', 'canceled', 'succeeded')";
pub(super) const INSERT_DEPLOYMENT: &str = "INSERT INTO deployments (id, project_id, run_id, \
    task_id, source, environment, url, commit_sha, state, created_by, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING";
pub(super) const LIST_DEPLOYMENTS: &str = "SELECT id, project_id, run_id, task_id, source, \
    environment, url, commit_sha, state, created_by, created_at FROM deployments \
    WHERE project_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2";
/// Sets the generation status of a run's project.
pub(super) const SET_PROJECT_GENERATION: &str = "UPDATE projects SET generation = $2 \
    WHERE id = (SELECT project_id FROM pipeline_runs WHERE id = $1)";
