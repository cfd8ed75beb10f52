ALTER TABLE identities ADD COLUMN failed_decrypts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE identities ADD COLUMN failed_decrypts_since INTEGER NOT NULL DEFAULT 0;
DROP TABLE decrypt_budgets;
