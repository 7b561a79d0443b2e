-- One row each time the worker handled a task's `task.created` (delivery is at least once,
-- so a task may appear more than once).
CREATE TABLE handled_tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id BLOB NOT NULL,
    handled_at TEXT NOT NULL
);

CREATE INDEX handled_tasks_task_id ON handled_tasks (task_id);
