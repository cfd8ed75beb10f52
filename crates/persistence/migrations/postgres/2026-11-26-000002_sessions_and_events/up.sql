-- Sessions (bearer tokens, stored as their SHA-256) and the append-only event log.

CREATE TABLE sessions (
    token_hash  BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id     TEXT   NOT NULL REFERENCES users (id),
    appid       TEXT   NOT NULL,
    openid      TEXT   NOT NULL,
    -- Sealed with the data keyring (AES-256-GCM), bound to token_hash; never the clear key.
    session_key BYTEA  NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE events (
    id            BIGSERIAL NOT NULL PRIMARY KEY,
    kind          TEXT      NOT NULL,
    user_id       TEXT      NOT NULL REFERENCES users (id),
    other_user_id TEXT      REFERENCES users (id),
    appid         TEXT      NOT NULL,
    openid        TEXT      NOT NULL,
    at            BIGINT    NOT NULL
);

CREATE INDEX events_user_id ON events (user_id);

-- Other teams follow merges through this log: rows are never changed or removed.
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$;

CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
