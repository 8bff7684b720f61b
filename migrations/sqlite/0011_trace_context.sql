-- Tracing (OpenTelemetry, off by default): the W3C traceparent of the span that wrote the row, so
-- that the ledger's batch and each delivery attempt continue the webhook's trace. NULL when
-- tracing was off.
ALTER TABLE webhook_events ADD COLUMN trace_context TEXT;
ALTER TABLE deliveries ADD COLUMN trace_context TEXT;
