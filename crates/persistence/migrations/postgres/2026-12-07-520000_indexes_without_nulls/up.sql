-- Indexes that held an entry for every NULL: an event's `seq` is NULL until the feed places it,
-- and nearly every user has no phone number, so each login that writes an event or a user
-- paid an index insert (and its WAL) for nothing. As partial indexes they give the same
-- answers: every query on them compares the column, which implies it is not NULL (EXPLAIN:
-- the feed's `seq > ? ORDER BY seq`, the console's `phone_hash = ?`, `= ANY(?)` and its
-- duplicates' GROUP BY), and `seq` stays unique. Nodes of the previous release keep working.
DROP INDEX events_seq;
CREATE UNIQUE INDEX events_seq ON events (seq) WHERE seq IS NOT NULL;
DROP INDEX users_phone_hash;
CREATE INDEX users_phone_hash ON users (phone_hash) WHERE phone_hash IS NOT NULL;
