//! The SQL of the admin listings, built for the filters a request sets: both backends run it.

use super::events::EventFilter;

/// The SQL of a listing, newest first, its placeholders numbered `$1`, `$2`... in the order its
/// values are bound. Only the filters that are set are named, so the plan uses their index (a
/// generic `$1 IS NULL OR column = $1` form makes the planner scan everything when a rare value
/// is asked for).
#[derive(Default)]
struct ListingSql {
    params: usize,
    conditions: Vec<String>,
}

impl ListingSql {
    fn param(&mut self) -> String {
        self.params += 1;
        format!("${}", self.params)
    }

    /// `column = $n` for each filter that is set, in order.
    fn equals(mut self, filters: &[(bool, &str)]) -> Self {
        for (_, column) in filters.iter().filter(|(set, _)| *set) {
            let param = self.param();
            self.conditions.push(format!("{column} = {param}"));
        }
        self
    }

    /// `head` (`[WITH ...] SELECT ... FROM table`) with the conditions, then the cursor
    /// (`id < $n`) when `before` is set, then the limit.
    fn sql(mut self, head: &str, before: bool) -> String {
        if before {
            let param = self.param();
            self.conditions.push(format!("id < {param}"));
        }
        let limit = self.param();
        let filters = if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        };
        format!("{head} {filters} ORDER BY id DESC LIMIT {limit}")
    }
}

/// A listing (`head` is `SELECT ... FROM table`): an equality for each of `filters` that is set, the cursor, the limit.
pub(super) fn listing_sql(head: &str, filters: &[(bool, &str)], before: bool) -> String {
    ListingSql::default().equals(filters).sql(head, before)
}

/// The event listing for `filter`: a condition for each filter that is set, numbered in this
/// order: status, source, type, event id, then each time bound (used to find its event
/// number and for the row itself), then the cursor, then the limit.
///
/// - An event id without a source is looked up in the `(source, event_id)` index once per source;
///   the sources are read from that index by a loose scan (one seek per source), since no index
///   leads with `event_id` (one would cost ingest a random insert per event).
/// - A time window becomes a range of event numbers: the first event received at or after each
///   bound is found in the `received_at` index, and the rows are read by number from there, so a
///   window deep in the past costs what a recent one does. The rows are also checked against
///   `received_at` itself.
pub(super) fn event_listing_sql(f: &EventFilter) -> String {
    let mut listing = ListingSql::default().equals(&[
        (f.status.is_some(), "status"),
        (f.source.is_some(), "source"),
        (f.event_type.is_some(), "event_type"),
        (f.event_id.is_some(), "event_id"),
    ]);
    let by_id_only = f.event_id.is_some() && f.source.is_none();
    if by_id_only {
        listing
            .conditions
            .push("source IN (SELECT source FROM known_sources WHERE source IS NOT NULL)".into());
    }
    for (bound, op) in [(f.since, ">="), (f.until, "<")] {
        if bound.is_some() {
            let at = listing.param();
            listing.conditions.push(format!(
                "id {op} COALESCE((SELECT id FROM webhook_events WHERE received_at >= {at} \
                 ORDER BY received_at LIMIT 1), (SELECT COALESCE(MAX(id), 0) + 1 FROM webhook_events))"
            ));
            listing.conditions.push(format!("received_at {op} {at}"));
        }
    }
    let with = if by_id_only {
        "WITH RECURSIVE known_sources(source) AS (
            SELECT MIN(source) FROM webhook_events
            UNION ALL
            SELECT (SELECT MIN(w.source) FROM webhook_events w WHERE w.source > known_sources.source)
            FROM known_sources WHERE known_sources.source IS NOT NULL) "
    } else {
        ""
    };
    listing.sql(
        &format!(
            "{with}SELECT id, source, event_id, event_type, status, attempts, last_error, received_at,
                (SELECT p.booking_id FROM payment_facts f JOIN payments p ON p.id = f.payment_id
                 WHERE f.source = webhook_events.source AND f.event_id = webhook_events.event_id)
                 AS booking_id
             FROM webhook_events"
        ),
        f.before.is_some(),
    )
}
