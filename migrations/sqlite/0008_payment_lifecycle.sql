-- The payment lifecycle as Stripe documents it: what was captured, refunds and disputes as objects,
-- and what needs a person. Payments stored before are derived again from their facts on start
-- (see the ledger's upgrade in src/ledger/upgrade.rs).
ALTER TABLE payments ADD COLUMN amount_captured INTEGER;
ALTER TABLE payments ADD COLUMN amount_disputed INTEGER NOT NULL DEFAULT 0;
-- Flags for a person (duplicate, refund_failed, booking_refused), comma-separated; NULL when none.
ALTER TABLE payments ADD COLUMN attention TEXT;
-- {"refunds": [...], "disputes": [...]}: each refund and dispute by id, with its latest status.
ALTER TABLE payments ADD COLUMN detail TEXT;

CREATE INDEX payments_attention ON payments (attention) WHERE attention IS NOT NULL;

-- What each booking was already told by a booking-status target: each status is told once, and
-- never one the contract cannot reach from what was told (a refund that failed after `refunded`).
CREATE INDEX deliveries_booking_told ON deliveries (booking_id, event)
    WHERE event IN ('confirmed', 'partially_refunded', 'refunded', 'cancelled');
