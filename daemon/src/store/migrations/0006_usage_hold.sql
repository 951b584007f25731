-- Schema 6: the usage governor. A run held by the account's usage (or its budget) records why
-- and until when, so a restarted daemon resumes it on time; an interrupted task records the
-- Claude session to continue with `claude --resume` in the same worktree.

-- 'usage' (auto-resumes at hold_until) or 'budget' (waits for the user); NULL otherwise.
ALTER TABLE runs ADD COLUMN hold_kind TEXT;
ALTER TABLE runs ADD COLUMN hold_until TEXT;

-- JSON {session, worktree, branch, base}: where the interrupted worker left off.
ALTER TABLE tasks ADD COLUMN resume TEXT;
