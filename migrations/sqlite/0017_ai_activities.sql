-- AI activity: every AI interaction, whatever produced it (reported by a tool over the API or
-- OTLP, or made through the relay: the LLM gateway, a pipeline, the assistant), with the GenAI
-- facts of its model call. Idempotent by the client's id per user. Prompt and response text
-- are optional (a project can turn them off) and capped.
CREATE TABLE ai_activities (
    id              BLOB PRIMARY KEY,
    owner_id        BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id      BLOB REFERENCES projects(id) ON DELETE CASCADE,
    client_id       TEXT,
    source          TEXT NOT NULL
                    CHECK (source IN ('api', 'otlp', 'gateway', 'pipeline', 'assistant')),
    tool            TEXT NOT NULL,
    category        TEXT CHECK (category IN ('feature', 'bugfix', 'refactor', 'docs', 'test')),
    provider        TEXT,
    model           TEXT,
    operation       TEXT,
    input_tokens    BIGINT NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens   BIGINT NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cached_tokens   BIGINT NOT NULL DEFAULT 0 CHECK (cached_tokens >= 0),
    cost_micros     BIGINT NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    latency_ms      BIGINT,
    ttft_ms         BIGINT,
    finish_reason   TEXT,
    conversation_id TEXT,
    prompt          TEXT,
    response        TEXT,
    code_changes    TEXT NOT NULL DEFAULT '[]',
    call_id         BLOB,
    occurred_at     TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    UNIQUE (owner_id, client_id)
);
CREATE INDEX ai_activities_owner ON ai_activities (owner_id, occurred_at);
CREATE INDEX ai_activities_project ON ai_activities (project_id, occurred_at);

-- Daily rollups of activities, kept as they are written, so that a report over a million
-- activities reads a few thousand rows. One row per day, user, project (the nil id for none),
-- tool, model (empty when unknown) and category (empty for none); latencies counted in 32
-- buckets two to a doubling (lat00: under 1.4 ms … lat31: 46 s and over), for the percentiles.
CREATE TABLE ai_rollups (
    day            TEXT NOT NULL,
    owner_id       BLOB NOT NULL,
    project_id     BLOB NOT NULL,
    tool           TEXT NOT NULL,
    model          TEXT NOT NULL,
    category       TEXT NOT NULL,
    activities     BIGINT NOT NULL,
    input_tokens   BIGINT NOT NULL,
    output_tokens  BIGINT NOT NULL,
    cached_tokens  BIGINT NOT NULL,
    cost_micros    BIGINT NOT NULL,
    lat00          BIGINT NOT NULL DEFAULT 0,
    lat01          BIGINT NOT NULL DEFAULT 0,
    lat02          BIGINT NOT NULL DEFAULT 0,
    lat03          BIGINT NOT NULL DEFAULT 0,
    lat04          BIGINT NOT NULL DEFAULT 0,
    lat05          BIGINT NOT NULL DEFAULT 0,
    lat06          BIGINT NOT NULL DEFAULT 0,
    lat07          BIGINT NOT NULL DEFAULT 0,
    lat08          BIGINT NOT NULL DEFAULT 0,
    lat09          BIGINT NOT NULL DEFAULT 0,
    lat10          BIGINT NOT NULL DEFAULT 0,
    lat11          BIGINT NOT NULL DEFAULT 0,
    lat12          BIGINT NOT NULL DEFAULT 0,
    lat13          BIGINT NOT NULL DEFAULT 0,
    lat14          BIGINT NOT NULL DEFAULT 0,
    lat15          BIGINT NOT NULL DEFAULT 0,
    lat16          BIGINT NOT NULL DEFAULT 0,
    lat17          BIGINT NOT NULL DEFAULT 0,
    lat18          BIGINT NOT NULL DEFAULT 0,
    lat19          BIGINT NOT NULL DEFAULT 0,
    lat20          BIGINT NOT NULL DEFAULT 0,
    lat21          BIGINT NOT NULL DEFAULT 0,
    lat22          BIGINT NOT NULL DEFAULT 0,
    lat23          BIGINT NOT NULL DEFAULT 0,
    lat24          BIGINT NOT NULL DEFAULT 0,
    lat25          BIGINT NOT NULL DEFAULT 0,
    lat26          BIGINT NOT NULL DEFAULT 0,
    lat27          BIGINT NOT NULL DEFAULT 0,
    lat28          BIGINT NOT NULL DEFAULT 0,
    lat29          BIGINT NOT NULL DEFAULT 0,
    lat30          BIGINT NOT NULL DEFAULT 0,
    lat31          BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (owner_id, day, project_id, tool, model, category)
);
CREATE INDEX ai_rollups_project ON ai_rollups (project_id, day);

-- Usage counters from OTLP metrics: per series (a metric, its resource and point attributes and
-- start time), its latest total (cumulative) or running sum (delta); with the tool, model and
-- what it counts, for reports by tool and model.
CREATE TABLE ai_usage_counters (
    owner_id   BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    series     TEXT NOT NULL,
    project_id BLOB NOT NULL,
    tool       TEXT NOT NULL,
    model      TEXT NOT NULL,
    metric     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    value      DOUBLE PRECISION NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (owner_id, series)
);

-- Whether a project keeps the prompt and response text of its activities.
ALTER TABLE projects ADD COLUMN ai_capture_text BOOLEAN NOT NULL DEFAULT TRUE;

-- The highest alert (80 or 100 percent) a budget raised in its current period, so that each
-- is raised once.
ALTER TABLE budgets ADD COLUMN alert_level INTEGER NOT NULL DEFAULT 0
    CHECK (alert_level IN (0, 80, 100));
ALTER TABLE budgets ADD COLUMN alert_period TEXT;
