-- Processing state of each inbox event: how often it was tried, why it last failed, when to retry.
ALTER TABLE webhook_events ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_events ADD COLUMN last_error TEXT;
ALTER TABLE webhook_events ADD COLUMN next_attempt_at BIGINT;  -- unix milliseconds, for 'retrying'
ALTER TABLE webhook_events ADD COLUMN processed_at TIMESTAMPTZ;

-- One row per provider payment, derived from its facts (see payment_facts). Amounts are integers in
-- the currency's minor unit as the provider defines it (JPY 1000 is ¥1000, EUR 1000 is €10.00).
CREATE TABLE payments (
    id                   BIGSERIAL PRIMARY KEY,
    source               TEXT    NOT NULL,
    booking_id           TEXT,
    payment_intent_id    TEXT,
    checkout_session_id  TEXT,
    charge_id            TEXT,
    amount               BIGINT,
    currency             TEXT,
    amount_refunded      BIGINT  NOT NULL DEFAULT 0,
    status               TEXT    NOT NULL,
    checkout_status      TEXT,
    failure_code         TEXT,
    failure_message      TEXT,
    dispute_status       TEXT,
    dispute_reason       TEXT,
    dispute_outcome      TEXT,
    paid_at              TIMESTAMPTZ,
    refunded_at          TIMESTAMPTZ,
    last_event_id        TEXT,
    last_event_at        BIGINT,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    UNIQUE (source, payment_intent_id),
    UNIQUE (source, checkout_session_id)
);

CREATE INDEX payments_booking ON payments (booking_id);

-- Every provider id (pi_, cs_, ch_) known to belong to a payment: how events find their payment
-- whichever of them they carry.
CREATE TABLE payment_refs (
    source      TEXT    NOT NULL,
    ref         TEXT    NOT NULL,
    payment_id  BIGINT NOT NULL REFERENCES payments (id),
    PRIMARY KEY (source, ref)
);

CREATE INDEX payment_refs_payment ON payment_refs (payment_id);

-- What each applied event established about a payment. A payment's row is a function of this set.
CREATE TABLE payment_facts (
    id           BIGSERIAL PRIMARY KEY,
    payment_id   BIGINT NOT NULL REFERENCES payments (id),
    source       TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    occurred_at  BIGINT  NOT NULL,
    fact         TEXT    NOT NULL,
    UNIQUE (source, event_id)
);

CREATE INDEX payment_facts_payment ON payment_facts (payment_id);
