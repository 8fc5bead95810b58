-- CHECK constraints on the closed sets (relay/src/store/kinds.rs and the protocol's TaskState):
-- task states and sources, project statuses, member roles.
ALTER TABLE projects ADD CONSTRAINT projects_status_check
    CHECK (status IN ('active', 'archived'));
ALTER TABLE project_members ADD CONSTRAINT project_members_role_check
    CHECK (role IN ('owner', 'maintainer', 'viewer'));
ALTER TABLE tasks ADD CONSTRAINT tasks_state_check
    CHECK (state IN ('queued', 'dispatched', 'running', 'succeeded', 'failed', 'canceled',
                     'timed_out', 'lost'));
ALTER TABLE tasks ADD CONSTRAINT tasks_source_check
    CHECK (source IN ('api', 'terminal', 'mcp'));
