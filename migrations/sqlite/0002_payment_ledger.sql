-- Processing state of each inbox event: how often it was tried, why it last failed, when to retry.
ALTER TABLE webhook_events ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhook_events ADD COLUMN last_error TEXT;
ALTER TABLE webhook_events ADD COLUMN next_attempt_at INTEGER;  -- unix milliseconds, for 'retrying'
ALTER TABLE webhook_events ADD COLUMN processed_at TEXT;

-- One row per provider payment, derived from its facts (see payment_facts). Amounts are integers in
-- the currency's minor unit as the provider defines it (JPY 1000 is ¥1000, EUR 1000 is €10.00).
CREATE TABLE payments (
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
    UNIQUE (source, payment_intent_id),
    UNIQUE (source, checkout_session_id)
);

CREATE INDEX payments_booking ON payments (booking_id);

-- Every provider id (pi_, cs_, ch_) known to belong to a payment: how events find their payment
-- whichever of them they carry.
CREATE TABLE payment_refs (
    source      TEXT    NOT NULL,
    ref         TEXT    NOT NULL,
    payment_id  INTEGER NOT NULL REFERENCES payments (id),
    PRIMARY KEY (source, ref)
);

CREATE INDEX payment_refs_payment ON payment_refs (payment_id);

-- What each applied event established about a payment. A payment's row is a function of this set.
CREATE TABLE payment_facts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id   INTEGER NOT NULL REFERENCES payments (id),
    source       TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    occurred_at  INTEGER NOT NULL,
    fact         TEXT    NOT NULL,
    UNIQUE (source, event_id)
);

CREATE INDEX payment_facts_payment ON payment_facts (payment_id);
