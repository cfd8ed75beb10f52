-- The daily budget of failed decryptions per (appid, openid) moves out of identities: a
-- cancellation or an unlink deletes the identity, and the next login must not start at 0.
-- The key is a keyed hash of (appid, openid), never the openid itself; counts of the old
-- columns cannot be hashed in SQL and start again (a day's budget at most).
CREATE TABLE decrypt_budgets (
    identity_hash   BYTEA PRIMARY KEY NOT NULL,
    failed_decrypts BIGINT NOT NULL,
    window_since    BIGINT NOT NULL
);
-- identities.failed_decrypts and failed_decrypts_since stay, unused, until a later release
-- drops them: nodes of the previous release still write them during a rolling deploy.
