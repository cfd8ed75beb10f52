ALTER TABLE identities DROP COLUMN failed_decrypts_since;
ALTER TABLE identities DROP COLUMN failed_decrypts;
ALTER TABLE sessions DROP COLUMN failed_decrypts;
