DROP INDEX users_phone_hash;
CREATE INDEX users_phone_hash ON users (phone_hash);
DROP INDEX events_seq;
CREATE UNIQUE INDEX events_seq ON events (seq);
