-- Checkout sessions payhook created with its provider (Stripe or the sandbox), so the return page
-- can answer for a session before any webhook about it has arrived. Times are unix seconds.
CREATE TABLE checkout_sessions (
    id                 TEXT    PRIMARY KEY,      -- cs_...
    provider           TEXT    NOT NULL,         -- stripe | sandbox
    booking_id         TEXT    NOT NULL,
    amount             BIGINT  NOT NULL,         -- minor units
    currency           TEXT    NOT NULL,
    description        TEXT,
    customer_email     TEXT,
    success_url        TEXT    NOT NULL,
    cancel_url         TEXT    NOT NULL,
    url                TEXT    NOT NULL,         -- where the customer pays
    payment_intent_id  TEXT,
    status             TEXT    NOT NULL,         -- open | complete | expired
    payment_status     TEXT    NOT NULL,         -- unpaid | paid
    expires_at         BIGINT  NOT NULL,
    created_at         BIGINT  NOT NULL
);
CREATE INDEX checkout_sessions_open ON checkout_sessions (provider, expires_at) WHERE status = 'open';

-- The sandbox provider's payment intents: what it knows to emit Stripe-shaped events about them.
CREATE TABLE sandbox_intents (
    id                   TEXT    PRIMARY KEY,    -- pi_...
    booking_id           TEXT    NOT NULL,
    amount               BIGINT  NOT NULL,
    currency             TEXT    NOT NULL,
    checkout_session_id  TEXT,
    status               TEXT    NOT NULL,       -- requires_payment_method | succeeded
    charge_id            TEXT,                   -- ch_..., once paid
    amount_refunded      BIGINT  NOT NULL DEFAULT 0,
    disputed             BIGINT  NOT NULL DEFAULT 0,
    created_at           BIGINT  NOT NULL
);
CREATE INDEX sandbox_intents_booking ON sandbox_intents (booking_id);
