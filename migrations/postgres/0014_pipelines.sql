-- AI generation pipelines: LLM providers (their keys sealed in `sealed_secrets` under the name
-- `llm/<provider id>`), budgets, pipeline runs with their stages and artifacts, and the
-- journal of LLM calls with the OpenTelemetry GenAI facts of each.

-- A provider a user set up: theirs everywhere (project_id NULL) or for one project only.
CREATE TABLE llm_providers (
    id            UUID PRIMARY KEY,
    owner_id      UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id    UUID REFERENCES projects(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('openai', 'anthropic')),
    base_url      TEXT NOT NULL,
    default_model TEXT NOT NULL,
    key_hint      TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (owner_id, name)
);

-- A spending limit in micro-dollars: a user's (project_id NULL) or a project's, over all time or
-- per calendar month. A run's own budget is on the run.
CREATE TABLE budgets (
    id           UUID PRIMARY KEY,
    owner_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id   UUID REFERENCES projects(id) ON DELETE CASCADE,
    period       TEXT NOT NULL CHECK (period IN ('total', 'month')),
    limit_micros BIGINT NOT NULL CHECK (limit_micros >= 0),
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX budgets_user ON budgets (owner_id, period) WHERE project_id IS NULL;
CREATE UNIQUE INDEX budgets_project ON budgets (project_id, period) WHERE project_id IS NOT NULL;

CREATE TABLE pipeline_runs (
    id               UUID PRIMARY KEY,
    handle           TEXT NOT NULL UNIQUE,
    project_id       UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    workspace_id     UUID,
    started_by       UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id      UUID REFERENCES llm_providers(id) ON DELETE SET NULL,
    pipeline         TEXT NOT NULL,
    definition       TEXT NOT NULL,
    definition_hash  TEXT NOT NULL,
    inputs           TEXT NOT NULL,
    state            TEXT NOT NULL
                     CHECK (state IN ('queued', 'running', 'paused', 'succeeded', 'failed', 'canceled')),
    reason           TEXT,
    error            TEXT,
    budget_micros    BIGINT CHECK (budget_micros IS NULL OR budget_micros >= 0),
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX pipeline_runs_project ON pipeline_runs (project_id, created_at);
CREATE INDEX pipeline_runs_live ON pipeline_runs (state, lease_expires_at);

CREATE TABLE pipeline_stages (
    run_id      UUID NOT NULL REFERENCES pipeline_runs(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    position    INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('llm', 'agent', 'run', 'approval', 'mcp')),
    state       TEXT NOT NULL
                CHECK (state IN ('pending', 'running', 'waiting', 'succeeded', 'failed', 'skipped')),
    attempt     INTEGER NOT NULL DEFAULT 0,
    reason      TEXT,
    error       TEXT,
    output      TEXT,
    feedback    TEXT,
    decided_by  UUID,
    task_id     UUID,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE pipeline_artifacts (
    run_id     UUID NOT NULL REFERENCES pipeline_runs(id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    stage      TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    content    TEXT NOT NULL,
    size       BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, path)
);

-- Every LLM call, journaled before it is made (state reserved, with the worst case of its cost
-- held against the budgets) and settled when it ends. A call of a run is keyed by its run,
-- stage, attempt and sequence number, so a resumed run finds a recorded answer instead of
-- asking again.
CREATE TABLE llm_calls (
    id               UUID PRIMARY KEY,
    owner_id         UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id       UUID REFERENCES projects(id) ON DELETE CASCADE,
    run_id           UUID REFERENCES pipeline_runs(id) ON DELETE CASCADE,
    stage            TEXT,
    attempt          INTEGER,
    seq              INTEGER,
    provider_id      UUID,
    provider         TEXT NOT NULL CHECK (provider IN ('openai', 'anthropic')),
    operation        TEXT NOT NULL,
    request_model    TEXT NOT NULL,
    response_model   TEXT,
    response_id      TEXT,
    finish_reason    TEXT,
    input_tokens     BIGINT NOT NULL DEFAULT 0,
    output_tokens    BIGINT NOT NULL DEFAULT 0,
    cached_tokens    BIGINT NOT NULL DEFAULT 0,
    usage_estimated  BOOLEAN NOT NULL DEFAULT FALSE,
    reserved_micros  BIGINT NOT NULL,
    cost_micros      BIGINT NOT NULL DEFAULT 0,
    latency_ms       BIGINT,
    ttft_ms          BIGINT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    state            TEXT NOT NULL CHECK (state IN ('reserved', 'succeeded', 'failed')),
    error_code       TEXT,
    error            TEXT,
    request          TEXT NOT NULL,
    response         TEXT,
    raw_response     TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    UNIQUE (run_id, stage, attempt, seq)
);
CREATE INDEX llm_calls_owner ON llm_calls (owner_id, created_at);
CREATE INDEX llm_calls_project ON llm_calls (project_id, created_at);
