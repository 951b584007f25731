-- Schema 5: Codex reviews and the findings ledger that makes them converge.

-- One row per finished review (an interrupted one is simply run again).
CREATE TABLE reviews (
    id            INTEGER PRIMARY KEY,
    run_id        TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('plan','code')),
    cycle         INTEGER NOT NULL,
    -- Plan reviews: the plan version reviewed.
    plan_version  INTEGER,
    -- approved: nothing blocking; changes: blocking findings; failed: no usable verdict.
    outcome       TEXT NOT NULL CHECK (outcome IN ('approved','changes','failed')),
    summary       TEXT NOT NULL,
    -- The review's folder under .orchestrator/codex-reviews/.
    dir           TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX reviews_by_run ON reviews(run_id, id);

-- Every finding a review raised, under a stable id (P1… plan concerns, F1… code findings),
-- so a finding raised again is recognised and counted instead of looping.
CREATE TABLE findings (
    run_id        TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('plan','code')),
    priority      TEXT NOT NULL CHECK (priority IN ('P0','P1','P2','P3')),
    title         TEXT NOT NULL,
    body          TEXT NOT NULL,
    location      TEXT,
    first_review  INTEGER NOT NULL,
    last_review   INTEGER NOT NULL,
    -- How many reviews raised it: 2 is a first recurrence, 3 a second.
    raised        INTEGER NOT NULL DEFAULT 1,
    status        TEXT NOT NULL CHECK (status IN ('open','resolved')),
    PRIMARY KEY (run_id, id)
);
