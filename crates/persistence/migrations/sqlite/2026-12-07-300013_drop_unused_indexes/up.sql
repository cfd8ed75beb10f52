-- Indexes no query uses, each a random page more to write per login (EXPLAIN QUERY PLAN):
-- - sessions_expires_at: the purge (expires_at < ? OR revoked_at < ?) scans the table, since
--   revoked_at has no index; revoking by identity matches nearly every live session through it.
-- - events_seq: `seq` is the rowid here (a generated column); the feed reads by the rowid.
-- Dropping an index changes no result: nodes of the previous release keep working.
DROP INDEX IF EXISTS sessions_expires_at;
DROP INDEX IF EXISTS events_seq;
