-- Tokens of two kinds: 'agent' (an agent dials in with it) and 'mcp' (an MCP client calls the
-- relay's /mcp endpoint with it). read_only: an MCP token that may not write files or run tasks.
ALTER TABLE agent_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'agent' CHECK (kind IN ('agent', 'mcp'));
ALTER TABLE agent_tokens ADD COLUMN read_only BOOLEAN NOT NULL DEFAULT FALSE;
