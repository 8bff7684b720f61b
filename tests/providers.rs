//! Provider presets end to end, configured in `payhook.toml` as a user would: each takes a payment
//! from the provider's notification to the booking service's `confirmed`. Verify by API runs
//! against a real HTTP server on loopback answering as the provider's API: confirmed, denied
//! (no such payment; another outcome), and down (the event waits, then is applied). On SQLite or
//! PostgreSQL (`TEST_DATABASE_URL`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::providers::*;
use common::receiver::*;
use common::*;
use serde_json::{Value, json};

const FEDAPAY_SECRET: &str = "wh_sandbox_test_secret";

/// POSTs `body` to `/webhooks/{source}` with `headers`.
async fn post(app: &TestApp, source: &str, body: &str, headers: &[(&str, String)]) -> Answer {
    let mut request = app
        .client
        .post(format!("{}/webhooks/{source}", app.base))
        .header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    Answer::read(request.body(body.to_string()).send().await.unwrap()).await
}

/// A FedaPay event about transaction `id`, as FedaPay posts it.
fn fedapay_event(name: &str, id: i64, status: &str, amount: i64, booking: &str) -> String {
    json!({
        "name": name,
        "object": "transaction",
        "entity": {
            "klass": "v1/transaction", "id": id, "reference": format!("trx_{id}"),
            "amount": amount, "status": status, "mode": "mtn_open",
            "custom_metadata": {"booking_id": booking},
            "currency": {"iso": "XOF", "name": "FCFA"},
        },
    })
    .to_string()
}

/// `X-FEDAPAY-SIGNATURE` for `body` now.
fn fedapay_signature(body: &str) -> (&'static str, String) {
    let t = now().to_string();
    let s = hmac_hex(FEDAPAY_SECRET, &[t.as_bytes(), b".", body.as_bytes()]);
    ("x-fedapay-signature", format!("t={t},s={s}"))
}

#[tokio::test]
async fn fedapay_signed_notification_confirms_the_booking_in_fcfa() {
    let (app, service) = app_with_sources(&format!(
        "[[sources]]\nname = \"fedapay\"\nkind = \"fedapay\"\nsecrets = [\"{FEDAPAY_SECRET}\"]\n"
    ))
    .await;
    service.create("bk_feda", Some(10000), Some("XOF"), "pending");
    let body = fedapay_event("transaction.approved", 250828, "approved", 10000, "bk_feda");
    let answer = post(&app, "fedapay", &body, &[fedapay_signature(&body)]).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["event_id"], "250828:transaction.approved");
    confirmed(&service, "bk_feda").await;
    let data = app.payment_status("bk_feda").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["amount"], 10000);
    assert_eq!(data["currency"], "xof");
    assert_eq!(data["amountFormatted"], "10000 XOF");

    // Tampered, stale, wrong secret: refused with the documented codes, nothing stored.
    let (name, good) = fedapay_signature(&body);
    let stale_t = now() - 301;
    let stale = format!(
        "t={stale_t},s={}",
        hmac_hex(
            FEDAPAY_SECRET,
            &[stale_t.to_string().as_bytes(), b".", body.as_bytes()]
        )
    );
    let t = now().to_string();
    let wrong = format!(
        "t={t},s={}",
        hmac_hex("wh_other", &[t.as_bytes(), b".", body.as_bytes()])
    );
    for (headers, code) in [
        (vec![(name, good.clone())], "invalid_signature"),
        (vec![(name, stale)], "timestamp_out_of_tolerance"),
        (vec![(name, wrong)], "invalid_signature"),
        (vec![], "missing_signature"),
    ] {
        let tampered = body.replace("10000", "10");
        let sent = if code == "invalid_signature" && headers[0].1 == good {
            &tampered
        } else {
            &body
        };
        let answer = post(&app, "fedapay", sent, &headers).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, code),
            "{}",
            answer.json
        );
    }
    assert_eq!(app.rows("webhook_events").await, 1);
}

/// FedaPay's `GET /v1/transactions/{id}` answer.
fn fedapay_transaction(id: i64, status: &str, amount: i64, booking: &str) -> Value {
    json!({"v1/transaction": {
        "klass": "v1/transaction", "id": id, "status": status, "amount": amount,
        "custom_metadata": {"booking_id": booking}, "currency": {"iso": "XOF"},
    }})
}

fn fedapay_confirming(api: &str) -> String {
    format!(
        r#"
[[sources]]
name = "fedapay"
kind = "fedapay"
secrets = ["{FEDAPAY_SECRET}"]
confirm = "api"

[sources.api]
url = "{api}"
secret_key = "sk_sandbox_confirm"
"#
    )
}

#[tokio::test]
async fn verify_by_api_applies_what_the_provider_confirms_not_what_was_posted() {
    let api = provider_api(|r| match r.path.as_str() {
        "/v1/transactions/7001" => (200, fedapay_transaction(7001, "approved", 9113, "bk_api")),
        _ => (404, json!({"message": "Transaction not found"})),
    })
    .await;
    let (app, service) = app_with_sources(&fedapay_confirming(&api.receiver.url)).await;
    service.create("bk_api", Some(9113), Some("XOF"), "pending");
    // The body claims another amount: the API's answer is what counts.
    let body = fedapay_event("transaction.approved", 7001, "approved", 1, "bk_api");
    let answer = post(&app, "fedapay", &body, &[fedapay_signature(&body)]).await;
    assert_eq!(
        answer.status, 200,
        "stored and acknowledged before any confirmation"
    );
    let row = settled_row(&app, "fedapay", "7001:transaction.approved", "processed").await;
    assert!(row.last_error.is_none(), "{row:?}");
    confirmed(&service, "bk_api").await;
    let data = app.payment_status("bk_api").await;
    assert_eq!(data["amount"], 9113, "the amount the API confirmed");
    let asked = api.receiver.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].method, "GET");
    assert_eq!(
        asked[0].header("authorization"),
        "Bearer sk_sandbox_confirm"
    );
}

#[tokio::test]
async fn a_notification_the_provider_denies_is_kept_rejected_and_never_applied() {
    let approve = Arc::new(AtomicBool::new(false));
    let approved = approve.clone();
    let api = provider_api(move |r| match r.path.as_str() {
        "/v1/transactions/7002" if approved.load(Ordering::SeqCst) => (
            200,
            fedapay_transaction(7002, "approved", 5000, "bk_denied"),
        ),
        "/v1/transactions/7002" => (
            200,
            fedapay_transaction(7002, "declined", 5000, "bk_denied"),
        ),
        _ => (404, json!({"message": "Transaction not found"})),
    })
    .await;
    let (app, service) = app_with_sources(&fedapay_confirming(&api.receiver.url)).await;
    service.create("bk_denied", Some(5000), Some("XOF"), "pending");
    service.create("bk_ghost", Some(5000), Some("XOF"), "pending");

    // Approved, says the notification; declined, says FedaPay.
    let body = fedapay_event("transaction.approved", 7002, "approved", 5000, "bk_denied");
    post(&app, "fedapay", &body, &[fedapay_signature(&body)]).await;
    let row = settled_row(&app, "fedapay", "7002:transaction.approved", "rejected").await;
    let error = row.last_error.unwrap();
    assert!(error.contains("\"declined\""), "{error}");

    // A transaction FedaPay has never heard of.
    let body = fedapay_event("transaction.approved", 9999, "approved", 5000, "bk_ghost");
    post(&app, "fedapay", &body, &[fedapay_signature(&body)]).await;
    let row = settled_row(&app, "fedapay", "9999:transaction.approved", "rejected").await;
    let error = row.last_error.unwrap();
    assert!(
        error.contains("HTTP 404") && error.contains("Transaction not found"),
        "{error}"
    );

    assert_eq!(app.rows("payments").await, 0, "nothing applied");
    for booking in ["bk_denied", "bk_ghost"] {
        assert_eq!(service.booking(booking).unwrap().status, "pending");
    }

    // FedaPay had it wrong and fixed it: a replay asks again, and this time it is applied.
    approve.store(true, Ordering::SeqCst);
    let row_id = app
        .payhook
        .store
        .event("fedapay", "7002:transaction.approved")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert!(app.payhook.store.requeue_event(row_id).await.unwrap());
    settled_row(&app, "fedapay", "7002:transaction.approved", "processed").await;
    confirmed(&service, "bk_denied").await;
}

#[tokio::test]
async fn while_the_provider_api_is_down_the_event_waits_then_is_applied() {
    let api = provider_api(|_| (200, fedapay_transaction(7003, "approved", 2500, "bk_wait"))).await;
    api.down.store(true, Ordering::SeqCst);
    let (app, service) = app_with_sources(&fedapay_confirming(&api.receiver.url)).await;
    service.create("bk_wait", Some(2500), Some("XOF"), "pending");
    let body = fedapay_event("transaction.approved", 7003, "approved", 2500, "bk_wait");
    let answer = post(&app, "fedapay", &body, &[fedapay_signature(&body)]).await;
    assert_eq!(answer.status, 200);
    let id = "7003:transaction.approved";
    eventually(Duration::from_secs(10), "the event waits", || async {
        let row = app.payhook.store.event("fedapay", id).await.unwrap();
        row.is_some_and(|r| r.status == "waiting" && r.last_error.is_some())
    })
    .await;
    let row = app
        .payhook
        .store
        .event("fedapay", id)
        .await
        .unwrap()
        .unwrap();
    assert!(row.last_error.unwrap().contains("HTTP 503"));
    assert_eq!(service.booking("bk_wait").unwrap().status, "pending");

    api.down.store(false, Ordering::SeqCst);
    settled_row(&app, "fedapay", id, "processed").await;
    confirmed(&service, "bk_wait").await;
    assert!(
        api.receiver.requests().len() >= 2,
        "asked again after the outage"
    );
}

#[test]
fn a_preset_that_confirms_by_api_without_credentials_stops_start_up_naming_the_key() {
    let load = load_config;
    let base = format!(
        "[[sources]]\nname = \"fedapay\"\nkind = \"fedapay\"\nsecrets = [\"{FEDAPAY_SECRET}\"]\n"
    );
    assert_eq!(load(&base), Ok(()));
    let err = load(&format!("{base}confirm = \"api\"\n")).unwrap_err();
    assert!(err.contains("sources[0].api"), "{err}");
    let err = load(&format!(
        "{base}confirm = \"api\"\n[sources.api]\nurl = \"https://api.fedapay.com\"\n"
    ))
    .unwrap_err();
    assert!(err.contains("sources[0].api.secret_key"), "{err}");
    let err = load(&format!(
        "{base}confirm = \"api\"\n[sources.api]\nsecret_key = \"sk\"\nsecret = \"typo\"\n"
    ))
    .unwrap_err();
    assert!(err.contains("sources[0].api.secret"), "{err}");
    let err = load(&format!("{base}[sources.api]\nsecret_key = \"sk\"\n")).unwrap_err();
    assert!(
        err.contains("sources[0].api") && err.contains("confirm"),
        "{err}"
    );
    let hmac = "[[sources]]\nname = \"p\"\nkind = \"hmac\"\nsecrets = [\"s\"]\nheader = \"x-sig\"\nconfirm = \"api\"\n[sources.mapping]\nevent_id = \"id\"\npayment_id = \"pid\"\ntypes = { \"paid\" = \"succeeded\" }\n";
    let err = load(&format!(
        "{hmac}[sources.api]\nurl = \"https://api.example.com\"\npath = \"/p/{{id}}\"\nstatus = \"s\"\n"
    ))
    .unwrap_err();
    assert!(err.contains("sources[0].api.statuses"), "{err}");
    let err = load(&format!(
        "{hmac}[sources.api]\nurl = \"https://api.example.com\"\npath = \"/p\"\nstatus = \"s\"\nstatuses = {{ ok = \"succeeded\" }}\n"
    ))
    .unwrap_err();
    assert!(err.contains("sources[0].api.path"), "{err}");
    let err = load(&format!(
        "{hmac}[sources.api]\nurl = \"https://api.example.com\"\npath = \"/p/{{id}}\"\nstatus = \"s\"\nstatuses = {{ ok = \"paid\" }}\n"
    ))
    .unwrap_err();
    assert!(err.contains("sources[0].api.statuses.ok"), "{err}");
    let env = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let err = payhook::config::Settings::load(
        None,
        &env(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_confirm_by_api_test"),
            ("STRIPE_CONFIRM", "api"),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("STRIPE_CONFIRM") && err.contains("STRIPE_SECRET_KEY"),
        "{err}"
    );
    let err =
        load("[[sources]]\nname = \"x\"\nkind = \"fedapey\"\nsecrets = [\"s\"]\n").unwrap_err();
    assert!(
        err.contains("sources[0].kind") && err.contains("fedapay"),
        "{err}"
    );
}

#[tokio::test]
async fn stripe_confirmed_by_api_applies_stripes_copy_and_rejects_what_stripe_never_sent() {
    let pay = PaymentIds::new("booking-stripe-api");
    let genuine = pay.event(
        "payment_intent.succeeded",
        now() - 10,
        &["amount=4200".into()],
    );
    let id = genuine["id"].as_str().unwrap().to_string();
    let served = genuine.clone();
    let api = provider_api(move |r| {
        if r.path == format!("/v1/events/{}", served["id"].as_str().unwrap()) {
            (200, served.clone())
        } else {
            (
                404,
                json!({"error": {"type": "invalid_request_error", "message": "No such event"}}),
            )
        }
    })
    .await;
    let base = api.receiver.url.clone();
    let app = spawn_app_with(move |s| {
        s.stripe.secret_key = Some(payhook::domain::Secret::new("sk_test_confirm"));
        s.stripe.api_base = base;
        s.stripe.confirm_by_api = true;
    })
    .await;
    // Signed with the right secret (a leaked one, say), but not what Stripe sent: another amount.
    let mut posted = genuine.clone();
    posted["data"]["object"]["amount"] = json!(1);
    let answer = app.send(&posted.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let row = settled_row(&app, "stripe", &id, "processed").await;
    assert!(row.last_error.is_none());
    let data = app.payment_status("booking-stripe-api").await;
    assert_eq!(data["amount"], 4200, "Stripe's copy is what is applied");
    let asked = api.receiver.requests();
    assert_eq!(asked[0].header("authorization"), "Bearer sk_test_confirm");

    // An event Stripe never sent.
    let forged =
        PaymentIds::new("booking-stripe-forged").event("payment_intent.succeeded", now(), &[]);
    app.send(&forged.to_string()).await;
    let row = settled_row(&app, "stripe", forged["id"].as_str().unwrap(), "rejected").await;
    assert!(row.last_error.unwrap().contains("Stripe has no event"));
    let unknown = app
        .get(
            "/api/v1/payments/booking-stripe-forged/status",
            Some(SERVICE_TOKEN),
        )
        .await;
    assert_eq!(unknown.status, 404, "never applied: {}", unknown.json);
}

#[tokio::test]
async fn any_hmac_source_may_be_confirmed_by_its_providers_api() {
    let api = provider_api(|r| match r.path.as_str() {
        "/v2/payments/txn_123456789" if r.header("authorization") == "Bearer sk_generic" => (
            200,
            json!({"payment": {"state": "PAID", "total": "10000", "cur": "FCFA", "order": "booking_456"}}),
        ),
        "/v2/payments/txn_999" => (200, json!({"payment": {"state": "NOT_FOUND"}})),
        _ => (401, json!({"message": "bad key"})),
    })
    .await;
    let (app, service) = app_with_sources(&format!(
        r#"
[[sources]]
name = "payments"
kind = "hmac"
secrets = ["generic-provider-shared-secret"]
header = "X-Signature"
prefix = "sha256="
confirm = "api"

[sources.mapping]
event_id = "{{transaction_id}}:{{event}}"
event_type = "event"
payment_id = "transaction_id"
types = {{ "payment.completed" = "succeeded" }}
currency_aliases = {{ FCFA = "XOF" }}

[sources.api]
url = "{}"
path = "/v2/payments/{{id}}"
authorization = "Bearer sk_generic"
status = "payment.state"
statuses = {{ PAID = "succeeded", DECLINED = "failed", NOT_FOUND = "unknown" }}
amount = "payment.total"
currency = "payment.cur"
booking_id = "payment.order"
"#,
        api.receiver.url
    ))
    .await;
    service.create("booking_456", Some(10000), Some("XOF"), "pending");
    // The seed's generic example, signed by the provider.
    for (txn, booking) in [("txn_123456789", "booking_456"), ("txn_999", "booking_x")] {
        let body = json!({"event": "payment.completed", "transaction_id": txn, "amount": 10000,
            "currency": "FCFA", "status": "success", "customer_id": "cust_123", "booking_id": booking})
        .to_string();
        let signature = format!(
            "sha256={}",
            hmac_hex("generic-provider-shared-secret", &[body.as_bytes()])
        );
        let answer = post(&app, "payments", &body, &[("x-signature", signature)]).await;
        assert_eq!(answer.status, 200, "{}", answer.json);
    }
    settled_row(
        &app,
        "payments",
        "txn_123456789:payment.completed",
        "processed",
    )
    .await;
    confirmed(&service, "booking_456").await;
    let data = app.payment_status("booking_456").await;
    assert_eq!(
        (&data["amount"], &data["currency"]),
        (&json!(10000), &json!("xof"))
    );
    let row = settled_row(&app, "payments", "txn_999:payment.completed", "rejected").await;
    assert!(row.last_error.unwrap().contains("NOT_FOUND"));
}

#[tokio::test]
async fn a_preset_payhook_knows_no_lookup_for_may_say_how_its_providers_api_is_asked() {
    // Checkout.com's `GET /payments/{id}`, described in the source's [sources.api].
    let api = provider_api(|r| match r.path.as_str() {
        "/payments/pay_cko_api" => (
            200,
            json!({"id": "pay_cko_api", "status": "Captured", "amount": 11900, "currency": "EUR",
                   "reference": "bk_cko_api"}),
        ),
        _ => (404, json!({})),
    })
    .await;
    let (app, service) = app_with_sources(&format!(
        r#"
[[sources]]
name = "cko"
kind = "checkout-com"
secrets = ["cko_whsig_test_api"]
confirm = "api"
[sources.api]
url = "{}"
path = "/payments/{{id}}"
authorization = "Bearer sk_cko_api"
status = "status"
statuses = {{ Captured = "succeeded", Declined = "failed" }}
amount = "amount"
currency = "currency"
booking_id = "reference"
"#,
        api.receiver.url
    ))
    .await;
    service.create("bk_cko_api", Some(11900), Some("EUR"), "pending");
    for (id, payment) in [
        ("evt_cko_api", "pay_cko_api"),
        ("evt_cko_forged", "pay_forged"),
    ] {
        let body =
            json!({"id": id, "type": "payment_captured", "created_on": "2026-01-02T10:00:00Z",
            "data": {"id": payment, "reference": "bk_cko_api", "amount": 1, "currency": "EUR"}})
            .to_string();
        let signature = hmac_hex("cko_whsig_test_api", &[body.as_bytes()]);
        let answer = post(&app, "cko", &body, &[("cko-signature", signature)]).await;
        assert_eq!(answer.status, 200, "{}", answer.json);
    }
    settled_row(&app, "cko", "evt_cko_api", "processed").await;
    confirmed(&service, "bk_cko_api").await;
    assert_eq!(app.payment_status("bk_cko_api").await["amount"], 11900);
    settled_row(&app, "cko", "evt_cko_forged", "rejected").await;
    assert_eq!(
        api.receiver.requests()[0].header("authorization"),
        "Bearer sk_cko_api"
    );
}
