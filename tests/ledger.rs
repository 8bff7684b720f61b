//! The payment ledger end to end: signed events over HTTP, the processor running in the app, the
//! status read back the way the booking service and the return page read it. Runs on SQLite, or
//! PostgreSQL with TEST_DATABASE_URL.

mod common;

use common::*;
use payhook::store::Claim;
use serde_json::{Value, json};

fn adds(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_successful_payment_reads_back_as_succeeded_on_both_routes() {
    let app = spawn_app().await;
    let pay = PaymentIds::new("booking-ok");
    let t = now() - 100;
    let completed = pay.event("checkout.session.completed", t, &[]);
    let succeeded = pay.event("payment_intent.succeeded", t + 1, &[]);
    app.deliver_all(&[completed.clone(), succeeded.clone()])
        .await;

    for event in [&completed, &succeeded] {
        let row = app.settled(event["id"].as_str().unwrap()).await;
        assert_eq!(row.status, "processed");
    }
    let data = app.payment_status("booking-ok").await;
    assert_eq!(data["bookingId"], "booking-ok");
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["amount"], 2000);
    assert_eq!(data["currency"], "eur");
    assert_eq!(data["amountFormatted"], "20.00 EUR");
    assert_eq!(data["paymentIntentId"], pay.intent.as_str());
    assert_eq!(data["checkoutSessionId"], pay.session.as_str());
    // The earliest success the provider reported, not the time payhook processed it.
    let paid_at = chrono::DateTime::from_timestamp(t, 0).unwrap();
    assert_eq!(
        data["paidAt"],
        paid_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );

    let session = app.checkout_session(&pay.session).await;
    assert_eq!(session.status, 200, "{}", session.json);
    assert_eq!(
        session.json,
        json!({
            "session_id": pay.session, "booking_id": "booking-ok", "status": "complete",
            "payment_status": "paid", "amount": 2000, "currency": "eur",
            "amount_formatted": "20.00 EUR", "paid_at": data["paidAt"],
            "verified_by": "webhook",
        })
    );
    assert_eq!(app.rows("payments").await, 1, "both events on one payment");
}

#[tokio::test]
async fn a_failed_attempt_then_a_retry_by_the_customer_ends_succeeded() {
    let app = spawn_app().await;
    let pay = PaymentIds::new("booking-retry");
    let t = now() - 100;
    app.deliver_all(&[pay.event("payment_intent.payment_failed", t, &[])])
        .await;
    let data = app.payment_status("booking-retry").await;
    assert_eq!(data["status"], "failed");
    assert_eq!(data["failureCode"], "generic_decline");
    assert_eq!(data["failureMessage"], "Your card was declined.");
    assert_eq!(data["paidAt"], Value::Null);

    app.deliver_all(&[
        pay.event("payment_intent.processing", t + 5, &[]),
        pay.event("payment_intent.succeeded", t + 10, &[]),
    ])
    .await;
    let data = app.payment_status("booking-retry").await;
    assert_eq!(data["status"], "succeeded");

    // A failure that arrives late (or is an old attempt re-sent) does not undo the success.
    app.deliver_all(&[pay.event("payment_intent.payment_failed", t + 20, &[])])
        .await;
    assert_eq!(
        app.payment_status("booking-retry").await["status"],
        "succeeded"
    );
}

#[tokio::test]
async fn partial_then_full_refunds_count_the_running_total_once() {
    let app = spawn_app().await;
    let pay = PaymentIds::new("booking-refund");
    let t = now() - 100;
    let partial = pay.event("charge.refunded", t + 10, &adds(&["amount_refunded=500"]));
    app.deliver_all(&[
        pay.event("payment_intent.succeeded", t, &[]),
        partial.clone(),
    ])
    .await;
    let data = app.payment_status("booking-refund").await;
    assert_eq!(data["status"], "partially_refunded");
    assert_eq!(data["amountRefunded"], 500);

    // The same partial refund reported again under a new event id is not added a second time.
    let again = pay.event("charge.refunded", t + 11, &adds(&["amount_refunded=500"]));
    app.deliver_all(&[again]).await;
    assert_eq!(
        app.payment_status("booking-refund").await["amountRefunded"],
        500
    );
    // A second partial refund: Stripe reports the charge's total refunded so far.
    app.deliver_all(&[pay.event("charge.refunded", t + 20, &adds(&["amount_refunded=1200"]))])
        .await;
    assert_eq!(
        app.payment_status("booking-refund").await["amountRefunded"],
        1200
    );

    app.deliver_all(&[pay.event("charge.refunded", t + 30, &[])])
        .await;
    let data = app.payment_status("booking-refund").await;
    assert_eq!(data["status"], "refunded");
    assert_eq!(data["amountRefunded"], 2000);
    assert!(data["refundedAt"].is_string());

    // The first partial refund's webhook retried by the provider: a duplicate, nothing changes.
    let answer = app.send(&partial.to_string()).await;
    assert_eq!(answer.json["duplicate"], true);
    assert_eq!(
        app.payment_status("booking-refund").await["status"],
        "refunded"
    );
}

#[tokio::test]
async fn a_refund_that_arrives_before_the_success_still_ends_refunded() {
    let app = spawn_app().await;
    let pay = PaymentIds::new("booking-early-refund");
    let t = now() - 100;
    app.deliver_all(&[
        pay.event("charge.refunded", t + 30, &[]),
        pay.event("checkout.session.completed", t + 1, &[]),
        pay.event("payment_intent.succeeded", t, &[]),
    ])
    .await;
    let data = app.payment_status("booking-early-refund").await;
    assert_eq!(data["status"], "refunded");
    assert_eq!(data["amountRefunded"], 2000);
    assert_eq!(app.rows("payments").await, 1);
}

#[tokio::test]
async fn disputes_are_held_until_closed_and_the_outcome_is_kept() {
    let app = spawn_app().await;
    for (booking, outcome, status) in [
        ("booking-won", "won", "succeeded"),
        ("booking-lost", "lost", "disputed"),
    ] {
        let pay = PaymentIds::new(booking);
        let t = now() - 100;
        app.deliver_all(&[
            pay.event("payment_intent.succeeded", t, &[]),
            pay.event("charge.dispute.created", t + 10, &[]),
        ])
        .await;
        let data = app.payment_status(booking).await;
        assert_eq!(data["status"], "disputed");
        assert_eq!(data["disputeStatus"], "needs_response");
        assert_eq!(data["disputeReason"], "fraudulent");

        app.deliver_all(&[pay.event(
            "charge.dispute.closed",
            t + 20,
            &adds(&[&format!("status={outcome}")]),
        )])
        .await;
        let data = app.payment_status(booking).await;
        assert_eq!(data["status"], status, "{booking}");
        assert_eq!(data["disputeStatus"], outcome);
    }
}

#[tokio::test]
async fn an_expired_checkout_never_cancels_a_paid_payment() {
    let app = spawn_app().await;
    let pay = PaymentIds::new("booking-expiry");
    let t = now() - 100;
    app.deliver_all(&[
        pay.event("checkout.session.completed", t, &[]),
        pay.event("checkout.session.expired", t + 60, &[]),
    ])
    .await;
    let session = app.checkout_session(&pay.session).await;
    assert_eq!(session.json["status"], "complete");
    assert_eq!(session.json["payment_status"], "paid");
    assert_eq!(
        app.payment_status("booking-expiry").await["status"],
        "succeeded"
    );

    // A session nobody paid: expired, and the booking reads expired.
    let unpaid = PaymentIds::new("booking-abandoned");
    app.deliver_all(&[unpaid.event("checkout.session.expired", t, &[])])
        .await;
    let session = app.checkout_session(&unpaid.session).await;
    assert_eq!(session.json["status"], "expired");
    assert_eq!(session.json["payment_status"], "unpaid");
    assert_eq!(session.json["paid_at"], Value::Null);
    assert_eq!(
        app.payment_status("booking-abandoned").await["status"],
        "expired"
    );
}

#[tokio::test]
async fn a_booking_that_paid_through_a_second_session_reads_paid() {
    let app = spawn_app().await;
    let first = PaymentIds::new("booking-two-sessions");
    let second = PaymentIds::new("booking-two-sessions");
    let t = now() - 100;
    app.deliver_all(&[
        second.event("checkout.session.completed", t + 50, &[]),
        first.event("checkout.session.expired", t + 60, &[]),
    ])
    .await;
    assert_eq!(
        app.payment_status("booking-two-sessions").await["checkoutSessionId"],
        second.session.as_str()
    );
    assert_eq!(app.rows("payments").await, 2);
}

#[tokio::test]
async fn async_payment_methods_go_through_processing() {
    let app = spawn_app().await;
    let pay = PaymentIds::new("booking-sepa");
    let t = now() - 100;
    app.deliver_all(&[pay.event(
        "checkout.session.completed",
        t,
        &adds(&["payment_status=unpaid"]),
    )])
    .await;
    assert_eq!(
        app.payment_status("booking-sepa").await["status"],
        "processing"
    );
    app.deliver_all(&[pay.event("checkout.session.async_payment_failed", t + 10, &[])])
        .await;
    assert_eq!(app.payment_status("booking-sepa").await["status"], "failed");

    let ok = PaymentIds::new("booking-sepa-ok");
    app.deliver_all(&[
        ok.event("checkout.session.async_payment_succeeded", t + 10, &[]),
        ok.event(
            "checkout.session.completed",
            t,
            &adds(&["payment_status=unpaid"]),
        ),
    ])
    .await;
    assert_eq!(
        app.payment_status("booking-sepa-ok").await["status"],
        "succeeded"
    );
}

#[tokio::test]
async fn a_canceled_intent_reads_canceled() {
    let app = spawn_app().await;
    let pay = PaymentIds::new("booking-cancel");
    app.deliver_all(&[pay.event("payment_intent.canceled", now(), &[])])
        .await;
    assert_eq!(
        app.payment_status("booking-cancel").await["status"],
        "canceled"
    );
}

#[tokio::test]
async fn zero_decimal_currencies_are_whole_units() {
    let app = spawn_app().await;
    for (booking, amount, currency, shown) in [
        ("booking-jpy", 1000, "jpy", "1000 JPY"),
        ("booking-xof", 15000, "xof", "15000 XOF"),
        ("booking-krw", 50000, "krw", "50000 KRW"),
        ("booking-kwd", 1250, "kwd", "1.250 KWD"),
    ] {
        let pay = PaymentIds::new(booking);
        let extra = adds(&[&format!("amount={amount}"), &format!("currency={currency}")]);
        app.deliver_all(&[pay.event("payment_intent.succeeded", now(), &extra)])
            .await;
        let data = app.payment_status(booking).await;
        assert_eq!(data["amount"], amount);
        assert_eq!(data["currency"], currency);
        assert_eq!(data["amountFormatted"], shown);
    }
}

#[tokio::test]
async fn types_payhook_does_not_act_on_are_stored_and_ignored() {
    let app = spawn_app().await;
    let body = json!({
        "id": "evt_customer_1", "object": "event", "type": "customer.created", "created": now(),
        "data": { "object": { "id": "cus_1", "object": "customer" } }
    });
    let answer = app.send(&body.to_string()).await;
    assert_eq!(answer.status, 200);
    let row = app.settled("evt_customer_1").await;
    assert_eq!(row.status, "ignored");
    assert_eq!(app.rows("payments").await, 0);
}

#[tokio::test]
async fn an_acted_on_event_without_ids_fails_at_once_with_the_reason() {
    let app = spawn_app().await;
    let body = json!({
        "id": "evt_no_ids", "object": "event", "type": "payment_intent.succeeded", "created": now(),
        "data": { "object": { "object": "payment_intent", "amount": 2000 } }
    });
    app.deliver(&body).await;
    let row = app.settled("evt_no_ids").await;
    assert_eq!(row.status, "failed");
    let listed = app
        .payhook
        .store
        .list_events(
            &payhook::store::EventFilter::status(payhook::domain::status::EventStatus::Failed),
            10,
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].attempts, 1);
    assert!(
        listed[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("names no payment intent"),
        "{listed:?}"
    );
}

#[tokio::test]
async fn the_status_route_needs_the_service_token_and_a_known_booking() {
    let app = spawn_app().await;
    let path = "/api/v1/payments/booking-x/status";
    for bearer in [None, Some("wrong-token")] {
        let answer = app.get(path, bearer).await;
        assert_eq!(answer.status, 401, "{bearer:?}");
        assert_eq!(answer.code(), "unauthorized");
        assert_eq!(answer.json["success"], false);
        assert!(!answer.json.to_string().contains(SERVICE_TOKEN));
    }
    let answer = app.get(path, Some(SERVICE_TOKEN)).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.code(), "payment_not_found");
    assert_eq!(answer.json["success"], false);

    let answer = app.checkout_session("cs_unknown").await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.code(), "session_not_found");

    // Without INTERNAL_SERVICE_TOKEN configured the route stays closed.
    let closed = spawn_app_with(|s| s.internal_service_token = None).await;
    let answer = closed.get(path, Some(SERVICE_TOKEN)).await;
    assert_eq!(answer.status, 401);
    assert!(
        answer.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("INTERNAL_SERVICE_TOKEN is not set")
    );
}

#[tokio::test]
async fn a_store_failure_mid_transaction_leaves_the_ledger_unchanged_and_replay_applies_once() {
    let app = spawn_app_with(|s| {
        s.processor.max_attempts = 2;
        s.processor.retry_initial = std::time::Duration::from_millis(50);
    })
    .await;
    let pay = PaymentIds::new("booking-broken");
    let t = now() - 100;
    app.deliver_all(&[pay.event("payment_intent.succeeded", t, &[])])
        .await;
    let facts_before = app.rows("payment_facts").await;

    // Facts cannot be written: the payment's row would be updated in the same transaction.
    app.break_writes("payment_facts", true).await;
    let refund = pay.event("charge.refunded", t + 10, &[]);
    let refund_id = refund["id"].as_str().unwrap().to_string();
    app.deliver(&refund).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let failed = loop {
        let failed = app
            .payhook
            .store
            .list_events(
                &payhook::store::EventFilter::status(payhook::domain::status::EventStatus::Failed),
                10,
            )
            .await
            .unwrap();
        if !failed.is_empty() || std::time::Instant::now() > deadline {
            break failed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        failed.len(),
        1,
        "retried then left failed: {:?}",
        app.payhook
            .store
            .list_events(&Default::default(), 10)
            .await
            .unwrap()
    );
    assert_eq!(failed[0].event_id, refund_id);
    assert_eq!(failed[0].attempts, 2);
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("simulated store failure"),
        "{failed:?}"
    );
    assert_eq!(app.rows("payment_facts").await, facts_before);
    let data = app.payment_status("booking-broken").await;
    assert_eq!(data["status"], "succeeded", "the ledger did not move");
    assert_eq!(data["amountRefunded"], 0);

    // The cause is gone: a replay applies the event, and a second replay changes nothing.
    app.break_writes("payment_facts", false).await;
    for _ in 0..2 {
        let store = &app.payhook.store;
        assert!(store.requeue_event(failed[0].id).await.unwrap());
        // The background worker may take it first; either way it is applied once.
        let _ = app
            .payhook
            .processor
            .try_process(Claim::Id(failed[0].id))
            .await;
        assert_eq!(app.settled(&refund_id).await.status, "processed");
    }
    assert_eq!(app.rows("payment_facts").await, facts_before + 1);
    let data = app.payment_status("booking-broken").await;
    assert_eq!(data["status"], "refunded");
    assert_eq!(data["amountRefunded"], 2000);
}

#[tokio::test]
async fn concurrent_processors_apply_each_event_exactly_once() {
    use std::sync::Arc;

    use payhook::store::{NewEvent, PaymentKey};

    let fresh = fresh_store().await;
    let settings = test_settings(&fresh.url);
    let store = Arc::new(payhook::app::open_store(&settings).await.unwrap());
    let t = now() - 1000;
    let mut events = Vec::new();
    let payments: Vec<PaymentIds> = (0..20)
        .map(|i| PaymentIds::new(&format!("booking-concurrent-{i}")))
        .collect();
    for pay in &payments {
        events.extend([
            pay.event("checkout.session.completed", t, &[]),
            pay.event("payment_intent.succeeded", t + 1, &[]),
            pay.event("charge.refunded", t + 2, &adds(&["amount_refunded=500"])),
            pay.event("charge.refunded", t + 3, &adds(&["amount_refunded=1000"])),
            pay.event("charge.dispute.created", t + 4, &[]),
            pay.event("charge.dispute.closed", t + 5, &adds(&["status=won"])),
        ]);
    }
    // Newest first, so every payment's events arrive out of order.
    events.reverse();
    let batch: Vec<NewEvent> = events
        .iter()
        .map(|e| NewEvent {
            source: "stripe".into(),
            event_id: e["id"].as_str().unwrap().into(),
            event_type: e["type"].as_str().unwrap().into(),
            payload: e.to_string().into(),
            headers: "{}".into(),
            received_at: chrono::Utc::now(),
            trace_context: None,
        })
        .collect();
    store.insert_events(&batch).await.unwrap();

    // Four workers on one store, as four instances would run.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let processor = payhook::ledger::Processor::new(
                store.clone(),
                settings.processor.clone(),
                Default::default(),
            );
            tokio::spawn(async move { processor.drain().await.unwrap() })
        })
        .collect();
    let mut handled = 0;
    for worker in workers {
        handled += worker.await.unwrap();
    }
    assert_eq!(handled, events.len(), "each event handled by one worker");
    let listed = store.list_events(&Default::default(), 1000).await.unwrap();
    for e in &listed {
        assert_eq!((e.status.as_str(), e.attempts), ("processed", 1), "{e:?}");
    }
    for pay in &payments {
        let found: Vec<_> = store
            .payments_where(PaymentKey::Booking, &pay.booking)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{}", pay.booking);
        let s = &found[0].state;
        assert_eq!(s.status.as_str(), "partially_refunded");
        assert_eq!(s.amount_refunded, 1000);
        assert_eq!(s.dispute_outcome.as_deref(), Some("won"));
    }
}

/// The largest batch `ingest.batch_max` allows is one commit on either store: every event new,
/// stored byte for byte with its receipt time, and one already stored reported as a duplicate.
#[tokio::test]
async fn the_largest_inbox_batch_is_stored_in_one_commit() {
    use payhook::store::NewEvent;

    let fresh = fresh_store().await;
    let settings = test_settings(&fresh.url);
    let store = payhook::app::open_store(&settings).await.unwrap();
    let received_at = chrono::DateTime::parse_from_rfc3339("2026-11-23T05:53:05.1Z")
        .unwrap()
        .to_utc();
    let event = |n: usize| NewEvent {
        source: "stripe".into(),
        event_id: format!("evt_largest_{n}"),
        event_type: "payment_intent.succeeded".into(),
        payload: format!(r#"{{"id":"evt_largest_{n}","note":"caf\u00e9 \"{n}\""}}"#).into(),
        headers: r#"{"content-type":"application/json"}"#.into(),
        received_at,
        trace_context: None,
    };
    assert_eq!(store.insert_events(&[event(7)]).await.unwrap(), [true]);

    let limit = payhook::config::BATCH_MAX_LIMIT;
    let batch: Vec<NewEvent> = (0..limit).map(event).collect();
    let new = store.insert_events(&batch).await.unwrap();
    assert_eq!(new.iter().filter(|n| **n).count(), limit - 1);
    assert!(!new[7], "evt_largest_7 was already stored");

    // Stored and new events mixed in one batch, and an id already stored for another source: each
    // answered for itself.
    let mixed = [
        event(limit),
        event(3),
        NewEvent {
            source: "sandbox".into(),
            ..event(5)
        },
        event(5),
        event(limit + 1),
    ];
    assert_eq!(
        store.insert_events(&mixed).await.unwrap(),
        [true, false, true, false, true]
    );
    assert_eq!(
        store
            .insert_events(&[event(3), event(limit)])
            .await
            .unwrap(),
        [false, false]
    );

    for n in [0, 7, limit - 1] {
        let stored = store
            .event("stripe", &format!("evt_largest_{n}"))
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(
            stored.payload,
            batch[n].payload.as_ref(),
            "event {n}'s bytes"
        );
        assert_eq!(stored.received_at, received_at);
    }
}

/// PostgreSQL, several instances: an event another instance stored (here, a second connection
/// writing to the inbox as an instance's writer does) wakes this instance's processor through
/// `LISTEN`/`NOTIFY` at once, not at its next idle poll (5 s).
#[tokio::test]
async fn on_postgres_an_event_another_instance_stores_wakes_this_processor_at_once() {
    let app = spawn_app().await;
    if !is_postgres(&app.store.url) {
        skipped("LISTEN/NOTIFY is PostgreSQL's");
        return;
    }
    // Let the processor go idle (it polled at start-up).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let other = payhook::store::Store::connect(&app.store.url, payhook::domain::SqliteSync::Full)
        .await
        .unwrap();
    let event = PaymentIds::new("booking-woken").event("payment_intent.succeeded", now(), &[]);
    let stored = other
        .insert_events(&[payhook::store::NewEvent {
            source: "stripe".into(),
            event_id: event["id"].as_str().unwrap().into(),
            event_type: "payment_intent.succeeded".into(),
            payload: event.to_string().into(),
            headers: "{}".into(),
            received_at: chrono::Utc::now(),
            trace_context: None,
        }])
        .await
        .unwrap();
    assert_eq!(stored, [true]);
    let started = std::time::Instant::now();
    common::receiver::eventually(
        std::time::Duration::from_secs(10),
        "the event applied",
        || async {
            let answer = app
                .get("/api/v1/payments/booking-woken/status", Some(SERVICE_TOKEN))
                .await;
            answer.status == 200 && answer.json["data"]["status"] == "succeeded"
        },
    )
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "applied after {:?}: woken by the idle poll, not by the announcement",
        started.elapsed()
    );
}

/// A fresh PostgreSQL store is analyzed while it fills, before autovacuum's first look (once a
/// minute): without statistics the ledger's look-ups and the dispatcher's claim were planned as
/// scans of whole tables, and notifications fell seconds behind. Each table the ledger and the
/// dispatcher look rows up in is analyzed by payhook (`last_analyze`, which autovacuum does not
/// set) on the columns they look up by.
#[tokio::test]
async fn a_filling_postgres_store_is_analyzed_before_autovacuum_looks() {
    let app = spawn_app().await;
    if !is_postgres(&app.store.url) {
        skipped("PostgreSQL only: SQLite plans without statistics");
        return;
    }
    let rows = "FROM generate_series(1, 1000) AS n";
    app.execute(&[
        format!(
            "INSERT INTO webhook_events (source, event_id, event_type, payload, headers, \
             received_at, status) SELECT 'stripe', 'evt_' || n, 'charge.updated', '\\x7b7d', \
             '{{}}', now(), 'ignored' {rows}"
        ),
        format!(
            "INSERT INTO payments (id, source, status, booking_id, created_at, updated_at) \
             SELECT n, 'stripe', 'pending', 'booking-' || n, now(), now() {rows}"
        ),
        format!(
            "INSERT INTO payment_refs (source, ref, payment_id) SELECT 'stripe', 'pi_' || n, n {rows}"
        ),
        format!(
            "INSERT INTO payment_facts (payment_id, source, event_id, occurred_at, fact) \
             SELECT n, 'stripe', 'evt_' || n, n, '{{}}' {rows}"
        ),
        format!(
            "INSERT INTO deliveries (notification_id, target, order_key, event, payload, status, \
             next_attempt_at, created_at) SELECT 'ntf_' || n, 'gone', 'booking-' || n, \
             'confirmed', '{{}}', 'delivered', 0, now() {rows}"
        ),
        "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, latency_ms, outcome) \
         SELECT id, 1, 0, 1, 'delivered' FROM deliveries"
            .to_string(),
    ])
    .await;
    let tables = [
        ("webhook_events", "status"),
        ("payments", "booking_id"),
        ("payment_refs", "ref"),
        ("payment_facts", "payment_id"),
        ("deliveries", "order_key"),
        ("delivery_attempts", "delivery_id"),
    ];
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&app.store.url)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let analyzed: Vec<(String, String)> = sqlx::query_as(
            "SELECT s.relname::text, p.attname::text FROM pg_stat_user_tables s
             JOIN pg_stats p ON p.schemaname = s.schemaname AND p.tablename = s.relname
             WHERE s.last_analyze IS NOT NULL",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let missing: Vec<_> = tables
            .iter()
            .filter(|(t, c)| !analyzed.iter().any(|(at, ac)| at == t && ac == c))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not analyzed within 30 s: {missing:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// On SQLite a ledger batch commits its ledger changes, then marks its events in the inbox's own
/// file: payhook dying between the two commits leaves the events `received`, and they are applied
/// again on restart. That must change nothing: no second payment, fact or notification.
#[tokio::test]
async fn events_applied_again_after_their_marks_were_lost_change_nothing() {
    let app = spawn_app_with(|s| {
        // Nothing listens there: notifications are written, and stay pending.
        s.targets =
            vec![payhook::config::booking_service_target("http://127.0.0.1:9/", None).unwrap()];
    })
    .await;
    let pay = PaymentIds::new("booking-marks-lost");
    let t = now() - 100;
    let events = [
        pay.event("checkout.session.completed", t, &[]),
        pay.event("payment_intent.succeeded", t + 1, &[]),
        pay.event("charge.refunded", t + 2, &["amount_refunded=500".into()]),
    ];
    app.deliver_all(&events).await;
    let tables = ["payments", "payment_refs", "payment_facts", "deliveries"];
    let mut before = Vec::new();
    for table in tables {
        before.push(app.rows(table).await);
    }
    let status = app.payment_status("booking-marks-lost").await;
    assert!(before[3] > 0, "the payment was notified");

    app.execute(&["UPDATE webhook_events SET status = 'received', processed_at = NULL".into()])
        .await;
    // Any new webhook wakes the processor, which finds the three again (this one is ignored).
    let wake = json!({
        "id": "evt_customer_wake", "object": "event", "type": "customer.created", "created": t,
        "data": { "object": { "id": "cus_1", "object": "customer" } }
    });
    app.deliver(&wake).await;
    for event in &events {
        let row = app.settled(event["id"].as_str().unwrap()).await;
        assert_eq!(row.status, "processed");
    }
    let mut after = Vec::new();
    for table in tables {
        after.push(app.rows(table).await);
    }
    assert_eq!(after, before, "{tables:?}");
    assert_eq!(app.payment_status("booking-marks-lost").await, status);
}
