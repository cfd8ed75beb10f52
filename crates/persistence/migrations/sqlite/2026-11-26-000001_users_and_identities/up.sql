-- Users and their (appid, openid) identities.
-- Timestamps are Unix seconds. STRICT tables refuse values of the wrong type.

CREATE TABLE users (
    id          TEXT    NOT NULL PRIMARY KEY,
    -- One user per unionid: the constraint, not the code, decides races.
    unionid     TEXT    UNIQUE,
    merged_into TEXT    REFERENCES users (id),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE identities (
    appid      TEXT    NOT NULL,
    openid     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (appid, openid)
) STRICT;

CREATE INDEX identities_user_id ON identities (user_id);
