-- A cancelled account keeps its row as a tombstone (the event log refers to its id); lookups
-- do not find it.
ALTER TABLE users ADD COLUMN deleted_at BIGINT;

-- What else downstream needs to know about an event, as a JSON object (e.g. a merge's "by").
ALTER TABLE events ADD COLUMN detail TEXT;
