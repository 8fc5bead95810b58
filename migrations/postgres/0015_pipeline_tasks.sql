-- Tasks a pipeline run starts (its build, QA and deploy stages) have their own source,
-- `pipeline`: the source's CHECK constraint names it too. Added NOT VALID (a short lock, no
-- scan), then validated (which reads the table without blocking writes).
ALTER TABLE tasks DROP CONSTRAINT tasks_source_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_source_check
    CHECK (source IN ('api', 'terminal', 'mcp', 'pipeline')) NOT VALID;
ALTER TABLE tasks VALIDATE CONSTRAINT tasks_source_check;
