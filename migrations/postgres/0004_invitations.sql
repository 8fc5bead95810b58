-- Invitations to a project. Nobody becomes a member without accepting: an owner invites an
-- e-mail address (whether or not it has an account yet), and the user with that address accepts
-- or declines. At most one pending invitation per (project, e-mail).
CREATE TABLE project_invitations (
    id         UUID PRIMARY KEY,
    project_id UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('maintainer', 'viewer')),
    invited_by UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, email)
);
CREATE INDEX project_invitations_email ON project_invitations (email);
