-- Explain: every delivery attempt kept (not only the last), so an operator sees what each try of a
-- notification got back, how long it took and when the next was due.
CREATE TABLE delivery_attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      INTEGER NOT NULL,
    attempt          INTEGER NOT NULL,   -- 1 for the first try
    started_at       INTEGER NOT NULL,   -- unix ms
    latency_ms       INTEGER NOT NULL,
    status           INTEGER,            -- the HTTP status, when the target answered
    answer           TEXT,               -- the start of the answer, or why there was none
    outcome          TEXT    NOT NULL,   -- delivered, pending (to be retried), dead
    next_attempt_at  INTEGER             -- unix ms, for a retry
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, attempt);

-- Look-ups by the ids people have: a provider id (pi_, cs_, ch_) or a provider event id without
-- its source, and a payment's or booking's notifications.
CREATE INDEX payment_refs_ref ON payment_refs (ref);
CREATE INDEX payment_facts_event ON payment_facts (event_id);
CREATE INDEX deliveries_payment ON deliveries (payment_id);
CREATE INDEX checkout_sessions_booking ON checkout_sessions (booking_id);
