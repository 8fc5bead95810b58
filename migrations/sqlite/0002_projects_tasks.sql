-- Projects, their members and workspaces; tasks and their logs (SQLite).
CREATE TABLE projects (
    id             BLOB PRIMARY KEY,
    owner_id       BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    repository_url TEXT,
    tech_stack     TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'active',
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

-- Every project has its owner here too (role 'owner'), so access is one lookup.
CREATE TABLE project_members (
    project_id BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    added_at   TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members (user_id);

CREATE TABLE project_workspaces (
    project_id   BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    workspace_id BLOB NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, workspace_id)
);
CREATE INDEX project_workspaces_workspace ON project_workspaces (workspace_id);

-- owner_id is the workspace's owner; project members see a task through project_id.
CREATE TABLE tasks (
    id               BLOB PRIMARY KEY,
    owner_id         BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id       BLOB REFERENCES projects(id) ON DELETE SET NULL,
    workspace_id     BLOB NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    repo             TEXT NOT NULL,
    command          TEXT,
    step             TEXT,
    env              TEXT NOT NULL,
    timeout_s        BIGINT NOT NULL,
    state            TEXT NOT NULL,
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
    source           TEXT NOT NULL,
    test_summary     TEXT,
    log_bytes        BIGINT NOT NULL DEFAULT 0,
    log_limit        BIGINT NOT NULL,
    log_truncated    BOOLEAN NOT NULL DEFAULT FALSE,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX tasks_owner ON tasks (owner_id, created_at);
CREATE INDEX tasks_project ON tasks (project_id, created_at);
CREATE INDEX tasks_workspace_state ON tasks (workspace_id, state);
CREATE INDEX tasks_triggered_by ON tasks (triggered_by);
-- The lease sweep and reconnects look only at unfinished tasks.
CREATE INDEX tasks_active ON tasks (workspace_id) WHERE state IN ('queued', 'dispatched', 'running');

-- A task's log as contiguous chunks; (task_id, byte_offset) drops replays.
CREATE TABLE task_logs (
    task_id     BLOB NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    byte_offset BIGINT NOT NULL,
    data        BLOB NOT NULL,
    PRIMARY KEY (task_id, byte_offset)
);
