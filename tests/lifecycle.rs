//! Stripe's payment lifecycle end to end (signed events over HTTP, the processor in the app, the
//! status route read back): refunds that fail, partial captures, sessions that take no money,
//! bookings paid twice, dispute inquiries, and a store written by the previous ledger model.
//! Runs on SQLite, or PostgreSQL with TEST_DATABASE_URL.

mod common;

use common::*;
use serde_json::Value;

fn adds(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn attention(data: &Value) -> Vec<&str> {
    data["attention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_refund_that_fails_gives_the_money_back_and_is_flagged() {
    let app = spawn_app().await;
    let pay = PaymentIds::new("booking-refund-fails");
    let t = now() - 100;
    let refund = format!("id={}", pay.refund);
    app.deliver_all(&[
        pay.event("payment_intent.succeeded", t, &[]),
        pay.event("charge.refunded", t + 10, &[]),
        pay.event(
            "refund.created",
            t + 10,
            &adds(&[&refund, "status=pending"]),
        ),
    ])
    .await;
    let data = app.payment_status("booking-refund-fails").await;
    assert_eq!(data["status"], "refunded");
    assert_eq!(data["amountRefunded"], 2000);

    // Stripe: refund.failed, then the refund's and the charge's updates, all saying `failed`.
    let failed = adds(&[&refund, "status=failed"]);
    app.deliver_all(&[
        pay.event("refund.failed", t + 60, &failed),
        pay.event("charge.refund.updated", t + 60, &failed),
        pay.event("refund.updated", t + 61, &failed),
    ])
    .await;
    let data = app.payment_status("booking-refund-fails").await;
    assert_eq!(data["status"], "succeeded", "{data}");
    assert_eq!(data["amountRefunded"], 0);
    assert_eq!(data["refunds"][0]["id"], pay.refund.as_str());
    assert_eq!(data["refunds"][0]["status"], "failed");
    assert_eq!(
        data["refunds"][0]["failure_reason"],
        "expired_or_canceled_card"
    );
    assert_eq!(attention(&data), ["refund_failed"]);
}

#[tokio::test]
async fn a_lower_refunded_total_reported_later_is_believed() {
    let app = spawn_app().await;
    let pay = PaymentIds::new("booking-newest-snapshot");
    let t = now() - 100;
    app.deliver_all(&[
        pay.event("payment_intent.succeeded", t, &[]),
        pay.event("charge.refunded", t + 20, &adds(&["amount_refunded=500"])),
        pay.event("charge.refunded", t + 10, &adds(&["amount_refunded=1500"])),
    ])
    .await;
    let data = app.payment_status("booking-newest-snapshot").await;
    assert_eq!(data["status"], "partially_refunded");
    assert_eq!(data["amountRefunded"], 500);
}

#[tokio::test]
async fn an_authorised_payment_is_not_paid_and_a_partial_capture_pays_what_was_captured() {
    let app = spawn_app().await;
    let pay = PaymentIds::new("booking-capture");
    let t = now() - 100;
    app.deliver_all(&[pay.event("payment_intent.amount_capturable_updated", t, &[])])
        .await;
    let data = app.payment_status("booking-capture").await;
    assert_eq!(data["status"], "authorized");
    assert_eq!(data["paidAt"], Value::Null);

    app.deliver_all(&[
        pay.event(
            "payment_intent.succeeded",
            t + 30,
            &adds(&["amount_received=1500"]),
        ),
        pay.event("charge.captured", t + 30, &adds(&["amount_captured=1500"])),
    ])
    .await;
    let data = app.payment_status("booking-capture").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(
        data["amount"], 1500,
        "the captured amount, not the authorised"
    );
    assert_eq!(data["amountCaptured"], 1500);
    assert_eq!(data["amountFormatted"], "15.00 EUR");

    // Refunding what was captured refunds the payment fully (in this API version the charge's
    // amount_refunded also counts the 500 the capture released: see the test below).
    app.deliver_all(&[pay.event(
        "charge.refunded",
        t + 60,
        &adds(&[
            "amount=2000",
            "amount_captured=1500",
            "amount_refunded=2000",
            "refunded=true",
        ]),
    )])
    .await;
    assert_eq!(
        app.payment_status("booking-capture").await["status"],
        "refunded"
    );
}

/// docs.stripe.com/changelog/basil/2025-03-31/remove-refund-from-partial-capture-and-payment-cancellation-flow:
/// before that version a partial capture released the rest with a Refund, counted in the
/// charge's `amount_refunded` and sent as `charge.refunded`; since, it is neither. In both, the
/// customer got back only what was refunded of the captured money.
#[tokio::test]
async fn a_partial_capture_releases_the_rest_without_refunding_it_in_every_api_version() {
    let app = spawn_app().await;
    for (version, booking, released) in [
        ("2024-06-20", "booking-pre-basil", 500),
        ("2025-03-31.basil", "booking-basil", 0),
    ] {
        let pay = PaymentIds::new(booking);
        let t = now() - 100;
        let versioned = |mut event: Value| {
            event["api_version"] = version.into();
            event
        };
        let snapshot = |at: i64, refunded: i64| {
            versioned(pay.event(
                "charge.refunded",
                at,
                &adds(&[
                    "amount=2000",
                    "amount_captured=1500",
                    &format!("amount_refunded={}", released + refunded),
                    "refunded=false",
                ]),
            ))
        };
        let mut events = vec![
            versioned(pay.event("payment_intent.amount_capturable_updated", t, &[])),
            versioned(pay.event(
                "payment_intent.succeeded",
                t + 30,
                &adds(&["amount_received=1500"]),
            )),
            versioned(pay.event(
                "charge.captured",
                t + 30,
                &adds(&["amount=2000", "amount_captured=1500"]),
            )),
        ];
        if released > 0 {
            events.push(snapshot(t + 31, 0));
        }
        app.deliver_all(&events).await;
        let data = app.payment_status(booking).await;
        assert_eq!(
            (&data["status"], &data["amountRefunded"]),
            (&serde_json::json!("succeeded"), &serde_json::json!(0)),
            "{version}: {data}"
        );
        // The merchant refunds 400 of the 1500 captured.
        app.deliver_all(&[snapshot(t + 60, 400)]).await;
        let data = app.payment_status(booking).await;
        assert_eq!(
            (&data["status"], &data["amountRefunded"]),
            (
                &serde_json::json!("partially_refunded"),
                &serde_json::json!(400)
            ),
            "{version}: {data}"
        );
    }
}

#[tokio::test]
async fn an_authorisation_that_lapses_ends_canceled() {
    let app = spawn_app().await;
    let pay = PaymentIds::new("booking-lapsed");
    let t = now() - 100;
    app.deliver_all(&[
        pay.event("charge.expired", t + 50, &[]),
        pay.event("payment_intent.amount_capturable_updated", t, &[]),
    ])
    .await;
    let data = app.payment_status("booking-lapsed").await;
    assert_eq!(data["status"], "canceled");
    assert_eq!(data["amountRefunded"], 0, "no money was taken to give back");
}

#[tokio::test]
async fn a_session_that_takes_no_money_is_never_a_payment() {
    let app = spawn_app().await;
    let pay = PaymentIds::new("booking-setup");
    let setup = adds(&[
        "mode=setup",
        "payment_status=no_payment_required",
        "payment_intent=null",
        "amount_total=null",
    ]);
    // Completed, or left to expire (docs.stripe.com/payments/save-and-reuse: a setup session
    // saves a payment method and charges nothing): neither is a payment, neither tells the
    // booking service anything.
    let completed = pay.event("checkout.session.completed", now() - 10, &setup);
    let expired = pay.event("checkout.session.expired", now() - 5, &setup);
    app.deliver_all(&[completed.clone(), expired.clone()]).await;
    for event in [&completed, &expired] {
        let row = app.settled(event["id"].as_str().unwrap()).await;
        assert_eq!(row.status, "ignored");
        assert!(
            row.last_error
                .unwrap_or_default()
                .contains("takes no payment"),
            "the reason is kept"
        );
    }
    let answer = app
        .get("/api/v1/payments/booking-setup/status", Some(SERVICE_TOKEN))
        .await;
    assert_eq!(answer.status, 404, "{}", answer.json);
}

#[tokio::test]
async fn a_booking_paid_twice_flags_the_duplicate_and_stays_confirmed_once_it_is_refunded() {
    let app = spawn_app().await;
    let first = PaymentIds::new("booking-twice");
    let second = PaymentIds::new("booking-twice");
    let t = now() - 100;
    // The duplicate's success arrives first: which one is the duplicate is decided by the
    // provider's payment times, not by arrival.
    app.deliver_all(&[
        second.event("payment_intent.succeeded", t + 30, &[]),
        first.event("payment_intent.succeeded", t, &[]),
    ])
    .await;
    let data = app.payment_status("booking-twice").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["paymentIntentId"], first.intent.as_str());
    assert_eq!(attention(&data), ["duplicate"]);
    let payments = data["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 2);
    let duplicate: Vec<&str> = payments
        .iter()
        .filter(|p| p["duplicate"] == true)
        .map(|p| p["paymentIntentId"].as_str().unwrap())
        .collect();
    assert_eq!(duplicate, [second.intent.as_str()]);

    app.deliver_all(&[second.event("charge.refunded", t + 60, &[])])
        .await;
    let data = app.payment_status("booking-twice").await;
    assert_eq!(
        data["status"], "succeeded",
        "still paid by the first: {data}"
    );
    assert_eq!(data["paymentIntentId"], first.intent.as_str());
}

#[tokio::test]
async fn a_dispute_inquiry_moves_no_money_and_funds_follow_the_dispute() {
    let app = spawn_app().await;
    let pay = PaymentIds::new("booking-inquiry");
    let t = now() - 100;
    app.deliver_all(&[
        pay.event("payment_intent.succeeded", t, &[]),
        pay.event(
            "charge.dispute.created",
            t + 10,
            &adds(&["status=warning_needs_response"]),
        ),
    ])
    .await;
    let data = app.payment_status("booking-inquiry").await;
    assert_eq!(
        data["status"], "succeeded",
        "an inquiry is not a chargeback"
    );
    assert_eq!(data["disputes"][0]["inquiry"], true);
    assert_eq!(data["amountDisputed"], 0);

    // Escalated to a chargeback: the funds are withdrawn; then won: reinstated.
    app.deliver_all(&[
        pay.event("charge.dispute.funds_withdrawn", t + 20, &[]),
        pay.event("charge.dispute.updated", t + 20, &[]),
    ])
    .await;
    let data = app.payment_status("booking-inquiry").await;
    assert_eq!(data["status"], "disputed");
    assert_eq!(data["amountDisputed"], 2000);
    app.deliver_all(&[pay.event("charge.dispute.funds_reinstated", t + 40, &[])])
        .await;
    let data = app.payment_status("booking-inquiry").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["amountDisputed"], 0);
    assert_eq!(data["disputes"][0]["status"], "won");
}

#[tokio::test]
async fn a_store_of_the_previous_model_is_derived_again_on_start() {
    let app = spawn_app().await;
    let pay = PaymentIds::new("booking-upgrade");
    let t = now() - 100;
    let refund = format!("id={}", pay.refund);
    let failed = pay.event("refund.failed", t + 60, &adds(&[&refund, "status=failed"]));
    app.deliver_all(&[
        pay.event("payment_intent.succeeded", t, &[]),
        pay.event("charge.refunded", t + 10, &adds(&["amount_refunded=800"])),
        pay.event("charge.refunded", t + 20, &adds(&["amount_refunded=300"])),
        failed.clone(),
    ])
    .await;
    // What the previous model left: the refund failure ignored, the largest total kept, the
    // facts as it wrote them, no model recorded.
    let failed_id = failed["id"].as_str().unwrap();
    app.execute(&[
        format!("UPDATE webhook_events SET status = 'ignored' WHERE event_id = '{failed_id}'"),
        format!("DELETE FROM payment_facts WHERE event_id = '{failed_id}'"),
        "UPDATE payment_facts SET fact = REPLACE(fact, '\"amount_refunded\":300', '\"amount_refunded\":0')"
            .to_string(),
        "UPDATE payments SET status = 'partially_refunded', amount_refunded = 800, detail = NULL"
            .to_string(),
        "DELETE FROM payhook_settings WHERE name = 'ledger_model'".to_string(),
    ])
    .await;
    let url = app.store.url.clone();
    let settings = test_settings(&url);
    app.payhook.shutdown().await.unwrap();
    let restarted = payhook::app::Payhook::start(settings).await.unwrap();
    let client = payhook::net::client_builder().build().unwrap();
    let status = |client: reqwest::Client| {
        let url = format!(
            "http://{}/api/v1/payments/booking-upgrade/status",
            restarted.public_addr
        );
        async move {
            client
                .get(url)
                .bearer_auth(SERVICE_TOKEN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()["data"]
                .clone()
        }
    };
    // The newest snapshot (300), read again from its payload, not the largest (800); and the
    // failed refund, put back in line, is applied by the processor.
    let mut data = status(client.clone()).await;
    for _ in 0..100 {
        if data["refunds"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        data = status(client.clone()).await;
    }
    assert_eq!(data["amountRefunded"], 300, "{data}");
    assert_eq!(data["status"], "partially_refunded");
    assert_eq!(data["refunds"][0]["status"], "failed", "{data}");
    assert_eq!(attention(&data), ["refund_failed"]);
}
