//! West and Central African provider presets end to end (Wave, Kkiapay, CinetPay, PayDunya),
//! configured in `payhook.toml` as a user would: each takes a payment from the provider's
//! notification to the booking service's `confirmed`, in FCFA (XOF). Signatures are computed here
//! from the providers' documented recipes, not with payhook's code. Where the provider's API
//! confirms, a real HTTP server on loopback answers as that API: confirmed, denied, and down (the
//! event waits, then is applied). On SQLite or PostgreSQL (`TEST_DATABASE_URL`).

mod common;

use std::sync::atomic::Ordering;

use common::providers::*;
use common::*;
use serde_json::{Value, json};

/// The payment's amount and currency as the booking service reads them.
async fn assert_paid(app: &TestApp, booking: &str, amount: i64, written: &str) {
    let data = app.payment_status(booking).await;
    assert_eq!(data["status"], "succeeded", "{data}");
    assert_eq!(data["amount"], amount, "{data}");
    assert_eq!(data["currency"], "xof", "{data}");
    assert_eq!(data["amountFormatted"], written, "{data}");
}

// --- Wave --------------------------------------------------------------------------------------

const WAVE_SECRET: &str = "wave_sn_WHS_xz4m6g8rjs9bruwrgbtn0vk7cvgan9dnq1djgca7tq8wwa70ncqg";

/// A Wave Checkout Session event, as Wave posts it.
fn wave_event(id: &str, kind: &str, session: &str, payment_status: &str, booking: &str) -> String {
    let checkout_status = if payment_status == "succeeded" {
        "complete"
    } else {
        "open"
    };
    json!({
        "id": id,
        "type": kind,
        "data": {
            "id": session, "amount": "10000", "currency": "XOF", "client_reference": booking,
            "checkout_status": checkout_status, "payment_status": payment_status,
            "business_name": "Hotel", "when_created": "2026-11-30T10:00:00Z",
            "last_payment_error": if payment_status == "succeeded" { Value::Null } else {
                json!({"code": "insufficient-funds", "message": "balance too low"})
            },
        },
    })
    .to_string()
}

/// `Wave-Signature` for `body` at `t`: HMAC-SHA256 of `t` and the body with nothing between.
fn wave_signature(secret: &str, t: i64, body: &str) -> (&'static str, String) {
    let t = t.to_string();
    let v1 = hmac_hex(secret, &[t.as_bytes(), body.as_bytes()]);
    ("wave-signature", format!("t={t},v1={v1}"))
}

#[tokio::test]
async fn wave_signed_checkout_confirms_the_booking_in_fcfa() {
    let (app, service) = app_with_sources(&format!(
        "[[sources]]\nname = \"wave\"\nkind = \"wave\"\nsecrets = [\"{WAVE_SECRET}\"]\n"
    ))
    .await;
    service.create("bk_wave", Some(10000), Some("XOF"), "pending");

    // A failed attempt first: the session stays open, and the payer tries again.
    let failed = wave_event(
        "AE_failed1",
        "checkout.session.payment_failed",
        "cos-1",
        "processing",
        "bk_wave",
    );
    let answer = post_webhook(
        &app,
        "wave",
        JSON,
        &failed,
        &[wave_signature(WAVE_SECRET, now(), &failed)],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    settled_row(&app, "wave", "AE_failed1", "processed").await;

    let body = wave_event(
        "AE_paid1",
        "checkout.session.completed",
        "cos-1",
        "succeeded",
        "bk_wave",
    );
    // During a rotation Wave signs with each secret; any one matching is enough.
    let (name, value) = wave_signature(WAVE_SECRET, now(), &body);
    let rotated = format!("{},v1={}", value, "0".repeat(64));
    let answer = post_webhook(&app, "wave", JSON, &body, &[(name, rotated)]).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["event_id"], "AE_paid1");
    confirmed(&service, "bk_wave").await;
    assert_paid(&app, "bk_wave", 10000, "10000 XOF").await;

    // Tampered, stale, wrong secret, `t.body` (not Wave's recipe), none: refused, nothing stored.
    let t = now();
    let stale = wave_signature(WAVE_SECRET, t - 301, &body);
    let wrong = wave_signature("wave_sn_WHS_other", t, &body);
    let dotted = (
        "wave-signature",
        format!(
            "t={t},v1={}",
            hmac_hex(
                WAVE_SECRET,
                &[t.to_string().as_bytes(), b".", body.as_bytes()]
            )
        ),
    );
    let tampered = body.replace("10000", "10");
    for (sent, headers, code) in [
        (
            &tampered,
            vec![wave_signature(WAVE_SECRET, t, &body)],
            "invalid_signature",
        ),
        (&body, vec![stale], "timestamp_out_of_tolerance"),
        (&body, vec![wrong], "invalid_signature"),
        (&body, vec![dotted], "invalid_signature"),
        (
            &body,
            vec![("wave-signature", format!("v1={}", "0".repeat(64)))],
            "malformed_signature_header",
        ),
        (&body, vec![], "missing_signature"),
    ] {
        let answer = post_webhook(&app, "wave", JSON, sent, &headers).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, code),
            "{}",
            answer.json
        );
    }
    // Signed, but not a Wave event.
    let junk = "{\"type\":\"checkout.session.completed\"}";
    let answer = post_webhook(
        &app,
        "wave",
        JSON,
        junk,
        &[wave_signature(WAVE_SECRET, t, junk)],
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (400, "malformed_payload"),
        "{}",
        answer.json
    );
    assert_eq!(app.rows("webhook_events").await, 2);
}

/// Wave's `GET /v1/checkout/sessions/{id}` answer.
fn wave_session(id: &str, payment_status: &str, amount: &str, booking: &str) -> Value {
    json!({
        "id": id, "amount": amount, "currency": "XOF", "client_reference": booking,
        "checkout_status": if payment_status == "succeeded" { "complete" } else { "open" },
        "payment_status": payment_status, "business_name": "Hotel",
    })
}

#[tokio::test]
async fn wave_confirmed_by_its_api_denied_and_waiting_while_it_is_down() {
    let api = provider_api(|r| match r.path.as_str() {
        "/v1/checkout/sessions/cos-ok" => (
            200,
            wave_session("cos-ok", "succeeded", "7500", "bk_wave_api"),
        ),
        "/v1/checkout/sessions/cos-open" => (
            200,
            wave_session("cos-open", "cancelled", "7500", "bk_wave_no"),
        ),
        "/v1/checkout/sessions/cos-wait" => (
            200,
            wave_session("cos-wait", "succeeded", "7500", "bk_wave_wait"),
        ),
        _ => (
            404,
            json!({"code": "checkout-session-not-found", "message": "Checkout session not found"}),
        ),
    })
    .await;
    let (app, service) = app_with_sources(&format!(
        r#"
[[sources]]
name = "wave"
kind = "wave"
secrets = ["{WAVE_SECRET}"]
confirm = "api"

[sources.api]
url = "{}"
api_key = "wave_sn_prod_test"
"#,
        api.receiver.url
    ))
    .await;
    for booking in ["bk_wave_api", "bk_wave_no", "bk_wave_ghost"] {
        service.create(booking, Some(7500), Some("XOF"), "pending");
    }
    let send = |id: &str, session: &str, booking: &str| {
        let body = wave_event(
            id,
            "checkout.session.completed",
            session,
            "succeeded",
            booking,
        )
        // The body claims another amount: what the API answers is what counts.
        .replace("\"10000\"", "\"1\"");
        let app = &app;
        async move {
            let answer = post_webhook(
                app,
                "wave",
                JSON,
                &body,
                &[wave_signature(WAVE_SECRET, now(), &body)],
            )
            .await;
            assert_eq!(
                answer.status, 200,
                "stored and acknowledged before any confirmation"
            );
        }
    };

    // Confirmed: the session the API returns is read, not the body.
    send("AE_ok", "cos-ok", "bk_wave_api").await;
    settled_row(&app, "wave", "AE_ok", "processed").await;
    confirmed(&service, "bk_wave_api").await;
    assert_paid(&app, "bk_wave_api", 7500, "7500 XOF").await;
    let asked = api.receiver.requests();
    assert_eq!(asked[0].method, "GET");
    assert_eq!(asked[0].path, "/v1/checkout/sessions/cos-ok");
    assert_eq!(asked[0].header("authorization"), "Bearer wave_sn_prod_test");

    // Denied: Wave says the session's payment did not succeed, or has no such session.
    send("AE_no", "cos-open", "bk_wave_no").await;
    let row = settled_row(&app, "wave", "AE_no", "rejected").await;
    assert!(row.last_error.unwrap().contains("\"cancelled\""));
    send("AE_ghost", "cos-ghost", "bk_wave_ghost").await;
    let row = settled_row(&app, "wave", "AE_ghost", "rejected").await;
    assert!(row.last_error.unwrap().contains("HTTP 404"));
    for booking in ["bk_wave_no", "bk_wave_ghost"] {
        assert_eq!(service.booking(booking).unwrap().status, "pending");
    }

    // Down: the event waits, then is applied once Wave answers again.
    api.down.store(true, Ordering::SeqCst);
    service.create("bk_wave_wait", Some(7500), Some("XOF"), "pending");
    send("AE_wait", "cos-wait", "bk_wave_wait").await;
    assert!(
        waiting_row(&app, "wave", "AE_wait")
            .await
            .contains("HTTP 503")
    );
    assert_eq!(service.booking("bk_wave_wait").unwrap().status, "pending");
    api.down.store(false, Ordering::SeqCst);
    settled_row(&app, "wave", "AE_wait", "processed").await;
    confirmed(&service, "bk_wave_wait").await;
}

// --- Kkiapay -----------------------------------------------------------------------------------

const KKIAPAY_SECRET: &str = "kkiapay-dashboard-hash-secret";

/// A Kkiapay webhook, as Kkiapay posts it; the widget was opened with `data: {booking_id}`.
fn kkiapay_event(id: &str, event: &str, amount: i64, booking: &str) -> String {
    json!({
        "transactionId": id, "event": event, "isPaymentSucces": event == "transaction.success",
        "amount": amount, "fees": 0, "method": "MOBILE_MONEY", "account": "22997000000",
        "partnerId": "", "performedAt": "2026-11-30T10:00:00.000Z",
        "stateData": {"booking_id": booking},
    })
    .to_string()
}

/// Kkiapay's `POST /api/v1/transactions/status` answer.
fn kkiapay_transaction(id: &str, status: &str, amount: i64, booking: &str) -> Value {
    json!({
        "performed_at": "2026-11-30T10:00:00.000Z", "type": "DEBIT", "status": status,
        "source": "MOBILE_MONEY", "amount": amount, "fees": 0, "country": "BJ",
        "reason": null, "transactionId": id, "state": {"booking_id": booking},
    })
}

fn kkiapay_source(api: &str) -> String {
    format!(
        r#"
[[sources]]
name = "kkiapay"
kind = "kkiapay"
secrets = ["{KKIAPAY_SECRET}"]

[sources.api]
url = "{api}"
public_key = "pk_test"
private_key = "tpk_test"
secret_key = "tsk_test"
"#
    )
}

#[tokio::test]
async fn kkiapay_confirmed_by_its_api_denied_and_waiting_while_it_is_down() {
    let api = provider_api(|r| {
        let id = r.json()["transactionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match id.as_str() {
            "LVFNrK1nx" => (200, kkiapay_transaction(&id, "SUCCESS", 10000, "bk_kkia")),
            "FAILEDtx" => (200, kkiapay_transaction(&id, "FAILED", 10000, "bk_kkia_no")),
            "WAITtx" => (
                200,
                kkiapay_transaction(&id, "SUCCESS", 3000, "bk_kkia_wait"),
            ),
            _ => (200, json!({"status": "TRANSACTION_NOT_FOUND"})),
        }
    })
    .await;
    let (app, service) = app_with_sources(&kkiapay_source(&api.receiver.url)).await;
    for (booking, amount) in [
        ("bk_kkia", 10000),
        ("bk_kkia_no", 10000),
        ("bk_kkia_ghost", 10000),
        ("bk_kkia_wait", 3000),
    ] {
        service.create(booking, Some(amount), Some("XOF"), "pending");
    }
    let send = |id: &str, amount: i64, booking: &str| {
        let body = kkiapay_event(id, "transaction.success", amount, booking);
        let app = &app;
        async move {
            let secret = ("x-kkiapay-secret", KKIAPAY_SECRET.to_string());
            let answer = post_webhook(app, "kkiapay", JSON, &body, &[secret]).await;
            assert_eq!(answer.status, 200, "{}", answer.json);
            answer
        }
    };

    // Confirmed: 10000 FCFA, read from Kkiapay's answer.
    let answer = send("LVFNrK1nx", 1, "bk_kkia").await;
    assert_eq!(answer.json["event_id"], "LVFNrK1nx:transaction.success");
    let row = settled_row(
        &app,
        "kkiapay",
        "LVFNrK1nx:transaction.success",
        "processed",
    )
    .await;
    assert!(
        !row.headers.contains(KKIAPAY_SECRET) && row.headers.contains("[redacted]"),
        "the secret is never kept: {}",
        row.headers
    );
    confirmed(&service, "bk_kkia").await;
    assert_paid(&app, "bk_kkia", 10000, "10000 XOF").await;
    // The request the official SDK's verify() sends (tests/oracles compares the two).
    let asked = &api.receiver.requests()[0];
    assert_eq!(
        (asked.method.as_str(), asked.path.as_str()),
        ("POST", "/api/v1/transactions/status")
    );
    assert_eq!(asked.json(), json!({"transactionId": "LVFNrK1nx"}));
    for (header, value) in [
        ("x-api-key", "pk_test"),
        ("x-private-key", "tpk_test"),
        ("x-secret-key", "tsk_test"),
    ] {
        assert_eq!(asked.header(header), value);
    }
    assert!(asked.header("content-type").starts_with("application/json"));

    // Denied: Kkiapay says the transaction failed, or does not know it.
    send("FAILEDtx", 10000, "bk_kkia_no").await;
    let row = settled_row(&app, "kkiapay", "FAILEDtx:transaction.success", "rejected").await;
    assert!(row.last_error.unwrap().contains("\"FAILED\""));
    send("ghost", 10000, "bk_kkia_ghost").await;
    let row = settled_row(&app, "kkiapay", "ghost:transaction.success", "rejected").await;
    assert!(row.last_error.unwrap().contains("TRANSACTION_NOT_FOUND"));
    for booking in ["bk_kkia_no", "bk_kkia_ghost"] {
        assert_eq!(service.booking(booking).unwrap().status, "pending");
    }

    // Down: the event waits, then is applied.
    api.down.store(true, Ordering::SeqCst);
    send("WAITtx", 3000, "bk_kkia_wait").await;
    assert!(
        waiting_row(&app, "kkiapay", "WAITtx:transaction.success")
            .await
            .contains("HTTP 503")
    );
    assert_eq!(service.booking("bk_kkia_wait").unwrap().status, "pending");
    api.down.store(false, Ordering::SeqCst);
    settled_row(&app, "kkiapay", "WAITtx:transaction.success", "processed").await;
    confirmed(&service, "bk_kkia_wait").await;

    // The header must carry the dashboard's secret itself; the body must be Kkiapay's.
    let body = kkiapay_event("other", "transaction.success", 10000, "bk_kkia");
    for (headers, sent, code) in [
        (
            vec![("x-kkiapay-secret", "wrong".to_string())],
            body.as_str(),
            "invalid_signature",
        ),
        (vec![], body.as_str(), "missing_signature"),
        (
            vec![("x-kkiapay-secret", KKIAPAY_SECRET.to_string())],
            "{\"event\":\"transaction.success\"}",
            "malformed_payload",
        ),
        (
            vec![("x-kkiapay-secret", KKIAPAY_SECRET.to_string())],
            "not json",
            "malformed_payload",
        ),
    ] {
        let answer = post_webhook(&app, "kkiapay", JSON, sent, &headers).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, code),
            "{}",
            answer.json
        );
    }
    assert_eq!(app.rows("webhook_events").await, 4);
}

#[test]
fn kkiapay_without_its_three_api_keys_stops_start_up_naming_the_key() {
    let load = load_config;
    let base = format!(
        "[[sources]]\nname = \"kkiapay\"\nkind = \"kkiapay\"\nsecrets = [\"{KKIAPAY_SECRET}\"]\n"
    );
    assert!(load(&kkiapay_source("https://api-sandbox.kkiapay.me")).is_ok());
    let err = load(&base).unwrap_err();
    assert!(
        err.contains("sources[0].api") && err.contains("public_key, private_key, secret_key"),
        "{err}"
    );
    let err = load(&format!(
        "{base}[sources.api]\npublic_key = \"pk\"\nprivate_key = \"tpk\"\n"
    ))
    .unwrap_err();
    assert!(err.contains("sources[0].api.secret_key"), "{err}");
    let err = load(&format!("{base}confirm = \"signature\"\n")).unwrap_err();
    assert!(err.contains("sources[0].confirm"), "{err}");
}

// --- CinetPay ----------------------------------------------------------------------------------

const CINETPAY_SECRET: &str = "202207891862f8b1b5b6e0b6.52306839";
/// CinetPay's documented order of the signed fields.
const CINETPAY_FIELDS: [&str; 16] = [
    "cpm_site_id",
    "cpm_trans_id",
    "cpm_trans_date",
    "cpm_amount",
    "cpm_currency",
    "signature",
    "payment_method",
    "cel_phone_num",
    "cpm_phone_prefixe",
    "cpm_language",
    "cpm_version",
    "cpm_payment_config",
    "cpm_page_action",
    "cpm_custom",
    "cpm_designation",
    "cpm_error_message",
];

/// A CinetPay notification, as CinetPay posts it (fields in another order than the signed one),
/// and its `x-token`: HMAC-SHA256 of the sixteen values joined in the documented order.
fn cinetpay_notification(
    secret: &str,
    trans_id: &str,
    message: &str,
    booking: &str,
) -> (String, (&'static str, String)) {
    let values = [
        ("cpm_trans_id", trans_id),
        ("cpm_site_id", "445160"),
        ("cpm_trans_date", "2026-11-30 10:00:00"),
        ("cpm_amount", "10000"),
        ("cpm_currency", "XOF"),
        ("signature", "d9b6a4c1"),
        ("payment_method", "OM"),
        ("cel_phone_num", "0707070707"),
        ("cpm_phone_prefixe", "225"),
        ("cpm_language", "fr"),
        ("cpm_version", "V4"),
        ("cpm_payment_config", "SINGLE"),
        ("cpm_page_action", "PAYMENT"),
        ("cpm_custom", booking),
        ("cpm_designation", "Chambre double"),
        ("cpm_error_message", message),
    ];
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(values)
        .finish();
    let signed: String = CINETPAY_FIELDS
        .iter()
        .map(|f| values.iter().find(|(k, _)| k == f).unwrap().1)
        .collect();
    (body, ("x-token", hmac_hex(secret, &[signed.as_bytes()])))
}

/// CinetPay's `/v2/payment/check` answer.
fn cinetpay_check(status: &str, amount: &str, booking: &str) -> Value {
    let (code, message) = match status {
        "ACCEPTED" => ("00", "SUCCES"),
        "REFUSED" => ("627", "TRANSACTION_CANCEL"),
        _ => ("662", "WAITING_CUSTOMER_PAYMENT"),
    };
    json!({
        "code": code, "message": message,
        "data": {
            "amount": amount, "currency": "XOF", "status": status, "payment_method": "OM",
            "description": "Chambre double", "metadata": booking,
            "operator_id": "MP261130.1000.A00001", "payment_date": "2026-11-30 10:00:00",
        },
        "api_response_id": "1796000000.0001",
    })
}

#[tokio::test]
async fn cinetpay_confirmed_by_its_check_api_denied_and_waiting_while_it_is_down() {
    let api = provider_api(
        |r| match r.json()["transaction_id"].as_str().unwrap_or_default() {
            "bk42-ok" => (200, cinetpay_check("ACCEPTED", "10000", "bk_cinet")),
            "bk42-refused" => (200, cinetpay_check("REFUSED", "10000", "bk_cinet_no")),
            "bk42-push" => (
                200,
                cinetpay_check("WAITING_FOR_CUSTOMER", "10000", "bk_cinet_push"),
            ),
            "bk42-wait" => (200, cinetpay_check("ACCEPTED", "10000", "bk_cinet_wait")),
            _ => (404, json!({"code": "404", "message": "NOT_FOUND"})),
        },
    )
    .await;
    let (app, service) = app_with_sources(&format!(
        r#"
[[sources]]
name = "cinetpay"
kind = "cinetpay"
secrets = ["{CINETPAY_SECRET}"]

[sources.api]
url = "{}"
apikey = "12912847765bc0db748fdd44.40081707"
site_id = "445160"
"#,
        api.receiver.url
    ))
    .await;
    for booking in [
        "bk_cinet",
        "bk_cinet_no",
        "bk_cinet_ghost",
        "bk_cinet_push",
        "bk_cinet_wait",
    ] {
        service.create(booking, Some(10000), Some("XOF"), "pending");
    }
    let send = |trans_id: &str, message: &str, booking: &str| {
        let (body, token) = cinetpay_notification(CINETPAY_SECRET, trans_id, message, booking);
        let app = &app;
        async move {
            let answer = post_webhook(app, "cinetpay", FORM, &body, &[token]).await;
            assert_eq!(answer.status, 200, "{}", answer.json);
            answer
        }
    };

    // Confirmed: 10000 FCFA; the check API is asked as documented.
    let answer = send("bk42-ok", "SUCCES", "bk_cinet").await;
    assert_eq!(answer.json["event_id"], "bk42-ok:SUCCES");
    let row = settled_row(&app, "cinetpay", "bk42-ok:SUCCES", "processed").await;
    assert!(
        // Read as JSON: PostgreSQL writes its jsonb with spaces.
        serde_json::from_str::<Value>(&row.headers).unwrap()["x-token"] == "[redacted]",
        "{}",
        row.headers
    );
    confirmed(&service, "bk_cinet").await;
    assert_paid(&app, "bk_cinet", 10000, "10000 XOF").await;
    let asked = &api.receiver.requests()[0];
    assert_eq!(
        (asked.method.as_str(), asked.path.as_str()),
        ("POST", "/v2/payment/check")
    );
    assert_eq!(
        asked.json(),
        json!({"apikey": "12912847765bc0db748fdd44.40081707", "site_id": "445160", "transaction_id": "bk42-ok"})
    );

    // An operator that confirms by push: waiting first, then the outcome, each its own event.
    send("bk42-push", "WAITING_FOR_CUSTOMER", "bk_cinet_push").await;
    settled_row(
        &app,
        "cinetpay",
        "bk42-push:WAITING_FOR_CUSTOMER",
        "processed",
    )
    .await;
    assert_eq!(service.booking("bk_cinet_push").unwrap().status, "pending");

    // Denied: CinetPay refused the payment the notification calls a success, or has none.
    send("bk42-refused", "SUCCES", "bk_cinet_no").await;
    let row = settled_row(&app, "cinetpay", "bk42-refused:SUCCES", "rejected").await;
    assert!(row.last_error.unwrap().contains("\"REFUSED\""));
    send("bk42-ghost", "SUCCES", "bk_cinet_ghost").await;
    let row = settled_row(&app, "cinetpay", "bk42-ghost:SUCCES", "rejected").await;
    assert!(row.last_error.unwrap().contains("HTTP 404"));
    for booking in ["bk_cinet_no", "bk_cinet_ghost"] {
        assert_eq!(service.booking(booking).unwrap().status, "pending");
    }

    // Down: the event waits, then is applied.
    api.down.store(true, Ordering::SeqCst);
    send("bk42-wait", "SUCCES", "bk_cinet_wait").await;
    assert!(
        waiting_row(&app, "cinetpay", "bk42-wait:SUCCES")
            .await
            .contains("HTTP 503")
    );
    assert_eq!(service.booking("bk_cinet_wait").unwrap().status, "pending");
    api.down.store(false, Ordering::SeqCst);
    settled_row(&app, "cinetpay", "bk42-wait:SUCCES", "processed").await;
    confirmed(&service, "bk_cinet_wait").await;

    // Tampered field, wrong secret, no token, a token that is not hex: refused, nothing stored.
    let (body, token) = cinetpay_notification(CINETPAY_SECRET, "bk42-x", "SUCCES", "bk_cinet");
    let (_, wrong) = cinetpay_notification("other-secret", "bk42-x", "SUCCES", "bk_cinet");
    let tampered = body.replace("cpm_amount=10000", "cpm_amount=100");
    for (sent, headers, code) in [
        (&tampered, vec![token.clone()], "invalid_signature"),
        (&body, vec![wrong], "invalid_signature"),
        (&body, vec![], "missing_signature"),
        (
            &body,
            vec![("x-token", "not-hex".to_string())],
            "malformed_signature_header",
        ),
    ] {
        let answer = post_webhook(&app, "cinetpay", FORM, sent, &headers).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, code),
            "{}",
            answer.json
        );
    }
    // Signed, but naming no transaction.
    let (junk, token) = cinetpay_notification(CINETPAY_SECRET, "", "SUCCES", "bk_cinet");
    let answer = post_webhook(&app, "cinetpay", FORM, &junk, &[token]).await;
    assert_eq!(
        (answer.status, answer.code()),
        (400, "malformed_payload"),
        "{}",
        answer.json
    );
    assert_eq!(app.rows("webhook_events").await, 5);

    // CinetPay pings the notification URL with a GET and wants a 200
    // (docs.cinetpay.com/api/1.0-en/checkout/notification): answered, nothing stored.
    let ping = app.get("/webhooks/cinetpay", None).await;
    assert_eq!(ping.status, 200, "{}", ping.json);
    assert_eq!(ping.json["source"], "cinetpay");
    assert_eq!(app.rows("webhook_events").await, 5);
    // Other sources' providers do not: a GET there is still refused.
    let stripe = app.get("/webhooks/stripe", None).await;
    assert_eq!((stripe.status, stripe.code()), (405, "method_not_allowed"));
}

// --- PayDunya ----------------------------------------------------------------------------------

const PAYDUNYA_MASTER_KEY: &str = "wQzk9ZwR-Qq9m-0hD2-zpOE-bUac3DWSU6Af";

/// A PayDunya IPN, as PayDunya posts it: `data[hash]` is the SHA-512 of the master key, in hex.
fn paydunya_ipn(
    master_key: &str,
    token: &str,
    status: &str,
    amount: &str,
    booking: &str,
) -> String {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha512::digest(master_key.as_bytes()));
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("data[response_code]", "00"),
            ("data[response_text]", "Transaction Found"),
            ("data[hash]", hash.as_str()),
            ("data[invoice][token]", token),
            ("data[invoice][total_amount]", amount),
            ("data[invoice][description]", "Chambre"),
            ("data[custom_data][booking_id]", booking),
            ("data[mode]", "test"),
            ("data[status]", status),
            ("data[customer][name]", "Awa Diop"),
        ])
        .finish()
}

/// PayDunya's `checkout-invoice/confirm/{token}` answer.
fn paydunya_invoice(status: &str, amount: i64, booking: &str) -> Value {
    json!({
        "response_code": "00", "response_text": "Transaction Found", "status": status,
        "invoice": {"total_amount": amount, "description": "Chambre", "items": {}, "taxes": {}},
        "custom_data": {"booking_id": booking}, "mode": "test",
        "customer": {"name": "Awa Diop", "phone": "770000000"},
        "receipt_url": "https://app.paydunya.com/sandbox-checkout/receipt/pdf/test.pdf",
    })
}

#[tokio::test]
async fn paydunya_confirmed_by_its_api_denied_and_waiting_while_it_is_down() {
    let api = provider_api(|r| match r.path.as_str() {
        "/v1/checkout-invoice/confirm/test_ok" => {
            (200, paydunya_invoice("completed", 15000, "bk_dunya"))
        }
        "/v1/checkout-invoice/confirm/test_pending" => {
            (200, paydunya_invoice("cancelled", 15000, "bk_dunya_no"))
        }
        "/v1/checkout-invoice/confirm/test_wait" => {
            (200, paydunya_invoice("completed", 15000, "bk_dunya_wait"))
        }
        _ => (
            404,
            json!({"response_code": "1002", "response_text": "Invoice Not Found"}),
        ),
    })
    .await;
    // The master key signs the IPN (secrets) and authenticates payhook to the API ([sources.api]).
    let (app, service) = app_with_sources(&format!(
        r#"
[[sources]]
name = "paydunya"
kind = "paydunya"
secrets = ["{PAYDUNYA_MASTER_KEY}"]

[sources.api]
url = "{}"
master_key = "{PAYDUNYA_MASTER_KEY}"
private_key = "test_private_key"
token = "test_token"
"#,
        api.receiver.url
    ))
    .await;
    for booking in ["bk_dunya", "bk_dunya_no", "bk_dunya_ghost", "bk_dunya_wait"] {
        service.create(booking, Some(15000), Some("XOF"), "pending");
    }
    let send = |token: &str, booking: &str| {
        // The IPN claims another amount: the API's answer is what counts.
        let body = paydunya_ipn(PAYDUNYA_MASTER_KEY, token, "completed", "1", booking);
        let app = &app;
        async move {
            let answer = post_webhook(app, "paydunya", FORM, &body, NO_HEADERS).await;
            assert_eq!(answer.status, 200, "{}", answer.json);
            answer
        }
    };

    // Confirmed: 15000 FCFA, as PayDunya's API answers.
    let answer = send("test_ok", "bk_dunya").await;
    assert_eq!(answer.json["event_id"], "test_ok:completed");
    settled_row(&app, "paydunya", "test_ok:completed", "processed").await;
    confirmed(&service, "bk_dunya").await;
    assert_paid(&app, "bk_dunya", 15000, "15000 XOF").await;
    let asked = &api.receiver.requests()[0];
    assert_eq!(asked.method, "GET");
    for (header, value) in [
        ("paydunya-master-key", PAYDUNYA_MASTER_KEY),
        ("paydunya-private-key", "test_private_key"),
        ("paydunya-token", "test_token"),
    ] {
        assert_eq!(asked.header(header), value);
    }

    // Denied: the invoice was cancelled, or PayDunya has none.
    send("test_pending", "bk_dunya_no").await;
    let row = settled_row(&app, "paydunya", "test_pending:completed", "rejected").await;
    assert!(row.last_error.unwrap().contains("\"cancelled\""));
    send("test_ghost", "bk_dunya_ghost").await;
    let row = settled_row(&app, "paydunya", "test_ghost:completed", "rejected").await;
    assert!(row.last_error.unwrap().contains("Invoice Not Found"));
    for booking in ["bk_dunya_no", "bk_dunya_ghost"] {
        assert_eq!(service.booking(booking).unwrap().status, "pending");
    }

    // Down: the event waits, then is applied.
    api.down.store(true, Ordering::SeqCst);
    send("test_wait", "bk_dunya_wait").await;
    assert!(
        waiting_row(&app, "paydunya", "test_wait:completed")
            .await
            .contains("HTTP 503")
    );
    assert_eq!(service.booking("bk_dunya_wait").unwrap().status, "pending");
    api.down.store(false, Ordering::SeqCst);
    settled_row(&app, "paydunya", "test_wait:completed", "processed").await;
    confirmed(&service, "bk_dunya_wait").await;

    // Another account's key, no hash, no invoice: refused, nothing stored.
    let wrong = paydunya_ipn(
        "another-master-key",
        "test_x",
        "completed",
        "15000",
        "bk_dunya",
    );
    let good = paydunya_ipn(
        PAYDUNYA_MASTER_KEY,
        "test_x",
        "completed",
        "15000",
        "bk_dunya",
    );
    let unhashed: String = good
        .split('&')
        .filter(|p| !p.starts_with("data%5Bhash%5D"))
        .collect::<Vec<_>>()
        .join("&");
    let tokenless: String = good
        .split('&')
        .filter(|p| !p.starts_with("data%5Binvoice%5D%5Btoken%5D"))
        .collect::<Vec<_>>()
        .join("&");
    for (sent, code) in [
        (&wrong, "invalid_signature"),
        (&unhashed, "missing_signature"),
        (&tokenless, "malformed_payload"),
    ] {
        let answer = post_webhook(&app, "paydunya", FORM, sent, NO_HEADERS).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, code),
            "{}",
            answer.json
        );
    }
    assert_eq!(app.rows("webhook_events").await, 4);
}

// --- All four ----------------------------------------------------------------------------------

#[tokio::test]
async fn hostile_requests_are_refused_with_codes_never_a_server_error() {
    let (app, _service) = app_with_sources(&format!(
        r#"
[[sources]]
name = "wave"
kind = "wave"
secrets = ["{WAVE_SECRET}"]

[[sources]]
name = "kkiapay"
kind = "kkiapay"
secrets = ["{KKIAPAY_SECRET}"]
[sources.api]
public_key = "pk"
private_key = "tpk"
secret_key = "tsk"

[[sources]]
name = "cinetpay"
kind = "cinetpay"
secrets = ["{CINETPAY_SECRET}"]
[sources.api]
apikey = "key"
site_id = "445160"

[[sources]]
name = "paydunya"
kind = "paydunya"
secrets = ["{PAYDUNYA_MASTER_KEY}"]
[sources.api]
master_key = "{PAYDUNYA_MASTER_KEY}"
private_key = "pk"
token = "tk"
"#
    ))
    .await;
    let bodies: [&[u8]; 8] = [
        b"",
        b"\xff\xfe\x00",
        b"%%%&&&===",
        b"data[hash]=&data[hash][x]=1&[]=&a[b[c]]=d",
        b"data%5Bhash%5D=%FF%FE",
        b"{\"transactionId\":{\"a\":1},\"event\":[]}",
        b"cpm_trans_id[]=1&cpm_error_message[x]=SUCCES",
        &[b'['; 4096],
    ];
    for source in ["wave", "kkiapay", "cinetpay", "paydunya"] {
        for body in bodies {
            for headers in [
                vec![],
                vec![
                    ("wave-signature", "t=1,v1=zz".to_string()),
                    ("x-kkiapay-secret", KKIAPAY_SECRET.to_string()),
                    ("x-token", "0".repeat(64)),
                ],
            ] {
                let mut request = app
                    .client
                    .post(format!("{}/webhooks/{source}", app.base))
                    .header("content-type", FORM);
                for (k, v) in &headers {
                    request = request.header(*k, v);
                }
                let answer = Answer::read(request.body(body.to_vec()).send().await.unwrap()).await;
                assert_eq!(answer.status, 400, "{source} {body:?}: {}", answer.json);
                assert!(
                    [
                        "missing_signature",
                        "malformed_signature_header",
                        "invalid_signature",
                        "malformed_payload"
                    ]
                    .contains(&answer.code()),
                    "{source} {body:?}: {}",
                    answer.json
                );
            }
        }
    }
    assert_eq!(app.rows("webhook_events").await, 0);
}
