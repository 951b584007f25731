-- Schema 1: everything the daemon persists. SQLite is the source of truth; the files under
-- <project>/.orchestrator/ are rewritten from these tables. Never edit a landed migration:
-- add 0002_*.sql instead.

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY,
    -- Canonical absolute path of the git work tree's top level.
    path        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    project_id     INTEGER NOT NULL REFERENCES projects(id),
    feature        TEXT NOT NULL,
    branch         TEXT NOT NULL,
    base_commit    TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN
                     ('queued','running','paused','escalated','completed','failed','cancelled')),
    phase          TEXT NOT NULL,
    cycle          INTEGER NOT NULL DEFAULT 0,
    -- RunOptions as JSON: new options need no migration.
    options        TEXT NOT NULL,
    context_file   TEXT,
    -- The context file's content as read at submit, so the run does not depend on the file.
    context        TEXT,
    status_reason  TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    finished_at    TEXT
);
-- At most one active run per project, enforced by the database itself.
CREATE UNIQUE INDEX runs_one_active_per_project ON runs(project_id)
    WHERE status IN ('queued','running','paused','escalated');
CREATE INDEX runs_by_status ON runs(status);

CREATE TABLE tasks (
    run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    -- The planner's id, e.g. "t3"; unique within a run.
    id           TEXT NOT NULL,
    cycle        INTEGER NOT NULL,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL,
    acceptance   TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
    files        TEXT NOT NULL DEFAULT '[]',   -- JSON array of declared paths
    status       TEXT NOT NULL,
    assignee     TEXT,                          -- sessions.id
    attempts     INTEGER NOT NULL DEFAULT 0,
    result       TEXT,                          -- the worker's completion summary
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (run_id, id)
);

CREATE TABLE task_deps (
    run_id      TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    depends_on  TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id, depends_on),
    FOREIGN KEY (run_id, task_id) REFERENCES tasks(run_id, id) ON DELETE CASCADE,
    FOREIGN KEY (run_id, depends_on) REFERENCES tasks(run_id, id) ON DELETE CASCADE
);

-- One row per agent process the daemon spawned (planner, worker, reviewer).
CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    run_id            TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    role              TEXT NOT NULL CHECK (role IN ('planner','worker','reviewer')),
    task_id           TEXT,
    agent             TEXT NOT NULL,         -- 'claude', 'codex'
    agent_session_id  TEXT,                  -- for `claude --resume`
    token_hash        BLOB,                  -- sha-256 of the MCP bearer token
    pid               INTEGER,
    pid_start_time    INTEGER,               -- so a recycled pid is never taken for ours
    pgid              INTEGER,
    status            TEXT NOT NULL,
    worktree          TEXT,
    output_offset     INTEGER NOT NULL DEFAULT 0,  -- bytes of stdout already parsed
    exit_code         INTEGER,
    started_at        TEXT NOT NULL,
    ended_at          TEXT
);
CREATE INDEX sessions_by_run ON sessions(run_id, status);

CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    run_id        TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    from_session  TEXT,                      -- NULL: the orchestrator
    to_kind       TEXT NOT NULL CHECK (to_kind IN ('task','all','orchestrator')),
    to_id         TEXT,
    body          TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE TABLE message_reads (
    message_id  INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    session_id  TEXT NOT NULL,
    read_at     TEXT NOT NULL,
    PRIMARY KEY (message_id, session_id)
);

CREATE TABLE escalations (
    id           INTEGER PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    task_id      TEXT,
    kind         TEXT NOT NULL,
    question     TEXT NOT NULL,
    context      TEXT,
    blocking     INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    answer       TEXT,
    answered_at  TEXT
);
CREATE INDEX escalations_pending ON escalations(run_id) WHERE answer IS NULL;

-- The append-only log of everything that happened to a run.
CREATE TABLE events (
    run_id   TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    at       TEXT NOT NULL,
    level    TEXT NOT NULL,
    kind     TEXT NOT NULL,
    message  TEXT NOT NULL,
    data     TEXT,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TRIGGER events_are_append_only BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
