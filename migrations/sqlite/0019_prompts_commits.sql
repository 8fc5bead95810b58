-- A project's prompt library: named prompt templates, every save a new version (the old ones
-- kept), served to MCP clients as prompts and to the assistant as tools.
CREATE TABLE prompts (
    id          BLOB PRIMARY KEY,
    project_id  BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    description TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_by  BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    UNIQUE (project_id, name, version)
);

-- Commits linked to the AI activities that made them: by a trailer naming the activity
-- (`AI-Activity: <id>`) in the commit message, or by time (a commit in a workspace of the
-- project within 30 minutes after the user's activity in it).
CREATE TABLE ai_commit_links (
    activity_id BLOB NOT NULL REFERENCES ai_activities(id) ON DELETE CASCADE,
    commit_sha  TEXT NOT NULL,
    project_id  BLOB NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    repo        TEXT NOT NULL,
    summary     TEXT NOT NULL,
    reason      TEXT NOT NULL CHECK (reason IN ('window', 'trailer')),
    linked_at   TEXT NOT NULL,
    PRIMARY KEY (activity_id, commit_sha)
);
CREATE INDEX ai_commit_links_project ON ai_commit_links (project_id, linked_at);
