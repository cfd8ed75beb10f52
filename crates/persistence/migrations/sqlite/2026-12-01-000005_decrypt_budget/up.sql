-- The budget of failed decryptions of user data (no padding oracle): counted per session, and
-- per identity in a window of a day that starts at the first failure (Unix seconds).
ALTER TABLE sessions ADD COLUMN failed_decrypts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE identities ADD COLUMN failed_decrypts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE identities ADD COLUMN failed_decrypts_since INTEGER NOT NULL DEFAULT 0;
