-- Users and their (appid, openid) identities.
-- Timestamps are Unix seconds (BIGINT), the same representation as on SQLite.

CREATE TABLE users (
    id          TEXT   NOT NULL PRIMARY KEY,
    -- One user per unionid: the constraint, not the code, decides races between nodes.
    unionid     TEXT   UNIQUE,
    merged_into TEXT   REFERENCES users (id),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE identities (
    appid      TEXT   NOT NULL,
    openid     TEXT   NOT NULL,
    user_id    TEXT   NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (appid, openid)
);

CREATE INDEX identities_user_id ON identities (user_id);
