-- PostgreSQL's `wxlink_login` mints a new user's id itself. SQLite has no such function.
SELECT 1;
