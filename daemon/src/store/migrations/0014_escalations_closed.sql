-- Schema 14: an escalation closed without an answer — its run was cancelled, resumed or
-- ended, or it asked again (superseded) — and why; a closed one is no longer waiting.
ALTER TABLE escalations ADD COLUMN closed_at TEXT;
ALTER TABLE escalations ADD COLUMN closed_why TEXT;
ALTER TABLE escalations ADD COLUMN superseded_by INTEGER;
