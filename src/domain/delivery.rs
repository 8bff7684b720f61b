//! Notifications: the outbox row the ledger writes, and the delivery policy as pure functions
//! (what an answer means, when to try again, each target's circuit breaker).

use std::collections::VecDeque;
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
    /// The payment it is about (an operational event about a target has none).
    pub payment_id: Option<i64>,
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

/// `Retry-After` as seconds or as an HTTP date, in any of the three forms RFC 9110 (5.6.7) asks
/// recipients to read: IMF-fixdate, RFC 850 and asctime. More seconds than fit are very many.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .map(|at| at.with_timezone(&Utc))
        .or_else(|_| {
            ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
                .iter()
                .find_map(|form| chrono::NaiveDateTime::parse_from_str(value, form).ok())
                .map(|at| at.and_utc())
                .ok_or(())
        })
        .ok()?;
    Some((at - now).to_std().unwrap_or_default())
}

/// How far back a closed circuit looks when it judges a target's failure rate (ms). Long enough
/// to hold the attempts of a busy second or two even at a low rate, short enough that failures of
/// a minute ago do not count against a target that has been answering since.
pub const CIRCUIT_WINDOW_MS: i64 = 20_000;

/// The longest an open circuit waits between probes, unless the target's first wait is longer:
/// a target back after a long outage is noticed within this, for one request every 10 s to a
/// target that is down.
pub const PROBE_WAIT_MAX: Duration = Duration::from_secs(10);

/// A target's circuit. `state`, `failures` and `reason` are stored in `delivery_targets`; the
/// window of recent outcomes and the probe in flight live in the worker's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Circuit {
    pub state: CircuitState,
    /// Closed: failing attempts in the window. Open: failed probes since it opened.
    pub failures: u32,
    pub reason: Option<String>,
    /// The outcomes of the attempts that ended in the last [`CIRCUIT_WINDOW_MS`].
    window: Window,
    /// When the probe in flight started (unix ms).
    probe: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    /// Nothing is sent until `until` (unix ms); then one probe. `since` is when it opened (0 when
    /// it was read from the store: every attempt of this process started after), `wait_ms` the
    /// current wait between probes.
    Open {
        since: i64,
        until: i64,
        wait_ms: i64,
    },
    Disabled,
}

/// What an attempt did to a circuit, for the operational events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// It opened; the first probe goes at `next_probe` (unix ms).
    Opened { next_probe: i64 },
    /// A probe was answered: it is closed again after being open since `down_since` (unix ms,
    /// 0 when unknown).
    Recovered { down_since: i64 },
    /// The target answered 410 Gone.
    Disabled,
}

/// The outcome of [`Circuit::record`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// What the store keeps changed: save it.
    pub changed: bool,
    pub transition: Option<Transition>,
    /// The attempt was the open circuit's probe, and failed.
    pub failed_probe: bool,
}

/// A target's circuit policy: how many attempts in the window before the rate is judged, and
/// the first wait of an open circuit before it probes.
#[derive(Debug, Clone, Copy)]
pub struct CircuitPolicy {
    pub min_attempts: u32,
    pub first_probe: Duration,
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
                    since: 0,
                    until: open_until.unwrap_or(0),
                    wait_ms: 0,
                },
                _ => CircuitState::Closed,
            },
            failures: failures.clamp(0, i64::from(u32::MAX)) as u32,
            reason,
            window: Window::default(),
            probe: None,
        }
    }

    /// A saved circuit taken up by a worker that starts: an open one probes within the first
    /// wait, however long the wait it had reached (the target may have come back while payhook
    /// was down), and backs off from there.
    pub fn resumed(mut self, now_ms: i64, policy: CircuitPolicy) -> Circuit {
        if let CircuitState::Open { since, until, .. } = self.state {
            let first = policy.first_probe.as_millis() as i64;
            self.state = CircuitState::Open {
                since,
                until: until.min(now_ms + first),
                wait_ms: first,
            };
        }
        self
    }

    pub fn closed() -> Circuit {
        Circuit::saved("closed", 0, None, None)
    }

    /// Disabled by an operator (or a 410), with why.
    pub fn disabled(reason: String) -> Circuit {
        Circuit::saved("disabled", 0, None, Some(reason))
    }
}

/// Counts of the attempts that ended in the last [`CIRCUIT_WINDOW_MS`], a slot per millisecond
/// in which some ended: judging a rate costs the same at 10 attempts a second as at 10,000, and
/// the window holds at most one slot per millisecond of it, whatever the rate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Window {
    /// (ended at, attempts, failing), oldest first.
    slots: VecDeque<(i64, u32, u32)>,
    total: u32,
    failed: u32,
}

impl Window {
    /// Counts an attempt that ended at `now_ms`, forgets those older than the window, and
    /// returns the window's attempts and failing attempts.
    fn record(&mut self, now_ms: i64, failing: bool) -> (u32, u32) {
        let failing = u32::from(failing);
        match self.slots.back_mut() {
            // The clock may step back: an attempt never counts as older than the last one.
            Some((at, total, failed)) if *at >= now_ms => {
                *total += 1;
                *failed += failing;
            }
            _ => self.slots.push_back((now_ms, 1, failing)),
        }
        self.total += 1;
        self.failed += failing;
        while let Some(&(at, total, failed)) = self.slots.front() {
            if at > now_ms - CIRCUIT_WINDOW_MS {
                break;
            }
            self.slots.pop_front();
            self.total -= total;
            self.failed -= failed;
        }
        (self.total, self.failed)
    }

    fn clear(&mut self) {
        *self = Window::default();
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

impl Circuit {
    /// How many more notifications may be in flight now. An open circuit lets one probe through
    /// once its wait is over, whatever is still in flight from before it opened.
    pub fn allowance(&self, now_ms: i64, in_flight: usize, concurrency: usize) -> usize {
        match self.state {
            CircuitState::Closed => concurrency.saturating_sub(in_flight),
            CircuitState::Open { until, .. } if now_ms >= until && self.probe.is_none() => 1,
            CircuitState::Open { .. } | CircuitState::Disabled => 0,
        }
    }

    /// The attempt just claimed while open is the probe.
    pub fn probe_started(&mut self, now_ms: i64) {
        if matches!(self.state, CircuitState::Open { .. }) {
            self.probe = Some(now_ms);
        }
    }

    /// The probe never ran (nothing was pending, or its task failed): the next may go.
    pub fn probe_lost(&mut self) {
        self.probe = None;
    }

    /// Whether a probe is in flight.
    pub fn probing(&self) -> bool {
        self.probe.is_some()
    }

    /// When an open circuit lets a probe through (unix ms).
    pub fn reopens_at(&self) -> Option<i64> {
        match self.state {
            CircuitState::Open { until, .. } => Some(until),
            _ => None,
        }
    }

    /// Takes into account an attempt that started at `started_ms` and ended at `now_ms`.
    ///
    /// Closed, it opens when at least half of the attempts that ended in the last
    /// [`CIRCUIT_WINDOW_MS`] found the target failing, and they are at least
    /// `policy.min_attempts`: a rate, so a few refusals among many answers, or a slow trickle
    /// of failures, do not stop deliveries. Open, only an attempt started after it opened is a
    /// probe: answered, the circuit closes; failing, the wait doubles up to [`PROBE_WAIT_MAX`].
    /// An attempt that was in flight when it opened changes nothing.
    pub fn record(
        &mut self,
        attempt: &Attempt,
        started_ms: i64,
        now_ms: i64,
        policy: CircuitPolicy,
    ) -> Recorded {
        let before = (self.state, self.failures, self.reason.clone());
        let failing = target_failing(attempt);
        let why = || match attempt {
            Attempt::NoAnswer(e) => e.clone(),
            Attempt::Answered { status, .. } => format!("answered {status}"),
        };
        let mut out = Recorded::default();
        let first = policy.first_probe.as_millis() as i64;
        match self.state {
            // An answer that was in flight when the target was disabled changes nothing.
            CircuitState::Disabled => {}
            _ if verdict(attempt) == Verdict::Gone => {
                self.state = CircuitState::Disabled;
                self.reason = Some("the target answered 410 Gone".into());
                self.probe = None;
                out.transition = Some(Transition::Disabled);
            }
            CircuitState::Open { since, .. } if started_ms < since => {}
            CircuitState::Open { since, wait_ms, .. } => {
                self.probe = None;
                if failing {
                    let wait_ms = (wait_ms * 2)
                        .max(first)
                        .min((PROBE_WAIT_MAX.as_millis() as i64).max(first));
                    self.state = CircuitState::Open {
                        since,
                        until: now_ms + wait_ms,
                        wait_ms,
                    };
                    self.failures += 1;
                    self.reason = Some(why());
                    out.failed_probe = true;
                } else {
                    *self = Circuit::closed();
                    out.transition = Some(Transition::Recovered { down_since: since });
                }
            }
            CircuitState::Closed => {
                let (total, failed) = self.window.record(now_ms, failing);
                self.failures = failed;
                if failing && total >= policy.min_attempts && failed * 2 >= total {
                    self.state = CircuitState::Open {
                        since: now_ms,
                        until: now_ms + first,
                        wait_ms: first,
                    };
                    self.window.clear();
                    self.reason = Some(format!(
                        "{failed} of the last {total} attempts failed; last: {}",
                        why()
                    ));
                    out.transition = Some(Transition::Opened {
                        next_probe: now_ms + first,
                    });
                } else if failing {
                    self.reason = Some(why());
                } else if failed == 0 {
                    self.reason = None;
                }
            }
        }
        out.changed = (self.state, self.failures, self.reason.clone()) != before;
        out
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
        assert_eq!(parse_retry_after("-5", now), None);
        // RFC 850 and asctime dates, and more seconds than a u64 holds.
        assert_eq!(
            parse_retry_after("Thursday, 01-Jan-26 00:02:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Thu Jan  1 00:03:00 2026", now),
            Some(Duration::from_secs(180))
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            next_delay(
                &[Duration::ZERO],
                0,
                parse_retry_after("99999999999999999999999", now)
            ),
            Some(RETRY_AFTER_MAX)
        );
    }

    const POLICY: CircuitPolicy = CircuitPolicy {
        min_attempts: 10,
        first_probe: Duration::from_secs(2),
    };

    fn down() -> Attempt {
        Attempt::NoAnswer("connection refused".into())
    }

    #[test]
    fn the_circuit_opens_on_a_failure_rate_over_the_window() {
        let mut c = Circuit::closed();
        // Refusals among as many answers: under half fail, it stays closed.
        for i in 0..40 {
            let attempt = if i % 3 == 0 { down() } else { answered(200) };
            c.record(&attempt, i * 100, i * 100, POLICY);
        }
        assert_eq!(c.state, CircuitState::Closed);
        // A slow trickle of failures (one every 5 s) never makes enough attempts in the window.
        let mut trickle = Circuit::closed();
        for i in 0..100 {
            let r = trickle.record(&down(), i * 5_000, i * 5_000, POLICY);
            assert_eq!(r.transition, None);
        }
        assert_eq!(trickle.state, CircuitState::Closed);
        // Failures older than the window do not count: 9 long ago and 1 now stay closed.
        let mut old = Circuit::closed();
        for i in 0..9 {
            old.record(&down(), i, i, POLICY);
        }
        old.record(&down(), 30_000, 30_000, POLICY);
        assert_eq!(old.state, CircuitState::Closed);
        assert_eq!(old.failures, 1);
        // Ten refusals within the window, after answers: half of the attempts fail, it opens.
        let mut c = Circuit::closed();
        for i in 0..10 {
            c.record(&answered(200), i * 10, i * 10, POLICY);
        }
        let mut opened = None;
        for i in 0..10 {
            let r = c.record(&down(), 1_000 + i, 1_000 + i, POLICY);
            assert!(r.changed);
            opened = opened.or(r.transition);
        }
        assert_eq!(opened, Some(Transition::Opened { next_probe: 3_009 }));
        assert_eq!(c.reopens_at(), Some(3_009), "the first probe after 2 s");
        assert_eq!(c.allowance(3_000, 0, 8), 0);
        assert_eq!(c.allowance(3_009, 0, 8), 1, "one probe");
    }

    #[test]
    fn the_window_counts_a_busy_target_exactly_in_bounded_memory() {
        let mut c = Circuit::closed();
        // 30 s at 20 attempts a millisecond, one in five failing: the last 20 s count.
        for ms in 0..30_000 {
            for i in 0..20 {
                let attempt = if i % 5 == 0 { down() } else { answered(200) };
                c.record(&attempt, ms, ms, POLICY);
            }
        }
        assert_eq!(c.state, CircuitState::Closed);
        assert_eq!(
            c.failures,
            4 * 20_000,
            "the failures of the last 20 s, each counted once"
        );
        assert_eq!((c.window.total, c.window.failed), (20 * 20_000, 4 * 20_000));
        assert_eq!(
            c.window.slots.len(),
            CIRCUIT_WINDOW_MS as usize,
            "a slot per millisecond"
        );
        // A clock stepped back counts the attempt with the latest, and nothing is lost.
        c.record(&down(), 10_000, 10_000, POLICY);
        assert_eq!(c.window.failed, 4 * 20_000 + 1);
        // Past the window, everything before is forgotten.
        c.record(&answered(200), 60_000, 60_000, POLICY);
        assert_eq!((c.window.total, c.window.failed, c.failures), (1, 0, 0));
        assert_eq!(c.window.slots.len(), 1);
    }

    fn open_at(at: i64) -> Circuit {
        let mut c = Circuit::closed();
        for _ in 0..10 {
            c.record(&down(), at, at, POLICY);
        }
        assert_eq!(c.reopens_at(), Some(at + 2_000));
        c
    }

    #[test]
    fn an_attempt_started_before_the_circuit_opened_is_not_a_probe() {
        let mut c = open_at(10_000);
        // In flight since before the opening: failing or answered, it changes nothing.
        let r = c.record(&down(), 9_000, 10_500, POLICY);
        assert_eq!(r, Recorded::default());
        let r = c.record(&answered(200), 9_500, 10_600, POLICY);
        assert_eq!(r, Recorded::default());
        assert_eq!(c.reopens_at(), Some(12_000), "the wait is not doubled");
        // Attempts still in flight from before do not hold the probe back.
        assert_eq!(c.allowance(12_000, 8, 8), 1);
        c.probe_started(12_000);
        assert_eq!(c.allowance(12_000, 8, 8), 0, "one probe at a time");
        let r = c.record(&down(), 12_000, 12_050, POLICY);
        assert!(r.failed_probe && r.changed);
        assert_eq!(
            c.reopens_at(),
            Some(12_050 + 4_000),
            "a failed probe doubles"
        );
        c.probe_started(16_050);
        let r = c.record(&answered(200), 16_050, 16_100, POLICY);
        assert_eq!(
            r.transition,
            Some(Transition::Recovered { down_since: 10_000 })
        );
        assert_eq!(c.allowance(16_100, 0, 8), 8);
    }

    #[test]
    fn failed_probes_back_off_to_a_cap_and_a_ten_minute_outage_is_noticed_within_it() {
        let mut c = open_at(0);
        let back_at = 10 * 60 * 1000;
        let mut now;
        let mut waits = Vec::new();
        // The simulated clock jumps to each probe; the target answers from `back_at` on.
        loop {
            now = c.reopens_at().expect("open");
            assert_eq!(c.allowance(now, 0, 8), 1);
            c.probe_started(now);
            let attempt = if now >= back_at {
                answered(200)
            } else {
                down()
            };
            let r = c.record(&attempt, now, now + 10, POLICY);
            if r.transition.is_some() {
                break;
            }
            waits.push(c.reopens_at().unwrap() - (now + 10));
        }
        assert_eq!(&waits[..4], &[4_000, 8_000, 10_000, 10_000]);
        assert!(waits.iter().all(|&w| w <= 10_000));
        assert!(
            now - back_at <= 10_000,
            "noticed {} ms after it came back",
            now - back_at
        );
        assert_eq!(c.state, CircuitState::Closed);
    }

    #[test]
    fn a_restart_probes_soon_and_410_disables_for_good() {
        let saved = Circuit::saved("open", 7, Some(1_000_000), Some("refused".into()));
        let c = saved.resumed(10_000, POLICY);
        assert_eq!(c.reopens_at(), Some(12_000), "not the long saved wait");
        let mut c = open_at(0);
        c.probe_started(2_000);
        let r = c.record(&answered(410), 2_000, 2_010, POLICY);
        assert_eq!(r.transition, Some(Transition::Disabled));
        assert_eq!(c.state, CircuitState::Disabled);
        let r = c.record(&answered(200), 2_000, 2_020, POLICY);
        assert!(!r.changed, "an answer in flight does not re-enable it");
        assert_eq!(c.allowance(100_000, 0, 8), 0);
        // A 4xx is an answer from a live target: it does not count as failing.
        let mut c = Circuit::closed();
        for i in 0..20 {
            c.record(&answered(400), i, i, POLICY);
        }
        assert_eq!(c.state, CircuitState::Closed);
    }
}
