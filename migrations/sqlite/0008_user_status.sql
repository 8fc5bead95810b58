-- Deactivated accounts: an operator can deactivate a user (their sessions end, nothing of theirs
-- authenticates) and activate them again. `status_changed_at` lets every relay node notice a
-- change made elsewhere (the CLI, another node) within its sweep.
ALTER TABLE users ADD COLUMN deactivated_at TEXT;
ALTER TABLE users ADD COLUMN status_changed_at TEXT;
CREATE INDEX users_status_changed ON users (status_changed_at);
