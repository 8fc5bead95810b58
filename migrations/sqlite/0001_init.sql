-- Users, sessions, agent tokens, workspaces and their repositories (SQLite).
CREATE TABLE users (
    id            BLOB PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

-- Refresh tokens, stored hashed. A family is one login; reusing a used token revokes it.
CREATE TABLE refresh_tokens (
    id         BLOB PRIMARY KEY,
    user_id    BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family_id  BLOB NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    revoked_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE agent_tokens (
    id           BLOB PRIMARY KEY,
    owner_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX agent_tokens_owner ON agent_tokens (owner_id);

-- One row per (owner, agent key). agent_stream/agent_seq: how far the agent's durable stream
-- has been applied, so replays after a reconnect are dropped.
CREATE TABLE workspaces (
    id            BLOB PRIMARY KEY,
    owner_id      BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    name          TEXT NOT NULL,
    hostname      TEXT NOT NULL,
    root          TEXT NOT NULL,
    coder         TEXT,
    agent_version TEXT NOT NULL,
    online        BOOLEAN NOT NULL DEFAULT FALSE,
    connected_at  TEXT,
    last_seen_at  TEXT,
    agent_stream  BLOB,
    agent_seq     BIGINT NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    UNIQUE (owner_id, key)
);
CREATE INDEX workspaces_owner ON workspaces (owner_id);

CREATE TABLE workspace_repos (
    workspace_id BLOB NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    path         TEXT NOT NULL,
    status       TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, path)
);

-- Relay-wide secrets generated on first start (e.g. the token signing key), shared by all nodes.
CREATE TABLE relay_secrets (
    name       TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    created_at TEXT NOT NULL
);
