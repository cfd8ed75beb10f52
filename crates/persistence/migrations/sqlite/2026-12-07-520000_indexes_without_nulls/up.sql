-- An index that held an entry for every user without a phone number (nearly all), so each
-- new user's login wrote an index page for nothing. As a partial index it gives the same
-- answers: every query on it compares the column, which implies it is not NULL (EXPLAIN
-- QUERY PLAN). SQLite has no `events_seq` any more (2026-12-07-300013); PostgreSQL's becomes
-- partial too. Nodes of the previous release keep working.
DROP INDEX users_phone_hash;
CREATE INDEX users_phone_hash ON users (phone_hash) WHERE phone_hash IS NOT NULL;
