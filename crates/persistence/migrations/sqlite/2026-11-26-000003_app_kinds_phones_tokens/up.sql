-- Logins of official accounts, mobile apps and websites have no session_key: the column becomes
-- nullable (SQLite cannot drop NOT NULL in place, so the table is rebuilt; nothing references it).
CREATE TABLE sessions_new (
    token_hash  BLOB    NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     TEXT    NOT NULL REFERENCES users (id),
    appid       TEXT    NOT NULL,
    openid      TEXT    NOT NULL,
    -- Sealed with the data keyring (AES-256-GCM), bound to token_hash; never the clear key.
    session_key BLOB,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;
INSERT INTO sessions_new SELECT token_hash, user_id, appid, openid, session_key, created_at, expires_at, revoked_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- A verified phone number (getPhoneNumber), sealed like session keys, bound to the user id.
ALTER TABLE users ADD COLUMN phone_number BLOB;

-- One WeChat access token per app for the whole cluster, and the lease that lets exactly one
-- node refresh it at a time.
CREATE TABLE access_tokens (
    appid        TEXT    NOT NULL PRIMARY KEY,
    -- Sealed, bound to the appid; NULL until the first refresh.
    token        BLOB,
    expires_at   INTEGER NOT NULL,
    lease_holder TEXT,
    lease_until  INTEGER NOT NULL,
    refreshed_at INTEGER NOT NULL
) STRICT;
