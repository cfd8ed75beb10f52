CREATE INDEX sessions_expires_at ON sessions (expires_at);
