-- The provider event whose application caused each notification: delivery logs and the admin API
-- name it, so a webhook can be followed to what it triggered.
ALTER TABLE deliveries ADD COLUMN source TEXT;
ALTER TABLE deliveries ADD COLUMN source_event_id TEXT;
