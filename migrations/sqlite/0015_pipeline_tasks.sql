-- Tasks a pipeline run starts (its build, QA and deploy stages) have their own source,
-- `pipeline`. SQLite cannot change a CHECK in place, so the tasks table is rebuilt as
-- 0005_closed_sets.sql describes: foreign keys off (the relay runs this file itself, outside
-- sqlx's transaction: SQLITE_REBUILDS in relay/src/store/sql.rs), then in one transaction a new
-- table, every row copied, the old one dropped, the new one renamed, its indexes made again;
-- the foreign keys are checked before the commit. The upgrade of a populated database is tested
-- (tests/tests/migrations.rs).
PRAGMA foreign_keys = OFF;
BEGIN;

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
    source           TEXT NOT NULL CHECK (source IN ('api', 'terminal', 'mcp', 'pipeline')),
    test_summary     TEXT,
    log_bytes        BIGINT NOT NULL DEFAULT 0,
    log_limit        BIGINT NOT NULL,
    log_truncated    BOOLEAN NOT NULL DEFAULT FALSE,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    number           BIGINT
);
INSERT INTO tasks_new (id, owner_id, project_id, workspace_id, repo, command, step, env, timeout_s, state, exit_code, signal, error, created_at, dispatched_at, started_at, finished_at, duration_ms, commit_sha, branch, triggered_by, source, test_summary, log_bytes, log_limit, log_truncated, cancel_requested, number)
    SELECT id, owner_id, project_id, workspace_id, repo, command, step, env, timeout_s, state, exit_code, signal, error, created_at, dispatched_at, started_at, finished_at, duration_ms, commit_sha, branch, triggered_by, source, test_summary, log_bytes, log_limit, log_truncated, cancel_requested, number FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_new RENAME TO tasks;
CREATE INDEX tasks_owner ON tasks (owner_id, created_at);
CREATE INDEX tasks_project ON tasks (project_id, created_at);
CREATE INDEX tasks_workspace_state ON tasks (workspace_id, state);
CREATE INDEX tasks_triggered_by ON tasks (triggered_by);
CREATE INDEX tasks_active ON tasks (workspace_id) WHERE state IN ('queued', 'dispatched', 'running');
CREATE UNIQUE INDEX tasks_workspace_number ON tasks (workspace_id, number);

-- The relay then runs PRAGMA foreign_key_check on this connection, commits only if it finds
-- nothing (else rolls back), and turns foreign keys on again.
