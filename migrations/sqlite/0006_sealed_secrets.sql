-- Secrets Fulcrum must read back (provider keys, GitHub and Coder credentials), sealed with
-- AES-256-GCM under a master key that is never stored here: `key_id` names it, `sealed` holds
-- the nonce, the ciphertext and the tag. Each belongs to a user and has a name unique for them.
CREATE TABLE sealed_secrets (
    owner_id   BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key_id     TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (owner_id, name)
);
CREATE INDEX sealed_secrets_key ON sealed_secrets (key_id);
