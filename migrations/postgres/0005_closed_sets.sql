-- CHECK constraints on the closed sets (relay/src/store/kinds.rs and the protocol's TaskState):
-- task states and sources, project statuses, member roles. Added NOT VALID (a short lock, no
-- scan), then validated (which reads the table without blocking writes).
ALTER TABLE projects ADD CONSTRAINT projects_status_check
    CHECK (status IN ('active', 'archived')) NOT VALID;
ALTER TABLE project_members ADD CONSTRAINT project_members_role_check
    CHECK (role IN ('owner', 'maintainer', 'viewer')) NOT VALID;
ALTER TABLE tasks ADD CONSTRAINT tasks_state_check
    CHECK (state IN ('queued', 'dispatched', 'running', 'succeeded', 'failed', 'canceled',
                     'timed_out', 'lost')) NOT VALID;
ALTER TABLE tasks ADD CONSTRAINT tasks_source_check
    CHECK (source IN ('api', 'terminal', 'mcp')) NOT VALID;
ALTER TABLE projects VALIDATE CONSTRAINT projects_status_check;
ALTER TABLE project_members VALIDATE CONSTRAINT project_members_role_check;
ALTER TABLE tasks VALIDATE CONSTRAINT tasks_state_check;
ALTER TABLE tasks VALIDATE CONSTRAINT tasks_source_check;
