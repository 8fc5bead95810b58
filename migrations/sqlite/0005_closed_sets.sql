-- CHECK constraints on the closed sets (relay/src/store/kinds.rs and the protocol's TaskState):
-- task states and sources, project statuses, member roles. SQLite cannot add a CHECK to a
-- table, so each table is rebuilt the way SQLite's ALTER TABLE documentation says: foreign keys
-- off (so the relay runs this file itself, outside sqlx's transaction: SQLITE_REBUILDS in
-- relay/src/store/sql.rs), then in one transaction a new
-- table, every row copied, the old one dropped, the new one renamed, its indexes made again,
-- and the foreign keys checked before the commit; then foreign keys on again. Nothing is lost: the upgrade of a
-- populated database is tested (tests/tests/migrations.rs).
PRAGMA foreign_keys = OFF;
BEGIN;

CREATE TABLE projects_new (
    id             BLOB PRIMARY KEY,
    owner_id       BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    repository_url TEXT,
    tech_stack     TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
INSERT INTO projects_new (id, owner_id, name, description, repository_url, tech_stack, status, created_at, updated_at)
    SELECT id, owner_id, name, description, repository_url, tech_stack, status, created_at, updated_at FROM projects;
DROP TABLE projects;
ALTER TABLE projects_new RENAME TO projects;

CREATE TABLE project_members_new (
    project_id BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'maintainer', 'viewer')),
    added_at   TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
INSERT INTO project_members_new (project_id, user_id, role, added_at)
    SELECT project_id, user_id, role, added_at FROM project_members;
DROP TABLE project_members;
ALTER TABLE project_members_new RENAME TO project_members;
CREATE INDEX project_members_user ON project_members (user_id);

CREATE TABLE tasks_new (
    id               BLOB PRIMARY KEY,
    owner_id         BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id       BLOB REFERENCES projects(id) ON DELETE SET NULL,
    workspace_id     BLOB NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    repo             TEXT NOT NULL,
    command          TEXT,
    step             TEXT,
    env              TEXT NOT NULL,
    timeout_s        BIGINT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'dispatched', 'running', 'succeeded',
                                      'failed', 'canceled', 'timed_out', 'lost')),
    exit_code        INTEGER,
    signal           INTEGER,
    error            TEXT,
    created_at       TEXT NOT NULL,
    dispatched_at    TEXT,
    started_at       TEXT,
    finished_at      TEXT,
    duration_ms      BIGINT,
    commit_sha       TEXT,
    branch           TEXT,
    triggered_by     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source           TEXT NOT NULL CHECK (source IN ('api', 'terminal', 'mcp')),
    test_summary     TEXT,
    log_bytes        BIGINT NOT NULL DEFAULT 0,
    log_limit        BIGINT NOT NULL,
    log_truncated    BOOLEAN NOT NULL DEFAULT FALSE,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO tasks_new (id, owner_id, project_id, workspace_id, repo, command, step, env, timeout_s, state, exit_code, signal, error, created_at, dispatched_at, started_at, finished_at, duration_ms, commit_sha, branch, triggered_by, source, test_summary, log_bytes, log_limit, log_truncated, cancel_requested)
    SELECT id, owner_id, project_id, workspace_id, repo, command, step, env, timeout_s, state, exit_code, signal, error, created_at, dispatched_at, started_at, finished_at, duration_ms, commit_sha, branch, triggered_by, source, test_summary, log_bytes, log_limit, log_truncated, cancel_requested FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_new RENAME TO tasks;
CREATE INDEX tasks_owner ON tasks (owner_id, created_at);
CREATE INDEX tasks_project ON tasks (project_id, created_at);
CREATE INDEX tasks_workspace_state ON tasks (workspace_id, state);
CREATE INDEX tasks_triggered_by ON tasks (triggered_by);
CREATE INDEX tasks_active ON tasks (workspace_id) WHERE state IN ('queued', 'dispatched', 'running');

-- The relay then runs PRAGMA foreign_key_check on this connection, commits only if it finds
-- nothing (else rolls back), and turns foreign keys on again.
