-- A user's profile: a display name and preferences (theme, time zone, default project), the
-- latter as JSON the relay checks on the way in.
ALTER TABLE users ADD COLUMN full_name TEXT NOT NULL DEFAULT ''
    CHECK (length(full_name) <= 200);
ALTER TABLE users ADD COLUMN preferences TEXT NOT NULL DEFAULT '{}';
