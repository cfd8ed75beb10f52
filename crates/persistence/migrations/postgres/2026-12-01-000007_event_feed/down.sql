ALTER TABLE users DROP COLUMN phone_verified_at;
DROP INDEX events_unplaced;
DROP INDEX events_seq;

CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$;

ALTER TABLE events DROP COLUMN detail;
ALTER TABLE events DROP COLUMN seq;
