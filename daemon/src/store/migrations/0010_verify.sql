-- Schema 10: a task's verify commands (from the plan; the daemon runs them when its worker
-- completes) and the results of their last run.
ALTER TABLE tasks ADD COLUMN verify TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN checks TEXT;
