-- A2A tasks (SPEC §12): each task as its A2A JSON, with the columns it is
-- found and listed by. A task belongs to the credential that created it.
CREATE TABLE a2a_tasks (
    id          TEXT PRIMARY KEY,
    context_id  TEXT NOT NULL,
    owner       TEXT NOT NULL,
    skill       TEXT NOT NULL,
    state       TEXT NOT NULL,
    task        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX a2a_tasks_owner_created ON a2a_tasks (owner, created_at, id);
CREATE INDEX a2a_tasks_created ON a2a_tasks (created_at, id);
