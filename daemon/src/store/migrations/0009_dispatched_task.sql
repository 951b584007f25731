-- Schema 9: the task a worker session was started for (set when the engine dispatches it,
-- never changed), so the board can refuse such a session any other task (`claim_task`).
ALTER TABLE sessions ADD COLUMN dispatched_task TEXT;
UPDATE sessions SET dispatched_task = worked_task WHERE role = 'worker' AND place IS NOT NULL;
