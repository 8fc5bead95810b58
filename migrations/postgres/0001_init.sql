-- Users, sessions, agent tokens, workspaces and their repositories (PostgreSQL).
CREATE TABLE users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

-- Refresh tokens, stored hashed. A family is one login; reusing a used token revokes it.
CREATE TABLE refresh_tokens (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family_id  UUID NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE agent_tokens (
    id           UUID PRIMARY KEY,
    owner_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX agent_tokens_owner ON agent_tokens (owner_id);

-- One row per (owner, agent key). agent_stream/agent_seq: how far the agent's durable stream
-- has been applied, so replays after a reconnect are dropped.
CREATE TABLE workspaces (
    id            UUID PRIMARY KEY,
    owner_id      UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    name          TEXT NOT NULL,
    hostname      TEXT NOT NULL,
    root          TEXT NOT NULL,
    coder         JSONB,
    agent_version TEXT NOT NULL,
    online        BOOLEAN NOT NULL DEFAULT FALSE,
    connected_at  TIMESTAMPTZ,
    last_seen_at  TIMESTAMPTZ,
    agent_stream  UUID,
    agent_seq     BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (owner_id, key)
);
CREATE INDEX workspaces_owner ON workspaces (owner_id);

CREATE TABLE workspace_repos (
    workspace_id UUID NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    path         TEXT NOT NULL,
    status       JSONB NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, path)
);

-- Relay-wide secrets generated on first start (e.g. the token signing key), shared by all nodes.
CREATE TABLE relay_secrets (
    name       TEXT PRIMARY KEY,
    value      BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
