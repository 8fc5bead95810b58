-- One-time password reset links an operator makes (`fulcrum-relay user reset-password`), stored
-- hashed. A link works once, until it expires; using it ends every login of the user.
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id    BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX password_resets_user ON password_resets (user_id);
