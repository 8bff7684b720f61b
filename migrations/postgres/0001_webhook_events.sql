-- The inbox: every verified webhook, stored exactly once per (source, event_id), before it is acknowledged.
CREATE TABLE webhook_events (
    id           BIGSERIAL   PRIMARY KEY,
    source       TEXT        NOT NULL,
    event_id     TEXT        NOT NULL,
    event_type   TEXT        NOT NULL,
    status       TEXT        NOT NULL DEFAULT 'received',
    payload      BYTEA       NOT NULL,
    headers      JSONB       NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (source, event_id)
);

CREATE INDEX webhook_events_status ON webhook_events (status, id);

-- Small values payhook keeps for itself, such as the generated sandbox webhook secret.
CREATE TABLE payhook_settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
