-- Schema 2: the workers' board behind the MCP endpoint — plans, task progress, session tokens,
-- and daemon settings (the MCP port, reused across restarts).

CREATE TABLE plans (
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    cycle       INTEGER NOT NULL,
    summary     TEXT NOT NULL,
    session_id  TEXT,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (run_id, version)
);

ALTER TABLE tasks ADD COLUMN plan_version INTEGER;
ALTER TABLE tasks ADD COLUMN progress TEXT;       -- the worker's last progress note
ALTER TABLE tasks ADD COLUMN failure TEXT;        -- why the last attempt failed

ALTER TABLE sessions ADD COLUMN expires_at TEXT;  -- the token stops working at this time
ALTER TABLE sessions ADD COLUMN heartbeat_at TEXT;
CREATE UNIQUE INDEX sessions_by_token ON sessions(token_hash) WHERE token_hash IS NOT NULL;
-- A session holds at most one task; a task is held by at most one session.
CREATE UNIQUE INDEX tasks_one_per_assignee ON tasks(run_id, assignee)
    WHERE assignee IS NOT NULL AND status = 'in_progress';

CREATE INDEX messages_by_run ON messages(run_id, id);

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
