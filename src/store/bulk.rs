//! The selections of bulk replays and retries: which inbox events or notifications a job puts
//! back in line, as SQL both backends run. A job walks its selection by id, a chunk at a time:
//! the ids are read outside any write transaction, then requeued by id in one short statement,
//! so ingest never waits long behind it.

use chrono::{DateTime, Utc};

use crate::domain::status::{DeliveryStatus, EventStatus};

/// Which inbox events a bulk replay puts back in line: every field that is set must match.
/// Events whose payload retention pruned are never selected (nothing is left to apply).
#[derive(Debug, Clone)]
pub struct EventSelection {
    pub status: EventStatus,
    pub source: Option<String>,
    pub event_type: Option<String>,
    /// Events whose fact belongs to a payment of this booking.
    pub booking: Option<String>,
    /// Received at or after.
    pub since: Option<DateTime<Utc>>,
    /// Received before.
    pub until: Option<DateTime<Utc>>,
}

/// Which notifications a bulk retry puts back in line, due now with a fresh schedule.
#[derive(Debug, Clone)]
pub struct DeliverySelection {
    /// `dead` or `pending` (a delivered notification is not sent again).
    pub status: DeliveryStatus,
    pub target: Option<String>,
    pub booking: Option<String>,
    /// Caused by this provider event: (source, provider id).
    pub event: Option<(String, String)>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
}

/// What a bulk job walks: events to replay or notifications to retry.
#[derive(Debug, Clone)]
pub enum Selection {
    Events(EventSelection),
    Deliveries(DeliverySelection),
}

impl Selection {
    pub(super) fn window_sql(&self) -> Sql {
        match self {
            Selection::Events(s) => s.window_sql(),
            Selection::Deliveries(s) => s.window_sql(),
        }
    }

    pub(super) fn count_sql(&self, after: i64, upto: i64) -> Sql {
        match self {
            Selection::Events(s) => s.count_sql(after, upto),
            Selection::Deliveries(s) => s.count_sql(after, upto),
        }
    }

    pub(super) fn ids_sql(&self, after: i64, upto: i64, limit: i64) -> Sql {
        match self {
            Selection::Events(s) => s.ids_sql(after, upto, limit),
            Selection::Deliveries(s) => s.ids_sql(after, upto, limit),
        }
    }

    pub(super) fn requeue_sql(&self, ids: &[i64], now_ms: i64) -> Sql {
        match self {
            Selection::Events(s) => s.requeue_sql(ids),
            Selection::Deliveries(s) => s.requeue_sql(ids, now_ms),
        }
    }

    /// Which workers a requeue wakes, on every instance.
    pub(super) fn work(&self) -> super::Work {
        match self {
            Selection::Events(_) => super::Work::Inbox,
            Selection::Deliveries(_) => super::Work::Outbox,
        }
    }
}

/// A value bound to a selection's SQL; each backend binds times its own way.
#[derive(Debug, Clone)]
pub enum Param {
    Text(String),
    Int(i64),
    /// An inbox arrival time (the backend's `time_param`).
    ReceivedAt(DateTime<Utc>),
    /// A notification's creation time, as the outbox writes it.
    CreatedAt(DateTime<Utc>),
}

/// SQL text with its parameters, numbered `$1`... in order.
#[derive(Debug, Default)]
pub struct Sql {
    pub text: String,
    pub params: Vec<Param>,
}

impl Sql {
    fn param(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }
}

/// The part of a selection's query after `FROM table`: its conditions, the id window
/// `after < id <= upto`, then `tail` (an order and limit).
fn selected(table: &str, head: &str, conditions: Vec<Cond>, after: i64, upto: i64) -> Sql {
    let mut sql = Sql::default();
    let mut clauses = Vec::new();
    let a = sql.param(Param::Int(after));
    let u = sql.param(Param::Int(upto));
    clauses.push(format!("id > {a} AND id <= {u}"));
    for Cond(text, param) in conditions {
        match param {
            Some(p) => {
                let p = sql.param(p);
                clauses.push(text.replace("{}", &p));
            }
            None => clauses.push(text.to_string()),
        }
    }
    sql.text = format!("{head} FROM {table} WHERE {}", clauses.join(" AND "));
    sql
}

/// One condition: its SQL with `{}` where its parameter (if any) goes.
struct Cond(&'static str, Option<Param>);

impl EventSelection {
    fn conditions(&self) -> Vec<Cond> {
        let mut c = vec![Cond(
            "status = {}",
            Some(Param::Text(self.status.as_str().into())),
        )];
        if let Some(s) = &self.source {
            c.push(Cond("source = {}", Some(Param::Text(s.clone()))));
        }
        if let Some(t) = &self.event_type {
            c.push(Cond("event_type = {}", Some(Param::Text(t.clone()))));
        }
        if let Some(b) = &self.booking {
            // From the booking's payments to their facts to the events that established them,
            // each step by an index.
            c.push(Cond(
                "id IN (SELECT e.id FROM payments p
                        JOIN payment_facts f ON f.payment_id = p.id
                        JOIN webhook_events e ON e.source = f.source AND e.event_id = f.event_id
                        WHERE p.booking_id = {})",
                Some(Param::Text(b.clone())),
            ));
        }
        if let Some(t) = self.since {
            c.push(Cond("received_at >= {}", Some(Param::ReceivedAt(t))));
        }
        if let Some(t) = self.until {
            c.push(Cond("received_at < {}", Some(Param::ReceivedAt(t))));
        }
        c
    }

    /// The id window a job walks: from the first event received at or after `since` (found in
    /// the `received_at` index, so a window deep in the past costs what a recent one does) to
    /// the last event stored when the job starts (events arriving later are not its business).
    pub(super) fn window_sql(&self) -> Sql {
        let mut sql = Sql::default();
        let first = match self.since {
            Some(t) => {
                let p = sql.param(Param::ReceivedAt(t));
                format!(
                    "COALESCE((SELECT id FROM webhook_events WHERE received_at >= {p} \
                     ORDER BY received_at LIMIT 1), (SELECT COALESCE(MAX(id), 0) + 1 FROM webhook_events)) - 1"
                )
            }
            None => "CAST(0 AS BIGINT)".into(),
        };
        sql.text = format!("SELECT {first}, (SELECT COALESCE(MAX(id), 0) FROM webhook_events)");
        sql
    }

    pub(super) fn count_sql(&self, after: i64, upto: i64) -> Sql {
        selected(
            "webhook_events",
            "SELECT COUNT(*)",
            self.conditions_replayable(),
            after,
            upto,
        )
    }

    /// The next `limit` ids of the selection after `after`.
    pub(super) fn ids_sql(&self, after: i64, upto: i64, limit: i64) -> Sql {
        let mut sql = selected(
            "webhook_events",
            "SELECT id",
            self.conditions_replayable(),
            after,
            upto,
        );
        let l = sql.param(Param::Int(limit));
        sql.text.push_str(&format!(" ORDER BY id LIMIT {l}"));
        sql
    }

    /// The first `limit` events of the selection, as the listing shows them.
    pub(super) fn rows_sql(&self, upto: i64, limit: i64) -> Sql {
        let mut sql = selected(
            "webhook_events",
            "SELECT id, source, event_id, event_type, status, attempts, last_error, received_at,
                (SELECT p.booking_id FROM payment_facts f JOIN payments p ON p.id = f.payment_id
                 WHERE f.source = webhook_events.source AND f.event_id = webhook_events.event_id)
                 AS booking_id",
            self.conditions_replayable(),
            0,
            upto,
        );
        let l = sql.param(Param::Int(limit));
        sql.text.push_str(&format!(" ORDER BY id LIMIT {l}"));
        sql
    }

    fn conditions_replayable(&self) -> Vec<Cond> {
        let mut c = self.conditions();
        c.push(Cond("pruned_at IS NULL", None));
        c
    }

    /// Puts `ids` back in line, if they are still in the selected status and not pruned (what
    /// was read outside the transaction may have moved on since).
    pub(super) fn requeue_sql(&self, ids: &[i64]) -> Sql {
        let mut sql = Sql::default();
        let status = sql.param(Param::Text(self.status.as_str().into()));
        let list = id_list(&mut sql, ids);
        sql.text = format!(
            "UPDATE webhook_events SET status = 'received', attempts = 0, next_attempt_at = NULL,
                 fetched = NULL
             WHERE id IN ({list}) AND status = {status} AND pruned_at IS NULL"
        );
        sql
    }
}

impl DeliverySelection {
    fn conditions(&self) -> Vec<Cond> {
        let mut c = vec![Cond(
            "status = {}",
            Some(Param::Text(self.status.as_str().into())),
        )];
        if let Some(t) = &self.target {
            c.push(Cond("target = {}", Some(Param::Text(t.clone()))));
        }
        if let Some(b) = &self.booking {
            c.push(Cond("booking_id = {}", Some(Param::Text(b.clone()))));
        }
        if let Some((source, event_id)) = &self.event {
            c.push(Cond("source = {}", Some(Param::Text(source.clone()))));
            c.push(Cond(
                "source_event_id = {}",
                Some(Param::Text(event_id.clone())),
            ));
        }
        if let Some(t) = self.since {
            c.push(Cond("created_at >= {}", Some(Param::CreatedAt(t))));
        }
        if let Some(t) = self.until {
            c.push(Cond("created_at < {}", Some(Param::CreatedAt(t))));
        }
        c
    }

    pub(super) fn window_sql(&self) -> Sql {
        Sql {
            text: "SELECT CAST(0 AS BIGINT), (SELECT COALESCE(MAX(id), 0) FROM deliveries)".into(),
            params: Vec::new(),
        }
    }

    pub(super) fn count_sql(&self, after: i64, upto: i64) -> Sql {
        selected(
            "deliveries",
            "SELECT COUNT(*)",
            self.conditions(),
            after,
            upto,
        )
    }

    pub(super) fn ids_sql(&self, after: i64, upto: i64, limit: i64) -> Sql {
        let mut sql = selected("deliveries", "SELECT id", self.conditions(), after, upto);
        let l = sql.param(Param::Int(limit));
        sql.text.push_str(&format!(" ORDER BY id LIMIT {l}"));
        sql
    }

    pub(super) fn rows_sql(&self, upto: i64, limit: i64) -> Sql {
        let head = format!("SELECT {}", super::sql::DELIVERY_COLUMNS);
        let mut sql = selected("deliveries", &head, self.conditions(), 0, upto);
        let l = sql.param(Param::Int(limit));
        sql.text.push_str(&format!(" ORDER BY id LIMIT {l}"));
        sql
    }

    /// Due at `now_ms` with a fresh schedule, if still in the selected status.
    pub(super) fn requeue_sql(&self, ids: &[i64], now_ms: i64) -> Sql {
        let mut sql = Sql::default();
        let status = sql.param(Param::Text(self.status.as_str().into()));
        let now = sql.param(Param::Int(now_ms));
        let list = id_list(&mut sql, ids);
        sql.text = format!(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = {now},
                 leased_until = NULL
             WHERE id IN ({list}) AND status = {status}"
        );
        sql
    }
}

/// `$n, $n+1, ...`, one parameter per id.
fn id_list(sql: &mut Sql, ids: &[i64]) -> String {
    ids.iter()
        .map(|id| sql.param(Param::Int(*id)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_filters_that_are_set_are_named_numbered_in_order() {
        let sel = EventSelection {
            status: EventStatus::Failed,
            source: None,
            event_type: Some("charge.refunded".into()),
            booking: None,
            since: None,
            until: Some(Utc::now()),
        };
        let sql = sel.ids_sql(10, 20, 500);
        assert!(
            sql.text
                .contains("id > $1 AND id <= $2 AND status = $3 AND event_type = $4")
                && sql.text.contains("received_at < $5")
                && sql.text.contains("received_at < $5 AND pruned_at IS NULL")
                && sql.text.ends_with("ORDER BY id LIMIT $6"),
            "{}",
            sql.text
        );
        assert_eq!(sql.params.len(), 6);
        assert!(!sql.text.contains("source ="));
        let requeue = sel.requeue_sql(&[3, 4]);
        assert!(
            requeue.text.contains("id IN ($2, $3) AND status = $1"),
            "{}",
            requeue.text
        );
    }
}
