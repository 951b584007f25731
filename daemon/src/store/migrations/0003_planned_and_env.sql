-- Schema 3: a run may be 'planned' (a --dry-run plan waiting for `orchestrate resume`), and the
-- environment its agent sessions inherit is kept beside it (never shown by the API or mirror).
-- SQLite cannot change a CHECK constraint in place: the runs table is rebuilt (the documented
-- procedure; the migration runner turns foreign keys off around it and checks them after).

CREATE TABLE runs_new (
    id             TEXT PRIMARY KEY,
    project_id     INTEGER NOT NULL REFERENCES projects(id),
    feature        TEXT NOT NULL,
    branch         TEXT NOT NULL,
    base_commit    TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN
                     ('queued','running','paused','escalated','planned','completed','failed','cancelled')),
    phase          TEXT NOT NULL,
    cycle          INTEGER NOT NULL DEFAULT 0,
    options        TEXT NOT NULL,
    context_file   TEXT,
    context        TEXT,
    status_reason  TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    finished_at    TEXT
);
INSERT INTO runs_new (id, project_id, feature, branch, base_commit, status, phase, cycle, options,
                      context_file, context, status_reason, created_at, updated_at, finished_at)
    SELECT id, project_id, feature, branch, base_commit, status, phase, cycle, options,
           context_file, context, status_reason, created_at, updated_at, finished_at FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE UNIQUE INDEX runs_one_active_per_project ON runs(project_id)
    WHERE status IN ('queued','running','paused','escalated','planned');
CREATE INDEX runs_by_status ON runs(status);

CREATE TABLE run_env (
    run_id  TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    env     TEXT NOT NULL   -- JSON object of the client's forwarded variables
);
