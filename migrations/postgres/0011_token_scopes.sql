-- One token model: every non-interactive credential is a row of `tokens` (formerly
-- `agent_tokens`), of kind agent, mcp, api or ingest, with its scopes (names from
-- fulcrum_protocol::kinds::Scope joined by single spaces; the CHECK refuses any other word),
-- optionally limited to one project or one workspace, and where it was last used from.
-- `read_only` becomes the scope set: a read-only MCP token keeps `read`, other MCP tokens
-- `read write run`, agent tokens `read run`. Users get a role.
ALTER TABLE agent_tokens RENAME TO tokens;
ALTER INDEX agent_tokens_owner RENAME TO tokens_owner;
ALTER INDEX agent_tokens_expires RENAME TO tokens_expires;
ALTER TABLE tokens DROP CONSTRAINT agent_tokens_kind_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_kind_check
    CHECK (kind IN ('agent', 'mcp', 'api', 'ingest'));
ALTER TABLE tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
UPDATE tokens SET scopes = CASE WHEN kind = 'agent' THEN 'read run'
                                WHEN read_only THEN 'read'
                                ELSE 'read write run' END;
ALTER TABLE tokens ALTER COLUMN scopes DROP DEFAULT;
ALTER TABLE tokens ADD CONSTRAINT tokens_scopes_check
    CHECK (trim(replace(replace(replace(replace(replace(
        ' ' || scopes || ' ', ' read ', ' '), ' write ', ' '), ' run ', ' '),
        ' ingest ', ' '), ' admin ', ' ')) = '');
ALTER TABLE tokens DROP COLUMN read_only;
ALTER TABLE tokens ADD COLUMN last_used_addr TEXT;
ALTER TABLE tokens ADD COLUMN project_id UUID REFERENCES projects(id) ON DELETE CASCADE;
ALTER TABLE tokens ADD COLUMN workspace_id UUID REFERENCES workspaces(id) ON DELETE CASCADE;
ALTER TABLE tokens ADD CONSTRAINT tokens_one_limit CHECK (project_id IS NULL OR workspace_id IS NULL);
CREATE INDEX tokens_project ON tokens (project_id) WHERE project_id IS NOT NULL;
CREATE INDEX tokens_workspace ON tokens (workspace_id) WHERE workspace_id IS NOT NULL;

ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin'));
