//! Providers whose notifications prove nothing on their own (no signature, or no amount), each
//! confirmed by its own API: MTN MoMo, Orange Money, Mollie, Mercado Pago. Configured in
//! `payhook.toml` as a user would; a real HTTP server on loopback answers as the provider's API.
//! Each takes a payment from the notification to the booking service's `confirmed`, and shows
//! a notification the API denies kept `rejected`, and one that waits while the API is down.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::providers::*;
use common::receiver::*;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

/// The requests the API got on `path`.
fn asked(api: &ProviderApi, path: &str) -> Vec<Recorded> {
    api.receiver
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

// MTN MoMo ---------------------------------------------------------------------------------------

const MOMO_REF: &str = "3f0c6a52-8f43-4f51-9d0b-6b7e0d1c2a10";

fn momo_source(api: &str) -> String {
    format!(
        r#"
[[sources]]
name = "momo"
kind = "mtn-momo"

[sources.api]
url = "{api}"
api_user = "9f1c0b6e-5a55-4a4e-a7cb-0b1e7f8a2c3d"
api_key = "momo-api-key"
subscription_key = "momo-subscription-key"
"#
    )
}

/// The callback MTN posts once a request to pay ends: no reference, no signature.
fn momo_callback(status: &str, amount: &str, booking: &str) -> String {
    let mut body = json!({
        "financialTransactionId": "23503452", "externalId": booking, "amount": amount,
        "currency": "XOF", "payer": {"partyIdType": "MSISDN", "partyId": "22997000000"},
        "payerMessage": "Booking", "payeeNote": booking, "status": status,
    });
    if status == "FAILED" {
        body["reason"] = "APPROVAL_REJECTED".into();
    }
    body.to_string()
}

/// The Collection API: a token, then the request to pay of each known reference.
fn momo_api(payments: Vec<(&'static str, Value)>) -> impl Fn(&Recorded) -> (u16, Value) {
    move |r| {
        if r.path == "/collection/token/" {
            return (
                200,
                json!({"access_token": "momo-jwt", "token_type": "access_token", "expires_in": 3600}),
            );
        }
        payments
            .iter()
            .find(|(id, _)| r.path == format!("/collection/v1_0/requesttopay/{id}"))
            .map(|(_, payment)| (200, payment.clone()))
            .unwrap_or((
                404,
                json!({"code": "RESOURCE_NOT_FOUND", "message": "Requested resource was not found."}),
            ))
    }
}

fn momo_payment(status: &str, amount: &str, booking: &str) -> Value {
    serde_json::from_str(&momo_callback(status, amount, booking)).unwrap()
}

/// momodeveloper.mtn.com/api-documentation/callback: "Allow PUT & POST on your callback listener
/// host"; the callback is sent once, so one sent with PUT must not be lost to a 405.
#[tokio::test]
async fn mtn_momo_callback_sent_with_put_is_received_like_a_post() {
    let api = provider_api(momo_api(vec![(
        MOMO_REF,
        momo_payment("SUCCESSFUL", "10000", "bk_momo_put"),
    )]))
    .await;
    let (app, service) = app_with_sources(&momo_source(&api.receiver.url)).await;
    service.create("bk_momo_put", Some(10000), Some("XOF"), "pending");
    let body = momo_callback("SUCCESSFUL", "10000", "bk_momo_put");
    let put = |path: &str| {
        app.client
            .put(format!("{}/webhooks/{path}", app.base))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    let answer = Answer::read(put(&format!("momo?reference={MOMO_REF}")).await.unwrap()).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let id = format!("{MOMO_REF}:SUCCESSFUL");
    assert_eq!(answer.json["event_id"], id.as_str());
    settled_row(&app, "momo", &id, "processed").await;
    confirmed(&service, "bk_momo_put").await;
    // The same callback by POST is the same event.
    let path = format!("momo?reference={MOMO_REF}");
    let again = post_webhook(&app, &path, "application/json", &body, NO_HEADERS).await;
    assert_eq!(again.json["duplicate"], true, "{}", again.json);
    // A provider that never sends PUT keeps its 405.
    let stripe = Answer::read(put("stripe").await.unwrap()).await;
    assert_eq!(stripe.status, 405, "{}", stripe.json);
}

#[tokio::test]
async fn mtn_momo_callback_confirmed_by_the_collection_api_confirms_the_booking() {
    let api = provider_api(momo_api(vec![(
        MOMO_REF,
        momo_payment("SUCCESSFUL", "10000", "bk_momo"),
    )]))
    .await;
    let (app, service) = app_with_sources(&momo_source(&api.receiver.url)).await;
    service.create("bk_momo", Some(10000), Some("XOF"), "pending");

    // The callback claims another amount: the Collection API's answer is what counts.
    let body = momo_callback("SUCCESSFUL", "1", "bk_momo");
    let path = format!("momo?reference={MOMO_REF}");
    let answer = post_webhook(&app, &path, "application/json", &body, NO_HEADERS).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let id = format!("{MOMO_REF}:SUCCESSFUL");
    assert_eq!(answer.json["event_id"], id.as_str());
    settled_row(&app, "momo", &id, "processed").await;
    confirmed(&service, "bk_momo").await;
    let data = app.payment_status("bk_momo").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["amount"], 10000, "the amount MTN confirmed");
    assert_eq!(data["currency"], "xof");

    // The callback is kept with the reference it came under, byte for byte.
    let row = app.payhook.store.event("momo", &id).await.unwrap().unwrap();
    let kept: Value = serde_json::from_slice(&row.payload).unwrap();
    assert_eq!(kept["query"]["reference"], MOMO_REF);
    assert!(String::from_utf8_lossy(&row.payload).ends_with(&format!(",\"body\":{body}}}")));

    // MTN's token, then its request to pay, asked the documented way.
    let token = asked(&api, "/collection/token/");
    assert_eq!(token[0].method, "POST");
    assert_eq!(
        token[0].header("authorization"),
        "Basic OWYxYzBiNmUtNWE1NS00YTRlLWE3Y2ItMGIxZTdmOGEyYzNkOm1vbW8tYXBpLWtleQ=="
    );
    assert_eq!(
        token[0].header("ocp-apim-subscription-key"),
        "momo-subscription-key"
    );
    let get = asked(&api, &format!("/collection/v1_0/requesttopay/{MOMO_REF}"));
    assert_eq!(get.len(), 1);
    assert_eq!(get[0].method, "GET");
    assert_eq!(get[0].header("authorization"), "Bearer momo-jwt");
    assert_eq!(get[0].header("x-target-environment"), "sandbox");
    assert_eq!(
        get[0].header("ocp-apim-subscription-key"),
        "momo-subscription-key"
    );

    // The same callback again is a duplicate; one without its reference is refused.
    let again = post_webhook(&app, &path, "application/json", &body, NO_HEADERS).await;
    assert_eq!(
        (again.status, again.json["duplicate"].clone()),
        (200, json!(true))
    );
    let lost = post_webhook(&app, "momo", "application/json", &body, NO_HEADERS).await;
    assert_eq!(
        (lost.status, lost.code()),
        (400, "malformed_payload"),
        "{}",
        lost.json
    );
    let broken = post_webhook(&app, &path, "application/json", "{\"status\":", NO_HEADERS).await;
    assert_eq!((broken.status, broken.code()), (400, "malformed_payload"));
    assert_eq!(app.rows("webhook_events").await, 1);
}

#[tokio::test]
async fn mtn_momo_callbacks_the_collection_api_denies_are_kept_rejected() {
    let api = provider_api(momo_api(vec![(
        MOMO_REF,
        momo_payment("FAILED", "5000", "bk_momo_denied"),
    )]))
    .await;
    let (app, service) = app_with_sources(&momo_source(&api.receiver.url)).await;
    service.create("bk_momo_denied", Some(5000), Some("XOF"), "pending");
    service.create("bk_momo_ghost", Some(5000), Some("XOF"), "pending");

    // SUCCESSFUL, says the callback; FAILED, says MTN.
    let body = momo_callback("SUCCESSFUL", "5000", "bk_momo_denied");
    post_webhook(
        &app,
        &format!("momo?reference={MOMO_REF}"),
        "application/json",
        &body,
        NO_HEADERS,
    )
    .await;
    let row = settled_row(&app, "momo", &format!("{MOMO_REF}:SUCCESSFUL"), "rejected").await;
    let error = row.last_error.unwrap();
    assert!(error.contains("\"FAILED\""), "{error}");

    // A reference MTN has never heard of.
    let ghost = "00000000-0000-4000-8000-000000000000";
    let body = momo_callback("SUCCESSFUL", "5000", "bk_momo_ghost");
    post_webhook(
        &app,
        &format!("momo?reference={ghost}"),
        "application/json",
        &body,
        NO_HEADERS,
    )
    .await;
    let row = settled_row(&app, "momo", &format!("{ghost}:SUCCESSFUL"), "rejected").await;
    let error = row.last_error.unwrap();
    assert!(
        error.contains("HTTP 404") && error.contains("RESOURCE_NOT_FOUND"),
        "{error}"
    );

    assert_eq!(app.rows("payments").await, 0, "nothing applied");
    for booking in ["bk_momo_denied", "bk_momo_ghost"] {
        assert_eq!(service.booking(booking).unwrap().status, "pending");
    }
}

#[tokio::test]
async fn mtn_momo_callback_waits_while_the_collection_api_is_down_then_is_applied() {
    let api = provider_api(momo_api(vec![(
        MOMO_REF,
        momo_payment("SUCCESSFUL", "2500", "bk_momo_wait"),
    )]))
    .await;
    api.down.store(true, Ordering::SeqCst);
    let (app, service) = app_with_sources(&momo_source(&api.receiver.url)).await;
    service.create("bk_momo_wait", Some(2500), Some("XOF"), "pending");
    let body = momo_callback("SUCCESSFUL", "2500", "bk_momo_wait");
    let answer = post_webhook(
        &app,
        &format!("momo?reference={MOMO_REF}"),
        "application/json",
        &body,
        NO_HEADERS,
    )
    .await;
    assert_eq!(answer.status, 200, "acknowledged while MTN is down");
    waits_then_applies(&app, &api, "momo", &format!("{MOMO_REF}:SUCCESSFUL")).await;
    confirmed(&service, "bk_momo_wait").await;
}

/// The event waits (with why) while the API is down, and is applied once it is back.
async fn waits_then_applies(app: &TestApp, api: &ProviderApi, source: &str, id: &str) {
    eventually(Duration::from_secs(10), "the event waits", || async {
        let row = app.payhook.store.event(source, id).await.unwrap();
        row.is_some_and(|r| r.status == "waiting" && r.last_error.is_some())
    })
    .await;
    let row = app.payhook.store.event(source, id).await.unwrap().unwrap();
    assert!(row.last_error.unwrap().contains("503"));
    assert_eq!(app.rows("payments").await, 0);
    api.down.store(false, Ordering::SeqCst);
    settled_row(app, source, id, "processed").await;
}

// Orange Money -----------------------------------------------------------------------------------

fn orange_source(api: &str) -> String {
    format!(
        r#"
[[sources]]
name = "orange"
kind = "orange-money"

[sources.api]
url = "{api}"
client_id = "om-client"
client_secret = "om-secret"
country = "dev"
"#
    )
}

/// Orange's notification: a status, the payment's notif_token and Orange's transaction id.
fn orange_notification(status: &str) -> String {
    json!({"status": status, "notif_token": "dd497bda3b250e536186fc0663f32f40", "txnid": "MP150709.1341.A00073"})
        .to_string()
}

/// The notification URL the operator gave Orange when creating the payment.
fn orange_path(order: &str, amount: &str, pay_token: &str) -> String {
    format!("orange?order_id={order}&amount={amount}&pay_token={pay_token}")
}

/// Orange's API: a token, then the status of each known pay token (asked with its order and
/// amount, as Orange's `transactionstatus` is).
fn orange_api(payments: Vec<(&'static str, &'static str)>) -> impl Fn(&Recorded) -> (u16, Value) {
    move |r| {
        if r.path == "/oauth/v3/token" {
            return (
                200,
                json!({"token_type": "Bearer", "access_token": "om-token", "expires_in": 7776000}),
            );
        }
        let asked = r.json();
        match payments
            .iter()
            .find(|(token, _)| asked["pay_token"] == *token)
        {
            Some((_, status)) if r.path == "/orange-money-webpay/dev/v1/transactionstatus" => (
                201,
                json!({"status": status, "order_id": asked["order_id"], "txnid": "MP150709.1341.A00073"}),
            ),
            _ => (
                404,
                json!({"code": 404, "message": "Transaction not found"}),
            ),
        }
    }
}

#[tokio::test]
async fn orange_money_notification_confirmed_by_the_status_api_confirms_the_booking() {
    let api = provider_api(orange_api(vec![("v1tok_success", "SUCCESS")])).await;
    let (app, service) = app_with_sources(&orange_source(&api.receiver.url)).await;
    service.create("bk_orange", Some(15000), Some("XOF"), "pending");

    let body = orange_notification("SUCCESS");
    let path = orange_path("bk_orange", "15000", "v1tok_success");
    let answer = post_webhook(&app, &path, "application/json", &body, NO_HEADERS).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["event_id"], "v1tok_success:SUCCESS");
    settled_row(&app, "orange", "v1tok_success:SUCCESS", "processed").await;
    confirmed(&service, "bk_orange").await;
    let data = app.payment_status("bk_orange").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["amount"], 15000);
    assert_eq!(data["currency"], "xof");

    let token = asked(&api, "/oauth/v3/token");
    assert_eq!(
        token[0].header("authorization"),
        "Basic b20tY2xpZW50Om9tLXNlY3JldA=="
    );
    assert_eq!(token[0].body, "grant_type=client_credentials");
    let status = asked(&api, "/orange-money-webpay/dev/v1/transactionstatus");
    assert_eq!(status[0].method, "POST");
    assert_eq!(status[0].header("authorization"), "Bearer om-token");
    assert_eq!(
        status[0].json(),
        json!({"order_id": "bk_orange", "amount": "15000", "pay_token": "v1tok_success"})
    );

    // Without the query, the notification names nothing payhook can confirm.
    let lost = post_webhook(&app, "orange", "application/json", &body, NO_HEADERS).await;
    assert_eq!(
        (lost.status, lost.code()),
        (400, "malformed_payload"),
        "{}",
        lost.json
    );
    assert_eq!(app.rows("webhook_events").await, 1);
}

#[tokio::test]
async fn orange_money_notifications_the_status_api_denies_are_kept_rejected() {
    let api = provider_api(orange_api(vec![("v1tok_expired", "EXPIRED")])).await;
    let (app, service) = app_with_sources(&orange_source(&api.receiver.url)).await;
    service.create("bk_orange_denied", Some(5000), Some("XOF"), "pending");

    // SUCCESS, says the notification; EXPIRED, says Orange.
    let body = orange_notification("SUCCESS");
    let path = orange_path("bk_orange_denied", "5000", "v1tok_expired");
    post_webhook(&app, &path, "application/json", &body, NO_HEADERS).await;
    let row = settled_row(&app, "orange", "v1tok_expired:SUCCESS", "rejected").await;
    assert!(row.last_error.unwrap().contains("\"EXPIRED\""));

    // A pay token Orange has never issued.
    let path = orange_path("bk_orange_denied", "5000", "v1tok_forged");
    post_webhook(&app, &path, "application/json", &body, NO_HEADERS).await;
    let row = settled_row(&app, "orange", "v1tok_forged:SUCCESS", "rejected").await;
    assert!(row.last_error.unwrap().contains("HTTP 404"));

    assert_eq!(app.rows("payments").await, 0, "nothing applied");
    assert_eq!(
        service.booking("bk_orange_denied").unwrap().status,
        "pending"
    );
}

#[tokio::test]
async fn orange_money_notification_waits_while_the_status_api_is_down_then_is_applied() {
    let api = provider_api(orange_api(vec![("v1tok_wait", "SUCCESS")])).await;
    api.down.store(true, Ordering::SeqCst);
    let (app, service) = app_with_sources(&orange_source(&api.receiver.url)).await;
    service.create("bk_orange_wait", Some(2500), Some("XOF"), "pending");
    let body = orange_notification("SUCCESS");
    let path = orange_path("bk_orange_wait", "2500", "v1tok_wait");
    assert_eq!(
        post_webhook(&app, &path, "application/json", &body, NO_HEADERS)
            .await
            .status,
        200
    );
    waits_then_applies(&app, &api, "orange", "v1tok_wait:SUCCESS").await;
    confirmed(&service, "bk_orange_wait").await;
}

// Mollie -----------------------------------------------------------------------------------------

fn mollie_source(api: &str) -> String {
    format!(
        r#"
[[sources]]
name = "mollie"
kind = "mollie"

[sources.api]
url = "{api}"
api_key = "test_dHar4XY7LxsDOtmnkVtjNVWXLSlXsM"
"#
    )
}

/// `GET /v2/payments/{id}`'s answer, as Mollie's API writes a payment.
fn mollie_payment(id: &str, status: &str, value: &str, booking: &str) -> Value {
    json!({
        "resource": "payment", "id": id, "mode": "test", "status": status,
        "amount": {"value": value, "currency": "EUR"}, "description": format!("Booking {booking}"),
        "metadata": {"booking_id": booking},
        "_links": {"self": {"href": format!("https://api.mollie.com/v2/payments/{id}"), "type": "application/hal+json"}},
    })
}

/// Mollie's API with one payment whose status the test changes.
fn mollie_api(
    id: &'static str,
    booking: &'static str,
    status: Arc<std::sync::Mutex<&'static str>>,
) -> impl Fn(&Recorded) -> (u16, Value) {
    move |r| {
        if r.path == format!("/v2/payments/{id}") {
            let status = *status.lock().unwrap();
            return (200, mollie_payment(id, status, "119.00", booking));
        }
        (
            404,
            json!({"status": 404, "title": "Not Found", "detail": "No payment exists with token tr_nope."}),
        )
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn mollie_notifications_confirmed_by_the_payments_api_confirm_the_booking_at_each_change() {
    let status = Arc::new(std::sync::Mutex::new("open"));
    let api = provider_api(mollie_api("tr_WDqYK6vllg", "bk_mollie", status.clone())).await;
    let (app, service) = app_with_sources(&mollie_source(&api.receiver.url)).await;
    service.create("bk_mollie", Some(11900), Some("EUR"), "pending");

    // Created: Mollie says open.
    let answer = post_webhook(&app, "mollie", FORM, "id=tr_WDqYK6vllg", NO_HEADERS).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let first = answer.json["event_id"].as_str().unwrap().to_string();
    assert!(first.starts_with("tr_WDqYK6vllg:"), "{first}");
    settled_row(&app, "mollie", &first, "processed").await;
    assert_eq!(
        app.payment_status("bk_mollie").await["status"],
        "processing"
    );

    // Paid: the same body again, a change all the same.
    *status.lock().unwrap() = "paid";
    let answer = post_webhook(&app, "mollie", FORM, "id=tr_WDqYK6vllg", NO_HEADERS).await;
    assert_eq!(answer.json["duplicate"], false, "{}", answer.json);
    let second = answer.json["event_id"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    settled_row(&app, "mollie", &second, "processed").await;
    confirmed(&service, "bk_mollie").await;
    let data = app.payment_status("bk_mollie").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["amount"], 11900);
    assert_eq!(data["currency"], "eur");

    // Mollie delivering the paid state once more changes nothing.
    let third = post_webhook(&app, "mollie", FORM, "id=tr_WDqYK6vllg", NO_HEADERS).await;
    let third = third.json["event_id"].as_str().unwrap().to_string();
    settled_row(&app, "mollie", &third, "processed").await;
    assert_eq!(app.rows("payments").await, 1);
    assert_eq!(app.payment_status("bk_mollie").await["status"], "succeeded");
    assert_eq!(service.booking("bk_mollie").unwrap().status, "confirmed");

    let get = asked(&api, "/v2/payments/tr_WDqYK6vllg");
    assert_eq!(get.len(), 3);
    assert_eq!(get[0].method, "GET");
    assert_eq!(
        get[0].header("authorization"),
        "Bearer test_dHar4XY7LxsDOtmnkVtjNVWXLSlXsM"
    );

    // A body naming no payment is refused.
    let none = post_webhook(&app, "mollie", FORM, "payment=tr_WDqYK6vllg", NO_HEADERS).await;
    assert_eq!(
        (none.status, none.code()),
        (400, "malformed_payload"),
        "{}",
        none.json
    );
    assert_eq!(app.rows("webhook_events").await, 3);
}

#[tokio::test]
async fn mollie_notification_of_a_payment_mollie_does_not_have_is_kept_rejected() {
    let status = Arc::new(std::sync::Mutex::new("paid"));
    let api = provider_api(mollie_api("tr_WDqYK6vllg", "bk_mollie", status)).await;
    let (app, _service) = app_with_sources(&mollie_source(&api.receiver.url)).await;
    let answer = post_webhook(&app, "mollie", FORM, "id=tr_nope", NO_HEADERS).await;
    assert_eq!(
        answer.status, 200,
        "acknowledged: Mollie is not told which ids exist"
    );
    let id = answer.json["event_id"].as_str().unwrap().to_string();
    let row = settled_row(&app, "mollie", &id, "rejected").await;
    let error = row.last_error.unwrap();
    assert!(
        error.contains("HTTP 404") && error.contains("No payment exists"),
        "{error}"
    );
    assert_eq!(app.rows("payments").await, 0);
}

#[tokio::test]
async fn mollie_notification_waits_while_the_payments_api_is_down_then_is_applied() {
    let status = Arc::new(std::sync::Mutex::new("paid"));
    let api = provider_api(mollie_api("tr_wait", "bk_mollie_wait", status)).await;
    api.down.store(true, Ordering::SeqCst);
    let (app, service) = app_with_sources(&mollie_source(&api.receiver.url)).await;
    service.create("bk_mollie_wait", Some(11900), Some("EUR"), "pending");
    let answer = post_webhook(&app, "mollie", FORM, "id=tr_wait", NO_HEADERS).await;
    let id = answer.json["event_id"].as_str().unwrap().to_string();
    waits_then_applies(&app, &api, "mollie", &id).await;
    confirmed(&service, "bk_mollie_wait").await;
}

// Mercado Pago -----------------------------------------------------------------------------------

const MP_SECRET: &str = "mp_clave_secreta_test";

fn mercadopago_source(api: &str) -> String {
    format!(
        r#"
[[sources]]
name = "mp"
kind = "mercadopago"
secrets = ["{MP_SECRET}"]

[sources.api]
url = "{api}"
access_token = "TEST-8412-access-token"
"#
    )
}

/// `x-signature` and `x-request-id` for a notification about `data_id` at `ts`, computed here
/// from Mercado Pago's documented manifest.
fn mp_headers(secret: &str, data_id: &str, ts: i64) -> Vec<(&'static str, String)> {
    let request_id = "2066ca19-c6f1-498a-be75-1923005edd06";
    let manifest = format!("id:{data_id};request-id:{request_id};ts:{ts};");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(manifest.as_bytes());
    let v1 = hex::encode(mac.finalize().into_bytes());
    vec![
        ("x-signature", format!("ts={ts},v1={v1}")),
        ("x-request-id", request_id.to_string()),
    ]
}

fn mp_notification(data_id: &str) -> String {
    json!({
        "id": 12345, "live_mode": false, "type": "payment", "date_created": "2026-11-30T10:00:00Z",
        "user_id": 724484980, "api_version": "v1", "action": "payment.updated",
        "data": {"id": data_id},
    })
    .to_string()
}

/// `GET /v1/payments/{id}`: the payments Mercado Pago has.
fn mp_api(
    payments: Vec<(&'static str, &'static str, f64, &'static str)>,
) -> impl Fn(&Recorded) -> (u16, Value) {
    move |r| match payments
        .iter()
        .find(|(id, ..)| r.path == format!("/v1/payments/{id}"))
    {
        Some((id, status, amount, booking)) => (
            200,
            json!({"id": id.parse::<i64>().unwrap(), "status": status, "status_detail": "accredited",
                       "transaction_amount": amount, "currency_id": "BRL",
                       "external_reference": booking, "metadata": {}}),
        ),
        None => (
            404,
            json!({"message": "Payment not found", "error": "not_found", "status": 404, "cause": []}),
        ),
    }
}

#[tokio::test]
async fn mercadopago_signed_notification_confirmed_by_the_payments_api_confirms_the_booking() {
    let api = provider_api(mp_api(vec![("123456789", "approved", 150.5, "bk_mp")])).await;
    let (app, service) = app_with_sources(&mercadopago_source(&api.receiver.url)).await;
    service.create("bk_mp", Some(15050), Some("BRL"), "pending");

    let body = mp_notification("123456789");
    let path = "mp?data.id=123456789&type=payment";
    let headers = mp_headers(MP_SECRET, "123456789", now());
    let answer = post_webhook(&app, path, "application/json", &body, &headers).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let id = answer.json["event_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("123456789:"), "{id}");
    settled_row(&app, "mp", &id, "processed").await;
    confirmed(&service, "bk_mp").await;
    let data = app.payment_status("bk_mp").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["amount"], 15050);
    assert_eq!(data["currency"], "brl");
    let get = asked(&api, "/v1/payments/123456789");
    assert_eq!(
        get[0].header("authorization"),
        "Bearer TEST-8412-access-token"
    );
    let row = app.payhook.store.event("mp", &id).await.unwrap().unwrap();
    assert!(
        !row.headers.contains(&headers[0].1),
        "the signature is not kept"
    );

    // Tampered, stale, wrong secret, unsigned: refused with the documented codes.
    let stale = mp_headers(MP_SECRET, "123456789", now() - 301);
    let wrong = mp_headers("another_secret", "123456789", now());
    let other = mp_notification("987654321");
    for (path, body, headers, code) in [
        (
            "mp?data.id=987654321&type=payment",
            &body,
            headers.clone(),
            "invalid_signature",
        ),
        (path, &other, headers.clone(), "invalid_signature"),
        (path, &body, stale, "timestamp_out_of_tolerance"),
        (path, &body, wrong, "invalid_signature"),
        (path, &body, vec![], "missing_signature"),
        (
            path,
            &body,
            vec![("x-signature", "v1=00".to_string())],
            "malformed_signature_header",
        ),
    ] {
        let answer = post_webhook(&app, path, "application/json", body, &headers).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, code),
            "{path} {}",
            answer.json
        );
    }
    assert_eq!(app.rows("webhook_events").await, 1);
}

#[tokio::test]
async fn mercadopago_notification_of_a_payment_the_api_does_not_have_is_kept_rejected() {
    let api = provider_api(mp_api(vec![])).await;
    let (app, service) = app_with_sources(&mercadopago_source(&api.receiver.url)).await;
    service.create("bk_mp_ghost", Some(15050), Some("BRL"), "pending");
    let body = mp_notification("555");
    let headers = mp_headers(MP_SECRET, "555", now());
    let answer = post_webhook(
        &app,
        "mp?data.id=555&type=payment",
        "application/json",
        &body,
        &headers,
    )
    .await;
    let id = answer.json["event_id"].as_str().unwrap().to_string();
    let row = settled_row(&app, "mp", &id, "rejected").await;
    let error = row.last_error.unwrap();
    assert!(
        error.contains("HTTP 404") && error.contains("Payment not found"),
        "{error}"
    );
    assert_eq!(app.rows("payments").await, 0);
    assert_eq!(service.booking("bk_mp_ghost").unwrap().status, "pending");
}

#[tokio::test]
async fn mercadopago_notification_waits_while_the_payments_api_is_down_then_is_applied() {
    let api = provider_api(mp_api(vec![("777", "approved", 99.9, "bk_mp_wait")])).await;
    api.down.store(true, Ordering::SeqCst);
    let (app, service) = app_with_sources(&mercadopago_source(&api.receiver.url)).await;
    service.create("bk_mp_wait", Some(9990), Some("BRL"), "pending");
    let body = mp_notification("777");
    let headers = mp_headers(MP_SECRET, "777", now());
    let answer = post_webhook(
        &app,
        "mp?data.id=777&type=payment",
        "application/json",
        &body,
        &headers,
    )
    .await;
    let id = answer.json["event_id"].as_str().unwrap().to_string();
    waits_then_applies(&app, &api, "mp", &id).await;
    confirmed(&service, "bk_mp_wait").await;
}

#[test]
fn a_misconfigured_api_preset_stops_start_up_naming_the_key() {
    let load = load_config;
    assert_eq!(load(&momo_source("https://proxy.momoapi.mtn.com")), Ok(()));
    for (toml, key) in [
        // Unsigned providers: no secrets, never without their API.
        (
            "[[sources]]\nname = \"momo\"\nkind = \"mtn-momo\"\n",
            "sources[0].api",
        ),
        (
            "[[sources]]\nname = \"m\"\nkind = \"mollie\"\nsecrets = [\"s\"]\n",
            "sources[0].secrets",
        ),
        (
            "[[sources]]\nname = \"m\"\nkind = \"mollie\"\nconfirm = \"signature\"\n[sources.api]\napi_key = \"k\"\n",
            "sources[0].confirm",
        ),
        (
            "[[sources]]\nname = \"o\"\nkind = \"orange-money\"\n[sources.api]\nclient_id = \"i\"\nclient_secret = \"s\"\n",
            "sources[0].api.country",
        ),
        (
            "[[sources]]\nname = \"m\"\nkind = \"mtn-momo\"\n[sources.api]\napi_user = \"u\"\napi_key = \"k\"\n",
            "sources[0].api.subscription_key",
        ),
        // Mercado Pago signs, and still needs its API for the amount.
        (
            "[[sources]]\nname = \"mp\"\nkind = \"mercadopago\"\n[sources.api]\naccess_token = \"t\"\n",
            "sources[0].secrets",
        ),
        (
            "[[sources]]\nname = \"mp\"\nkind = \"mercadopago\"\nsecrets = [\"s\"]\n",
            "sources[0].api",
        ),
    ] {
        let err = load(toml).unwrap_err();
        assert!(err.contains(key), "{key}: {err}");
    }
}

#[tokio::test]
async fn mtn_momo_failed_request_to_pay_fails_the_payment_with_mtns_reason() {
    let mut payment = momo_payment("FAILED", "3000", "bk_momo_failed");
    payment["reason"] = json!({"code": "APPROVAL_REJECTED", "message": "The payer declined"});
    let api = provider_api(momo_api(vec![(MOMO_REF, payment)])).await;
    let (app, service) = app_with_sources(&momo_source(&api.receiver.url)).await;
    service.create("bk_momo_failed", Some(3000), Some("XOF"), "pending");
    let body = momo_callback("FAILED", "3000", "bk_momo_failed");
    let path = format!("momo?reference={MOMO_REF}");
    post_webhook(&app, &path, "application/json", &body, NO_HEADERS).await;
    settled_row(&app, "momo", &format!("{MOMO_REF}:FAILED"), "processed").await;
    let data = app.payment_status("bk_momo_failed").await;
    assert_eq!(data["status"], "failed", "{data}");
    assert!(data.to_string().contains("APPROVAL_REJECTED"), "{data}");
}
