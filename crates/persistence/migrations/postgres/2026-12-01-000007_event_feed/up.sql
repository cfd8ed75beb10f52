-- A feed that never skips (see `Store::events_after`): an event gets its feed position `seq`
-- once it is committed, after every position handed out before. Existing events keep their id
-- as their position, so followers' cursors keep meaning the same place.
-- `detail` holds the facts of an event that are not columns, as a JSON object.

-- Allow exactly one change: giving an event without a position its position.
CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
        AND (NEW.id, NEW.kind, NEW.user_id, NEW.other_user_id, NEW.appid, NEW.openid, NEW.at,
             NEW.detail)
            IS NOT DISTINCT FROM
            (OLD.id, OLD.kind, OLD.user_id, OLD.other_user_id, OLD.appid, OLD.openid, OLD.at,
             OLD.detail)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'events are append-only';
END;
$$;

ALTER TABLE events ADD COLUMN seq BIGINT;
ALTER TABLE events ADD COLUMN detail TEXT;

UPDATE events SET seq = id;

CREATE UNIQUE INDEX events_seq ON events (seq);
CREATE INDEX events_unplaced ON events (id) WHERE seq IS NULL;

-- When WeChat verified the user's phone number: a merge keeps the newer of two numbers.
-- Numbers stored before this column get the user's last change as the best guess.
ALTER TABLE users ADD COLUMN phone_verified_at BIGINT;
UPDATE users SET phone_verified_at = updated_at WHERE phone_number IS NOT NULL;
