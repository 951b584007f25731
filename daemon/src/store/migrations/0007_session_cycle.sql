-- Schema 7: the cost ledger. Which cycle each session belonged to, and the task it worked on
-- (`task_id` is the task it holds now, cleared when the task is completed).
ALTER TABLE sessions ADD COLUMN cycle INTEGER;
ALTER TABLE sessions ADD COLUMN worked_task TEXT;
