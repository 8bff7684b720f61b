//! Notifications end to end: webhooks in, the example booking service (a real HTTP server on
//! loopback) and scripted receivers out, on SQLite or on PostgreSQL (`TEST_DATABASE_URL`).

mod common;

use std::time::Duration;

use common::receiver::*;
use common::*;
use payhook::config::{Settings, TargetKind, TargetSettings};
use payhook::domain::Secret;
use payhook::domain::delivery::CircuitState;
use payhook::domain::status::DeliveryStatus;
use payhook::notify::Dispatched;
use payhook::store::{Delivery, RetrySelection};
use serde_json::Value;

const BOOKING_TOKEN: &str = "booking-service-token";

/// A target with a quick schedule, so retries happen within a test.
fn target(name: &str, kind: TargetKind, url: &str) -> TargetSettings {
    TargetSettings {
        name: name.into(),
        kind,
        url: url.into(),
        token: (kind == TargetKind::BookingStatus).then(|| Secret::new(BOOKING_TOKEN)),
        secret: (kind == TargetKind::Events)
            .then(|| Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")),
        events: Vec::new(),
        retry_schedule: std::iter::once(Duration::ZERO)
            .chain(std::iter::repeat_n(Duration::from_millis(100), 60))
            .collect(),
        timeout: Duration::from_secs(5),
        concurrency: 8,
        circuit_failures: 1000,
        circuit_open: Duration::from_millis(300),
    }
}

async fn app_with_targets(targets: Vec<TargetSettings>) -> TestApp {
    spawn_app_with(move |s: &mut Settings| s.targets = targets).await
}

/// payhook with one booking-status target, `booking-service`, at `url`.
async fn booking_app(url: &str) -> TestApp {
    app_with_targets(vec![target(
        "booking-service",
        TargetKind::BookingStatus,
        url,
    )])
    .await
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn adds(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn deliveries(app: &TestApp, status: Option<&str>) -> Vec<Delivery> {
    let mut rows = app
        .payhook
        .store
        .list_deliveries(None, status.and_then(DeliveryStatus::parse), None, 1000)
        .await
        .unwrap();
    rows.reverse();
    rows
}

/// Waits until every notification in the outbox has been delivered: each was answered, and none
/// is sent again.
async fn all_delivered(app: &TestApp) {
    eventually(
        Duration::from_secs(10),
        "every notification delivered",
        || async {
            deliveries(app, None)
                .await
                .iter()
                .all(|d| d.status == DeliveryStatus::Delivered)
        },
    )
    .await;
}

/// A step of `target`'s worker finds nothing to send, now or later: none of its notifications is
/// pending.
async fn assert_nothing_pending(app: &TestApp, target: &str) {
    match app.step(target).await {
        Dispatched::Idle { next_due_ms: None } => {}
        other => panic!("{target} has something to send: {other:?}"),
    }
}

/// Waits until the booking's status in the booking service is `status`.
async fn booking_reaches(
    service: &payhook::booking_service::BookingService,
    id: &str,
    status: &str,
) {
    eventually(
        Duration::from_secs(15),
        &format!("{id} {status}"),
        || async { service.booking(id).is_some_and(|b| b.status == status) },
    )
    .await;
}

fn history(service: &payhook::booking_service::BookingService, id: &str) -> Vec<String> {
    service
        .booking(id)
        .unwrap()
        .history
        .iter()
        .map(|t| format!("{}>{}", t.from, t.to))
        .collect()
}

#[tokio::test]
async fn a_payment_confirms_its_booking_with_the_contract_headers() {
    let (service, url) = booking_service(BOOKING_TOKEN).await;
    let app = booking_app(&url).await;
    service.create("booking-ok", Some(2000), Some("EUR"), "pending");
    let pay = PaymentIds::new("booking-ok");
    app.deliver(&pay.event("payment_intent.succeeded", now(), &[]))
        .await;

    booking_reaches(&service, "booking-ok", "confirmed").await;
    let booking = service.booking("booking-ok").unwrap();
    assert_eq!(
        booking.payment_intent_id.as_deref(),
        Some(pay.intent.as_str())
    );
    assert!(booking.paid_at.is_some());
    let received = service.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(
        received[0].service_name.as_deref(),
        Some("payment-gateway-service")
    );
    let sent = deliveries(&app, None).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        received[0].request_id.as_deref(),
        Some(sent[0].notification_id.as_str())
    );
    eventually(Duration::from_secs(5), "recorded as delivered", || async {
        deliveries(&app, Some("delivered")).await.len() == 1
    })
    .await;

    // The same webhook again (Stripe retries) changes nothing, so nothing is sent again: once it
    // is applied, the outbox holds no new notification and the worker has nothing to send.
    app.deliver_all(&[pay.event("payment_intent.succeeded", now(), &[])])
        .await;
    assert_eq!(deliveries(&app, None).await.len(), 1);
    assert_nothing_pending(&app, "booking-service").await;
    assert_eq!(service.received().len(), 1);
    app.payhook.shutdown().await.unwrap();
}

#[tokio::test]
async fn booking_transitions_follow_the_ledger_whatever_the_arrival_order() {
    let (service, url) = booking_service(BOOKING_TOKEN).await;
    let app = booking_app(&url).await;
    for id in ["b-refund-first", "b-partial", "b-expired", "b-failed"] {
        service.create(id, Some(2000), Some("EUR"), "pending");
    }
    let t = now();

    // The refund arrives before the success: confirmed, then refunded.
    let refund_first = PaymentIds::new("b-refund-first");
    app.deliver_all(&[refund_first.event("charge.refunded", t + 10, &[])])
        .await;
    booking_reaches(&service, "b-refund-first", "refunded").await;
    app.deliver_all(&[refund_first.event("payment_intent.succeeded", t, &[])])
        .await;

    // Success then a partial refund.
    let partial = PaymentIds::new("b-partial");
    app.deliver_all(&[
        partial.event("payment_intent.succeeded", t, &[]),
        partial.event("charge.refunded", t + 5, &adds(&["amount_refunded=500"])),
    ])
    .await;
    booking_reaches(&service, "b-partial", "partially_refunded").await;

    // An expired checkout cancels the pending booking.
    let expired = PaymentIds::new("b-expired");
    app.deliver_all(&[expired.event("checkout.session.expired", t, &[])])
        .await;
    booking_reaches(&service, "b-expired", "cancelled").await;

    // A failed attempt changes nothing: the customer may try again.
    let failed = PaymentIds::new("b-failed");
    app.deliver_all(&[failed.event("payment_intent.payment_failed", t, &[])])
        .await;

    // Every event is applied and every notification they caused answered: nothing more is sent.
    all_delivered(&app).await;
    assert_eq!(deliveries(&app, None).await.len(), 5);
    assert_nothing_pending(&app, "booking-service").await;
    assert_eq!(
        history(&service, "b-refund-first"),
        ["pending>confirmed", "confirmed>refunded"]
    );
    assert_eq!(
        history(&service, "b-partial"),
        ["pending>confirmed", "confirmed>partially_refunded"]
    );
    assert_eq!(history(&service, "b-expired"), ["pending>cancelled"]);
    assert_eq!(service.booking("b-failed").unwrap().status, "pending");
    assert!(
        service
            .received()
            .iter()
            .all(|r| r.booking_id != "b-failed")
    );
    assert!(
        service.received().iter().all(|r| r.answer == 200),
        "{:?}",
        service.received()
    );
    app.payhook.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_booking_service_down_then_up_gets_every_notification_in_order_once() {
    // A port nobody listens on yet: every attempt is refused.
    let parked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = parked.local_addr().unwrap();
    drop(parked);
    let mut down = target(
        "booking-service",
        TargetKind::BookingStatus,
        &format!("http://{addr}"),
    );
    down.circuit_failures = 5;
    let app = app_with_targets(vec![down]).await;

    let t = now();
    let bookings: Vec<String> = (0..6).map(|i| format!("b-outage-{i}")).collect();
    for (i, booking) in bookings.iter().enumerate() {
        let pay = PaymentIds::new(booking);
        let success = pay.event("payment_intent.succeeded", t, &[]);
        let refund = pay.event("charge.refunded", t + 10, &[]);
        // Half of them arrive refund first.
        let events = if i % 2 == 0 {
            [success, refund]
        } else {
            [refund, success]
        };
        app.deliver_all(&events).await;
    }
    assert_eq!(
        deliveries(&app, None).await.len(),
        12,
        "confirmed and refunded for each"
    );

    // The target keeps failing: its circuit opens, and its state is kept in the store.
    eventually(Duration::from_secs(10), "the circuit opens", || async {
        app.payhook
            .store
            .circuit("booking-service")
            .await
            .unwrap()
            .state
            .as_str()
            == "open"
    })
    .await;
    assert!(deliveries(&app, Some("delivered")).await.is_empty());

    // The booking service comes up on that port.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (service, _) = booking_service_on(listener, BOOKING_TOKEN);
    for booking in &bookings {
        service.create(booking, Some(2000), Some("EUR"), "pending");
    }
    for booking in &bookings {
        booking_reaches(&service, booking, "refunded").await;
        assert_eq!(
            history(&service, booking),
            ["pending>confirmed", "confirmed>refunded"]
        );
    }
    eventually(
        Duration::from_secs(10),
        "every notification recorded delivered",
        || async { deliveries(&app, Some("delivered")).await.len() == 12 },
    )
    .await;
    eventually(Duration::from_secs(5), "the circuit closes", || async {
        app.payhook
            .store
            .circuit("booking-service")
            .await
            .unwrap()
            .state
            .as_str()
            == "closed"
    })
    .await;
    app.payhook.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_invalid_transition_is_dead_visible_and_retryable() {
    let (service, url) = booking_service(BOOKING_TOKEN).await;
    let app = booking_app(&url).await;
    // The booking service already cancelled this booking: it refuses to confirm it.
    service.create("b-cancelled", Some(2000), Some("EUR"), "cancelled");
    let pay = PaymentIds::new("b-cancelled");
    app.deliver(&pay.event("payment_intent.succeeded", now(), &[]))
        .await;

    eventually(
        Duration::from_secs(10),
        "the notification is dead",
        || async { deliveries(&app, Some("dead")).await.len() == 1 },
    )
    .await;
    let dead = &deliveries(&app, Some("dead")).await[0];
    assert_eq!(dead.attempts, 1, "a 400 is not retried");
    assert_eq!(dead.last_status, Some(400));
    let error = dead.last_error.as_deref().unwrap();
    assert!(error.contains("INVALID_TRANSITION"), "{error}");
    assert_nothing_pending(&app, "booking-service").await;
    assert_eq!(service.received().len(), 1, "dead means no more attempts");

    // The operator fixes the booking and retries it.
    service.create("b-cancelled", Some(2000), Some("EUR"), "pending");
    let requeued = app
        .payhook
        .store
        .retry_deliveries(RetrySelection::Dead { target: None }, now() * 1000)
        .await
        .unwrap();
    assert_eq!(requeued, [dead.id]);
    booking_reaches(&service, "b-cancelled", "confirmed").await;
    let received = service.received();
    assert_eq!(
        received[1].request_id, received[0].request_id,
        "the same notification id"
    );
    app.payhook.shutdown().await.unwrap();
}

/// A dead notification that a later one of its booking has overtaken (delivered) is not sent
/// again: `confirmed` after `refunded` would undo the refund at the booking service. A delivered
/// one has nothing to retry. Both say so.
#[tokio::test]
async fn a_retry_never_sends_a_notification_behind_one_delivered_after_it() {
    let receiver = Receiver::start(|_, r| {
        if r.json()["status"] == "confirmed" {
            Reply::status(400)
        } else {
            Reply::status(200)
        }
    })
    .await;
    let app = booking_app(&receiver.url).await;
    let pay = PaymentIds::new("b-overtaken");
    let t = now();
    app.deliver(&pay.event("payment_intent.succeeded", t, &[]))
        .await;
    eventually(Duration::from_secs(10), "confirmed is dead", || async {
        deliveries(&app, Some("dead")).await.len() == 1
    })
    .await;
    app.deliver(&pay.event("charge.refunded", t + 1, &[])).await;
    eventually(Duration::from_secs(10), "refunded is delivered", || async {
        deliveries(&app, Some("delivered")).await.len() == 1
    })
    .await;
    let dead = deliveries(&app, Some("dead")).await[0].id;
    let delivered = deliveries(&app, Some("delivered")).await[0].id;
    let retry = |id: i64| {
        let request = app
            .client
            .post(format!("{}/admin/api/deliveries/{id}/retry", app.admin));
        async move { Answer::read(request.send().await.unwrap()).await }
    };
    let answer = retry(dead).await;
    assert_eq!(
        (answer.status, answer.code()),
        (409, "superseded"),
        "{}",
        answer.json
    );
    let answer = retry(delivered).await;
    assert_eq!((answer.status, answer.code()), (409, "already_delivered"));
    let bulk = app
        .payhook
        .store
        .retry_deliveries(RetrySelection::Dead { target: None }, now() * 1000)
        .await
        .unwrap();
    assert!(bulk.is_empty(), "{bulk:?}");
    assert_eq!(receiver.requests().len(), 2, "nothing was sent again");
    app.payhook.shutdown().await.unwrap();
}

/// A refund that arrives before its payment gives `confirmed` then `refunded`: the confirmation
/// carries no `refundedAt`, the refund does.
#[tokio::test]
async fn the_confirmation_sent_before_a_refund_does_not_say_refunded() {
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    let app = booking_app(&receiver.url).await;
    let pay = PaymentIds::new("b-refund-body");
    app.deliver(&pay.event("charge.refunded", now(), &[])).await;
    let requests = receiver.wait_for(2, Duration::from_secs(10)).await;
    let bodies: Vec<Value> = requests.iter().map(|r| r.json()).collect();
    assert_eq!(
        (&bodies[0]["status"], &bodies[0]["refundedAt"]),
        (&serde_json::json!("confirmed"), &Value::Null),
        "{bodies:?}"
    );
    assert_eq!(bodies[1]["status"], "refunded");
    assert!(bodies[1]["refundedAt"].is_string(), "{bodies:?}");
    assert!(bodies[0]["paidAt"].is_string(), "{bodies:?}");
    app.payhook.shutdown().await.unwrap();
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let receiver = Receiver::start(|n, _| match n {
        0 => Reply {
            retry_after: Some("2".into()),
            ..Reply::status(429)
        },
        _ => Reply::status(200),
    })
    .await;
    let app = booking_app(&receiver.url).await;
    let pay = PaymentIds::new("b-throttled");
    app.deliver(&pay.event("payment_intent.succeeded", now(), &[]))
        .await;

    let requests = receiver.wait_for(2, Duration::from_secs(10)).await;
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_millis(1950),
        "retried after {gap:?}, not 2 s"
    );
    assert_eq!(
        requests[0].header("x-request-id"),
        requests[1].header("x-request-id")
    );
    assert_eq!(requests[0].method, "PUT");
    assert_eq!(
        requests[0].path,
        "/api/v1/bookings/b-throttled/payment-status"
    );
    assert_eq!(
        requests[0].header("authorization"),
        format!("Bearer {BOOKING_TOKEN}")
    );
    assert_eq!(requests[0].json()["status"], "confirmed");
    app.payhook.shutdown().await.unwrap();
}

/// An answer whose body stalls after its status line is no answer: the attempt is retried, the
/// reason kept. A huge body is not read past the part kept with the attempt.
#[tokio::test]
async fn an_answer_that_stalls_after_its_status_line_is_retried_and_huge_ones_are_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (sent_tx, mut sent) = tokio::sync::mpsc::unbounded_channel::<usize>();
    tokio::spawn(async move {
        for n in 0.. {
            let (mut socket, _) = listener.accept().await.unwrap();
            let sent_tx = sent_tx.clone();
            tokio::spawn(async move {
                let mut request = vec![0; 65_536];
                let _ = socket.read(&mut request).await;
                if n == 0 {
                    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nok";
                    socket.write_all(head).await.unwrap();
                    tokio::time::sleep(Duration::from_secs(30)).await;
                } else {
                    // 256 MiB announced; what payhook reads of it is counted.
                    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 268435456\r\n\r\n";
                    socket.write_all(head).await.unwrap();
                    let chunk = vec![b'a'; 65_536];
                    let mut written = 0;
                    while written < 268_435_456 && socket.write_all(&chunk).await.is_ok() {
                        written += chunk.len();
                    }
                    sent_tx.send(written).unwrap();
                }
            });
        }
    });
    let mut booking = target("booking-service", TargetKind::BookingStatus, &url);
    booking.timeout = Duration::from_secs(1);
    let app = app_with_targets(vec![booking]).await;
    app.deliver(&PaymentIds::new("b-stall").event("payment_intent.succeeded", now(), &[]))
        .await;
    eventually(
        Duration::from_secs(15),
        "delivered on the second attempt",
        || async { deliveries(&app, Some("delivered")).await.len() == 1 },
    )
    .await;
    let delivery = &deliveries(&app, None).await[0];
    assert_eq!(delivery.attempts, 2);
    let attempts = app.payhook.store.attempts_of(&[delivery.id]).await.unwrap();
    let first = attempts.iter().find(|a| a.attempt == 1).unwrap();
    assert_eq!(first.outcome, "pending", "{first:?}");
    assert!(
        first
            .answer
            .as_deref()
            .unwrap_or_default()
            .contains("did not arrive"),
        "{first:?}"
    );
    // The target stopped being read long before its 256 MiB were sent.
    let written = tokio::time::timeout(Duration::from_secs(10), sent.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(written < 64 << 20, "{written} bytes written");
    app.payhook.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_slow_booking_holds_up_only_itself() {
    // The booking service takes 1.5 s to answer for one booking.
    let receiver = Receiver::start(|_, r| Reply {
        delay: if r.path.contains("b-slow") {
            Duration::from_millis(1500)
        } else {
            Duration::ZERO
        },
        ..Reply::status(200)
    })
    .await;
    let app = booking_app(&receiver.url).await;
    let t = now();
    let slow = PaymentIds::new("b-slow");
    let fast = PaymentIds::new("b-fast");
    app.deliver_all(&[
        slow.event("payment_intent.succeeded", t, &[]),
        slow.event("charge.refunded", t + 1, &[]),
        fast.event("payment_intent.succeeded", t, &[]),
    ])
    .await;
    let requests = receiver.wait_for(3, Duration::from_secs(10)).await;
    let arrivals: Vec<(String, String, std::time::Instant)> = requests
        .iter()
        .map(|r| {
            (
                r.path.clone(),
                r.json()["status"].as_str().unwrap().to_string(),
                r.at,
            )
        })
        .collect();
    let at = |path: &str, status: &str| {
        arrivals
            .iter()
            .find(|(p, s, _)| p.contains(path) && s == status)
            .unwrap_or_else(|| panic!("{path} {status} in {arrivals:?}"))
            .2
    };
    // The other booking did not wait for the slow one...
    assert!(at("b-fast", "confirmed") < at("b-slow", "confirmed") + Duration::from_millis(1000));
    // ...while the slow booking's refund waited for its confirmation to be answered.
    assert!(at("b-slow", "refunded") >= at("b-slow", "confirmed") + Duration::from_millis(1500));
    app.payhook.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failing_target_is_circuit_broken_then_probed_and_410_disables_it() {
    let receiver = Receiver::start(|_, _| Reply::status(503)).await;
    let mut failing = target("flaky", TargetKind::BookingStatus, &receiver.url);
    failing.circuit_failures = 3;
    failing.circuit_open = Duration::from_millis(800);
    let app = app_with_targets(vec![failing]).await;
    let pay = PaymentIds::new("b-flaky");
    app.deliver(&pay.event("payment_intent.succeeded", now(), &[]))
        .await;

    receiver.wait_for(3, Duration::from_secs(10)).await;
    eventually(Duration::from_secs(5), "the circuit opens", || async {
        app.payhook
            .store
            .circuit("flaky")
            .await
            .unwrap()
            .state
            .as_str()
            == "open"
    })
    .await;
    // While open, nothing is sent: the notification is due again (the schedule alone retries
    // every 100 ms), and the worker's turn holds it.
    eventually(
        Duration::from_secs(5),
        "the notification is due",
        || async {
            let pending = deliveries(&app, Some("pending")).await;
            pending.len() == 1 && !pending[0].in_flight && pending[0].next_attempt_at <= now_ms()
        },
    )
    .await;
    let opened = receiver.requests().len();
    let step = app.step("flaky").await;
    assert!(
        matches!(step, Dispatched::Held(CircuitState::Open { .. })),
        "{step:?}"
    );
    assert_eq!(
        receiver.requests().len(),
        opened,
        "no attempt while the circuit is open"
    );
    // Then one probe; it fails, so the wait doubles; the next probe is answered 410 Gone.
    receiver.set_script(|n, _| Reply::status(if n < 4 { 503 } else { 410 }));
    eventually(
        Duration::from_secs(10),
        "the target is disabled",
        || async {
            app.payhook
                .store
                .circuit("flaky")
                .await
                .unwrap()
                .state
                .as_str()
                == "disabled"
        },
    )
    .await;
    let pending = deliveries(&app, Some("pending")).await;
    assert_eq!(
        pending.len(),
        1,
        "kept for when the target is enabled again"
    );
    assert_eq!(pending[0].last_status, Some(410));
    assert!(pending[0].next_attempt_at <= now_ms(), "due at once");
    let sent = receiver.requests().len();
    let step = app.step("flaky").await;
    assert!(
        matches!(step, Dispatched::Held(CircuitState::Disabled)),
        "{step:?}"
    );
    assert_eq!(
        receiver.requests().len(),
        sent,
        "a disabled target is not called"
    );

    // Re-enabled (what `payhook deliveries retry --target flaky` does), it is delivered.
    receiver.set_script(|_, _| Reply::status(200));
    app.payhook.store.reset_circuit("flaky").await.unwrap();
    eventually(
        Duration::from_secs(10),
        "delivered after re-enabling",
        || async { deliveries(&app, Some("delivered")).await.len() == 1 },
    )
    .await;
    app.payhook.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_events_target_receives_signed_payhook_events_it_subscribed_to() {
    let receiver = Receiver::start(|_, _| Reply::status(204)).await;
    let all = target(
        "all-events",
        TargetKind::Events,
        &format!("{}/all", receiver.url),
    );
    let mut refunds = target(
        "refunds",
        TargetKind::Events,
        &format!("{}/refunds", receiver.url),
    );
    refunds.events = vec!["payment.refunded".into()];
    // This one's secret is being rotated: the new one first, then the old.
    const NEW_SECRET: &str = "whsec_bmV3IHNlY3JldCBmb3IgdGhlIHJlZnVuZHMgdGFyZ2V0";
    let old_secret = refunds.secret.as_ref().unwrap().expose().to_string();
    refunds.secret = Some(Secret::new(format!("{NEW_SECRET} {old_secret}")));
    let app = app_with_targets(vec![all, refunds]).await;
    let t = now();
    let pay = PaymentIds::new("b-events");
    app.deliver_all(&[
        pay.event("payment_intent.payment_failed", t, &[]),
        pay.event("charge.refunded", t + 10, &[]),
    ])
    .await;

    let requests = receiver.wait_for(4, Duration::from_secs(10)).await;
    // Those four are every notification the payment caused, each answered: nothing more is sent.
    all_delivered(&app).await;
    assert_eq!(deliveries(&app, None).await.len(), 4);
    for target in ["all-events", "refunds"] {
        assert_nothing_pending(&app, target).await;
    }
    let seen: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.path, r.json()["type"].as_str().unwrap()))
        .collect();
    let all_seen: Vec<&String> = seen.iter().filter(|s| s.starts_with("/all")).collect();
    assert_eq!(
        all_seen,
        [
            "/all payment.failed",
            "/all payment.confirmed",
            "/all payment.refunded"
        ],
        "in the order the payment went through them"
    );
    assert_eq!(
        seen.iter()
            .filter(|s| s.starts_with("/refunds"))
            .collect::<Vec<_>>(),
        ["/refunds payment.refunded"]
    );
    let rotated = requests.iter().find(|r| r.path == "/refunds").unwrap();
    let signed_with = |secret: &str| {
        payhook::notify::sign(
            &payhook::notify::signing_key(secret).unwrap(),
            rotated.header("webhook-id"),
            rotated.header("webhook-timestamp").parse().unwrap(),
            rotated.body.as_bytes(),
        )
    };
    assert_eq!(
        rotated.header("webhook-signature"),
        format!("{} {}", signed_with(NEW_SECRET), signed_with(&old_secret))
    );
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert!(r.header("webhook-id").starts_with("ntf_"));
    assert!(r.header("webhook-signature").starts_with("v1,"));
    let timestamp: i64 = r.header("webhook-timestamp").parse().unwrap();
    assert!((timestamp - now()).abs() < 30);
    let body: Value = r.json();
    assert_eq!(body["data"]["booking_id"], "b-events");
    assert_eq!(body["data"]["amount"], 2000);
    app.payhook.shutdown().await.unwrap();
}

/// An https target is reached over TLS and its certificate is checked: a server on loopback with
/// a self-signed certificate (openssl's own test server) is refused, and the attempt says why.
#[tokio::test]
async fn an_https_target_with_an_untrusted_certificate_is_refused_and_the_reason_kept() {
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(dir.path())
        .output()
        .expect("openssl is installed");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = tokio::process::Command::new("openssl")
        .args([
            "s_server", "-quiet", "-www", "-cert", "cert.pem", "-key", "key.pem",
        ])
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the TLS server listens",
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
    )
    .await;

    let app = booking_app(&format!("https://localhost:{port}")).await;
    app.deliver(&PaymentIds::new("booking-tls").event("payment_intent.succeeded", now(), &[]))
        .await;
    eventually(
        Duration::from_secs(10),
        "an attempt refused for its certificate",
        || async {
            deliveries(&app, None).await.iter().any(|d| {
                d.attempts >= 1
                    && d.last_error
                        .as_deref()
                        .is_some_and(|e| e.to_lowercase().contains("certificate"))
            })
        },
    )
    .await;
    let d = &deliveries(&app, None).await[0];
    assert_ne!(d.status, "delivered", "{d:?}");
    server.kill().await.unwrap();
}

#[tokio::test]
async fn money_taken_for_a_booking_the_service_refuses_is_flagged_and_announced() {
    let (service, url) = booking_service(BOOKING_TOKEN).await;
    // The booking was cancelled (its abandoned session expired) before the payment came.
    service.create("booking-gone", Some(2000), Some("EUR"), "cancelled");
    let subscribers = Receiver::start(|_, _| Reply::status(204)).await;
    let app = app_with_targets(vec![
        target("booking-service", TargetKind::BookingStatus, &url),
        target("subscribers", TargetKind::Events, &subscribers.url),
    ])
    .await;
    let pay = PaymentIds::new("booking-gone");
    app.deliver_all(&[pay.event("payment_intent.succeeded", now() - 10, &[])])
        .await;

    let got = subscribers.wait_for(2, Duration::from_secs(15)).await;
    let types: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["payment.confirmed", "payment.needs_attention"]);
    assert_eq!(got[1].json()["data"]["attention"][0], "booking_refused");
    let dead = deliveries(&app, Some("dead")).await;
    assert_eq!(dead.len(), 1, "the refusal itself stays visible");
    assert_eq!(dead[0].event, "confirmed");
    let data = app.payment_status("booking-gone").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["attention"][0], "booking_refused");

    // A later event of the payment keeps the flag: it is not the provider's to clear.
    app.deliver_all(&[pay.event(
        "charge.refunded",
        now() - 5,
        &adds(&["amount_refunded=500"]),
    )])
    .await;
    let data = app.payment_status("booking-gone").await;
    assert_eq!(data["status"], "partially_refunded");
    assert_eq!(data["attention"][0], "booking_refused");

    // The booking service refuses that one too; once both refusals are in, the operator restores
    // the booking and retries: once confirmed, nothing needs a person.
    eventually(Duration::from_secs(10), "both refusals settled", || async {
        deliveries(&app, Some("dead")).await.len() == 2
    })
    .await;
    service.create("booking-gone", Some(2000), Some("EUR"), "pending");
    app.payhook
        .store
        .retry_deliveries(RetrySelection::Dead { target: None }, now() * 1000)
        .await
        .unwrap();
    booking_reaches(&service, "booking-gone", "partially_refunded").await;
    eventually(Duration::from_secs(10), "the flag is cleared", || async {
        app.payment_status("booking-gone").await["attention"]
            .as_array()
            .is_some_and(|a| a.is_empty())
    })
    .await;
}

#[tokio::test]
async fn subscribers_hear_of_duplicates_and_refunds_that_fail() {
    let subscribers = Receiver::start(|_, _| Reply::status(204)).await;
    let app = app_with_targets(vec![target(
        "subscribers",
        TargetKind::Events,
        &subscribers.url,
    )])
    .await;
    let first = PaymentIds::new("booking-subscribed");
    let second = PaymentIds::new("booking-subscribed");
    let t = now() - 100;
    let refund = format!("id={}", first.refund);
    app.deliver_all(&[
        first.event("payment_intent.succeeded", t, &[]),
        second.event("payment_intent.succeeded", t + 30, &[]),
        first.event(
            "refund.created",
            t + 40,
            &adds(&[&refund, "amount=500", "status=pending"]),
        ),
        first.event(
            "refund.failed",
            t + 50,
            &adds(&[&refund, "amount=500", "status=failed"]),
        ),
    ])
    .await;
    let got = subscribers.wait_for(5, Duration::from_secs(15)).await;
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let body = r.json();
            (
                body["type"].as_str().unwrap().to_string(),
                body["data"]["payment_intent_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let expect = |t: &str, p: &PaymentIds| (t.to_string(), p.intent.clone());
    assert_eq!(
        seen,
        [
            expect("payment.confirmed", &first),
            expect("payment.confirmed", &second),
            expect("payment.duplicate", &second),
            expect("payment.partially_refunded", &first),
            expect("payment.refund_failed", &first),
        ][..],
        "{seen:?}"
    );
    assert_eq!(got[4].json()["data"]["refunds"][0]["status"], "failed");
}

#[tokio::test]
async fn a_dot_booking_id_never_reaches_another_path_of_the_booking_service() {
    let (service, url) = booking_service(BOOKING_TOKEN).await;
    let app = booking_app(&url).await;
    let event = PaymentIds::new("..").event("payment_intent.succeeded", now() - 5, &[]);
    app.deliver_all(std::slice::from_ref(&event)).await;
    let row = app.settled(event["id"].as_str().unwrap()).await;
    assert_eq!(row.status, "failed");
    assert!(row.last_error.unwrap().contains("URL path"));
    // It caused no notification, so nothing is sent.
    assert!(deliveries(&app, None).await.is_empty());
    assert_nothing_pending(&app, "booking-service").await;
    assert!(service.received().is_empty(), "{:?}", service.received());
}

#[tokio::test]
async fn a_retry_asked_for_during_an_attempt_is_not_undone_by_its_outcome() {
    let fresh = fresh_store().await;
    let store = payhook::store::Store::connect(&fresh.url, payhook::domain::SqliteSync::Full)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let now_ms = now() * 1000;
    let id = payhook::domain::ids::NotificationId::new();
    let notification = payhook::domain::delivery::NewDelivery {
        notification_id: id.clone(),
        target: "booking-service".into(),
        order_key: "booking-1".into(),
        event: "confirmed".into(),
        payment_id: Some(1),
        booking_id: Some("booking-1".into()),
        payload: "{}".into(),
        booking_status: true,
        source: None,
        source_event_id: None,
    };
    let mut tx = store.begin_ledger().await.unwrap();
    tx.insert_deliveries(&[(notification, now_ms)], chrono::Utc::now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin_outbox().await.unwrap();
    let claimed = tx
        .claim_deliveries("booking-service", now_ms, now_ms + 30_000, 10)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(claimed.len(), 1);

    // The operator retries while the attempt is out; then the attempt ends, refused for good.
    let requeued = store
        .retry_deliveries(RetrySelection::Ids(&[id.to_string()]), now_ms)
        .await
        .unwrap();
    assert_eq!(requeued, [claimed[0].id]);
    let mut tx = store.begin_outbox().await.unwrap();
    tx.settle_deliveries(&[payhook::store::Settled {
        id: claimed[0].id,
        status: DeliveryStatus::Dead,
        attempts: 1,
        next_attempt_at: now_ms,
        last_status: Some(409),
        last_error: Some("409 refused".into()),
        delivered_at: None,
        booking_answer: None,
        attempt: Default::default(),
    }])
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let rows = store.list_deliveries(None, None, None, 10).await.unwrap();
    assert_eq!(rows[0].status, DeliveryStatus::Pending, "{:?}", rows[0]);
    assert_eq!(rows[0].attempts, 0);
    assert!(!rows[0].in_flight);
    store.close().await;
}

/// A notification for `booking` to `target`, due now.
fn notification(
    target: &str,
    booking: &str,
    event: &str,
) -> payhook::domain::delivery::NewDelivery {
    payhook::domain::delivery::NewDelivery {
        notification_id: payhook::domain::ids::NotificationId::new(),
        target: target.into(),
        order_key: booking.into(),
        event: event.into(),
        payment_id: Some(1),
        booking_id: Some(booking.into()),
        payload: format!(r#"{{"status":"{event}"}}"#),
        booking_status: true,
        source: None,
        source_event_id: None,
    }
}

#[tokio::test]
async fn a_step_sends_the_oldest_notification_of_each_booking_and_says_what_held_it() {
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    let mut flaky = target("booking-service", TargetKind::BookingStatus, &receiver.url);
    flaky.circuit_failures = 1;
    flaky.circuit_open = Duration::from_secs(60);
    // Retries are due at once: only the circuit can hold them.
    flaky.retry_schedule = vec![Duration::ZERO; 5];
    let fresh = fresh_store().await;
    let store = std::sync::Arc::new(
        payhook::store::Store::connect(&fresh.url, payhook::domain::SqliteSync::Full)
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    let insert = |rows: Vec<payhook::domain::delivery::NewDelivery>| {
        let store = store.clone();
        async move {
            let now = chrono::Utc::now();
            let rows: Vec<_> = rows
                .into_iter()
                .map(|d| (d, now.timestamp_millis()))
                .collect();
            let mut tx = store.begin_ledger().await.unwrap();
            tx.insert_deliveries(&rows, now).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    insert(vec![
        notification("booking-service", "b-one", "confirmed"),
        notification("booking-service", "b-one", "refunded"),
        notification("booking-service", "b-two", "confirmed"),
    ])
    .await;
    let (dispatcher, _) = payhook::notify::Dispatcher::new(store.clone(), &[flaky]);
    let worker = dispatcher.target("booking-service").unwrap();
    let sent = |step: Dispatched| match step {
        Dispatched::Sent(settled) => settled,
        other => panic!("expected attempts: {other:?}"),
    };

    // The oldest of each booking, both at once; recorded delivered when the step returns.
    let first = sent(worker.try_deliver_next().await.unwrap());
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first.iter().all(|s| s.status == DeliveryStatus::Delivered));
    let mut paths: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.path, r.json()["status"]))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/api/v1/bookings/b-one/payment-status \"confirmed\"",
            "/api/v1/bookings/b-two/payment-status \"confirmed\""
        ]
    );
    assert_eq!(deliveries_in(&store, "delivered").await, 2);
    // Then the booking's next one.
    let second = sent(worker.try_deliver_next().await.unwrap());
    assert_eq!(second.len(), 1);
    assert_eq!(receiver.requests()[2].json()["status"], "refunded");
    // Then nothing, now or later.
    assert!(matches!(
        worker.try_deliver_next().await.unwrap(),
        Dispatched::Idle { next_due_ms: None }
    ));

    // A failing answer is retried on the schedule, and opens the circuit (one failure is enough
    // here): the next step sends nothing, though the retry is due.
    receiver.set_script(|_, _| Reply::status(503));
    insert(vec![notification(
        "booking-service",
        "b-three",
        "confirmed",
    )])
    .await;
    let failed = sent(worker.try_deliver_next().await.unwrap());
    assert_eq!(failed[0].status, DeliveryStatus::Pending);
    assert_eq!(failed[0].last_status, Some(503));
    assert!(failed[0].next_attempt_at <= now_ms(), "the retry is due");
    let circuit = store.circuit("booking-service").await.unwrap();
    assert!(
        matches!(circuit.state, CircuitState::Open { .. }),
        "{circuit:?}"
    );
    assert!(matches!(
        worker.try_deliver_next().await.unwrap(),
        Dispatched::Held(CircuitState::Open { .. })
    ));
    assert_eq!(receiver.requests().len(), 4);

    // Closed again (what `payhook deliveries retry --target` does), the next step retries it.
    receiver.set_script(|_, _| Reply::status(200));
    store.reset_circuit("booking-service").await.unwrap();
    let retried = sent(worker.try_deliver_next().await.unwrap());
    assert_eq!(retried[0].status, DeliveryStatus::Delivered);
    assert_eq!(retried[0].attempts, 2);
    assert_eq!(deliveries_in(&store, "delivered").await, 4);
    store.close().await;
}

async fn deliveries_in(store: &payhook::store::Store, status: &str) -> usize {
    store
        .list_deliveries(None, DeliveryStatus::parse(status), None, 100)
        .await
        .unwrap()
        .len()
}

/// On PostgreSQL a dispatcher round's transaction commits without waiting for its WAL to reach
/// the disk (a crash of the server then sends a notification again, with its id), while a ledger
/// batch, which writes the notifications themselves, waits as every commit does by default.
#[tokio::test]
async fn on_postgresql_rounds_commit_without_waiting_for_the_disk_and_ledger_batches_wait() {
    let fresh = fresh_store().await;
    if !is_postgres(&fresh.url) {
        return skipped("PostgreSQL only: SQLite's rounds have a connection of their own");
    }
    let store = payhook::store::Store::connect(&fresh.url, payhook::domain::SqliteSync::Full)
        .await
        .unwrap();
    async fn setting(tx: payhook::store::WriteTx) -> String {
        let payhook::store::WriteTx::Postgres(mut tx) = tx else {
            unreachable!("a PostgreSQL store")
        };
        let value = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        value
    }
    assert_eq!(setting(store.begin_outbox().await.unwrap()).await, "off");
    assert_eq!(setting(store.begin_ledger().await.unwrap()).await, "on");
    // The setting was the round's alone: its connection, back in the pool, waits again.
    for _ in 0..4 {
        assert_eq!(setting(store.begin_ledger().await.unwrap()).await, "on");
    }
    store.close().await;
}
