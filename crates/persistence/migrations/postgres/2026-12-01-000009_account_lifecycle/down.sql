ALTER TABLE events DROP COLUMN detail;
ALTER TABLE users DROP COLUMN deleted_at;
