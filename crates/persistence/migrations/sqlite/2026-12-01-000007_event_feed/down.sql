ALTER TABLE users DROP COLUMN phone_verified_at;
DROP INDEX events_seq;
ALTER TABLE events DROP COLUMN detail;
ALTER TABLE events DROP COLUMN seq;
