-- Schema 8: supervision. Where a worker works (JSON {session, worktree, branch, base}), so a
-- restarted daemon can re-attach to it or finish its task from what it left; when the session
-- last showed any sign of life (stream output or an MCP call); why its task was retried.
ALTER TABLE sessions ADD COLUMN place TEXT;
ALTER TABLE sessions ADD COLUMN last_activity_at TEXT;
