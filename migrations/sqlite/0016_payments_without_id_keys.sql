-- no-transaction
-- Payments are found by a provider id through `payment_refs (source, ref)`, which also keeps each
-- id to one payment. The unique keys `(source, payment_intent_id)` and `(source,
-- checkout_session_id)` held the same ids again: two more index entries for each new payment, each
-- on a random page of a large store, written to the WAL and then to the file. SQLite drops a
-- table's constraint only by copying the table; foreign keys are off meanwhile so that dropping the
-- old table neither checks nor rewrites the references to it (SQLite's documented procedure).
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE payments_copy (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    source               TEXT    NOT NULL,
    booking_id           TEXT,
    payment_intent_id    TEXT,
    checkout_session_id  TEXT,
    charge_id            TEXT,
    amount               INTEGER,
    currency             TEXT,
    amount_refunded      INTEGER NOT NULL DEFAULT 0,
    status               TEXT    NOT NULL,
    checkout_status      TEXT,
    failure_code         TEXT,
    failure_message      TEXT,
    dispute_status       TEXT,
    dispute_reason       TEXT,
    dispute_outcome      TEXT,
    paid_at              TEXT,
    refunded_at          TEXT,
    last_event_id        TEXT,
    last_event_at        INTEGER,
    created_at           TEXT    NOT NULL,
    updated_at           TEXT    NOT NULL,
    amount_captured      INTEGER,
    amount_disputed      INTEGER NOT NULL DEFAULT 0,
    attention            TEXT,
    detail               TEXT
);
-- Ids are never given twice, even those of payments merged away since.
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'payments_copy', seq FROM sqlite_sequence WHERE name = 'payments';
INSERT INTO payments_copy (id, source, booking_id, payment_intent_id, checkout_session_id,
        charge_id, amount, currency, amount_refunded, status, checkout_status, failure_code,
        failure_message, dispute_status, dispute_reason, dispute_outcome, paid_at, refunded_at,
        last_event_id, last_event_at, created_at, updated_at, amount_captured, amount_disputed,
        attention, detail)
    SELECT id, source, booking_id, payment_intent_id, checkout_session_id,
        charge_id, amount, currency, amount_refunded, status, checkout_status, failure_code,
        failure_message, dispute_status, dispute_reason, dispute_outcome, paid_at, refunded_at,
        last_event_id, last_event_at, created_at, updated_at, amount_captured, amount_disputed,
        attention, detail
    FROM payments;
DROP TABLE payments;
ALTER TABLE payments_copy RENAME TO payments;
CREATE INDEX payments_booking ON payments (booking_id);
CREATE INDEX payments_status ON payments (status, id);
CREATE INDEX payments_attention ON payments (attention) WHERE attention IS NOT NULL;
COMMIT;
PRAGMA foreign_keys = ON;
