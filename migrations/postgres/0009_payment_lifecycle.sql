-- The payment lifecycle as Stripe documents it: what was captured, refunds and disputes as objects,
-- and what needs a person. Payments stored before are derived again from their facts on start
-- (see the ledger's upgrade in src/ledger/upgrade.rs).
ALTER TABLE payments ADD COLUMN amount_captured BIGINT;
ALTER TABLE payments ADD COLUMN amount_disputed BIGINT NOT NULL DEFAULT 0;
-- Flags for a person (duplicate, refund_failed, booking_refused), comma-separated; NULL when none.
ALTER TABLE payments ADD COLUMN attention TEXT;
-- {"refunds": [...], "disputes": [...]}: each refund and dispute by id, with its latest status.
ALTER TABLE payments ADD COLUMN detail TEXT;

CREATE INDEX payments_attention ON payments (attention) WHERE attention IS NOT NULL;

-- What each booking was already told by a booking-status target: each status is told once, and
-- never one the contract cannot reach from what was told (a refund that failed after `refunded`).
CREATE INDEX deliveries_booking_told ON deliveries (booking_id, event)
    WHERE event IN ('confirmed', 'partially_refunded', 'refunded', 'cancelled');

-- Thin events (Stripe's `v2.core.event` notifications) carry no object: the related object fetched
-- from the provider's API, as a snapshot event, is kept here beside the raw body. An event waiting
-- for it has status 'waiting'.
ALTER TABLE webhook_events ADD COLUMN fetched BYTEA;
CREATE INDEX webhook_events_waiting ON webhook_events (id) WHERE status = 'waiting';
