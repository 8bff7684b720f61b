//! Property: any arrival order of a payment's events, with any of them applied again (a replay or a
//! provider retry), leaves the same ledger row. Each generated case holds several payments whose
//! events are interleaved, and is applied in three random orders to the real store (SQLite, or
//! PostgreSQL with TEST_DATABASE_URL) through the real processor.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use common::*;
use payhook::config::Settings;
use payhook::ledger::{Interpretation, PaymentState, Processor, derive, interpret_stripe};
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
    )
        .prop_map(|((amount, currency), a, b, c)| Spec {
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
        for (t, at) in [
            ("payment_intent.processing", self.processing),
            ("payment_intent.succeeded", self.succeeded),
            ("payment_intent.canceled", self.canceled),
        ] {
            if let Some(at) = at {
                add(t, at, money.clone());
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
            extra.push(format!("amount_refunded={}", self.amount * percent / 100));
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
        let charge_linked = self.processing.is_some()
            || self.succeeded.is_some()
            || self.canceled.is_some()
            || !self.refunds.is_empty();
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

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = Runtime::new().unwrap();
        let (store, dir) = runtime.block_on(async {
            let dir = fresh_store().await;
            let store = Store::connect(&dir.url, Settings::defaults().sqlite_sync)
                .await
                .unwrap();
            store.migrate().await.unwrap();
            (Arc::new(store), dir)
        });
        let processor = Processor::new(
            store.clone(),
            Settings::defaults().processor,
            Arc::new(Notify::new()),
        );
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

/// Applies `events` in `order` under `source`: each is stored in the inbox (processed at once when
/// `drain_after` says so), then the `replays` are applied again. Returns each booking's payments.
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
        };
        world
            .store
            .insert_events(std::slice::from_ref(&event))
            .await
            .unwrap();
        // A provider retry of the same event: the inbox keeps one.
        if drain_after[step % drain_after.len()] {
            world.store.insert_events(&[event]).await.unwrap();
            world.processor.drain().await.unwrap();
        }
        row_ids[i] = world
            .store
            .event_row_id(source, e["id"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
    }
    world.processor.drain().await.unwrap();
    for replay in replays.iter().filter(|_| !events.is_empty()) {
        let id = row_ids[replay.index(events.len())];
        assert!(world.store.requeue_event(id).await.unwrap());
        world.processor.drain().await.unwrap();
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

impl Spec {
    fn event_count(&self) -> usize {
        self.events(&PaymentIds::new("count"), 0).len()
    }
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
        let world = world();
        let base = now() - 1000;
        let mut events = Vec::new();
        let mut bookings = Vec::new();
        for spec in &specs {
            let booking = format!("booking-{}", payhook::providers::stripe_events::random_token(10));
            let ids = PaymentIds::new(&booking);
            events.extend(spec.events(&ids, base));
            bookings.push(booking);
        }
        let results: Vec<_> = orders
            .iter()
            .map(|order| {
                world.runtime.block_on(apply(world, &next_source(), &events, order, &drains, &replays, &bookings))
            })
            .collect();
        for other in &results[1..] {
            prop_assert_eq!(&results[0], other);
        }

        // Against the definition: a payment whose events all link up is `derive` of all its facts.
        let mut offset = 0;
        for ((spec, booking), states) in specs.iter().zip(&bookings).zip(&results[0]) {
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
            if !named {
                prop_assert!(states.is_empty(), "nothing names the booking: {:?}", states);
            } else if spec.is_one_payment() {
                prop_assert_eq!(states.len(), 1, "{} has one payment: {:?}", booking, states);
                prop_assert_eq!(&states[0], &derive(&facts));
            }
        }
    }
}
