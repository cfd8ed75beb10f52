DROP TRIGGER events_no_delete;
DROP TRIGGER events_no_update;
DROP INDEX events_user_id;
DROP TABLE events;
DROP INDEX sessions_expires_at;
DROP INDEX sessions_user_id;
DROP TABLE sessions;
