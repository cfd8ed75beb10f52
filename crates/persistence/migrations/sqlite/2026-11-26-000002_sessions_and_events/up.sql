-- Sessions (bearer tokens, stored as their SHA-256) and the append-only event log.

CREATE TABLE sessions (
    token_hash  BLOB    NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     TEXT    NOT NULL REFERENCES users (id),
    appid       TEXT    NOT NULL,
    openid      TEXT    NOT NULL,
    -- Sealed with the data keyring (AES-256-GCM), bound to token_hash; never the clear key.
    session_key BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE events (
    id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,
    user_id       TEXT    NOT NULL REFERENCES users (id),
    other_user_id TEXT    REFERENCES users (id),
    appid         TEXT    NOT NULL,
    openid        TEXT    NOT NULL,
    at            INTEGER NOT NULL
) STRICT;

CREATE INDEX events_user_id ON events (user_id);

-- Other teams follow merges through this log: rows are never changed or removed.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
