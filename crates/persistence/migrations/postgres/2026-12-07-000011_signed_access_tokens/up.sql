-- `[tokens] format = "jwt"`: rotating refresh tokens, one chain per session, stored hashed.
-- A used token stays (used_at set) so that presenting it again is detected as reuse.
CREATE TABLE refresh_tokens (
    token_hash   BYTEA  NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    session_hash BYTEA  NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    used_at      BIGINT
);
CREATE INDEX refresh_tokens_session_hash ON refresh_tokens (session_hash);

-- The cluster's JWT signing keys. `generation` is the guard of rotation: two nodes that both
-- create generation N + 1 collide on the key, so exactly one key is added.
CREATE TABLE signing_keys (
    generation   BIGINT NOT NULL PRIMARY KEY,
    kid          TEXT   NOT NULL UNIQUE,
    algorithm    TEXT   NOT NULL,
    -- The PKCS#8 private key sealed with the data keyring, associated data = kid.
    private_key  BYTEA  NOT NULL,
    -- The public key as a JWK (JSON text): nothing secret.
    public_jwk   TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    -- Signing starts here; until then the key is only published, so that every node and every
    -- verifier's JWKS cache knows it before any token carries it.
    activates_at BIGINT NOT NULL
);
