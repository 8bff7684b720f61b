//! Properties, on the real store (SQLite, or PostgreSQL with TEST_DATABASE_URL) through the real
//! processor, of cases holding several payments whose events are interleaved:
//! - any arrival order of a payment's events, with any of them applied again (a replay or a
//!   provider retry), leaves the same ledger row;
//! - events applied together in batches write the same ledger and the same notifications, in the
//!   same order, as the same events applied one at a time.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use common::*;
use payhook::config::{Settings, TargetKind, TargetSettings};
use payhook::domain::state::{Attention, PaymentState, derive};
use payhook::ledger::{Interpretation, Outcome, Processor, interpret_stripe};
use payhook::notify::DispatchWake;
use payhook::store::{NewEvent, PaymentKey, Store};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

const CURRENCIES: &[&str] = &["eur", "usd", "jpy", "krw", "xof", "xaf", "kwd"];

/// What happens to one payment; each event comes with its provider time offset (ties included).
#[derive(Debug, Clone)]
struct Spec {
    amount: i64,
    currency: &'static str,
    failures: Vec<i64>,
    processing: Option<i64>,
    succeeded: Option<i64>,
    canceled: Option<i64>,
    /// `(at, paid)`: an unpaid completion is a delayed payment method.
    completed: Option<(i64, bool)>,
    expired: Option<i64>,
    async_succeeded: Option<i64>,
    async_failed: Option<i64>,
    /// `(at, share of the amount refunded so far, in percent)`.
    refunds: Vec<(i64, i64)>,
    dispute_opened: Option<i64>,
    /// `(at, won)`.
    dispute_closed: Option<(i64, bool)>,
    /// Disputes naming only the charge, as older API versions send them.
    dispute_without_intent: bool,
    /// Manual capture: authorised at, then captured at (a share of the amount, in percent).
    authorized: Option<i64>,
    captured: Option<(i64, i64)>,
    /// The authorisation lapsed (`charge.expired`).
    authorization_expired: Option<i64>,
    /// Refund objects: (which refund, at, event).
    refund_objects: Vec<(u8, i64, RefundEvent)>,
    /// Dispute objects: (which dispute, at, event).
    dispute_events: Vec<(u8, i64, DisputeEvent)>,
    /// This payment is for the previous spec's booking: a booking paid (or tried) twice.
    same_booking: bool,
}

#[derive(Debug, Clone, Copy)]
enum RefundEvent {
    Created,
    Succeeded,
    Failed,
    Canceled,
}

#[derive(Debug, Clone, Copy)]
enum DisputeEvent {
    Inquiry,
    InquiryClosed,
    Opened,
    UnderReview,
    FundsWithdrawn,
    FundsReinstated,
    Won,
    Lost,
}

fn refund_event() -> impl Strategy<Value = RefundEvent> {
    prop_oneof![
        Just(RefundEvent::Created),
        Just(RefundEvent::Succeeded),
        Just(RefundEvent::Failed),
        Just(RefundEvent::Canceled),
    ]
}

fn dispute_event() -> impl Strategy<Value = DisputeEvent> {
    prop_oneof![
        Just(DisputeEvent::Inquiry),
        Just(DisputeEvent::InquiryClosed),
        Just(DisputeEvent::Opened),
        Just(DisputeEvent::UnderReview),
        Just(DisputeEvent::FundsWithdrawn),
        Just(DisputeEvent::FundsReinstated),
        Just(DisputeEvent::Won),
        Just(DisputeEvent::Lost),
    ]
}

fn at() -> impl Strategy<Value = i64> {
    0i64..40
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (1i64..1_000_000, prop::sample::select(CURRENCIES)),
        (
            prop::collection::vec(at(), 0..3),
            prop::option::of(at()),
            prop::option::of(at()),
            prop::option::weighted(0.2, at()),
        ),
        (
            prop::option::of((at(), any::<bool>())),
            prop::option::of(at()),
            prop::option::weighted(0.3, at()),
            prop::option::weighted(0.3, at()),
        ),
        (
            prop::collection::vec((at(), 1i64..=100), 0..4),
            prop::option::weighted(0.4, at()),
            prop::option::weighted(0.4, (at(), any::<bool>())),
            any::<bool>(),
        ),
        (
            prop::option::weighted(0.3, at()),
            prop::option::weighted(0.3, (at(), 1i64..=100)),
            prop::option::weighted(0.15, at()),
            prop::collection::vec((0u8..3, at(), refund_event()), 0..4),
            prop::collection::vec((0u8..2, at(), dispute_event()), 0..3),
            prop::bool::weighted(0.3),
        ),
    )
        .prop_map(|((amount, currency), a, b, c, d)| Spec {
            amount,
            currency,
            failures: a.0,
            processing: a.1,
            succeeded: a.2,
            canceled: a.3,
            completed: b.0,
            expired: b.1,
            async_succeeded: b.2,
            async_failed: b.3,
            refunds: c.0,
            dispute_opened: c.1,
            dispute_closed: c.2,
            dispute_without_intent: c.3,
            authorized: d.0,
            captured: d.1,
            authorization_expired: d.2,
            refund_objects: d.3,
            dispute_events: d.4,
            same_booking: d.5,
        })
}

impl Spec {
    /// The Stripe events this spec describes, for the payment `ids`, around time `base`.
    fn events(&self, ids: &PaymentIds, base: i64) -> Vec<Value> {
        let money = vec![
            format!("amount={}", self.amount),
            format!("currency={}", self.currency),
        ];
        let session_money = vec![
            format!("amount_total={}", self.amount),
            format!("currency={}", self.currency),
        ];
        let mut out = Vec::new();
        let mut add =
            |t: &str, at: i64, extra: Vec<String>| out.push(ids.event(t, base + at, &extra));
        for &at in &self.failures {
            add("payment_intent.payment_failed", at, money.clone());
        }
        let captured = self.captured.map_or(self.amount, |(_, percent)| {
            (self.amount * percent / 100).max(1)
        });
        for (t, at) in [
            ("payment_intent.processing", self.processing),
            ("payment_intent.succeeded", self.succeeded),
            ("payment_intent.canceled", self.canceled),
        ] {
            if let Some(at) = at {
                let mut extra = money.clone();
                extra.push(format!("amount_received={captured}"));
                add(t, at, extra);
            }
        }
        if let Some((at, paid)) = self.completed {
            let mut extra = session_money.clone();
            extra.push(format!(
                "payment_status={}",
                if paid { "paid" } else { "unpaid" }
            ));
            add("checkout.session.completed", at, extra);
        }
        for (t, at) in [
            ("checkout.session.expired", self.expired),
            (
                "checkout.session.async_payment_succeeded",
                self.async_succeeded,
            ),
            ("checkout.session.async_payment_failed", self.async_failed),
        ] {
            if let Some(at) = at {
                add(t, at, session_money.clone());
            }
        }
        for &(at, percent) in &self.refunds {
            let mut extra = money.clone();
            extra.push(format!("amount_captured={captured}"));
            extra.push(format!("amount_refunded={}", captured * percent / 100));
            add("charge.refunded", at, extra);
        }
        let dispute_extra = || {
            if self.dispute_without_intent {
                vec!["payment_intent=null".to_string()]
            } else {
                vec![]
            }
        };
        if let Some(at) = self.dispute_opened {
            add("charge.dispute.created", at, dispute_extra());
        }
        if let Some((at, won)) = self.dispute_closed {
            let mut extra = dispute_extra();
            extra.push(format!("status={}", if won { "won" } else { "lost" }));
            add("charge.dispute.closed", at, extra);
        }
        if let Some(at) = self.authorized {
            add(
                "payment_intent.amount_capturable_updated",
                at,
                money.clone(),
            );
        }
        if let Some((at, percent)) = self.captured {
            let mut extra = money.clone();
            let _ = percent;
            extra.push(format!("amount_captured={captured}"));
            add("charge.captured", at, extra);
        }
        if let Some(at) = self.authorization_expired {
            add("charge.expired", at, money.clone());
        }
        for &(which, at, event) in &self.refund_objects {
            let (t, status) = match event {
                RefundEvent::Created => ("refund.created", "pending"),
                RefundEvent::Succeeded => ("charge.refund.updated", "succeeded"),
                RefundEvent::Failed => ("refund.failed", "failed"),
                RefundEvent::Canceled => ("refund.updated", "canceled"),
            };
            // One refund's events agree on its amount and creation; only its status moves.
            let share = 1 + (i64::from(which) * 17 + 13) % 60;
            add(
                t,
                at,
                vec![
                    format!("id=re_{}_{which}", ids.intent),
                    format!("amount={}", (captured * share / 100).max(1)),
                    format!("status={status}"),
                    format!("created={}", base + i64::from(which)),
                    format!("currency={}", self.currency),
                ],
            );
        }
        for &(which, at, event) in &self.dispute_events {
            let (t, status) = match event {
                DisputeEvent::Inquiry => ("charge.dispute.created", "warning_needs_response"),
                DisputeEvent::InquiryClosed => ("charge.dispute.closed", "warning_closed"),
                DisputeEvent::Opened => ("charge.dispute.created", "needs_response"),
                DisputeEvent::UnderReview => ("charge.dispute.updated", "under_review"),
                DisputeEvent::FundsWithdrawn => {
                    ("charge.dispute.funds_withdrawn", "needs_response")
                }
                DisputeEvent::FundsReinstated => ("charge.dispute.funds_reinstated", "won"),
                DisputeEvent::Won => ("charge.dispute.closed", "won"),
                DisputeEvent::Lost => ("charge.dispute.closed", "lost"),
            };
            add(
                t,
                at,
                vec![
                    format!("id=dp_{}_{which}", ids.intent),
                    format!("status={status}"),
                    format!("amount={}", self.amount),
                ],
            );
        }
        out
    }

    /// Whether every event of the spec reaches every other through shared ids (else an expired
    /// session nobody paid, or a dispute naming only its charge, is a payment of its own).
    fn is_one_payment(&self) -> bool {
        let session_linked = self.completed.is_some()
            || self.async_succeeded.is_some()
            || self.async_failed.is_some();
        let intent_events = self.processing.is_some()
            || self.succeeded.is_some()
            || self.canceled.is_some()
            || !self.failures.is_empty()
            || session_linked
            || !self.refunds.is_empty();
        let new_events = self.authorized.is_some()
            || self.captured.is_some()
            || self.authorization_expired.is_some()
            || !self.refund_objects.is_empty()
            || !self.dispute_events.is_empty();
        let intent_events = intent_events || new_events;
        let charge_linked = self.processing.is_some()
            || self.succeeded.is_some()
            || self.canceled.is_some()
            || !self.refunds.is_empty()
            || new_events;
        let disputes = self.dispute_opened.is_some() || self.dispute_closed.is_some();
        let expired_alone = self.expired.is_some() && !session_linked;
        let disputes_alone = disputes && self.dispute_without_intent && !charge_linked;
        // Parts that stand alone are one payment only when nothing else exists.
        !((expired_alone && (intent_events || disputes))
            || (disputes_alone && (intent_events || self.expired.is_some())))
    }
}

struct World {
    runtime: Runtime,
    store: Arc<Store>,
    processor: Processor,
    _dir: FreshStore,
}

fn target(name: &str, kind: TargetKind) -> TargetSettings {
    TargetSettings {
        name: name.into(),
        kind,
        url: "http://127.0.0.1:9/".into(),
        token: None,
        secret: None,
        events: Vec::new(),
        retry_schedule: vec![std::time::Duration::ZERO],
        timeout: std::time::Duration::from_secs(5),
        concurrency: 1,
        circuit_failures: 100,
        circuit_open: std::time::Duration::from_secs(1),
    }
}

/// A store and a processor of its own for each property (a processor applies whatever is waiting):
/// with `notifying`, the processor writes notifications for a booking-status and an events target.
fn world(notifying: bool) -> &'static World {
    static PLAIN: OnceLock<World> = OnceLock::new();
    static NOTIFYING: OnceLock<World> = OnceLock::new();
    let cell = if notifying { &NOTIFYING } else { &PLAIN };
    cell.get_or_init(|| {
        let runtime = Runtime::new().unwrap();
        let (store, dir) = runtime.block_on(async {
            let dir = fresh_store().await;
            let store = Store::connect(&dir.url, Settings::defaults().sqlite_sync)
                .await
                .unwrap();
            store.migrate().await.unwrap();
            (Arc::new(store), dir)
        });
        let mut processor = Processor::new(
            store.clone(),
            Settings::defaults().processor,
            Arc::new(Notify::new()),
        );
        if notifying {
            let targets = [
                target("booking-service", TargetKind::BookingStatus),
                target("subscribers", TargetKind::Events),
            ];
            processor = processor.with_targets(&targets, DispatchWake::default());
        }
        World {
            runtime,
            store,
            processor,
            _dir: dir,
        }
    })
}

/// Every source name is used by one (case, order) only, so their payments never meet.
fn next_source() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("stripe-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Applies every waiting event; each batch applies as a whole (none is split into its events,
/// which would hide a batch the store refuses behind the one-at-a-time path).
async fn drain(world: &World) {
    while let Outcome::Handled(handled) = world.processor.try_process_next().await.unwrap() {
        assert!(
            handled.iter().all(|h| !h.alone),
            "a batch was split: {handled:?}"
        );
    }
}

/// Applies `events` in `order` under `source`: each is stored in the inbox
/// (processed at once when `drain_after` says so), then the `replays` are applied again. Returns
/// each booking's payments.
async fn apply(
    world: &World,
    source: &str,
    events: &[Value],
    order: &[usize],
    drain_after: &[bool],
    replays: &[Index],
    bookings: &[String],
) -> Vec<Vec<PaymentState>> {
    let mut row_ids = vec![0; events.len()];
    for (step, &i) in order.iter().enumerate() {
        let e = &events[i];
        let event = NewEvent {
            source: source.to_string(),
            event_id: e["id"].as_str().unwrap().to_string(),
            event_type: e["type"].as_str().unwrap().to_string(),
            payload: Bytes::from(e.to_string()),
            headers: "{}".into(),
            received_at: chrono::Utc::now(),
            trace_context: None,
        };
        world
            .store
            .insert_events(std::slice::from_ref(&event))
            .await
            .unwrap();
        // A provider retry of the same event: the inbox keeps one.
        if drain_after[step % drain_after.len()] {
            world.store.insert_events(&[event]).await.unwrap();
            drain(world).await;
        }
        row_ids[i] = world
            .store
            .event_row_id(source, e["id"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
    }
    drain(world).await;
    for replay in replays.iter().filter(|_| !events.is_empty()) {
        let id = row_ids[replay.index(events.len())];
        assert!(world.store.requeue_event(id).await.unwrap());
        drain(world).await;
    }
    let mut out = Vec::new();
    for booking in bookings {
        let mut states: Vec<PaymentState> = world
            .store
            .payments_where(PaymentKey::Booking, booking)
            .await
            .unwrap()
            .into_iter()
            .filter(|p| p.source == source)
            .map(|p| p.state)
            .collect();
        states.sort_by_key(|s| format!("{s:?}"));
        out.push(states);
    }
    out
}

type Plan = (Vec<Spec>, Vec<Vec<usize>>, Vec<bool>, Vec<Index>);

/// A few payments, three random orders of all their events, where to drain, what to replay.
fn plan() -> impl Strategy<Value = Plan> {
    prop::collection::vec(spec(), 1..5).prop_flat_map(|specs| {
        let n = specs.iter().map(|s| s.event_count()).sum::<usize>();
        let order = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
        (
            Just(specs),
            prop::collection::vec(order, 3),
            prop::collection::vec(any::<bool>(), 1..8),
            prop::collection::vec(any::<Index>(), 0..4),
        )
    })
}

/// The notifications written for `source`'s events, in the order they are delivered: target,
/// what is sent, the booking, the order key (a payment's own id made generic), and the cause.
async fn notifications(world: &World, source: &str) -> Vec<[String; 5]> {
    let mut rows: Vec<[String; 5]> = world
        .store
        .list_deliveries(None, None, None, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.source.as_deref() == Some(source))
        .map(|d| {
            let order_key = if d.order_key.starts_with("payment:") {
                "payment:*".to_string()
            } else {
                d.order_key
            };
            [
                d.target,
                d.event,
                d.booking_id.unwrap_or_default(),
                order_key,
                d.source_event_id.unwrap_or_default(),
            ]
        })
        .collect();
    rows.reverse();
    rows
}

impl Spec {
    /// Whether some refund gave money back after it was counted: a refund object that failed or
    /// was canceled, or a charge snapshot lower than an earlier one (which only a failed or
    /// canceled refund explains). Then the booking service may have been told `refunded` while
    /// the booking holds money again: its contract cannot take that back.
    fn gives_money_back(&self) -> bool {
        let objects = self
            .refund_objects
            .iter()
            .any(|(_, _, e)| matches!(e, RefundEvent::Failed | RefundEvent::Canceled));
        let snapshots = self.refunds.iter().any(|&(at, percent)| {
            self.refunds
                .iter()
                .any(|&(later, lower)| later > at && lower < percent)
        });
        // A snapshot lower than the refund objects already seen says the same: some refund
        // gave its money back in between (the generated snapshots and objects need not agree).
        let both = !self.refunds.is_empty() && !self.refund_objects.is_empty();
        objects || snapshots || both
    }

    fn event_count(&self) -> usize {
        self.events(&PaymentIds::new("count"), 0).len()
    }
}

/// Each spec's events, all in one list, with each spec's booking (its own, or the previous
/// spec's when it says so) and payment intent.
fn case(specs: &[Spec]) -> (Vec<Value>, Vec<String>, Vec<String>) {
    let base = now() - 1000;
    let mut events = Vec::new();
    let mut bookings: Vec<String> = Vec::new();
    let mut intents = Vec::new();
    for spec in specs {
        let booking = match bookings.last() {
            Some(previous) if spec.same_booking => previous.clone(),
            _ => format!("booking-{}", payhook::domain::ids::random_token(10)),
        };
        let ids = PaymentIds::new(&booking);
        events.extend(spec.events(&ids, base));
        bookings.push(booking);
        intents.push(ids.intent);
    }
    (events, bookings, intents)
}

/// Whether `sent`, the statuses a booking service received for one booking in order, is a path
/// of its state machine from `pending`.
/// A booking cancelled (its checkout expired) before the money came refuses what follows: that
/// is the refusal payhook flags for a person, not a wrong path.
fn valid_booking_path(sent: &[&str]) -> bool {
    let mut at = "pending";
    for &to in sent {
        let ok = matches!(
            (at, to),
            ("pending", "confirmed" | "cancelled")
                | ("confirmed", "cancelled" | "partially_refunded" | "refunded")
                | ("partially_refunded", "refunded" | "cancelled")
        );
        if ok {
            at = to;
        } else if at != "cancelled" {
            return false;
        }
    }
    true
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn any_order_and_any_repeat_of_the_events_gives_the_same_ledger((specs, orders, drains, replays) in plan()) {
        let world = world(false);
        let (events, bookings, intents) = case(&specs);
        // Each order's run has bookings of its own (a booking is all its payments, whatever
        // their source), named back to the first's when compared.
        let results: Vec<_> = orders
            .iter()
            .enumerate()
            .map(|(run, order)| {
                let mut unique = bookings.clone();
                unique.dedup();
                let rename = |text: &str| {
                    unique.iter().fold(text.to_string(), |t, b| t.replace(b.as_str(), &format!("{b}-{run}")))
                };
                let events: Vec<Value> = events
                    .iter()
                    .map(|e| serde_json::from_str(&rename(&e.to_string())).unwrap())
                    .collect();
                let renamed: Vec<String> = bookings.iter().map(|b| rename(b)).collect();
                let states = world.runtime.block_on(apply(world, &next_source(), &events, order, &drains, &replays, &renamed));
                states
                    .into_iter()
                    .map(|states| {
                        states
                            .into_iter()
                            .map(|mut s| {
                                s.booking_id = s.booking_id.map(|b| b.strip_suffix(&format!("-{run}")).unwrap_or(&b).to_string());
                                s
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        for other in &results[1..] {
            prop_assert_eq!(&results[0], other);
        }

        // Against the definition: a payment whose events all link up is `derive` of all its facts.
        let mut offset = 0;
        for (((spec, booking), intent), states) in
            specs.iter().zip(&bookings).zip(&intents).zip(&results[0])
        {
            let shared = bookings.iter().filter(|b| *b == booking).count() > 1;
            let count = spec.event_count();
            let facts: Vec<_> = events[offset..offset + count]
                .iter()
                .map(|e| match interpret_stripe(e["type"].as_str().unwrap(), e.to_string().as_bytes()) {
                    Interpretation::Fact(f) => *f,
                    other => panic!("{other:?}"),
                })
                .collect();
            offset += count;
            // Disputes name no booking: a payment known only through them is not found by booking.
            let named = facts.iter().any(|f| f.booking_id.is_some());
            if shared {
                // A booking of several payments: this one is `derive` of its facts, plus the
                // duplicate flag that only the booking's other payments decide.
                let mine = states.iter().find(|s| s.payment_intent_id.as_deref() == Some(intent.as_str()));
                if let (Some(mine), true) = (mine, spec.is_one_payment()) {
                    let mut mine = mine.clone();
                    mine.flag(Attention::Duplicate, false);
                    prop_assert_eq!(mine, derive(&facts));
                }
            } else if !named {
                prop_assert!(states.is_empty(), "nothing names the booking: {:?}", states);
            } else if spec.is_one_payment() {
                prop_assert_eq!(states.len(), 1, "{} has one payment: {:?}", booking, states);
                prop_assert_eq!(&states[0], &derive(&facts));
            }
        }
    }

    #[test]
    fn events_applied_in_batches_write_what_they_write_one_at_a_time((specs, orders, _, _) in plan()) {
        let world = world(true);
        let (events, bookings, _) = case(&specs);
        // The second run's bookings are others (a booking is one across sources), named back to
        // the first's when compared.
        let renamed: Vec<String> = bookings.iter().map(|b| format!("{b}-b")).collect();
        let mut unique = bookings.clone();
        unique.dedup();
        let rename = |text: String| {
            unique.iter().fold(text, |t, a| t.replace(a.as_str(), &format!("{a}-b")))
        };
        let events_b: Vec<Value> = events
            .iter()
            .map(|e| serde_json::from_str(&rename(e.to_string())).unwrap())
            .collect();
        let (one_at_a_time, batched) = (next_source(), next_source());
        let (ledger_one, ledger_batched, sent_one, sent_batched) = world.runtime.block_on(async {
            let a = apply(world, &one_at_a_time, &events, &orders[0], &[true], &[], &bookings).await;
            let b = apply(world, &batched, &events_b, &orders[0], &[false], &[], &renamed).await;
            (a, b, notifications(world, &one_at_a_time).await, notifications(world, &batched).await)
        });
        let ledger_one: Vec<Vec<PaymentState>> = ledger_one
            .into_iter()
            .map(|states| states.into_iter().map(|mut s| {
                s.booking_id = s.booking_id.map(rename);
                s
            }).collect())
            .collect();
        let sent_one: Vec<[String; 5]> = sent_one.into_iter().map(|row| row.map(rename)).collect();
        // The booking service sees a path of its contract: never `confirmed` without money
        // taken, never `refunded` while the booking still holds money (unless a refund failed
        // after `refunded` was sent, which the contract cannot take back).
        for (booking, payments) in renamed.iter().zip(&ledger_batched) {
            let sent: Vec<&str> = sent_batched
                .iter()
                .filter(|row| row[0] == "booking-service" && row[2] == *booking)
                .map(|row| row[1].as_str())
                .collect();
            prop_assert!(valid_booking_path(&sent), "{}: {:?}", booking, sent);
            if sent.contains(&"confirmed") {
                prop_assert!(payments.iter().any(|p| p.status.is_paid()), "{}: {:?}", booking, payments);
            }
            let money_back = specs
                .iter()
                .zip(&bookings)
                .filter(|(_, b)| format!("{b}-b") == *booking)
                .any(|(spec, _)| spec.gives_money_back());
            if sent.contains(&"refunded") && !money_back {
                prop_assert!(!payments.iter().any(|p| p.holds_money()), "{}: {:?} {:?}", booking, sent, payments);
            }
        }
        prop_assert_eq!(ledger_one, ledger_batched);
        prop_assert_eq!(sent_one, sent_batched);
    }
}
