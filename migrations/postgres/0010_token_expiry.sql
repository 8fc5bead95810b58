-- Tokens may expire: past `expires_at` a token opens no door, and the sessions it opened end.
ALTER TABLE agent_tokens ADD COLUMN expires_at TIMESTAMPTZ;
CREATE INDEX agent_tokens_expires ON agent_tokens (expires_at);
