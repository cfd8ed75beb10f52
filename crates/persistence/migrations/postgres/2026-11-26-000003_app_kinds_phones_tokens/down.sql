DROP TABLE access_tokens;
ALTER TABLE users DROP COLUMN phone_number;
DELETE FROM sessions WHERE session_key IS NULL;
ALTER TABLE sessions ALTER COLUMN session_key SET NOT NULL;
