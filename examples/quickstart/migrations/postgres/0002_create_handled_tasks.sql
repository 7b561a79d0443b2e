-- One row each time the worker handled a task's `task.created` (delivery is at least once,
-- so a task may appear more than once).
CREATE TABLE handled_tasks (
    id bigserial PRIMARY KEY,
    task_id uuid NOT NULL,
    handled_at timestamptz NOT NULL
);

CREATE INDEX handled_tasks_task_id ON handled_tasks (task_id);
