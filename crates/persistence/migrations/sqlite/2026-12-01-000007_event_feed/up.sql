-- The feed's position of an event (see `Store::events_after`). SQLite has one writer at a time,
-- so events commit in id order and the position is the id.
-- `detail` holds the facts of an event that are not columns, as a JSON object.
ALTER TABLE events ADD COLUMN seq INTEGER GENERATED ALWAYS AS (id) VIRTUAL;
ALTER TABLE events ADD COLUMN detail TEXT;

CREATE UNIQUE INDEX events_seq ON events (seq);

-- When WeChat verified the user's phone number: a merge keeps the newer of two numbers.
-- Numbers stored before this column get the user's last change as the best guess.
ALTER TABLE users ADD COLUMN phone_verified_at INTEGER;
UPDATE users SET phone_verified_at = updated_at WHERE phone_number IS NOT NULL;
