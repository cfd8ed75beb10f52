-- The data keys the cluster's sealed values are under, by key id and fingerprint (never the
-- key), so that a node whose keyring cannot open them refuses to start.
-- state: 'in_use' (values may be sealed under it) or 'retired' (a re-seal left none).
-- current_seq: set when a node started with it as its current key; the greatest is the
-- cluster's current key. NULL for keys found in sealed columns of an older database.
CREATE TABLE data_keys (
    key_id      TEXT   NOT NULL PRIMARY KEY,
    fingerprint TEXT,
    state       TEXT   NOT NULL,
    current_seq BIGINT UNIQUE,
    recorded_at BIGINT NOT NULL
);
