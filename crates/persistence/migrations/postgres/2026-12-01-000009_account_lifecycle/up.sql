-- A cancelled account keeps its row as a tombstone (the event log refers to its id); lookups
-- do not find it.
ALTER TABLE users ADD COLUMN deleted_at BIGINT;
