//! Notifications: the outbox row the ledger writes, and the delivery policy as pure functions
//! (what an answer means, when to try again, each target's circuit breaker).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngExt;

/// An outbox row to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub notification_id: super::ids::NotificationId,
    pub target: String,
    /// Notifications with the same target and order key are delivered one at a time, in order.
    pub order_key: String,
    /// The event name, or the booking status for a booking-status target.
    pub event: String,
    pub payment_id: i64,
    pub booking_id: Option<String>,
    pub payload: String,
    /// It is a booking-status notification (`event` is the booking's new status).
    pub booking_status: bool,
    /// The provider event whose application caused it.
    pub source: Option<String>,
    pub source_event_id: Option<String>,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The target answered with this status (and `Retry-After`, if it sent one).
    Answered {
        status: u16,
        retry_after: Option<Duration>,
        body: String,
    },
    /// No answer: refused, reset, timed out.
    NoAnswer(String),
}

/// What an attempt means for its notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again, not before `retry_after` if the target said so.
    Retry {
        retry_after: Option<Duration>,
    },
    /// The target refused it for good (a 4xx other than 408, 410, 425, 429): kept, visible, retryable by hand.
    Dead,
    /// 410 Gone: the target asks not to be called again; it is disabled.
    Gone,
}

/// 2xx delivered; 408, 425, 429, 5xx and no answer retried; 410 disables the target; any other
/// answer (other 4xx, and redirects, which are not followed) is dead.
pub fn verdict(attempt: &Attempt) -> Verdict {
    match attempt {
        Attempt::NoAnswer(_) => Verdict::Retry { retry_after: None },
        Attempt::Answered {
            status,
            retry_after,
            ..
        } => match status {
            200..=299 => Verdict::Delivered,
            410 => Verdict::Gone,
            408 | 425 | 429 | 500..=599 => Verdict::Retry {
                retry_after: *retry_after,
            },
            _ => Verdict::Dead,
        },
    }
}

/// Whether an attempt says the target is unwell (it counts towards opening the circuit). A 4xx
/// or a 429 comes from a target that is up and deciding.
pub fn target_failing(attempt: &Attempt) -> bool {
    match attempt {
        Attempt::NoAnswer(_) => true,
        Attempt::Answered { status, .. } => *status == 408 || (500..=599).contains(status),
    }
}

/// The longest `Retry-After` honoured: a target cannot park a notification for longer.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);

/// When the next attempt is due after `attempts` failed ones, or `None` when the schedule is
/// spent. The schedule's entry is jittered by ±20%, and a `Retry-After` is a floor.
pub fn next_delay(
    schedule: &[Duration],
    attempts: usize,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let planned = schedule.get(attempts)?;
    let jittered = planned.mul_f64(rand::rng().random_range(0.8..1.2));
    Some(jittered.max(retry_after.unwrap_or_default().min(RETRY_AFTER_MAX)))
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or_default())
}

/// A target's circuit, as stored in `delivery_targets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Circuit {
    pub state: CircuitState,
    /// Consecutive attempts that found the target failing.
    pub failures: u32,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    /// Nothing is sent until `until` (unix ms); then one probe. `wait_ms` is the current cool-down.
    Open {
        until: i64,
        wait_ms: i64,
    },
    Disabled,
}

impl Circuit {
    /// A circuit as the store keeps it: its state's word, failures, when an open one probes
    /// again (unix ms), why.
    pub fn saved(
        state: &str,
        failures: i64,
        open_until: Option<i64>,
        reason: Option<String>,
    ) -> Circuit {
        Circuit {
            state: match state {
                "disabled" => CircuitState::Disabled,
                "open" => CircuitState::Open {
                    until: open_until.unwrap_or(0),
                    wait_ms: 0,
                },
                _ => CircuitState::Closed,
            },
            failures: failures.clamp(0, i64::from(u32::MAX)) as u32,
            reason,
        }
    }
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open { .. } => "open",
            CircuitState::Disabled => "disabled",
        }
    }
}

/// The longest an open circuit waits between probes.
const OPEN_MAX_MS: i64 = 3600 * 1000;

impl Circuit {
    pub fn closed() -> Circuit {
        Circuit {
            state: CircuitState::Closed,
            failures: 0,
            reason: None,
        }
    }

    /// How many more notifications may be in flight now.
    pub fn allowance(&self, now_ms: i64, in_flight: usize, concurrency: usize) -> usize {
        match self.state {
            CircuitState::Closed => concurrency.saturating_sub(in_flight),
            // Half-open: a single probe at a time.
            CircuitState::Open { until, .. } if now_ms >= until && in_flight == 0 => 1,
            CircuitState::Open { .. } | CircuitState::Disabled => 0,
        }
    }

    /// When an open circuit lets a probe through.
    pub fn reopens_at(&self) -> Option<i64> {
        match self.state {
            CircuitState::Open { until, .. } => Some(until),
            _ => None,
        }
    }

    /// Takes an attempt's outcome into account; returns true when anything changed (to be saved).
    pub fn record(
        &mut self,
        attempt: &Attempt,
        now_ms: i64,
        threshold: u32,
        open_for: Duration,
    ) -> bool {
        let before = self.clone();
        if verdict(attempt) == Verdict::Gone {
            self.state = CircuitState::Disabled;
            self.reason = Some("the target answered 410 Gone".into());
        } else if target_failing(attempt) {
            self.failures += 1;
            let base = open_for.as_millis() as i64;
            match self.state {
                // A failed probe: wait twice as long before the next.
                CircuitState::Open { wait_ms, .. } => {
                    let wait_ms = (wait_ms * 2).min(OPEN_MAX_MS).max(base);
                    self.state = CircuitState::Open {
                        until: now_ms + wait_ms,
                        wait_ms,
                    };
                }
                CircuitState::Closed if self.failures >= threshold => {
                    self.state = CircuitState::Open {
                        until: now_ms + base,
                        wait_ms: base,
                    };
                }
                _ => {}
            }
            if self.state != CircuitState::Closed {
                self.reason = Some(match attempt {
                    Attempt::NoAnswer(e) => e.clone(),
                    Attempt::Answered { status, .. } => format!("answered {status}"),
                });
            }
        } else if matches!(self.state, CircuitState::Disabled) {
            // An answer that was in flight when the target was disabled changes nothing.
        } else {
            self.failures = 0;
            self.state = CircuitState::Closed;
            self.reason = None;
        }
        *self != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16) -> Attempt {
        Attempt::Answered {
            status,
            retry_after: None,
            body: String::new(),
        }
    }

    #[test]
    fn answers_map_to_the_delivery_policy() {
        for status in [200, 201, 204] {
            assert_eq!(verdict(&answered(status)), Verdict::Delivered, "{status}");
        }
        for status in [408, 425, 429, 500, 502, 503, 599] {
            assert!(
                matches!(verdict(&answered(status)), Verdict::Retry { .. }),
                "{status}"
            );
        }
        for status in [301, 400, 401, 403, 404, 409, 422] {
            assert_eq!(verdict(&answered(status)), Verdict::Dead, "{status}");
        }
        assert_eq!(verdict(&answered(410)), Verdict::Gone);
        assert!(matches!(
            verdict(&Attempt::NoAnswer("connection refused".into())),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn the_schedule_is_jittered_and_retry_after_is_a_floor() {
        let schedule = [
            Duration::ZERO,
            Duration::from_secs(10),
            Duration::from_secs(60),
        ];
        let d = next_delay(&schedule, 1, None).unwrap().as_secs_f64();
        assert!((8.0..=12.0).contains(&d), "{d}");
        let d = next_delay(&schedule, 1, Some(Duration::from_secs(30))).unwrap();
        assert_eq!(d, Duration::from_secs(30));
        assert_eq!(
            next_delay(&schedule, 3, None),
            None,
            "the schedule is spent"
        );
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn the_circuit_opens_probes_and_closes() {
        let mut c = Circuit::closed();
        let open_for = Duration::from_secs(30);
        let down = Attempt::NoAnswer("connection refused".into());
        for _ in 0..2 {
            c.record(&down, 0, 3, open_for);
            assert_eq!(c.allowance(0, 0, 8), 8, "still closed");
        }
        assert!(c.record(&down, 1_000, 3, open_for));
        assert_eq!(c.allowance(1_000, 0, 8), 0);
        assert_eq!(
            c.allowance(31_000, 0, 8),
            1,
            "one probe once the wait is over"
        );
        assert_eq!(c.allowance(31_000, 1, 8), 0, "and only one");
        assert!(c.record(&down, 31_000, 3, open_for));
        assert_eq!(
            c.reopens_at(),
            Some(91_000),
            "a failed probe doubles the wait"
        );
        // A 4xx is an answer from a live target: the circuit closes.
        assert!(c.record(&answered(400), 91_000, 3, open_for));
        assert_eq!(c.allowance(91_000, 0, 8), 8);
        assert!(c.record(&answered(410), 92_000, 3, open_for));
        assert_eq!(c.state, CircuitState::Disabled);
        assert!(!c.record(&answered(200), 93_000, 3, open_for));
        assert_eq!(c.allowance(93_000, 0, 8), 0);
    }
}
