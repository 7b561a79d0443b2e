-- Each task belongs to one user (`owner`, the user name in the access token).
CREATE TABLE tasks (
    id uuid PRIMARY KEY,
    owner text NOT NULL,
    title text NOT NULL,
    description text,
    done boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE INDEX tasks_owner_created_at_id ON tasks (owner, created_at, id);
