-- Schema 16: the board's hot queries without scans: a run's pending tasks in plan order (an index
-- entry ends with the rowid, so `run_id = ? AND status = 'pending' ORDER BY rowid` reads
-- them in order, no sort), and what a task's sessions cost.
CREATE INDEX tasks_by_status ON tasks(run_id, status);
CREATE INDEX sessions_by_worked_task ON sessions(run_id, worked_task);
