//! Operational events: what the `events` targets (and the log) hear about delivery itself — a
//! notification given up on, a target's circuit opening or recovering, a target disabled — so an
//! alerting system can page someone. They are written to the outbox in the transaction that
//! records what they announce, like the payment events.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::first_due;
use crate::config::{TargetKind, TargetSettings};
use crate::domain::delivery::NewDelivery;
use crate::domain::ids::NotificationId;
use crate::store::{StoreError, WriteTx};

/// One operational event, about the target `target`.
#[derive(Debug, Clone, PartialEq)]
pub enum Operational {
    /// A notification went dead because its retry schedule is spent.
    Exhausted {
        target: String,
        notification_id: String,
        /// The notification's own type (a booking status or a payment event).
        event: String,
        booking_id: Option<String>,
        payment_id: Option<i64>,
        attempts: i64,
        last_error: String,
    },
    /// Most recent attempts failed: nothing is sent but a probe at `next_probe_ms` (unix ms).
    CircuitOpened {
        target: String,
        reason: String,
        failures: u32,
        next_probe_ms: i64,
    },
    /// A probe was answered: deliveries resume, and the `released` pending notifications are
    /// due at once.
    Recovered {
        target: String,
        /// When the circuit opened (unix ms), if this process saw it open.
        down_since_ms: Option<i64>,
        released: u64,
    },
    /// Nothing is sent to the target until an operator enables it.
    Disabled {
        target: String,
        reason: String,
        /// `payhook` for a 410 Gone, else who disabled it.
        by: String,
    },
}

fn time(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl Operational {
    pub fn name(&self) -> &'static str {
        match self {
            Operational::Exhausted { .. } => "delivery.exhausted",
            Operational::CircuitOpened { .. } => "target.circuit_opened",
            Operational::Recovered { .. } => "target.recovered",
            Operational::Disabled { .. } => "target.disabled",
        }
    }

    /// The target it is about.
    pub fn target(&self) -> &str {
        match self {
            Operational::Exhausted { target, .. }
            | Operational::CircuitOpened { target, .. }
            | Operational::Recovered { target, .. }
            | Operational::Disabled { target, .. } => target,
        }
    }

    /// The `data` of its payload.
    pub fn data(&self) -> Value {
        match self {
            Operational::Exhausted {
                target,
                notification_id,
                event,
                booking_id,
                payment_id,
                attempts,
                last_error,
            } => json!({
                "target": target, "notification_id": notification_id, "event": event,
                "booking_id": booking_id, "payment_id": payment_id, "attempts": attempts,
                "last_error": last_error,
            }),
            Operational::CircuitOpened {
                target,
                reason,
                failures,
                next_probe_ms,
            } => json!({
                "target": target, "reason": reason, "failures": failures,
                "next_probe_at": time(*next_probe_ms),
            }),
            Operational::Recovered {
                target,
                down_since_ms,
                released,
            } => json!({
                "target": target, "down_since": down_since_ms.and_then(time),
                "released": released,
            }),
            Operational::Disabled { target, reason, by } => {
                json!({ "target": target, "reason": reason, "by": by })
            }
        }
    }

    /// Logs it: a warning, except a recovery.
    pub fn log(&self) {
        let name = self.name();
        let target = self.target();
        match self {
            Operational::Exhausted {
                notification_id,
                booking_id,
                attempts,
                last_error,
                ..
            } => tracing::warn!(event = name, target_name = %target, %notification_id,
                booking_id = booking_id.as_deref().unwrap_or(""), attempts, reason = %last_error,
                "a notification was given up on: its retry schedule is spent"),
            Operational::CircuitOpened {
                reason,
                next_probe_ms,
                ..
            } => tracing::warn!(event = name, target_name = %target, %reason,
                next_probe = time(*next_probe_ms).unwrap_or_default(),
                "the target's circuit opened: deliveries wait for a probe"),
            Operational::Recovered { released, .. } => {
                tracing::info!(event = name, target_name = %target, released,
                    "the target answers again: its circuit is closed")
            }
            Operational::Disabled { reason, by, .. } => {
                tracing::warn!(event = name, target_name = %target, %reason, %by,
                    "the target is disabled: its notifications are kept until it is enabled")
            }
        }
    }

    /// Its notifications: one per `events` target that subscribed to it, except the target it
    /// is about (a failing target told of its own failures would fail again, forever).
    pub fn deliveries(&self, targets: &[TargetSettings], now: DateTime<Utc>) -> Vec<NewDelivery> {
        let name = self.name();
        let payload = json!({
            "type": name,
            "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": self.data(),
        })
        .to_string();
        let (payment_id, booking_id) = match self {
            Operational::Exhausted {
                payment_id,
                booking_id,
                ..
            } => (*payment_id, booking_id.clone()),
            _ => (None, None),
        };
        targets
            .iter()
            .filter(|t| t.kind == TargetKind::Events && t.name != self.target())
            .filter(|t| t.events.is_empty() || t.events.iter().any(|e| e == name))
            .map(|t| NewDelivery {
                notification_id: NotificationId::new(),
                target: t.name.clone(),
                // A target's events reach subscribers in the order they happened.
                order_key: format!("target:{}", self.target()),
                event: name.to_string(),
                payment_id,
                booking_id: booking_id.clone(),
                payload: payload.clone(),
                booking_status: false,
                source: None,
                source_event_id: None,
            })
            .collect()
    }

    /// Logs it and writes its notifications in `tx`; returns how many.
    pub async fn write(
        &self,
        tx: &mut WriteTx,
        targets: &[TargetSettings],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.log();
        let rows: Vec<_> = self
            .deliveries(targets, now)
            .into_iter()
            .map(|d| {
                let due = first_due(targets, &d, now);
                (d, due)
            })
            .collect();
        tx.insert_deliveries(&rows, now).await?;
        Ok(rows.len())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn target(name: &str, kind: TargetKind, events: &[&str]) -> TargetSettings {
        TargetSettings {
            name: name.into(),
            kind,
            url: "http://127.0.0.1:1".into(),
            token: None,
            secret: None,
            events: events.iter().map(|e| e.to_string()).collect(),
            retry_schedule: vec![Duration::ZERO],
            timeout: Duration::from_secs(5),
            concurrency: 1,
            circuit_failures: 10,
            circuit_open: Duration::from_secs(2),
        }
    }

    #[test]
    fn subscribers_hear_of_a_target_but_the_target_not_of_itself() {
        let targets = [
            target("booking-service", TargetKind::BookingStatus, &[]),
            target("alerts", TargetKind::Events, &[]),
            target("payments-only", TargetKind::Events, &["payment.confirmed"]),
            target("pager", TargetKind::Events, &["target.disabled"]),
        ];
        let opened = Operational::CircuitOpened {
            target: "alerts".into(),
            reason: "connection refused".into(),
            failures: 10,
            next_probe_ms: 2_000,
        };
        assert!(
            opened.deliveries(&targets, Utc::now()).is_empty(),
            "alerts is not told of its own circuit; the others did not subscribe"
        );
        let disabled = Operational::Disabled {
            target: "booking-service".into(),
            reason: "maintenance".into(),
            by: "alice".into(),
        };
        let sent: Vec<String> = disabled
            .deliveries(&targets, Utc::now())
            .into_iter()
            .map(|d| d.target)
            .collect();
        assert_eq!(sent, ["alerts", "pager"]);
        let body: Value =
            serde_json::from_str(&disabled.deliveries(&targets, Utc::now())[0].payload).unwrap();
        assert_eq!(body["type"], "target.disabled");
        assert_eq!(
            body["data"],
            json!({"target": "booking-service", "reason": "maintenance", "by": "alice"})
        );
    }
}
