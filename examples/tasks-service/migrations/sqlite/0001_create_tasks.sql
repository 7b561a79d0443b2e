-- Each task belongs to one user (`owner`, the user name in the access token).
CREATE TABLE tasks (
    id BLOB PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT,
    done BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX tasks_owner_created_at_id ON tasks (owner, created_at, id);
