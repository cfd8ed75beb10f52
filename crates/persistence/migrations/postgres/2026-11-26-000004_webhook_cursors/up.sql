-- Webhook delivery: the events table is the outbox; each webhook keeps the id of the last event
-- its receiver acknowledged, and a lease so that one node delivers at a time.
CREATE TABLE webhook_cursors (
    name          TEXT   NOT NULL PRIMARY KEY,
    last_event_id BIGINT NOT NULL,
    lease_holder  TEXT,
    lease_until   BIGINT NOT NULL
);
