-- PostgreSQL's `wxlink_login` runs in fewer statements. SQLite has no such function.
SELECT 1;
