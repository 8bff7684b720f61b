-- Retention: when a processed event's raw payload was pruned (the event's row, its index and the
-- ledger stay).
ALTER TABLE webhook_events ADD COLUMN pruned_at TIMESTAMPTZ;
