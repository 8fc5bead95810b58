-- One token model: every non-interactive credential is a row of `tokens` (formerly
-- `agent_tokens`), of kind agent, mcp, api or ingest, with its scopes (names from
-- fulcrum_protocol::kinds::Scope joined by single spaces; the CHECK refuses any other word),
-- optionally limited to one project or one workspace, and where it was last used from.
-- `read_only` becomes the scope set: a read-only MCP token keeps `read`, other MCP tokens
-- `read write run`, agent tokens `read run`. SQLite cannot change a CHECK in place: the table
-- is made anew and every row copied (no other table refers to it). Users get a role.
CREATE TABLE tokens (
    id             BLOB PRIMARY KEY,
    owner_id       BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    prefix         TEXT NOT NULL,
    token_hash     TEXT NOT NULL UNIQUE,
    created_at     TEXT NOT NULL,
    last_used_at   TEXT,
    last_used_addr TEXT,
    revoked_at     TEXT,
    kind           TEXT NOT NULL CHECK (kind IN ('agent', 'mcp', 'api', 'ingest')),
    scopes         TEXT NOT NULL CHECK (trim(replace(replace(replace(replace(replace(
                       ' ' || scopes || ' ', ' read ', ' '), ' write ', ' '), ' run ', ' '),
                       ' ingest ', ' '), ' admin ', ' ')) = ''),
    project_id     BLOB REFERENCES projects(id) ON DELETE CASCADE,
    workspace_id   BLOB REFERENCES workspaces(id) ON DELETE CASCADE,
    expires_at     TEXT,
    CHECK (project_id IS NULL OR workspace_id IS NULL)
);
INSERT INTO tokens (id, owner_id, name, prefix, token_hash, created_at, last_used_at, revoked_at,
                    kind, scopes, expires_at)
    SELECT id, owner_id, name, prefix, token_hash, created_at, last_used_at, revoked_at, kind,
           CASE WHEN kind = 'agent' THEN 'read run'
                WHEN read_only THEN 'read'
                ELSE 'read write run' END,
           expires_at
    FROM agent_tokens;
DROP TABLE agent_tokens;
CREATE INDEX tokens_owner ON tokens (owner_id);
CREATE INDEX tokens_expires ON tokens (expires_at);
CREATE INDEX tokens_project ON tokens (project_id) WHERE project_id IS NOT NULL;
CREATE INDEX tokens_workspace ON tokens (workspace_id) WHERE workspace_id IS NOT NULL;

ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin'));
