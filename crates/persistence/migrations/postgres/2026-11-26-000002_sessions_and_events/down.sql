DROP TRIGGER events_no_update_or_delete ON events;
DROP FUNCTION events_append_only();
DROP TABLE events;
DROP TABLE sessions;
