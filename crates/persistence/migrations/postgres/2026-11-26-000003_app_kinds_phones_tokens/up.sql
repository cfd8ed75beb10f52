-- Logins of official accounts, mobile apps and websites have no session_key.
ALTER TABLE sessions ALTER COLUMN session_key DROP NOT NULL;

-- A verified phone number (getPhoneNumber), sealed like session keys, bound to the user id.
ALTER TABLE users ADD COLUMN phone_number BYTEA;

-- One WeChat access token per app for the whole cluster, and the lease that lets exactly one
-- node refresh it at a time.
CREATE TABLE access_tokens (
    appid        TEXT   NOT NULL PRIMARY KEY,
    -- Sealed, bound to the appid; NULL until the first refresh.
    token        BYTEA,
    expires_at   BIGINT NOT NULL,
    lease_holder TEXT,
    lease_until  BIGINT NOT NULL,
    refreshed_at BIGINT NOT NULL
);
