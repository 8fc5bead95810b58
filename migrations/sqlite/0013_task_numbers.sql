-- Tasks get a number in their workspace (#1, #2, …): a short handle people can read and type,
-- unique per workspace (the API names the namespace: /workspaces/{id}/tasks/{number}). Existing
-- tasks are numbered in the order they were made; new ones get the next number as they are
-- inserted (the unique index refuses a duplicate, and the store retries).
ALTER TABLE tasks ADD COLUMN number BIGINT;
UPDATE tasks SET number = r.n
    FROM (SELECT id, row_number() OVER (PARTITION BY workspace_id ORDER BY created_at, id) AS n
          FROM tasks) AS r
    WHERE r.id = tasks.id;
CREATE UNIQUE INDEX tasks_workspace_number ON tasks (workspace_id, number);
