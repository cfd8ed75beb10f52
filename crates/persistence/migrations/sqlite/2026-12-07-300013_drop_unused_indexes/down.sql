CREATE UNIQUE INDEX events_seq ON events (seq);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
