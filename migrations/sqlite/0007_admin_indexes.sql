-- Admin listings stay fast on months of events: events by type (newest first), the time window of
-- a listing (found by received_at, then read by event number), payments by status.
CREATE INDEX webhook_events_type ON webhook_events (event_type, id);
CREATE INDEX webhook_events_received ON webhook_events (received_at);
CREATE INDEX payments_status ON payments (status, id);
