-- A project's generation status (the seeds' draft → generating → ready or failed), which
-- follows the runs of a pipeline that sets it; and deployments: what a pipeline's deploy stage (and, later, a connected GitHub or Coder) put
-- somewhere, with the commit and whether it came up: the project's deployment history.
CREATE TABLE deployments (
    id           UUID PRIMARY KEY,
    project_id   UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    run_id       UUID REFERENCES pipeline_runs(id) ON DELETE SET NULL,
    task_id      UUID,
    source       TEXT NOT NULL CHECK (source IN ('pipeline', 'github', 'coder')),
    environment  TEXT NOT NULL,
    url          TEXT,
    commit_sha   TEXT,
    state        TEXT NOT NULL CHECK (state IN ('succeeded', 'failed')),
    created_by   UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX deployments_project ON deployments (project_id, created_at);

ALTER TABLE projects ADD COLUMN generation TEXT NOT NULL DEFAULT 'draft'
    CHECK (generation IN ('draft', 'generating', 'ready', 'failed'));
