-- Schema 13: the CLI the plan gave a task (NULL: the run's workers').
ALTER TABLE tasks ADD COLUMN agent TEXT;
