ALTER TABLE identities ADD COLUMN failed_decrypts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE identities ADD COLUMN failed_decrypts_since BIGINT NOT NULL DEFAULT 0;
DROP TABLE decrypt_budgets;
