-- The support console (issue 23): operators, their sessions, sign-in failures, and a keyed
-- hash beside each sealed phone number so that support can find a user by phone without
-- opening every row. Additive only: nodes of the previous release ignore all of it.

-- Keyed hash (DataKey::keyed_hash, context "phone number") of the phone number's digits.
-- Nodes of the previous release set phone numbers without it; `wxlink rotate-data-key`
-- fills it in for every sealed phone number.
ALTER TABLE users ADD COLUMN phone_hash BYTEA;
CREATE INDEX users_phone_hash ON users (phone_hash);

CREATE TABLE operators (
    name             TEXT PRIMARY KEY NOT NULL,
    -- Argon2id, PHC string format.
    password_hash    TEXT NOT NULL,
    -- 1 while the password is a one-time one that must be changed at the next sign-in.
    password_expired BIGINT NOT NULL,
    -- Space-separated scope names of the internal API's clients.
    scopes           TEXT NOT NULL,
    -- The TOTP secret, sealed with the data key, associated data = the name.
    totp_secret      BYTEA,
    -- The last TOTP time step accepted: a code is accepted once (RFC 6238 §5.2).
    totp_last_step   BIGINT,
    disabled_at      BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

-- Signed-in operators; the cookie's token is stored only as its SHA-256.
CREATE TABLE operator_sessions (
    token_hash   BYTEA PRIMARY KEY NOT NULL,
    operator     TEXT NOT NULL REFERENCES operators (name) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator);

-- Failed sign-ins per operator (`operator:NAME`) and per client address (`address:IP`),
-- counted in the database so that the limit holds across nodes.
CREATE TABLE sign_in_failures (
    limit_key       TEXT PRIMARY KEY NOT NULL,
    failures        BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL
);
