DROP TABLE decrypt_budgets;
