DROP TABLE access_tokens;
ALTER TABLE users DROP COLUMN phone_number;
DELETE FROM sessions WHERE session_key IS NULL;
CREATE TABLE sessions_old (
    token_hash  BLOB    NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     TEXT    NOT NULL REFERENCES users (id),
    appid       TEXT    NOT NULL,
    openid      TEXT    NOT NULL,
    session_key BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;
INSERT INTO sessions_old SELECT * FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_old RENAME TO sessions;
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
