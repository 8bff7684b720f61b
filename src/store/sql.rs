//! The SQL both backends run as it is: sqlx binds `$N` placeholders on SQLite too. Each backend's
//! file runs these constants on its own connection; what a dialect says its own way (claims that
//! skip locked rows, batch statements, the inbox insert) is written out in that backend's file.

// The inbox.

pub const PING: &str = "SELECT 1";

/// An event by its number, or by its source and provider id.
pub const FIND_EVENT: &str = "
    SELECT id, source, event_id, event_type, status, payload, CAST(headers AS TEXT) AS headers,
           received_at, attempts, last_error, pruned_at
    FROM webhook_events WHERE id = $1 OR (source = $2 AND event_id = $3)";

pub const COUNT_EVENTS: &str = "SELECT COUNT(*) FROM webhook_events";

pub const EVENT_ROW_ID: &str = "SELECT id FROM webhook_events WHERE source = $1 AND event_id = $2";

/// Puts an event back in line to be applied now, whatever its status (not once pruned).
/// Back in line; what was fetched from the provider's API is asked for again (a denial may have
/// been the provider's mistake, an object may have changed since).
pub const REQUEUE_EVENT: &str = "
    UPDATE webhook_events SET status = 'received', attempts = 0, next_attempt_at = NULL,
        fetched = NULL
    WHERE id = $1 AND pruned_at IS NULL";

pub const NEXT_RETRY_DUE: &str =
    "SELECT MIN(next_attempt_at) FROM webhook_events WHERE status = 'retrying'";

/// Thin events waiting for their related object, due by `$1`, oldest first.
pub const EVENTS_TO_FETCH: &str = "
    SELECT id, source, event_type, payload, CAST(headers AS TEXT) AS headers, attempts
    FROM webhook_events WHERE status = 'waiting' AND COALESCE(next_attempt_at, 0) <= $1
    ORDER BY id LIMIT $2";

/// Keeps a thin event's fetched object and puts the event back in line.
pub const STORE_FETCHED: &str = "
    UPDATE webhook_events SET fetched = $2, status = 'received', attempts = 0, last_error = NULL,
        next_attempt_at = NULL
    WHERE id = $1 AND status = 'waiting'";

/// A fetch that did not work: wait until `$4`, or (null) fail for good.
pub const FETCH_FAILED: &str = "
    UPDATE webhook_events SET attempts = $2, last_error = $3, next_attempt_at = $4,
        status = CASE WHEN $4 IS NULL THEN 'failed' ELSE 'waiting' END
    WHERE id = $1 AND status = 'waiting'";

/// A notification the provider's API denied: kept with its answer, never applied.
pub const FETCH_REJECTED: &str = "
    UPDATE webhook_events SET status = 'rejected', attempts = $2, last_error = $3, fetched = $4,
        next_attempt_at = NULL
    WHERE id = $1 AND status = 'waiting'";

pub const NEXT_FETCH_DUE: &str =
    "SELECT MIN(COALESCE(next_attempt_at, 0)) FROM webhook_events WHERE status = 'waiting'";

/// A failed attempt at applying a claimed event.
pub const RECORD_FAILURE: &str = "
    UPDATE webhook_events SET status = $2, attempts = $3, last_error = $4, next_attempt_at = $5
    WHERE id = $1 AND status IN ('received', 'retrying')";

/// Events of a type once ignored, back in line (a newer payhook reads that type).
pub const REQUEUE_IGNORED: &str = "
    UPDATE webhook_events SET status = 'received', attempts = 0, next_attempt_at = NULL
    WHERE status = 'ignored' AND event_type = $1 AND pruned_at IS NULL";

/// Retention: the next events after `$1`, by number, with their arrival times.
pub const EVENTS_AFTER: &str =
    "SELECT id, received_at FROM webhook_events WHERE id > $1 ORDER BY id LIMIT $2";

/// Retention: empties the payload and headers of applied events numbered `$3` < id <= `$4`.
/// Failed events keep theirs, for a replay.
pub const PRUNE_PAYLOADS: &str = "
    UPDATE webhook_events SET payload = $1, headers = '{}', fetched = NULL, pruned_at = $2
    WHERE id > $3 AND id <= $4 AND status IN ('processed', 'ignored') AND pruned_at IS NULL";

// Settings.

pub const INSERT_SETTING_IF_NEW: &str =
    "INSERT INTO payhook_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";

pub const SET_SETTING: &str = "
    INSERT INTO payhook_settings (name, value) VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET value = excluded.value";

pub const SETTING: &str = "SELECT value FROM payhook_settings WHERE name = $1";

// The ledger.

pub const MOVE_REFS: &str = "UPDATE payment_refs SET payment_id = $2 WHERE payment_id = $1";

pub const MOVE_FACTS: &str = "UPDATE payment_facts SET payment_id = $2 WHERE payment_id = $1";

pub const DELETE_PAYMENT: &str = "DELETE FROM payments WHERE id = $1";

/// The ledger's upgrade: facts after `$1` whose event still has its payload, with it.
pub const FACTS_WITH_PAYLOADS: &str = "
    SELECT f.id, f.payment_id, f.source, e.event_type, e.payload
    FROM payment_facts f
    JOIN webhook_events e ON e.source = f.source AND e.event_id = f.event_id
    WHERE f.id > $1 AND e.pruned_at IS NULL
    ORDER BY f.id LIMIT $2";

pub const UPDATE_FACT: &str = "UPDATE payment_facts SET fact = $2 WHERE id = $1";

pub const DELETE_FACT: &str = "DELETE FROM payment_facts WHERE id = $1";

pub const PAYMENT_IDS_AFTER: &str = "SELECT id FROM payments WHERE id > $1 ORDER BY id LIMIT $2";

/// The refs of payments no fact speaks for any more.
pub const DELETE_EMPTY_REFS: &str = "
    DELETE FROM payment_refs WHERE payment_id IN (
        SELECT id FROM payments p
        WHERE NOT EXISTS (SELECT 1 FROM payment_facts f WHERE f.payment_id = p.id))";

/// Payments no fact speaks for any more.
pub const DELETE_EMPTY_PAYMENTS: &str = "
    DELETE FROM payments WHERE id IN (
        SELECT id FROM payments p
        WHERE NOT EXISTS (SELECT 1 FROM payment_facts f WHERE f.payment_id = p.id))";

/// Bookings with more than one payment that took money.
pub const BOOKINGS_PAID_TWICE: &str = "
    SELECT booking_id FROM payments
    WHERE booking_id IS NOT NULL
      AND status IN ('succeeded', 'partially_refunded', 'refunded', 'disputed')
    GROUP BY booking_id HAVING COUNT(*) > 1";

pub const PAYMENTS_OF_BOOKING: &str = "SELECT * FROM payments WHERE booking_id = $1 ORDER BY id";

/// The payments whose `table` (`payment_refs` or `payment_facts`) holds `$1` in `column` under
/// some source, oldest first, and of those the ones `filter` (SQL, starting with `AND`) keeps.
/// The unique key `(source, column)` is searched once per source: the sources are walked from one
/// to the next through the same key (a few, whatever the table's size), so no second index of the
/// ids alone is kept up to date for every event.
macro_rules! payments_by_key {
    ($table:literal, $column:literal, $filter:literal) => {
        concat!(
            "WITH RECURSIVE sources (source) AS (
                SELECT MIN(source) FROM ",
            $table,
            "
                UNION ALL
                SELECT (SELECT MIN(k.source) FROM ",
            $table,
            " k WHERE k.source > sources.source)
                FROM sources WHERE sources.source IS NOT NULL)
            SELECT * FROM payments
            WHERE id IN (SELECT k.payment_id FROM sources
                         JOIN ",
            $table,
            " k ON k.source = sources.source AND k.",
            $column,
            " = $1) ",
            $filter,
            " ORDER BY id"
        )
    };
}
pub(super) use payments_by_key;

/// The payments one of whose provider ids is `$1`, and of those the ones `filter` keeps.
macro_rules! payments_by_ref {
    ($filter:literal) => {
        $crate::store::sql::payments_by_key!("payment_refs", "ref", $filter)
    };
}
pub(super) use payments_by_ref;

/// A checkout session's payments, found through its id among the provider ids: the return page
/// polls this, and `WHERE checkout_session_id = $1` alone read every payment (the unique keys on
/// that column lead with the source).
pub const PAYMENTS_OF_SESSION: &str = payments_by_ref!("AND checkout_session_id = $1");

/// A payment intent's payments, as [`PAYMENTS_OF_SESSION`].
pub const PAYMENTS_OF_INTENT: &str = payments_by_ref!("AND payment_intent_id = $1");

pub const EVENTS_BY_STATUS: &str =
    "SELECT status, COUNT(*) FROM webhook_events GROUP BY status ORDER BY status";

pub const DELIVERIES_BY_STATUS: &str = "
    SELECT target, status, COUNT(*) FROM deliveries GROUP BY target, status
    ORDER BY target, status";

pub const PAYMENTS_BY_STATUS: &str =
    "SELECT status, COUNT(*) FROM payments GROUP BY status ORDER BY status";

// The outbox.

/// A worker never undoes a disable (an operator's, saved while its attempts were out): only
/// another disable replaces one, and only enabling ([`RESET_CIRCUIT`]) ends it.
pub const SAVE_CIRCUIT: &str = "
    INSERT INTO delivery_targets (name, state, failures, open_until, reason, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (name) DO UPDATE SET state = $2, failures = $3, open_until = $4, reason = $5,
        updated_at = $6
    WHERE delivery_targets.state <> 'disabled' OR $2 = 'disabled'";

pub const RELEASE_HELD: &str = "
    UPDATE deliveries SET next_attempt_at = $2
    WHERE target = $1 AND status = 'pending' AND leased_until IS NULL AND next_attempt_at > $2";

pub const CIRCUIT: &str =
    "SELECT state, failures, open_until, reason FROM delivery_targets WHERE name = $1";

pub const RESET_CIRCUIT: &str = "
    UPDATE delivery_targets SET state = 'closed', failures = 0, open_until = NULL, reason = NULL
    WHERE name = $1";

/// When the next notification of `$1` that could be claimed (the oldest pending one of its
/// order key) is due.
pub const NEXT_DELIVERY_DUE: &str = "
    SELECT MIN(d.next_attempt_at) FROM deliveries d
    WHERE d.target = $1 AND d.status = 'pending'
      AND NOT EXISTS (SELECT 1 FROM deliveries e
                      WHERE e.target = d.target AND e.order_key = d.order_key
                        AND e.status = 'pending' AND e.id < d.id)";

/// Every lease ends now (a single instance starting up).
pub const RELEASE_LEASES: &str = "
    UPDATE deliveries SET next_attempt_at = $1, leased_until = NULL
    WHERE status = 'pending' AND leased_until IS NOT NULL";

/// The columns of a notification listing (see `listing::listing_sql`).
pub const DELIVERY_COLUMNS: &str = "
    id, notification_id, target, order_key, event, booking_id, payload, status, attempts,
    next_attempt_at, leased_until IS NOT NULL AS in_flight, last_status, last_error, created_at,
    delivered_at, source, source_event_id";

/// Dead notifications, of target `$1` or (null) all.
pub const DEAD_DELIVERIES: &str = "
    SELECT id FROM deliveries WHERE status = 'dead' AND (CAST($1 AS TEXT) IS NULL OR target = $1)
    ORDER BY id";

/// A notification by row id or notification id.
pub const DELIVERY_BY_KEY: &str = "SELECT id FROM deliveries WHERE id = $1 OR notification_id = $2";

/// A dead or pending notification back in line, due at `$2` with a fresh schedule.
/// Not one a later notification of its target and booking has overtaken (delivered): sent now,
/// it would undo that one (`confirmed` after `refunded`).
pub const REQUEUE_DELIVERY: &str = "
    UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $2,
        leased_until = NULL
    WHERE id = $1 AND status IN ('pending', 'dead')
      AND NOT EXISTS (SELECT 1 FROM deliveries later
          WHERE later.booking_id = deliveries.booking_id AND later.target = deliveries.target
            AND later.order_key = deliveries.order_key AND later.id > deliveries.id
            AND later.status = 'delivered')";

// Checkout sessions and the sandbox provider.

pub const INSERT_SESSION: &str = "
    INSERT INTO checkout_sessions (id, provider, booking_id, amount, currency, description,
        customer_email, success_url, cancel_url, url, payment_intent_id, status, payment_status,
        expires_at, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
    ON CONFLICT (id) DO NOTHING";

pub const SESSION: &str = "SELECT * FROM checkout_sessions WHERE id = $1";

/// Moves a session from status `$2` to `$3`, only if it is in `$2`.
pub const MOVE_SESSION: &str = "
    UPDATE checkout_sessions SET status = $3, payment_status = $4 WHERE id = $1 AND status = $2";

pub const EXPIRED_SESSIONS: &str = "
    SELECT * FROM checkout_sessions
    WHERE provider = $1 AND status = 'open' AND expires_at <= $2
    ORDER BY expires_at LIMIT 100";

pub const SAVE_SANDBOX_INTENT: &str = "
    INSERT INTO sandbox_intents (id, booking_id, amount, currency, checkout_session_id, status,
        charge_id, amount_refunded, disputed, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT (id) DO UPDATE SET status = excluded.status, charge_id = excluded.charge_id,
        amount_refunded = excluded.amount_refunded, disputed = excluded.disputed";

/// A sandbox intent by its id, its checkout session, its charge, or the latest of a booking.
pub const FIND_SANDBOX_INTENT: &str = "
    SELECT id, booking_id, amount, currency, checkout_session_id, status, charge_id,
           amount_refunded, disputed <> 0 AS disputed, created_at
    FROM sandbox_intents
    WHERE id = $1 OR checkout_session_id = $1 OR booking_id = $1 OR charge_id = $1
    ORDER BY created_at DESC, id DESC LIMIT 1";

/// The event stream (`payhook listen`): the events numbered after `$1`, in order.
pub const STREAM_EVENTS: &str = "
    SELECT id, source, event_id, event_type, status, payload, CAST(headers AS TEXT) AS headers,
           received_at, attempts, last_error, pruned_at
    FROM webhook_events WHERE id > $1 ORDER BY id LIMIT $2";
