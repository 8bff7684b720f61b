-- The outbox: notifications written in the same transaction as the ledger change that causes them,
-- then delivered by the dispatcher. `id` is the order of creation; per (target, order_key) the
-- dispatcher only ever sends the oldest pending one, so a booking sees its changes in order.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id  TEXT    NOT NULL UNIQUE,  -- X-Request-Id / webhook-id, stable across retries
    target           TEXT    NOT NULL,
    order_key        TEXT    NOT NULL,         -- the booking id (or payment:<id> without one)
    event            TEXT    NOT NULL,         -- payment.confirmed, ... or the booking status sent
    payment_id       INTEGER,
    booking_id       TEXT,
    payload          TEXT    NOT NULL,         -- the JSON body, fixed when the change was made
    status           TEXT    NOT NULL DEFAULT 'pending',  -- pending, delivered, dead
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,         -- unix ms
    leased_until     INTEGER,                  -- unix ms: an attempt is in flight until then
    last_status      INTEGER,                  -- HTTP status of the last attempt, if it got one
    last_error       TEXT,
    created_at       TEXT    NOT NULL,
    delivered_at     TEXT
);
CREATE INDEX deliveries_queue ON deliveries (target, order_key, id) WHERE status = 'pending';
CREATE INDEX deliveries_due ON deliveries (target, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_status ON deliveries (status, id);

-- Each target's circuit: closed (delivering), open until a time (then one probe), or disabled
-- (the target answered 410 Gone).
CREATE TABLE delivery_targets (
    name        TEXT    PRIMARY KEY,
    state       TEXT    NOT NULL DEFAULT 'closed',
    failures    INTEGER NOT NULL DEFAULT 0,      -- consecutive failed attempts
    open_until  INTEGER,                         -- unix ms
    reason      TEXT,
    updated_at  TEXT    NOT NULL
);
