//! Presets of the providers teams take cards and direct debits with worldwide (Adyen, GoCardless,
//! Paddle, Checkout.com, Lemon Squeezy), end to end, configured in `payhook.toml` as a user would:
//! each takes a payment from the provider's notification to the booking service's `confirmed`,
//! and refuses tampered, unsigned and wrongly signed requests with their codes. Signatures here
//! are computed from the providers' documented schemes, not with payhook's code. On SQLite or
//! PostgreSQL (`TEST_DATABASE_URL`).

mod common;

use std::sync::atomic::Ordering;

use base64::Engine;
use common::providers::*;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

/// HMAC-SHA256 of `parts` with `key`.
fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// What payhook answered: status, the body as text, and as JSON when it is.
struct Reply {
    status: u16,
    text: String,
    json: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

/// POSTs `body` to `/webhooks/{source}` with `headers`.
async fn post(app: &TestApp, source: &str, body: &str, headers: &[(&str, String)]) -> Reply {
    let mut request = app
        .client
        .post(format!("{}/webhooks/{source}", app.base))
        .header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    let response = request.body(body.to_string()).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, text, json }
}

// --- Adyen ---------------------------------------------------------------------------------

/// The HMAC key of the official SDK's tests (hex, as the Customer Area shows it).
const ADYEN_KEY: &str = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";

fn adyen_source() -> String {
    format!("[[sources]]\nname = \"adyen\"\nkind = \"adyen\"\nsecrets = [\"{ADYEN_KEY}\"]\n")
}

/// A `NotificationRequestItem`, signed as Adyen documents it with `key` (hex).
fn adyen_item(
    key: &str,
    psp: &str,
    original: Option<&str>,
    event: &str,
    success: &str,
    value: i64,
    booking: &str,
) -> Value {
    let signed = [
        psp,
        original.unwrap_or(""),
        "HotelCoECOM",
        booking,
        &value.to_string(),
        "EUR",
        event,
        success,
    ]
    .join(":");
    let signature = base64::engine::general_purpose::STANDARD
        .encode(hmac(&hex::decode(key).unwrap(), &[signed.as_bytes()]));
    let mut item = json!({
        "pspReference": psp, "merchantAccountCode": "HotelCoECOM", "merchantReference": booking,
        "amount": {"value": value, "currency": "EUR"}, "eventCode": event, "success": success,
        "eventDate": "2026-01-02T10:00:00+01:00", "paymentMethod": "visa", "reason": "",
        "additionalData": {"hmacSignature": signature},
    });
    if let Some(original) = original {
        item["originalReference"] = json!(original);
    }
    json!({ "NotificationRequestItem": item })
}

fn adyen_batch(items: &[Value]) -> String {
    json!({"live": "false", "notificationItems": items}).to_string()
}

#[tokio::test]
async fn adyen_batch_is_verified_item_by_item_and_confirms_the_booking() {
    let (app, service) = app_with_sources(&adyen_source()).await;
    service.create("bk_adyen", Some(11900), Some("EUR"), "pending");
    service.create("bk_adyen_declined", Some(5000), Some("EUR"), "pending");
    let body = adyen_batch(&[
        adyen_item(
            ADYEN_KEY,
            "QFQTPCQ8HXSKGK82",
            None,
            "AUTHORISATION",
            "true",
            11900,
            "bk_adyen",
        ),
        adyen_item(
            ADYEN_KEY,
            "V4HZ4RBFJGXXGN82",
            None,
            "AUTHORISATION",
            "false",
            5000,
            "bk_adyen_declined",
        ),
    ]);
    let reply = post(&app, "adyen", &body, &[]).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "[accepted]"));
    booking_is(&service, "bk_adyen", "confirmed").await;
    let data = app.payment_status("bk_adyen").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["amount"], 11900);
    assert_eq!(data["currency"], "eur");
    settled_row(
        &app,
        "adyen",
        "V4HZ4RBFJGXXGN82:AUTHORISATION:false",
        "processed",
    )
    .await;
    assert_eq!(
        app.payment_status("bk_adyen_declined").await["status"],
        "failed"
    );
    assert_eq!(
        service.booking("bk_adyen_declined").unwrap().status,
        "pending"
    );

    // A refund names the payment in originalReference, and carries its own amount
    // (docs.adyen.com/online-payments/refund): two partial refunds add up to the whole.
    let refund = |psp: &str, value: i64| {
        adyen_batch(&[adyen_item(
            ADYEN_KEY,
            psp,
            Some("QFQTPCQ8HXSKGK82"),
            "REFUND",
            "true",
            value,
            "bk_adyen",
        )])
    };
    let reply = post(&app, "adyen", &refund("ZC4R4RBFJGXXGN82", 5000), &[]).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "[accepted]"));
    booking_is(&service, "bk_adyen", "partially_refunded").await;
    let data = app.payment_status("bk_adyen").await;
    assert_eq!(
        (data["status"].clone(), data["amountRefunded"].clone()),
        (json!("partially_refunded"), json!(5000))
    );
    let reply = post(&app, "adyen", &refund("ZC4R4RBFJGXXGN83", 6900), &[]).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "[accepted]"));
    booking_is(&service, "bk_adyen", "refunded").await;
    let data = app.payment_status("bk_adyen").await;
    assert_eq!(
        (data["status"].clone(), data["amountRefunded"].clone()),
        (json!("refunded"), json!(11900))
    );
    assert_eq!(app.rows("payments").await, 2);

    // Sent again, the batch is only duplicates: acknowledged, nothing new stored.
    let stored = app.rows("webhook_events").await;
    assert_eq!(stored, 4);
    let reply = post(&app, "adyen", &body, &[]).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "[accepted]"));
    assert_eq!(app.rows("webhook_events").await, stored);
}

#[tokio::test]
async fn adyen_batch_with_one_bad_item_is_refused_whole_and_nothing_is_stored() {
    let (app, service) = app_with_sources(&adyen_source()).await;
    service.create("bk_adyen_1", Some(100), Some("EUR"), "pending");
    let good = adyen_item(
        ADYEN_KEY,
        "P1",
        None,
        "AUTHORISATION",
        "true",
        100,
        "bk_adyen_1",
    );
    let mut tampered = adyen_item(ADYEN_KEY, "P2", None, "AUTHORISATION", "true", 100, "bk_x");
    tampered["NotificationRequestItem"]["amount"]["value"] = json!(1);
    let wrong_key = adyen_item(
        &"AB".repeat(32),
        "P3",
        None,
        "AUTHORISATION",
        "true",
        100,
        "bk_x",
    );
    let mut unsigned = adyen_item(ADYEN_KEY, "P4", None, "AUTHORISATION", "true", 100, "bk_x");
    unsigned["NotificationRequestItem"]["additionalData"] = json!({});
    let mut not_base64 = good.clone();
    not_base64["NotificationRequestItem"]["additionalData"]["hmacSignature"] = json!("%%");
    for (body, code) in [
        (adyen_batch(&[good.clone(), tampered]), "invalid_signature"),
        (adyen_batch(&[wrong_key, good.clone()]), "invalid_signature"),
        (adyen_batch(&[good.clone(), unsigned]), "missing_signature"),
        (adyen_batch(&[not_base64]), "malformed_signature_header"),
        (adyen_batch(&[]), "malformed_payload"),
        ("{\"notificationItems\": [".to_string(), "malformed_payload"),
    ] {
        let reply = post(&app, "adyen", &body, &[]).await;
        assert_eq!((reply.status, reply.code()), (400, code), "{}", reply.text);
    }
    assert_eq!(app.rows("webhook_events").await, 0);
    assert_eq!(service.booking("bk_adyen_1").unwrap().status, "pending");
}

#[test]
fn an_adyen_key_that_is_not_hex_stops_start_up_naming_the_key() {
    assert_eq!(load_config(&adyen_source()), Ok(()));
    let err = load_config(
        "[[sources]]\nname = \"adyen\"\nkind = \"adyen\"\nsecrets = [\"whsec_not_hex\"]\n",
    )
    .unwrap_err();
    assert!(
        err.contains("sources[0].secrets") && err.contains("hex"),
        "{err}"
    );
    assert!(
        !err.contains("whsec_not_hex"),
        "the secret is not echoed: {err}"
    );
}

// --- GoCardless ----------------------------------------------------------------------------

const GOCARDLESS_SECRET: &str = "gc_webhook_secret_7rXbC6kY";

/// A GoCardless event about payment `payment`, as GoCardless posts it inside a batch.
fn gocardless_event(id: &str, resource: &str, action: &str, payment: &str, booking: &str) -> Value {
    json!({
        "id": id, "created_at": "2026-01-02T10:00:00.000Z", "resource_type": resource,
        "action": action, "links": {"payment": payment},
        "details": {"origin": "gocardless", "cause": format!("payment_{action}"),
                    "description": "...", "scheme": "sepa_core"},
        "metadata": {}, "resource_metadata": {"booking_id": booking},
    })
}

fn gocardless_batch(events: &[Value]) -> String {
    json!({"events": events, "meta": {"webhook_id": "WB0001"}}).to_string()
}

fn gocardless_signature(secret: &str, body: &str) -> (&'static str, String) {
    ("webhook-signature", hmac_hex(secret, &[body.as_bytes()]))
}

fn gocardless_source() -> String {
    format!(
        "[[sources]]\nname = \"gocardless\"\nkind = \"gocardless\"\nsecrets = [\"{GOCARDLESS_SECRET}\"]\n"
    )
}

#[tokio::test]
async fn gocardless_batch_stores_each_event_on_its_own_and_confirms_the_booking() {
    let (app, service) = app_with_sources(&gocardless_source()).await;
    service.create("bk_gc", Some(2500), Some("EUR"), "pending");
    service.create("bk_gc_failed", Some(2500), Some("EUR"), "pending");
    let body = gocardless_batch(&[
        gocardless_event("EV0001", "payments", "confirmed", "PM0001", "bk_gc"),
        gocardless_event("EV0002", "payments", "failed", "PM0002", "bk_gc_failed"),
        // Not about a payment: stored, and ignored by the ledger.
        json!({"id": "EV0003", "created_at": "2026-01-02T10:00:00.000Z",
               "resource_type": "mandates", "action": "created",
               "links": {"mandate": "MD0001"}, "details": {}, "metadata": {}}),
    ]);
    let reply = post(
        &app,
        "gocardless",
        &body,
        &[gocardless_signature(GOCARDLESS_SECRET, &body)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["events"], json!(["EV0001", "EV0002", "EV0003"]));
    assert_eq!(reply.json["duplicate"], false);
    booking_is(&service, "bk_gc", "confirmed").await;
    assert_eq!(app.payment_status("bk_gc").await["status"], "succeeded");
    settled_row(&app, "gocardless", "EV0002", "processed").await;
    assert_eq!(app.payment_status("bk_gc_failed").await["status"], "failed");
    settled_row(&app, "gocardless", "EV0003", "ignored").await;

    // A later batch repeating one event and bringing a new one: each deduplicated on its id.
    let later = gocardless_batch(&[
        gocardless_event("EV0001", "payments", "confirmed", "PM0001", "bk_gc"),
        gocardless_event("EV0004", "payments", "paid_out", "PM0001", "bk_gc"),
    ]);
    let reply = post(
        &app,
        "gocardless",
        &later,
        &[gocardless_signature(GOCARDLESS_SECRET, &later)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["duplicate"], false);
    assert_eq!(app.rows("webhook_events").await, 4);
    let reply = post(
        &app,
        "gocardless",
        &later,
        &[gocardless_signature(GOCARDLESS_SECRET, &later)],
    )
    .await;
    assert_eq!(
        (reply.status, reply.json["duplicate"].clone()),
        (200, json!(true))
    );
    assert_eq!(app.rows("webhook_events").await, 4);
    assert_eq!(app.rows("payments").await, 2);

    // Tampered, wrongly signed, unsigned, and signed but not a batch of events: refused whole.
    let not_events = "{\"events\": \"EV1\"}";
    for (sent, headers, code) in [
        (
            body.replace("PM0001", "PM9999"),
            vec![gocardless_signature(GOCARDLESS_SECRET, &body)],
            "invalid_signature",
        ),
        (
            body.clone(),
            vec![gocardless_signature("gc_other_secret", &body)],
            "invalid_signature",
        ),
        (body.clone(), vec![], "missing_signature"),
        (
            body.clone(),
            vec![("webhook-signature", "not hex".to_string())],
            "malformed_signature_header",
        ),
        (
            not_events.to_string(),
            vec![gocardless_signature(GOCARDLESS_SECRET, not_events)],
            "malformed_payload",
        ),
    ] {
        let reply = post(&app, "gocardless", &sent, &headers).await;
        // developer.gocardless.com/api-reference/#webhooks-overview: "Webhooks with an invalid
        // signature must return a 498 Token Invalid error".
        let status = match code {
            "invalid_signature" | "missing_signature" => 498,
            _ => 400,
        };
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{}",
            reply.text
        );
    }
    assert_eq!(app.rows("webhook_events").await, 4);
}

/// GoCardless's `GET /payments/{id}` answer.
fn gocardless_payment(id: &str, status: &str, amount: i64, booking: &str) -> Value {
    json!({"payments": {
        "id": id, "created_at": "2026-01-02T09:00:00.000Z", "charge_date": "2026-01-05",
        "amount": amount, "amount_refunded": 0, "currency": "EUR", "status": status,
        "description": "Booking", "metadata": {"booking_id": booking},
        "links": {"mandate": "MD0001", "creditor": "CR0001"},
    }})
}

fn gocardless_confirming(api: &str) -> String {
    format!(
        "{}confirm = \"api\"\n[sources.api]\nurl = \"{api}\"\naccess_token = \"sandbox_token_42\"\n",
        gocardless_source()
    )
}

#[tokio::test]
async fn gocardless_confirmed_by_api_records_the_amount_the_payment_has() {
    let api = provider_api(|r| match r.path.as_str() {
        "/payments/PM00A1" => (
            200,
            gocardless_payment("PM00A1", "confirmed", 2500, "bk_gc_api"),
        ),
        "/payments/PM00A2" => (
            200,
            gocardless_payment("PM00A2", "failed", 2500, "bk_gc_denied"),
        ),
        _ => (
            404,
            json!({"error": {"code": 404, "type": "invalid_api_usage",
                                    "message": "Resource not found"}}),
        ),
    })
    .await;
    let (app, service) = app_with_sources(&gocardless_confirming(&api.receiver.url)).await;
    for b in ["bk_gc_api", "bk_gc_denied", "bk_gc_ghost"] {
        service.create(b, Some(2500), Some("EUR"), "pending");
    }
    let body = gocardless_batch(&[
        gocardless_event("EVA1", "payments", "confirmed", "PM00A1", "bk_gc_api"),
        // Confirmed, says the notification; failed, says GoCardless.
        gocardless_event("EVA2", "payments", "confirmed", "PM00A2", "bk_gc_denied"),
        // A payment GoCardless has never heard of.
        gocardless_event("EVA3", "payments", "confirmed", "PM00A3", "bk_gc_ghost"),
    ]);
    let reply = post(
        &app,
        "gocardless",
        &body,
        &[gocardless_signature(GOCARDLESS_SECRET, &body)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    booking_is(&service, "bk_gc_api", "confirmed").await;
    let data = app.payment_status("bk_gc_api").await;
    assert_eq!(
        (data["amount"].clone(), data["currency"].clone()),
        (json!(2500), json!("eur"))
    );
    let denied = settled_row(&app, "gocardless", "EVA2", "rejected").await;
    assert!(denied.last_error.unwrap().contains("\"failed\""));
    let ghost = settled_row(&app, "gocardless", "EVA3", "rejected").await;
    assert!(ghost.last_error.unwrap().contains("HTTP 404"));
    assert_eq!(
        app.rows("payments").await,
        1,
        "only the confirmed one applied"
    );
    for b in ["bk_gc_denied", "bk_gc_ghost"] {
        assert_eq!(service.booking(b).unwrap().status, "pending");
    }
    let asked = api.receiver.requests();
    let first = asked.iter().find(|r| r.path == "/payments/PM00A1").unwrap();
    assert_eq!(first.header("authorization"), "Bearer sandbox_token_42");
    assert_eq!(first.header("gocardless-version"), "2015-07-06");
}

#[tokio::test]
async fn while_gocardless_api_is_down_the_event_waits_then_is_applied() {
    let api = provider_api(|_| {
        (
            200,
            gocardless_payment("PM00W1", "paid_out", 4200, "bk_gc_wait"),
        )
    })
    .await;
    api.down.store(true, Ordering::SeqCst);
    let (app, service) = app_with_sources(&gocardless_confirming(&api.receiver.url)).await;
    service.create("bk_gc_wait", Some(4200), Some("EUR"), "pending");
    let body = gocardless_batch(&[gocardless_event(
        "EVW1",
        "payments",
        "paid_out",
        "PM00W1",
        "bk_gc_wait",
    )]);
    let reply = post(
        &app,
        "gocardless",
        &body,
        &[gocardless_signature(GOCARDLESS_SECRET, &body)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // Waiting, with why, once the fetcher has asked.
    let why = waiting_row(&app, "gocardless", "EVW1").await;
    assert!(why.contains("HTTP 503"), "{why}");
    assert_eq!(service.booking("bk_gc_wait").unwrap().status, "pending");
    api.down.store(false, Ordering::SeqCst);
    settled_row(&app, "gocardless", "EVW1", "processed").await;
    booking_is(&service, "bk_gc_wait", "confirmed").await;
    assert_eq!(app.payment_status("bk_gc_wait").await["amount"], 4200);
}

#[test]
fn gocardless_confirmation_without_an_access_token_stops_start_up_naming_the_key() {
    let err = load_config(&format!(
        "{}confirm = \"api\"\n[sources.api]\nurl = \"https://api-sandbox.gocardless.com\"\n",
        gocardless_source()
    ))
    .unwrap_err();
    assert!(err.contains("sources[0].api.access_token"), "{err}");
}

// --- Paddle --------------------------------------------------------------------------------

const PADDLE_SECRET: &str =
    "pdl_ntfset_01gkpjp8bkm3tm53kdgkx6sms7_6h3qd3uFSi9YCD3OLYAShQI90XTI5vEI";
const PADDLE_OLD_SECRET: &str =
    "pdl_ntfset_01gkpjp8bkm3tm53kdgkx6sms7_0ldS3cretRotatedAwayXXXXXXXXX";

/// `Paddle-Signature` for `body` at `ts`, one `h1` per secret.
fn paddle_signature(secrets: &[&str], ts: i64, body: &str) -> (&'static str, String) {
    let t = ts.to_string();
    let mut value = format!("ts={t}");
    for secret in secrets {
        value.push_str(&format!(
            ";h1={}",
            hmac_hex(secret, &[t.as_bytes(), b":", body.as_bytes()])
        ));
    }
    ("paddle-signature", value)
}

fn paddle_transaction(event: &str, id: &str, status: &str, total: &str, booking: &str) -> String {
    json!({
        "event_id": format!("evt_{id}_{status}"), "event_type": event,
        "occurred_at": "2026-01-02T10:00:00.000000Z", "notification_id": format!("ntf_{id}"),
        "data": {
            "id": id, "status": status, "currency_code": "EUR", "origin": "web",
            "custom_data": {"booking_id": booking},
            "details": {"totals": {"subtotal": total, "tax": "0", "total": total,
                                   "grand_total": total, "currency_code": "EUR"}},
            "items": [], "payments": [],
        },
    })
    .to_string()
}

#[tokio::test]
async fn paddle_transaction_confirms_the_booking_and_an_approved_refund_refunds_it() {
    let (app, service) = app_with_sources(&format!(
        "[[sources]]\nname = \"paddle\"\nkind = \"paddle\"\nsecrets = [\"{PADDLE_SECRET}\", \"{PADDLE_OLD_SECRET}\"]\n"
    ))
    .await;
    service.create("bk_paddle", Some(11900), Some("EUR"), "pending");
    let body = paddle_transaction(
        "transaction.completed",
        "txn_01h8dzxgkvdwemdhbpcapj2tbj",
        "completed",
        "11900",
        "bk_paddle",
    );
    // During a rotation Paddle signs with the new and the old secret: either matching is enough.
    let reply = post(
        &app,
        "paddle",
        &body,
        &[paddle_signature(
            &["pdl_ntfset_unknown", PADDLE_OLD_SECRET],
            now(),
            &body,
        )],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["event_id"],
        "evt_txn_01h8dzxgkvdwemdhbpcapj2tbj_completed"
    );
    booking_is(&service, "bk_paddle", "confirmed").await;
    let data = app.payment_status("bk_paddle").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(
        (data["amount"].clone(), data["currency"].clone()),
        (json!(11900), json!("eur"))
    );

    // A refund is an adjustment about the transaction, applied once approved.
    let adjustment = |event: &str, status: &str| {
        json!({
            "event_id": format!("evt_adj_{event}_{status}"), "event_type": event,
            "occurred_at": "2026-01-03T10:00:00.000000Z", "notification_id": "ntf_adj",
            "data": {"id": "adj_01h8c65c2ggq5nxswnnwv78e75", "action": "refund", "type": "full",
                     "transaction_id": "txn_01h8dzxgkvdwemdhbpcapj2tbj", "status": status,
                     "currency_code": "EUR", "reason": "cancelled booking",
                     "totals": {"subtotal": "11900", "tax": "0", "total": "11900",
                                "fee": "0", "earnings": "11900", "currency_code": "EUR"}},
        })
        .to_string()
    };
    let pending = adjustment("adjustment.created", "pending_approval");
    let reply = post(
        &app,
        "paddle",
        &pending,
        &[paddle_signature(&[PADDLE_SECRET], now(), &pending)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    settled_row(
        &app,
        "paddle",
        "evt_adj_adjustment.created_pending_approval",
        "ignored",
    )
    .await;
    assert_eq!(service.booking("bk_paddle").unwrap().status, "confirmed");
    let approved = adjustment("adjustment.updated", "approved");
    let reply = post(
        &app,
        "paddle",
        &approved,
        &[paddle_signature(&[PADDLE_SECRET], now(), &approved)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    booking_is(&service, "bk_paddle", "refunded").await;
    assert_eq!(app.payment_status("bk_paddle").await["status"], "refunded");
    assert_eq!(app.rows("payments").await, 1);

    // Tampered, stale, wrong secret, unsigned, no h1: refused with their codes.
    let fresh = paddle_signature(&[PADDLE_SECRET], now(), &body);
    for (sent, headers, code) in [
        (
            body.replace("11900", "1"),
            vec![fresh.clone()],
            "invalid_signature",
        ),
        (
            body.clone(),
            vec![paddle_signature(&[PADDLE_SECRET], now() - 301, &body)],
            "timestamp_out_of_tolerance",
        ),
        // Paddle's own 5 seconds (developer.paddle.com/webhooks/signature-verification).
        (
            body.clone(),
            vec![paddle_signature(&[PADDLE_SECRET], now() - 30, &body)],
            "timestamp_out_of_tolerance",
        ),
        (
            body.clone(),
            vec![paddle_signature(&["pdl_ntfset_wrong"], now(), &body)],
            "invalid_signature",
        ),
        (body.clone(), vec![], "missing_signature"),
        (
            body.clone(),
            vec![("paddle-signature", format!("ts={}", now()))],
            "malformed_signature_header",
        ),
    ] {
        let reply = post(&app, "paddle", &sent, &headers).await;
        assert_eq!((reply.status, reply.code()), (400, code), "{}", reply.text);
    }
    assert_eq!(app.rows("webhook_events").await, 3);
}

// --- Checkout.com --------------------------------------------------------------------------

const CKO_KEY: &str = "cko_whsig_test_2b7f3c";

fn cko_event(id: &str, event: &str, payment: &str, amount: i64, booking: &str) -> String {
    json!({
        "id": id, "type": event, "version": "1.0.29", "created_on": "2026-01-02T10:00:00Z",
        "data": {"id": payment, "action_id": format!("act_{id}"), "reference": booking,
                 "amount": amount, "currency": "EUR", "response_code": "10000",
                 "response_summary": "Approved", "metadata": {"booking_id": booking}},
    })
    .to_string()
}

#[tokio::test]
async fn checkout_com_capture_confirms_the_booking_and_a_dispute_marks_the_payment() {
    let (app, service) = app_with_sources(&format!(
        "[[sources]]\nname = \"cko\"\nkind = \"checkout-com\"\nsecrets = [\"{CKO_KEY}\"]\n"
    ))
    .await;
    service.create("bk_cko", Some(11900), Some("EUR"), "pending");
    let sign = |body: &str| ("cko-signature", hmac_hex(CKO_KEY, &[body.as_bytes()]));
    let body = cko_event(
        "evt_cko_1",
        "payment_captured",
        "pay_cko_1",
        11900,
        "bk_cko",
    );
    let reply = post(&app, "cko", &body, &[sign(&body)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["event_id"], "evt_cko_1");
    booking_is(&service, "bk_cko", "confirmed").await;
    let data = app.payment_status("bk_cko").await;
    assert_eq!(
        (data["status"].clone(), data["amount"].clone()),
        (json!("succeeded"), json!(11900))
    );

    // A dispute names the payment in data.payment_id.
    let dispute = json!({
        "id": "evt_cko_2", "type": "dispute_received", "version": "1.0.29",
        "created_on": "2026-01-09T10:00:00Z",
        "data": {"id": "dsp_cko_1", "payment_id": "pay_cko_1", "amount": 11900,
                 "currency": "EUR", "category": "fraudulent", "status": "evidence_required"},
    })
    .to_string();
    let reply = post(&app, "cko", &dispute, &[sign(&dispute)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    settled_row(&app, "cko", "evt_cko_2", "processed").await;
    assert_eq!(app.payment_status("bk_cko").await["status"], "disputed");
    assert_eq!(app.rows("payments").await, 1);
    // Won: "your account has been credited back the disputed amount".
    let won = json!({
        "id": "evt_cko_2w", "type": "dispute_won", "version": "1.0.29",
        "created_on": "2026-01-20T10:00:00Z",
        "data": {"id": "dsp_cko_1", "payment_id": "pay_cko_1", "amount": 11900,
                 "currency": "EUR", "status": "won"},
    })
    .to_string();
    let reply = post(&app, "cko", &won, &[sign(&won)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    settled_row(&app, "cko", "evt_cko_2w", "processed").await;
    assert_eq!(app.payment_status("bk_cko").await["status"], "succeeded");

    for (sent, headers, code) in [
        (
            body.replace("11900", "1"),
            vec![sign(&body)],
            "invalid_signature",
        ),
        (
            body.clone(),
            vec![("cko-signature", hmac_hex("cko_other", &[body.as_bytes()]))],
            "invalid_signature",
        ),
        (body.clone(), vec![], "missing_signature"),
        (
            "{\"type\":\"payment_captured\"}".to_string(),
            vec![sign("{\"type\":\"payment_captured\"}")],
            "malformed_payload",
        ),
    ] {
        let reply = post(&app, "cko", &sent, &headers).await;
        assert_eq!((reply.status, reply.code()), (400, code), "{}", reply.text);
    }
    assert_eq!(app.rows("webhook_events").await, 3);

    // An approved authorisation takes no money; voided, it is canceled and the booking was
    // never confirmed.
    service.create("bk_cko_void", Some(11900), Some("EUR"), "pending");
    for (id, event) in [
        ("evt_cko_3", "payment_approved"),
        ("evt_cko_4", "payment_voided"),
    ] {
        let body = cko_event(id, event, "pay_cko_void", 11900, "bk_cko_void");
        let reply = post(&app, "cko", &body, &[sign(&body)]).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        settled_row(&app, "cko", id, "processed").await;
        let expected = if event == "payment_approved" {
            "authorized"
        } else {
            "canceled"
        };
        assert_eq!(app.payment_status("bk_cko_void").await["status"], expected);
    }
    assert_eq!(service.booking("bk_cko_void").unwrap().status, "pending");

    // Partial refunds add up, each its own action; ISK is a whole amount at Checkout.com
    // (checkout.com/docs/payments/accept-payments/format-the-amount-value), hundredths in
    // payhook's unit.
    let isk = |id: &str, event: &str, amount: i64, action: &str| {
        let mut event: Value =
            serde_json::from_str(&cko_event(id, event, "pay_cko_isk", amount, "bk_cko_isk"))
                .unwrap();
        event["data"]["currency"] = json!("ISK");
        event["data"]["action_id"] = json!(action);
        event.to_string()
    };
    for body in [
        isk("evt_cko_5", "payment_captured", 15000, "act_cap"),
        isk("evt_cko_6", "payment_refunded", 5000, "act_ref1"),
        isk("evt_cko_7", "payment_refunded", 10000, "act_ref2"),
    ] {
        let reply = post(&app, "cko", &body, &[sign(&body)]).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    settled_row(&app, "cko", "evt_cko_7", "processed").await;
    settled_row(&app, "cko", "evt_cko_6", "processed").await;
    let data = app.payment_status("bk_cko_isk").await;
    assert_eq!(
        (
            &data["status"],
            &data["amount"],
            &data["amountRefunded"],
            &data["amountFormatted"]
        ),
        (
            &json!("refunded"),
            &json!(1_500_000),
            &json!(1_500_000),
            &json!("15000.00 ISK")
        ),
        "{data}"
    );
}

// --- Lemon Squeezy -------------------------------------------------------------------------

const LEMON_SECRET: &str = "ls_signing_secret_42";

fn lemon_order(
    event: &str,
    order: &str,
    status: &str,
    refunded: i64,
    updated: &str,
    booking: &str,
) -> String {
    json!({
        "meta": {"test_mode": true, "event_name": event, "custom_data": {"booking_id": booking},
                 "webhook_id": "00000000-0000-0000-0000-000000000000"},
        "data": {"type": "orders", "id": order, "attributes": {
            "identifier": "104e18a2-d755-4d4b-80c4-a6c1dcbe1c10", "order_number": 1,
            "currency": "EUR", "subtotal": 11900, "tax": 0, "total": 11900,
            "refunded_amount": refunded, "status": status, "refunded": refunded > 0,
            "created_at": "2026-01-02T10:00:00.000000Z", "updated_at": updated}},
    })
    .to_string()
}

#[tokio::test]
async fn lemon_squeezy_paid_order_confirms_the_booking_and_its_refund_refunds_it() {
    let (app, service) = app_with_sources(&format!(
        "[[sources]]\nname = \"lemon\"\nkind = \"lemon-squeezy\"\nsecrets = [\"{LEMON_SECRET}\"]\n"
    ))
    .await;
    service.create("bk_lemon", Some(11900), Some("EUR"), "pending");
    let sign = |body: &str| ("x-signature", hmac_hex(LEMON_SECRET, &[body.as_bytes()]));
    let created_at = "2026-01-02T10:00:00.000000Z";
    let body = lemon_order("order_created", "1", "paid", 0, created_at, "bk_lemon");
    let reply = post(&app, "lemon", &body, &[sign(&body)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["event_id"],
        format!("order_created:1:{created_at}")
    );
    booking_is(&service, "bk_lemon", "confirmed").await;
    let data = app.payment_status("bk_lemon").await;
    assert_eq!(
        (data["amount"].clone(), data["currency"].clone()),
        (json!(11900), json!("eur"))
    );
    // Sent again: the same event (no id of its own, the template is the same).
    let reply = post(&app, "lemon", &body, &[sign(&body)]).await;
    assert_eq!(reply.json["duplicate"], true);

    // A partial refund, then the rest: refunded_amount is what was refunded so far.
    let partial = lemon_order(
        "order_refunded",
        "1",
        "partial_refund",
        5000,
        "2026-01-03T10:00:00.000000Z",
        "bk_lemon",
    );
    let reply = post(&app, "lemon", &partial, &[sign(&partial)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    booking_is(&service, "bk_lemon", "partially_refunded").await;
    let full = lemon_order(
        "order_refunded",
        "1",
        "refunded",
        11900,
        "2026-01-04T10:00:00.000000Z",
        "bk_lemon",
    );
    let reply = post(&app, "lemon", &full, &[sign(&full)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    booking_is(&service, "bk_lemon", "refunded").await;
    assert_eq!(app.rows("payments").await, 1);

    let no_update = body.replace(&format!(",\"updated_at\":\"{created_at}\""), "");
    assert_ne!(no_update, body);
    for (sent, headers, code) in [
        (
            body.replace("11900", "1"),
            vec![sign(&body)],
            "invalid_signature",
        ),
        (
            body.clone(),
            vec![("x-signature", hmac_hex("ls_other", &[body.as_bytes()]))],
            "invalid_signature",
        ),
        (body.clone(), vec![], "missing_signature"),
        (
            no_update.clone(),
            vec![sign(&no_update)],
            "malformed_payload",
        ),
    ] {
        let reply = post(&app, "lemon", &sent, &headers).await;
        assert_eq!((reply.status, reply.code()), (400, code), "{}", reply.text);
    }
    assert_eq!(app.rows("webhook_events").await, 3);
}
