//! Webhook sources beyond Stripe, configured in `payhook.toml` as a user would: an `hmac` source
//! with a payload mapping takes the background's generic payment webhook (a `payment.completed`
//! with `transaction_id`, `booking_id`, 10000 FCFA) and confirms the booking in the example
//! booking service; a `standard-webhooks` source verifies the three `webhook-*` headers. On SQLite
//! or PostgreSQL (`TEST_DATABASE_URL`).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::receiver::*;
use common::*;
use payhook::booking_service::BookingService;
use payhook::config::{Settings, booking_service_target};
use payhook::domain::Secret;
use serde_json::json;

const HMAC_SECRET: &str = "generic-provider-shared-secret";
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BOOKING_TOKEN: &str = "booking-service-token";

const CONFIG: &str = r#"
[[sources]]
name = "payments"
kind = "hmac"
secrets = ["an-older-secret", "generic-provider-shared-secret"]
header = "X-Signature"
prefix = "sha256="

[sources.mapping]
event_id = "{transaction_id}:{event}"
event_type = "event"
payment_id = "transaction_id"
booking_id = "booking_id"
amount = "amount"
currency = "currency"

[sources.mapping.types]
"payment.completed" = "succeeded"
"payment.failed" = "failed"
"payment.refunded" = "refunded"

[sources.mapping.currency_aliases]
FCFA = "XOF"

[[sources]]
name = "billing"
kind = "standard-webhooks"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]

[sources.mapping]
event_type = "type"
payment_id = "data.payment_id"
booking_id = "data.booking_id"
amount = "data.amount"
currency = "data.currency"

[sources.mapping.types]
"payment.succeeded" = "succeeded"
"#;

/// payhook with the sources of `CONFIG`, read from a payhook.toml, and the example booking service.
async fn sources_app() -> (TestApp, std::sync::Arc<BookingService>) {
    let (service, url) = booking_service(BOOKING_TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payhook.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let from_file = Settings::load(Some(&path), &HashMap::new()).expect("the configuration loads");
    let app = spawn_app_with(move |s| {
        s.sources = from_file.sources;
        s.targets = vec![booking_service_target(&url, Some(&Secret::new(BOOKING_TOKEN))).unwrap()];
    })
    .await;
    (app, service)
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn post(app: &TestApp, path: &str, body: &str, headers: &[(&str, String)]) -> Answer {
    let mut request = app
        .client
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    Answer::read(request.body(body.to_string()).send().await.unwrap()).await
}

/// The background's example, as the provider would send it.
fn background_example() -> String {
    json!({
        "event": "payment.completed",
        "transaction_id": "txn_123456789",
        "amount": 10000,
        "currency": "FCFA",
        "status": "success",
        "customer_id": "cust_123",
        "booking_id": "booking_456"
    })
    .to_string()
}

#[tokio::test]
async fn the_background_example_signed_by_an_hmac_source_confirms_booking_456() {
    let (app, service) = sources_app().await;
    // The application's booking, pending payment.
    service.create("booking_456", Some(10000), Some("XOF"), "pending");
    let body = background_example();
    let signature = format!("sha256={}", hmac_hex(HMAC_SECRET, body.as_bytes()));
    let answer = post(
        &app,
        "/webhooks/payments",
        &body,
        &[("x-signature", signature.clone())],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["event_id"], "txn_123456789:payment.completed");
    assert_eq!(answer.json["duplicate"], false);

    eventually(Duration::from_secs(10), "booking_456 confirmed", || async {
        service.booking("booking_456").map(|b| b.status).as_deref() == Some("confirmed")
    })
    .await;
    let data = app.payment_status("booking_456").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["amount"], 10000);
    assert_eq!(data["currency"], "xof", "FCFA read as XOF, as configured");
    assert_eq!(
        data["amountFormatted"], "10000 XOF",
        "XOF has no minor unit"
    );
    assert_eq!(data["paymentIntentId"], "txn_123456789");

    // The provider sends it again: acknowledged, kept once.
    let again = post(
        &app,
        "/webhooks/payments",
        &body,
        &[("x-signature", signature)],
    )
    .await;
    assert_eq!(
        (again.status, again.json["duplicate"].as_bool()),
        (200, Some(true))
    );
    assert_eq!(app.rows("webhook_events").await, 1);

    // Neither the signature nor the secret is kept with the event.
    let row = app
        .payhook
        .store
        .event("payments", "txn_123456789:payment.completed")
        .await
        .unwrap()
        .unwrap();
    assert!(row.headers.contains("[redacted]"), "{}", row.headers);
    assert!(
        !row.headers
            .contains(&hmac_hex(HMAC_SECRET, body.as_bytes()))
    );
    assert!(!row.headers.contains(HMAC_SECRET));

    // The provider's refund of the same transaction refunds the booking.
    let refund = body.replace("payment.completed", "payment.refunded");
    let signature = format!("sha256={}", hmac_hex(HMAC_SECRET, refund.as_bytes()));
    let answer = post(
        &app,
        "/webhooks/payments",
        &refund,
        &[("x-signature", signature)],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    eventually(Duration::from_secs(10), "booking_456 refunded", || async {
        service.booking("booking_456").map(|b| b.status).as_deref() == Some("refunded")
    })
    .await;
    assert_eq!(
        app.payment_status("booking_456").await["status"],
        "refunded"
    );
}

#[tokio::test]
async fn an_hmac_source_refuses_what_is_not_signed_right_and_stores_nothing() {
    let (app, _service) = sources_app().await;
    let body = background_example();
    let good = format!("sha256={}", hmac_hex(HMAC_SECRET, body.as_bytes()));
    for (headers, status, code) in [
        (vec![], 400, "missing_signature"),
        (
            vec![(
                "x-signature",
                format!("sha256={}", hmac_hex("wrong", body.as_bytes())),
            )],
            400,
            "invalid_signature",
        ),
        (
            vec![(
                "x-signature",
                good.trim_start_matches("sha256=").to_string(),
            )],
            400,
            "malformed_signature_header",
        ),
        (
            vec![("x-signature", "sha256=not-hex".to_string())],
            400,
            "malformed_signature_header",
        ),
    ] {
        let answer = post(&app, "/webhooks/payments", &body, &headers).await;
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{headers:?}"
        );
    }
    // Signed, but without the id the mapping needs.
    let no_id = json!({"event": "payment.completed", "amount": 1}).to_string();
    let signed = format!("sha256={}", hmac_hex(HMAC_SECRET, no_id.as_bytes()));
    let answer = post(
        &app,
        "/webhooks/payments",
        &no_id,
        &[("x-signature", signed)],
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (400, "malformed_payload"),
        "{}",
        answer.json
    );
    assert!(
        answer.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("event id")
    );
    let unknown = post(&app, "/webhooks/nobody", &body, &[]).await;
    assert_eq!((unknown.status, unknown.code()), (404, "unknown_source"));
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn a_standard_webhooks_source_takes_its_id_from_the_signed_header() {
    let (app, service) = sources_app().await;
    service.create("booking-sw", Some(2500), Some("usd"), "pending");
    let body = json!({"type": "payment.succeeded", "timestamp": "2026-11-22T10:00:00Z",
                      "data": {"payment_id": "pay_sw_1", "booking_id": "booking-sw",
                               "amount": 2500, "currency": "usd"}})
    .to_string();
    let key = payhook::providers::standard::signing_key(SW_SECRET).unwrap();
    let ts = now();
    let signed = |id: &str, body: &str| {
        vec![
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", ts.to_string()),
            (
                "webhook-signature",
                payhook::providers::standard::sign(&key, id, ts, body.as_bytes()),
            ),
        ]
    };
    let answer = post(&app, "/webhooks/billing", &body, &signed("msg_sw_1", &body)).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["event_id"], "msg_sw_1");
    eventually(Duration::from_secs(10), "booking-sw confirmed", || async {
        service.booking("booking-sw").map(|b| b.status).as_deref() == Some("confirmed")
    })
    .await;

    let mut tampered = signed("msg_sw_2", &body);
    tampered[0].1 = "msg_sw_other".into();
    let refused = post(&app, "/webhooks/billing", &body, &tampered).await;
    assert_eq!((refused.status, refused.code()), (400, "invalid_signature"));
    let stale = {
        let old = ts - 3600;
        vec![
            ("webhook-id", "msg_sw_3".to_string()),
            ("webhook-timestamp", old.to_string()),
            (
                "webhook-signature",
                payhook::providers::standard::sign(&key, "msg_sw_3", old, body.as_bytes()),
            ),
        ]
    };
    let refused = post(&app, "/webhooks/billing", &body, &stale).await;
    assert_eq!(
        (refused.status, refused.code()),
        (400, "timestamp_out_of_tolerance")
    );
    // A signed message id past 255 characters is no provider's: refused like any other id.
    let long = "m".repeat(10_000);
    let refused = post(&app, "/webhooks/billing", &body, &signed(&long, &body)).await;
    assert_eq!((refused.status, refused.code()), (400, "malformed_payload"));
    let row = app
        .payhook
        .store
        .event("billing", "msg_sw_1")
        .await
        .unwrap()
        .unwrap();
    assert!(row.headers.contains("v1,[redacted]"), "{}", row.headers);
    assert_eq!(app.count().await, 1);
}

#[test]
fn a_bad_source_configuration_names_its_key() {
    for (toml, key, says) in [
        (
            "name = \"Payments\"\nkind = \"hmac\"",
            "sources[0].name",
            "lowercase",
        ),
        (
            "name = \"stripe\"\nkind = \"hmac\"",
            "sources[0].name",
            "STRIPE_WEBHOOK_SECRET",
        ),
        ("name = \"p\"", "sources[0].kind", "required"),
        (
            "name = \"p\"\nkind = \"hmac\"",
            "sources[0].secrets",
            "at least one",
        ),
        (
            "name = \"p\"\nkind = \"hmac\"\nsecrets = [\"s\"]",
            "sources[0].header",
            "required",
        ),
        (
            "name = \"p\"\nkind = \"hmac\"\nsecrets = [\"s\"]\nheader = \"x-sig\"",
            "sources[0].mapping",
            "required",
        ),
        (
            "name = \"p\"\nkind = \"standard-webhooks\"\nsecrets = [\"plain\"]",
            "sources[0].secrets",
            "whsec_",
        ),
        (
            "name = \"p\"\nkind = \"stripe\"\nsecrets = [\"s\"]\nheader = \"x\"",
            "sources[0].header",
            "only a source of kind",
        ),
        (
            "name = \"p\"\nkind = \"hmac\"\nsecrets = [\"s\"]\nheader = \"x\"\nsigned_content = \"{timestamp}.{body}\"",
            "sources[0].timestamp_header",
            "{timestamp}",
        ),
        (
            "name = \"p\"\nkind = \"hmac\"\nsecrets = [\"s\"]\nheader = \"x\"\nalgorithm = \"md5\"",
            "line 6",
            "sha512",
        ),
        (
            "name = \"p\"\nkind = \"hmac\"\nsecrets = [\"s\"]\nheader = \"x\"\n[sources.mapping]\nevent_id = \"id\"\npayment_id = \"p\"",
            "sources[0].mapping.types",
            "at least one",
        ),
        (
            "name = \"p\"\nkind = \"hmac\"\nsecrets = [\"s\"]\nheader = \"x\"\n[sources.mapping]\nevent_id = \"{id\"\npayment_id = \"p\"",
            "sources[0].mapping.event_id",
            "template",
        ),
        (
            "name = \"p\"\nkind = \"hmac\"\nsecrets = [\"s\"]\nheader = \"x\"\n[sources.mapping]\nevent_id = \"id\"\npayment_id = \"p\"\ntypes = {\"a\" = \"succeeded\"}\ncurrency_aliases = {FCFA = \"CFA franc\"}",
            "sources[0].mapping.currency_aliases.FCFA",
            "ISO 4217",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payhook.toml");
        std::fs::write(&path, format!("[[sources]]\n{toml}")).unwrap();
        let err = Settings::load(Some(&path), &HashMap::new()).unwrap_err();
        assert!(err.to_string().contains(key), "{toml}\n=> {err}");
        assert!(err.to_string().contains(says), "{toml}\n=> {err}");
        assert!(!err.to_string().contains("\"s\""), "no secret in {err}");
    }
}

/// payhook with one preset source `p` of `kind`, its extra keys in `rest`.
async fn preset_app(kind: &str, secret: &str, rest: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payhook.toml");
    std::fs::write(
        &path,
        format!("[[sources]]\nname = \"p\"\nkind = \"{kind}\"\nsecrets = [\"{secret}\"]\n{rest}"),
    )
    .unwrap();
    let from_file = Settings::load(Some(&path), &HashMap::new()).expect("the configuration loads");
    spawn_app_with(move |s| s.sources = from_file.sources).await
}

/// Posts the exact bytes with one header; returns the answer.
async fn post_bytes(app: &TestApp, body: &[u8], header: (&str, &str)) -> Answer {
    Answer::read(
        app.client
            .post(format!("{}/webhooks/p", app.base))
            .header("content-type", "application/json")
            .header(header.0, header.1)
            .body(body.to_vec())
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn razorpay_preset_accepts_the_vector_of_razorpays_own_sdk() {
    // razorpay-python, tests/test_client_utility.py::test_verify_webhook_signature: the client's
    // secret "key_secret" signs mocks/fake_payment_authorized_webhook.json (971 bytes, kept as is in
    // tests/fixtures) to this hex.
    let app = preset_app(
        "razorpay",
        "key_secret",
        r#"[sources.mapping]
event_id = "{payload.payment.entity.id}:{event}"
event_type = "event"
payment_id = "payload.payment.entity.id"
amount = "payload.payment.entity.amount"
currency = "payload.payment.entity.currency"
booking_id = "payload.payment.entity.notes.booking_id"
types = { "payment.captured" = "succeeded", "payment.failed" = "failed" }
"#,
    )
    .await;
    let body = include_bytes!("fixtures/razorpay_payment_authorized_webhook.json");
    let signature = "d60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e9";
    let answer = post_bytes(&app, body, ("X-Razorpay-Signature", signature)).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(
        answer.json["event_id"],
        "pay_6koWN7bvxujzxM:payment.authorized"
    );
    let mut changed = body.to_vec();
    changed[20] ^= 1;
    let refused = post_bytes(&app, &changed, ("X-Razorpay-Signature", signature)).await;
    assert_eq!((refused.status, refused.code()), (400, "invalid_signature"));
}

#[tokio::test]
async fn square_preset_accepts_the_vector_of_squares_own_sdks() {
    // Square's SDKs (square-nodejs-sdk, square-python-sdk, ...: the webhooks helper tests) sign
    // this body for this notification URL with the key "Ibxx_5AKakO-3qeNVR61Dw".
    let app = preset_app(
        "square",
        "Ibxx_5AKakO-3qeNVR61Dw",
        r#"url = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"
[sources.mapping]
event_id = "event_id"
event_type = "type"
payment_id = "data.id"
types = { "payment.updated" = "succeeded" }
"#,
    )
    .await;
    let body = br#"{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}"#;
    let signature = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=";
    let answer = post_bytes(&app, body, ("x-square-hmacsha256-signature", signature)).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(
        answer.json["event_id"],
        "ac3ac95b-f97d-458c-a6e6-18981597e05f"
    );
    // Square signs the URL too: the same body for another URL does not verify.
    let elsewhere = preset_app(
        "square",
        "Ibxx_5AKakO-3qeNVR61Dw",
        "url = \"https://pay.example.com/webhooks/p\"\n[sources.mapping]\nevent_id = \"event_id\"\nevent_type = \"type\"\npayment_id = \"data.id\"\ntypes = { \"payment.updated\" = \"succeeded\" }\n",
    )
    .await;
    let refused = post_bytes(
        &elsewhere,
        body,
        ("x-square-hmacsha256-signature", signature),
    )
    .await;
    assert_eq!((refused.status, refused.code()), (400, "invalid_signature"));
}

#[tokio::test]
async fn paystack_preset_checks_hmac_sha512_of_the_body_and_confirms_the_payment() {
    // Paystack publishes no signed example; this vector was computed with Python's hmac and
    // hashlib (an implementation independent of payhook's) over a charge.success shaped as in
    // paystack.com/docs/payments/webhooks.
    let app = preset_app(
        "paystack",
        "sk_test_payhook_paystack",
        r#"[sources.mapping]
event_id = "{data.id}:{event}"
event_type = "event"
payment_id = "data.reference"
booking_id = "data.metadata.booking_id"
amount = "data.amount"
currency = "data.currency"
types = { "charge.success" = "succeeded" }
"#,
    )
    .await;
    let body = br#"{"event":"charge.success","data":{"id":302961,"domain":"live","status":"success","reference":"qTPrJoy9Bx","amount":10000,"currency":"NGN","metadata":{"booking_id":"booking-ps"}}}"#;
    let signature = "c75e146d79f6e074400ce3820f36af2e2fb89492d790348c9fe581d1f9733132426273ad20b5eb391284bc729eaee307c1d8b43324a675fd174e987a62c09aa8";
    let answer = post_bytes(&app, body, ("x-paystack-signature", signature)).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["event_id"], "302961:charge.success");
    let mut settled = None;
    for _ in 0..500 {
        let status = app
            .get("/api/v1/payments/booking-ps/status", Some(SERVICE_TOKEN))
            .await;
        if status.status == 200 {
            settled = Some(status.json["data"].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let data = settled.expect("the payment reached the ledger");
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["amountFormatted"], "100.00 NGN");
    let refused = post_bytes(&app, body, ("x-paystack-signature", &signature[..126])).await;
    assert_eq!((refused.status, refused.code()), (400, "invalid_signature"));
}

#[tokio::test]
async fn flutterwave_preset_compares_verif_hash_with_the_secret_hash() {
    // developer.flutterwave.com/docs/webhooks: the verif-hash header carries the secret hash set
    // in the dashboard, unchanged.
    let app = preset_app(
        "flutterwave",
        "my-flutterwave-secret-hash",
        r#"[sources.mapping]
event_id = "{data.id}:{event}"
event_type = "event"
payment_id = "data.tx_ref"
types = { "charge.completed" = "succeeded" }
"#,
    )
    .await;
    let body = br#"{"event":"charge.completed","data":{"id":285959875,"tx_ref":"Links-616626414629","amount":100,"currency":"NGN","status":"successful"}}"#;
    let ok = post_bytes(&app, body, ("verif-hash", "my-flutterwave-secret-hash")).await;
    assert_eq!(ok.status, 200, "{}", ok.json);
    assert_eq!(ok.json["event_id"], "285959875:charge.completed");
    let wrong = post_bytes(&app, body, ("verif-hash", "my-flutterwave-secret-hasX")).await;
    assert_eq!((wrong.status, wrong.code()), (400, "invalid_signature"));
    let row = app
        .payhook
        .store
        .event("p", "285959875:charge.completed")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !row.headers.contains("my-flutterwave-secret-hash"),
        "{}",
        row.headers
    );
}

/// The payment's status once the ledger has it (within 10 s).
async fn settled_payment(app: &TestApp, booking: &str) -> serde_json::Value {
    for _ in 0..500 {
        let status = app
            .get(
                &format!("/api/v1/payments/{booking}/status"),
                Some(SERVICE_TOKEN),
            )
            .await;
        if status.status == 200 {
            return status.json["data"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{booking} never reached the ledger");
}

/// Razorpay's hex HMAC-SHA256 of the body with the webhook secret.
fn razorpay_signature(body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"rzp_webhook_secret").unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// razorpay.com/docs/webhooks/refunds: each refund is an event of its own, carrying the refund
/// entity and its payment's; a second refund of the same payment is not a duplicate of the
/// first, and a refund that failed gives its money back. Events about anything else are
/// stored and ignored, never refused (a refused event is retried, then the webhook disabled).
#[tokio::test]
async fn razorpay_refunds_add_up_and_other_events_are_stored() {
    let app = preset_app("razorpay", "rzp_webhook_secret", "").await;
    let payment = |status: &str, refunded: i64| {
        json!({"id": "pay_RZ1", "entity": "payment", "amount": 50000, "currency": "INR",
               "status": status, "amount_refunded": refunded, "captured": true,
               "notes": {"booking_id": "booking-rzp"}})
    };
    let event = |name: &str, refund: Option<(&str, i64, &str)>, refunded: i64| {
        let mut payload = json!({"payment": {"entity": payment("captured", refunded)}});
        let mut contains = vec!["payment"];
        if let Some((id, amount, status)) = refund {
            payload["refund"] = json!({"entity": {"id": id, "entity": "refund", "amount": amount,
                "currency": "INR", "payment_id": "pay_RZ1", "status": status}});
            contains.insert(0, "refund");
        }
        json!({"entity": "event", "account_id": "acc_RZ", "event": name, "contains": contains,
               "payload": payload, "created_at": 1_767_000_000})
        .to_string()
    };
    let send = |body: String, event_id: &str| {
        app.client
            .post(format!("{}/webhooks/p", app.base))
            .header("content-type", "application/json")
            .header("x-razorpay-signature", razorpay_signature(&body))
            .header("x-razorpay-event-id", event_id)
            .body(body)
            .send()
    };
    let sent = [
        (event("payment.captured", None, 0), "EvtCap"),
        (
            event(
                "refund.processed",
                Some(("rfnd_A", 10000, "processed")),
                10000,
            ),
            "EvtR1",
        ),
        (
            event(
                "refund.processed",
                Some(("rfnd_B", 40000, "processed")),
                50000,
            ),
            "EvtR2",
        ),
    ];
    for (body, id) in &sent {
        let answer = Answer::read(send(body.clone(), id).await.unwrap()).await;
        assert_eq!(answer.status, 200, "{}", answer.json);
        assert_eq!(answer.json["duplicate"], false, "{}", answer.json);
    }
    settled_payment(&app, "booking-rzp").await;
    for _ in 0..500 {
        if app.payment_status("booking-rzp").await["amountRefunded"] == 50000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let data = app.payment_status("booking-rzp").await;
    assert_eq!(
        (&data["status"], &data["amountRefunded"]),
        (&json!("refunded"), &json!(50000))
    );
    // Redelivered, the second refund is a duplicate of itself only.
    let again = Answer::read(send(sent[2].0.clone(), "EvtR2").await.unwrap()).await;
    assert_eq!(again.json["duplicate"], true, "{}", again.json);

    // The second refund failed after all: its 40000 are the merchant's again.
    let failed = event("refund.failed", Some(("rfnd_B", 40000, "failed")), 10000);
    let answer = Answer::read(send(failed, "EvtR2F").await.unwrap()).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    for _ in 0..500 {
        if app.payment_status("booking-rzp").await["amountRefunded"] == 10000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let data = app.payment_status("booking-rzp").await;
    assert_eq!(
        (&data["status"], &data["amountRefunded"]),
        (&json!("partially_refunded"), &json!(10000))
    );

    // A settlement: no payment in it, stored under Razorpay's event id, ignored.
    let settlement = json!({"entity": "event", "account_id": "acc_RZ",
        "event": "settlement.processed", "contains": ["settlement"],
        "payload": {"settlement": {"entity": {"id": "setl_1", "amount": 9000}}},
        "created_at": 1_767_000_100})
    .to_string();
    let answer = Answer::read(send(settlement, "EvtSetl").await.unwrap()).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["event_id"], "EvtSetl");
}

/// developer.flutterwave.com/docs/integration-guides/webhooks: a pending transaction is notified
/// again when it becomes successful; the later status is a new event, not a duplicate.
#[tokio::test]
async fn flutterwave_notifies_each_status_of_one_transaction() {
    let app = preset_app(
        "flutterwave",
        "my-flutterwave-secret-hash",
        "[sources.mapping]\nbooking_id = \"data.tx_ref\"\n",
    )
    .await;
    for status in ["pending", "successful", "successful"] {
        let body = json!({"event": "charge.completed", "data": {"id": 2001, "tx_ref": "FLW-late",
            "amount": 100, "currency": "NGN", "status": status}})
        .to_string();
        let answer = post_bytes(
            &app,
            body.as_bytes(),
            ("verif-hash", "my-flutterwave-secret-hash"),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.json);
        assert_eq!(
            answer.json["event_id"],
            format!("2001:charge.completed:{status}")
        );
    }
    assert_eq!(
        settled_payment(&app, "FLW-late").await["status"],
        "succeeded"
    );
}

#[tokio::test]
async fn presets_need_only_their_name_and_secrets() {
    // Paystack: charge.success, amount in kobo.
    let app = preset_app("paystack", "sk_test_payhook_paystack", "").await;
    let body = br#"{"event":"charge.success","data":{"id":302961,"domain":"live","status":"success","reference":"qTPrJoy9Bx","amount":10000,"currency":"NGN","metadata":{"booking_id":"booking-ps"}}}"#;
    let signature = "c75e146d79f6e074400ce3820f36af2e2fb89492d790348c9fe581d1f9733132426273ad20b5eb391284bc729eaee307c1d8b43324a675fd174e987a62c09aa8";
    let answer = post_bytes(&app, body, ("x-paystack-signature", signature)).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let data = settled_payment(&app, "booking-ps").await;
    assert_eq!(
        (&data["status"], &data["amountFormatted"]),
        (&json!("succeeded"), &json!("100.00 NGN"))
    );

    // Flutterwave: the status inside charge.completed decides; amounts in major units. One key
    // of the mapping overridden, the rest the preset's.
    let app = preset_app(
        "flutterwave",
        "my-flutterwave-secret-hash",
        "[sources.mapping]\nbooking_id = \"data.tx_ref\"\n",
    )
    .await;
    for (id, status, booking) in [(1001, "successful", "FLW-ok"), (1002, "failed", "FLW-ko")] {
        let body = json!({"event": "charge.completed", "data": {"id": id, "tx_ref": booking,
            "amount": 150.5, "currency": "NGN", "status": status}})
        .to_string();
        let ok = post_bytes(
            &app,
            body.as_bytes(),
            ("verif-hash", "my-flutterwave-secret-hash"),
        )
        .await;
        assert_eq!(ok.status, 200, "{}", ok.json);
    }
    let data = settled_payment(&app, "FLW-ok").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["amount"], 15050, "150.5 NGN is 15050 kobo");
    assert_eq!(settled_payment(&app, "FLW-ko").await["status"], "failed");
}
