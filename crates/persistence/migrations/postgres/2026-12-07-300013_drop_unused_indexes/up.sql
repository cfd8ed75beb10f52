-- An index no query uses, a random page more to write per login (EXPLAIN): the purge
-- (expires_at < ? OR revoked_at < ?) scans the table, since revoked_at has no index. SQLite
-- also drops its events_seq, which repeats the rowid; here `seq` is a column of its own.
-- Dropping an index changes no result: nodes of the previous release keep working.
DROP INDEX IF EXISTS sessions_expires_at;
