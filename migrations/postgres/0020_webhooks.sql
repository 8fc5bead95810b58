-- Outgoing webhooks (the Standard Webhooks specification): endpoints a user, or a project's
-- managers, point their automations at; the events the relay recorded for them (an outbox,
-- written in the same transaction as what happened); one delivery per event and endpoint; and
-- every attempt at it. An endpoint's signing secret is kept with the owner's sealed secrets.
CREATE TABLE webhook_endpoints (
    id              UUID PRIMARY KEY,
    owner_id        UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id      UUID REFERENCES projects(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    description     TEXT NOT NULL,
    -- The event kinds it wants, space-separated.
    events          TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    disabled_reason TEXT,
    -- While a rotated secret still signs too (both signatures are sent until then).
    previous_until  TIMESTAMPTZ,
    -- While a relay's worker sends its deliveries (one at a time, in order): the claim lapses
    -- then if that relay is gone.
    busy_until      TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_endpoints_owner ON webhook_endpoints (owner_id);
CREATE INDEX webhook_endpoints_project ON webhook_endpoints (project_id);

-- What happened, waiting to be fanned out to the endpoints that want it (`endpoint_id` set: for
-- that endpoint only, a test event).
CREATE TABLE webhook_events (
    id          UUID PRIMARY KEY,
    kind        TEXT NOT NULL
                CHECK (kind IN ('task_finished', 'budget_threshold', 'webhook_test')),
    owner_id    UUID NOT NULL,
    project_id  UUID,
    endpoint_id UUID,
    -- What it is about (a task, a budget), and what the event says beyond that.
    subject_id  UUID,
    data        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

-- One event for one endpoint, sent in order per endpoint and retried on the specification's
-- schedule until it is delivered or has failed (which disables the endpoint).
CREATE TABLE webhook_deliveries (
    id              UUID PRIMARY KEY,
    endpoint_id     UUID NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_id        UUID NOT NULL,
    kind            TEXT NOT NULL
                    CHECK (kind IN ('task_finished', 'budget_threshold', 'webhook_test')),
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL,
    -- The attempt the retry schedule counts from (moved on by a replay).
    schedule_base   INTEGER NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, state, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);

-- Every attempt at a delivery: when, the answer's status (none when no answer came) or the
-- error, and how long it took.
CREATE TABLE webhook_attempts (
    delivery_id UUID NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    status      INTEGER,
    error       TEXT,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
