-- The relay as an OAuth 2.1 authorization server for its own /mcp (RFC 8414 metadata, RFC 7591
-- dynamic client registration, authorization code with PKCE S256, refresh tokens that rotate).
-- A grant to a client is one row of `tokens` (kind mcp, `oauth_client_id` set): its access
-- token's hash is replaced at every refresh, so the grant is listed and revoked like any token.
-- Codes and refresh tokens are stored hashed; each works once.
CREATE TABLE oauth_clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    client_uri    TEXT,
    secret_hash   TEXT,
    auth_method   TEXT NOT NULL
                  CHECK (auth_method IN ('none', 'client_secret_post', 'client_secret_basic')),
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE oauth_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    user_id        UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    resource       TEXT,
    expires_at     TIMESTAMPTZ NOT NULL,
    used_at        TIMESTAMPTZ,
    token_id       UUID,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);

ALTER TABLE tokens ADD COLUMN oauth_client_id TEXT REFERENCES oauth_clients(id) ON DELETE CASCADE;

CREATE TABLE oauth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    token_id   UUID NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX oauth_refresh_tokens_token ON oauth_refresh_tokens (token_id);
