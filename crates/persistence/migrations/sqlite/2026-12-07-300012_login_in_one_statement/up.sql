-- PostgreSQL installs `wxlink_login`, a login in one statement. SQLite's logins run in the
-- process, next to the file: a round trip costs nothing there, so nothing changes.
SELECT 1;
