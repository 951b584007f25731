-- Schema 15: the dashboard's browser sessions. Only a hash of the cookie is kept; the CSRF
-- token goes with it (a page reads it to send with every change). A session outlives daemon
-- restarts, so an open page reconnects by itself.
CREATE TABLE ui_sessions (
    hash BLOB PRIMARY KEY,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
