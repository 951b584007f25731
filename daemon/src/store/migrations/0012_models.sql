-- Schema 12: the model and effort the plan gave a task (NULL: the run's), and the model a
-- session ran (from claude's init line, so an alias reads as the model it resolved to).
ALTER TABLE tasks ADD COLUMN model TEXT;
ALTER TABLE tasks ADD COLUMN effort TEXT;
ALTER TABLE sessions ADD COLUMN model TEXT;
