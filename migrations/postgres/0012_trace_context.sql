-- Tracing (OpenTelemetry, off by default): the W3C traceparent of the span that wrote the row, so
-- that the ledger's batch and each delivery attempt continue the webhook's trace, on whichever
-- instance runs them. NULL when tracing was off (a nullable column without a default: adding it
-- rewrites nothing).
ALTER TABLE webhook_events ADD COLUMN trace_context TEXT;
ALTER TABLE deliveries ADD COLUMN trace_context TEXT;
