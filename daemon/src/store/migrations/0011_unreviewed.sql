-- Schema 11: why a completed run's code was not reviewed though Codex reviews were wanted
-- (every review attempt failed, or codex could not run); NULL when it was reviewed or
-- reviews were skipped on purpose.
ALTER TABLE runs ADD COLUMN unreviewed TEXT;
