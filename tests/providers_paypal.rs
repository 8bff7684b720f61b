//! PayPal and Braintree presets end to end, configured in `payhook.toml` as a user would: each
//! takes a payment from the provider's notification to the booking service's `confirmed`.
//! PayPal's notifications are confirmed by PayPal's `verify-webhook-signature` API, played by a
//! real HTTP server on loopback: confirmed, denied (FAILURE) and down (the event waits, then is
//! applied). On SQLite or PostgreSQL (`TEST_DATABASE_URL`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::providers::*;
use common::receiver::*;
use common::*;
use serde_json::json;

// PayPal

const CLIENT_ID: &str = "AYSq3RDGsmBLJE-otTkBtM-jBRd1TCQwFf9RGfwddNXWz0uFU9ztymylOhRS";
const CLIENT_SECRET: &str = "EGnHDxD_qRPdaLdZz8iCr8N7_MzF-YHPTkjs6NKYQvQSBngp4PTTVWkPZRbL";
const WEBHOOK_ID: &str = "4JH86294D6297924G";

/// A PayPal notification about capture `capture` for `booking`, written as PayPal writes it
/// (`1.0` and key order kept: the verify call must carry it byte for byte).
fn paypal_event(id: &str, event_type: &str, capture: &str, value: &str, booking: &str) -> String {
    let status = match event_type {
        "PAYMENT.CAPTURE.COMPLETED" => "COMPLETED",
        "PAYMENT.CAPTURE.DENIED" => "DECLINED",
        _ => "PENDING",
    };
    format!(
        r#"{{"id":"{id}","event_version":"1.0","create_time":"2026-11-30T18:00:00.000Z","resource_type":"capture","resource_version":"2.0","event_type":"{event_type}","summary":"Payment for {value} EUR","resource":{{"id":"{capture}","status":"{status}","amount":{{"currency_code":"EUR","value":"{value}"}},"final_capture":true,"custom_id":"{booking}","supplementary_data":{{"related_ids":{{"order_id":"5O190127TN364715T"}}}}}},"links":[]}}"#
    )
}

/// A dispute PayPal opens about capture `capture`.
fn paypal_dispute(id: &str, capture: &str, value: &str) -> String {
    json!({
        "id": id, "event_version": "1.0", "resource_type": "dispute",
        "event_type": "CUSTOMER.DISPUTE.CREATED", "summary": "A new dispute opened",
        "resource": {
            "dispute_id": "PP-D-1", "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED", "status": "OPEN",
            "dispute_amount": {"currency_code": "EUR", "value": value},
            "disputed_transactions": [{"seller_transaction_id": capture}],
        },
    })
    .to_string()
}

/// PayPal's transmission headers, with `sig` as the signature.
fn transmission(sig: &str) -> Vec<(String, String)> {
    let sig = format!("{sig}{}", "A".repeat(344 - sig.len() - 2)) + "==";
    [
        (
            "paypal-transmission-id",
            "dfb3be50-fd74-11e4-8bf3-77339302725b",
        ),
        ("paypal-transmission-time", "2026-11-30T18:00:01Z"),
        ("paypal-transmission-sig", sig.as_str()),
        (
            "paypal-cert-url",
            "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
        ),
        ("paypal-auth-algo", "SHA256withRSA"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A loopback stand-in for PayPal's API: a token for payhook's client credentials, and
/// `SUCCESS` for a transmission whose signature starts with `good`, `FAILURE` otherwise; 503
/// while down.
struct PayPalApi {
    receiver: Receiver,
    down: Arc<AtomicBool>,
}

async fn paypal_api() -> PayPalApi {
    let down = Arc::new(AtomicBool::new(false));
    let is_down = down.clone();
    let receiver = Receiver::start(move |_, r| {
        if is_down.load(Ordering::SeqCst) {
            return Reply::json(503, json!({"name": "INTERNAL_SERVICE_ERROR"}));
        }
        match r.path.as_str() {
            "/v1/oauth2/token" => {
                use base64::Engine;
                let basic = base64::engine::general_purpose::STANDARD
                    .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
                if r.header("authorization") != format!("Basic {basic}")
                    || r.body != "grant_type=client_credentials"
                {
                    return Reply::json(401, json!({"error": "invalid_client"}));
                }
                Reply::json(
                    200,
                    json!({"access_token": "A21AAtoken", "token_type": "Bearer", "expires_in": 32400}),
                )
            }
            "/v1/notifications/verify-webhook-signature" => {
                if r.header("authorization") != "Bearer A21AAtoken" {
                    return Reply::json(401, json!({"error": "invalid_token"}));
                }
                let asked = r.json();
                let genuine = asked["webhook_id"] == WEBHOOK_ID
                    && asked["transmission_sig"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("good"))
                    && asked["webhook_event"].is_object();
                let status = if genuine { "SUCCESS" } else { "FAILURE" };
                Reply::json(200, json!({"verification_status": status}))
            }
            _ => Reply::json(404, json!({"name": "RESOURCE_NOT_FOUND"})),
        }
    })
    .await;
    PayPalApi { receiver, down }
}

fn paypal_source(api: &str) -> String {
    format!(
        r#"
[[sources]]
name = "paypal"
kind = "paypal"

[sources.api]
url = "{api}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
webhook_id = "{WEBHOOK_ID}"
"#
    )
}

#[tokio::test]
async fn paypal_notification_confirmed_by_paypals_api_confirms_the_booking() {
    let api = paypal_api().await;
    let (app, service) = app_with_sources(&paypal_source(&api.receiver.url)).await;
    service.create("bk_pp", Some(11900), Some("EUR"), "pending");
    let body = paypal_event(
        "WH-1",
        "PAYMENT.CAPTURE.COMPLETED",
        "5O190127TN364715T",
        "119.00",
        "bk_pp",
    );
    let headers = transmission("good");
    let answer = post_webhook(&app, "paypal", "application/json", &body, &headers).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["event_id"], "WH-1");
    settled_row(&app, "paypal", "WH-1", "processed").await;
    confirmed(&service, "bk_pp").await;
    let data = app.payment_status("bk_pp").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["amount"], 11900);
    assert_eq!(data["currency"], "eur");

    // PayPal was asked with the notification's own headers, and its body byte for byte.
    let asked = api.receiver.requests();
    let verify = asked
        .iter()
        .find(|r| r.path == "/v1/notifications/verify-webhook-signature")
        .unwrap();
    assert!(
        verify.body.contains(&format!("\"webhook_event\":{body}")),
        "{}",
        verify.body
    );
    let sent = verify.json();
    for (name, field) in [
        ("paypal-transmission-id", "transmission_id"),
        ("paypal-transmission-time", "transmission_time"),
        ("paypal-transmission-sig", "transmission_sig"),
        ("paypal-cert-url", "cert_url"),
        ("paypal-auth-algo", "auth_algo"),
    ] {
        let header = &headers.iter().find(|(k, _)| k == name).unwrap().1;
        assert_eq!(sent[field], header.as_str(), "{field}");
    }
    assert_eq!(sent["webhook_id"], WEBHOOK_ID);

    // A dispute names the capture among its disputed transactions.
    let body = paypal_dispute("WH-2", "5O190127TN364715T", "119.00");
    let answer = post_webhook(&app, "paypal", "application/json", &body, &headers).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    settled_row(&app, "paypal", "WH-2", "processed").await;
    let data = app.payment_status("bk_pp").await;
    assert_eq!(data["status"], "disputed", "{data}");
    // One access token served both.
    let tokens = api
        .receiver
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/oauth2/token")
        .count();
    assert_eq!(tokens, 1);
}

#[tokio::test]
async fn a_paypal_notification_paypal_does_not_vouch_for_is_rejected_and_never_applied() {
    let api = paypal_api().await;
    let (app, service) = app_with_sources(&paypal_source(&api.receiver.url)).await;
    service.create("bk_forged", Some(11900), Some("EUR"), "pending");
    let body = paypal_event(
        "WH-FORGED",
        "PAYMENT.CAPTURE.COMPLETED",
        "CAP-FORGED",
        "119.00",
        "bk_forged",
    );
    let answer = post_webhook(
        &app,
        "paypal",
        "application/json",
        &body,
        &transmission("forged"),
    )
    .await;
    assert_eq!(
        answer.status, 200,
        "stored and acknowledged before PayPal is asked"
    );
    let row = settled_row(&app, "paypal", "WH-FORGED", "rejected").await;
    let error = row.last_error.unwrap();
    assert!(error.contains("FAILURE"), "{error}");
    assert_eq!(app.rows("payments").await, 0, "nothing applied");
    assert_eq!(service.booking("bk_forged").unwrap().status, "pending");
}

#[tokio::test]
async fn a_paypal_notification_rejected_under_a_wrong_webhook_id_applies_when_replayed() {
    let api = paypal_api().await;
    let wrong = paypal_source(&api.receiver.url).replace(WEBHOOK_ID, "WRONG-WEBHOOK-ID");
    let (app, service) = app_with_sources(&wrong).await;
    service.create("bk_replay", Some(500), Some("EUR"), "pending");
    let body = paypal_event(
        "WH-REPLAY",
        "PAYMENT.CAPTURE.COMPLETED",
        "CAP-REPLAY",
        "5.00",
        "bk_replay",
    );
    post_webhook(
        &app,
        "paypal",
        "application/json",
        &body,
        &transmission("good"),
    )
    .await;
    let row = settled_row(&app, "paypal", "WH-REPLAY", "rejected").await;
    // PayPal, asked again, vouches for it (the operator fixed the webhook id, here the API): a
    // replay asks again rather than reading the old answer.
    api.receiver.set_script(|_, _| {
        Reply::json(
            200,
            json!({"access_token": "A21AAtoken", "verification_status": "SUCCESS"}),
        )
    });
    assert!(app.payhook.store.requeue_event(row.id).await.unwrap());
    settled_row(&app, "paypal", "WH-REPLAY", "processed").await;
    confirmed(&service, "bk_replay").await;
}

#[tokio::test]
async fn while_paypals_api_is_down_the_notification_waits_then_is_applied() {
    let api = paypal_api().await;
    api.down.store(true, Ordering::SeqCst);
    let (app, service) = app_with_sources(&paypal_source(&api.receiver.url)).await;
    service.create("bk_ppwait", Some(2500), Some("EUR"), "pending");
    let body = paypal_event(
        "WH-WAIT",
        "PAYMENT.CAPTURE.COMPLETED",
        "CAP-WAIT",
        "25.00",
        "bk_ppwait",
    );
    let answer = post_webhook(
        &app,
        "paypal",
        "application/json",
        &body,
        &transmission("good"),
    )
    .await;
    assert_eq!(answer.status, 200);
    eventually(Duration::from_secs(10), "the event waits", || async {
        let row = app.payhook.store.event("paypal", "WH-WAIT").await.unwrap();
        row.is_some_and(|r| r.status == "waiting" && r.last_error.is_some())
    })
    .await;
    let row = app
        .payhook
        .store
        .event("paypal", "WH-WAIT")
        .await
        .unwrap()
        .unwrap();
    assert!(row.last_error.unwrap().contains("HTTP 503"));
    assert_eq!(service.booking("bk_ppwait").unwrap().status, "pending");

    api.down.store(false, Ordering::SeqCst);
    settled_row(&app, "paypal", "WH-WAIT", "processed").await;
    confirmed(&service, "bk_ppwait").await;
    assert_eq!(app.payment_status("bk_ppwait").await["amount"], 2500);
}

#[tokio::test]
async fn an_access_token_paypal_no_longer_takes_is_replaced() {
    let issued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = issued.clone();
    // Every token but the latest is revoked.
    let api = Receiver::start(move |_, r| match r.path.as_str() {
        "/v1/oauth2/token" => {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::json(
                200,
                json!({"access_token": format!("tok-{n}"), "expires_in": 32400}),
            )
        }
        _ => {
            let latest = format!("Bearer tok-{}", count.load(Ordering::SeqCst));
            if r.header("authorization") != latest {
                return Reply::json(401, json!({"error": "invalid_token"}));
            }
            Reply::json(200, json!({"verification_status": "SUCCESS"}))
        }
    })
    .await;
    let (app, service) = app_with_sources(&paypal_source(&api.url)).await;
    service.create("bk_tok", Some(100), Some("EUR"), "pending");
    let body = paypal_event(
        "WH-T1",
        "PAYMENT.CAPTURE.COMPLETED",
        "CAP-T1",
        "1.00",
        "bk_tok",
    );
    post_webhook(
        &app,
        "paypal",
        "application/json",
        &body,
        &transmission("good"),
    )
    .await;
    settled_row(&app, "paypal", "WH-T1", "processed").await;
    assert_eq!(issued.load(Ordering::SeqCst), 1);

    // PayPal revokes the token payhook holds: the next notification waits once, then goes
    // through with a new token.
    issued.fetch_add(1, Ordering::SeqCst);
    let body = paypal_event(
        "WH-T2",
        "PAYMENT.CAPTURE.COMPLETED",
        "CAP-T2",
        "1.00",
        "bk_tok",
    );
    post_webhook(
        &app,
        "paypal",
        "application/json",
        &body,
        &transmission("good"),
    )
    .await;
    settled_row(&app, "paypal", "WH-T2", "processed").await;
    assert_eq!(
        issued.load(Ordering::SeqCst),
        3,
        "a new token was asked for"
    );
}

#[tokio::test]
async fn paypal_requests_that_cannot_be_paypals_are_refused_at_the_door() {
    let api = paypal_api().await;
    let (app, _service) = app_with_sources(&paypal_source(&api.receiver.url)).await;
    let body = paypal_event("WH-X", "PAYMENT.CAPTURE.COMPLETED", "CAP-X", "1.00", "bk_x");
    let with = |name: &str, value: Option<&str>| {
        let mut h = transmission("good");
        h.retain(|(k, _)| k != name);
        if let Some(v) = value {
            h.push((name.to_string(), v.to_string()));
        }
        h
    };
    for (headers, sent, code) in [
        (vec![], body.as_str(), "missing_signature"),
        (
            with("paypal-transmission-sig", None),
            body.as_str(),
            "missing_signature",
        ),
        (
            with(
                "paypal-cert-url",
                Some("https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1"),
            ),
            body.as_str(),
            "malformed_signature_header",
        ),
        (
            with(
                "paypal-cert-url",
                Some("http://api.paypal.com/v1/notifications/certs/CERT-1"),
            ),
            body.as_str(),
            "malformed_signature_header",
        ),
        (
            with("paypal-transmission-id", None),
            body.as_str(),
            "malformed_signature_header",
        ),
        (
            transmission("good"),
            "{\"id\":\"WH-X\"",
            "malformed_payload",
        ),
        (
            transmission("good"),
            "{\"id\":\"WH-X\",\"resource\":{}}",
            "malformed_payload",
        ),
    ] {
        let answer = post_webhook(&app, "paypal", "application/json", sent, &headers).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, code),
            "{headers:?}: {}",
            answer.json
        );
    }
    assert_eq!(app.rows("webhook_events").await, 0);
    assert!(api.receiver.requests().is_empty(), "PayPal was never asked");
}

#[test]
fn a_paypal_source_needs_its_api_credentials_and_takes_no_secret() {
    let load = load_config;
    assert_eq!(
        load(&paypal_source("https://api-m.sandbox.paypal.com")),
        Ok(())
    );
    let base = "[[sources]]\nname = \"paypal\"\nkind = \"paypal\"\n";
    let err = load(base).unwrap_err();
    assert!(err.contains("sources[0].api"), "{err}");
    let err = load(&format!(
        "{base}[sources.api]\nclient_id = \"a\"\nclient_secret = \"b\"\n"
    ))
    .unwrap_err();
    assert!(err.contains("sources[0].api.webhook_id"), "{err}");
    let err = load(&format!("{base}secrets = [\"x\"]\n")).unwrap_err();
    assert!(err.contains("sources[0].secrets"), "{err}");
    let err = load(&format!("{base}confirm = \"signature\"\n")).unwrap_err();
    assert!(err.contains("sources[0].confirm"), "{err}");
}

// Braintree

const BT_PUBLIC: &str = "pk_test";
const BT_PRIVATE: &str = "sk_test_private";

/// `xml` as Braintree posts it: base64 in lines of 76, signed with `public:private`.
fn braintree_form(xml: &str, public: &str, private: &str) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use sha1::Digest;
    let flat = base64::engine::general_purpose::STANDARD.encode(xml);
    let payload: String = flat
        .as_bytes()
        .chunks(76)
        .map(|l| format!("{}\n", std::str::from_utf8(l).unwrap()))
        .collect();
    let key = sha1::Sha1::digest(private.as_bytes());
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    mac.update(payload.as_bytes());
    let signature = format!("{public}|{}", hex::encode(mac.finalize().into_bytes()));
    form_urlencoded::Serializer::new(String::new())
        .append_pair("bt_signature", &signature)
        .append_pair("bt_payload", &payload)
        .finish()
}

fn bt_transaction(kind: &str, id: &str, status: &str, amount: &str, order: &str) -> String {
    format!(
        "<notification><timestamp type=\"datetime\">2026-11-30T18:00:00Z</timestamp><kind>{kind}</kind>\
         <subject><transaction><id>{id}</id><status>{status}</status><type>sale</type>\
         <currency-iso-code>EUR</currency-iso-code><amount>{amount}</amount><order-id>{order}</order-id>\
         </transaction></subject></notification>"
    )
}

fn braintree_source(secrets: &[&str]) -> String {
    let list: Vec<String> = secrets.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[[sources]]\nname = \"braintree\"\nkind = \"braintree\"\nsecrets = [{}]\n",
        list.join(", ")
    )
}

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn braintree_signed_notification_confirms_the_booking() {
    let (app, service) = app_with_sources(&braintree_source(&[
        "pk_new:sk_new_private",
        &format!("{BT_PUBLIC}:{BT_PRIVATE}"),
    ]))
    .await;
    service.create("bk_bt", Some(11900), Some("EUR"), "pending");
    let body = braintree_form(
        &bt_transaction("transaction_settled", "txn_1", "settled", "119.00", "bk_bt"),
        BT_PUBLIC,
        BT_PRIVATE,
    );
    let answer = post_webhook(&app, "braintree", FORM, &body, NO_HEADERS).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let id = "transaction_settled:txn_1:2026-11-30T18:00:00Z";
    assert_eq!(answer.json["event_id"], id);
    let row = settled_row(&app, "braintree", id, "processed").await;
    assert_eq!(row.payload, body.as_bytes(), "the form is stored as posted");
    confirmed(&service, "bk_bt").await;
    let data = app.payment_status("bk_bt").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["amount"], 11900);
    assert_eq!(data["currency"], "eur");

    // The same notification again is the same event.
    let again = post_webhook(&app, "braintree", FORM, &body, NO_HEADERS).await;
    assert_eq!(again.status, 200);
    assert_eq!(app.rows("webhook_events").await, 1);

    // The SDK's pinned dispute vector (research notes), about the same transaction: the
    // payment is disputed.
    let vector = form_urlencoded::Serializer::new(String::new())
        .append_pair("bt_signature", "pk_test|280eb8145787dfebb05b4fdf3de1532b0864d170")
        .append_pair("bt_payload", "PG5vdGlmaWNhdGlvbj48dGltZXN0YW1wIHR5cGU9ImRhdGV0aW1lIj4yMDI2LTAxLTAyVDEwOjAw\nOjAwWjwvdGltZXN0YW1wPjxraW5kPmRpc3B1dGVfb3BlbmVkPC9raW5kPjxzdWJqZWN0PjxkaXNw\ndXRlPjxpZD5kcF8xPC9pZD48YW1vdW50PjExOS4wMDwvYW1vdW50PjxjdXJyZW5jeS1pc28tY29k\nZT5FVVI8L2N1cnJlbmN5LWlzby1jb2RlPjxraW5kPmNoYXJnZWJhY2s8L2tpbmQ+PHN0YXR1cz5v\ncGVuPC9zdGF0dXM+PHJlYXNvbj5mcmF1ZDwvcmVhc29uPjx0cmFuc2FjdGlvbj48aWQ+dHhuXzE8\nL2lkPjxhbW91bnQ+MTE5LjAwPC9hbW91bnQ+PC90cmFuc2FjdGlvbj48L2Rpc3B1dGU+PC9zdWJq\nZWN0Pjwvbm90aWZpY2F0aW9uPg==\n")
        .finish();
    let answer = post_webhook(&app, "braintree", FORM, &vector, NO_HEADERS).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(
        answer.json["event_id"],
        "dispute_opened:dp_1:2026-01-02T10:00:00Z"
    );
    settled_row(
        &app,
        "braintree",
        "dispute_opened:dp_1:2026-01-02T10:00:00Z",
        "processed",
    )
    .await;
    assert_eq!(app.payment_status("bk_bt").await["status"], "disputed");
}

#[tokio::test]
async fn braintree_tampered_wrong_key_and_malformed_notifications_are_refused() {
    let (app, _service) =
        app_with_sources(&braintree_source(&[&format!("{BT_PUBLIC}:{BT_PRIVATE}")])).await;
    let xml = bt_transaction("transaction_settled", "txn_2", "settled", "10.00", "bk_2");
    let good = braintree_form(&xml, BT_PUBLIC, BT_PRIVATE);
    let signature = good.split('&').next().unwrap();
    let tampered_payload = braintree_form(
        &xml.replace("10.00", "0.01"),
        BT_PUBLIC,
        "someone_elses_key",
    );
    let tampered = format!(
        "{signature}&{}",
        tampered_payload.split('&').nth(1).unwrap()
    );
    let cases = [
        (tampered, "invalid_signature"),
        (
            braintree_form(&xml, BT_PUBLIC, "wrong_private"),
            "invalid_signature",
        ),
        (
            braintree_form(&xml, "pk_other", BT_PRIVATE),
            "invalid_signature",
        ),
        (
            good.split('&').nth(1).unwrap().to_string(),
            "missing_signature",
        ),
        (
            format!("{signature}&bt_payload=%3Cnotification%3E"),
            "malformed_payload",
        ),
        (
            braintree_form("<notification><kind>x</kind>", BT_PUBLIC, BT_PRIVATE),
            "malformed_payload",
        ),
        (
            braintree_form(
                "<notification><kind>transaction_settled</kind></notification>",
                BT_PUBLIC,
                BT_PRIVATE,
            ),
            "malformed_payload",
        ),
    ];
    for (body, code) in cases {
        let answer = post_webhook(&app, "braintree", FORM, &body, NO_HEADERS).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, code),
            "{body}: {}",
            answer.json
        );
    }
    assert_eq!(app.rows("webhook_events").await, 0);
    let answer = post_webhook(&app, "braintree", FORM, &good, NO_HEADERS).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
}

#[test]
fn a_braintree_source_names_its_malformed_key_pair() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payhook.toml");
    std::fs::write(&path, braintree_source(&["integration_private_key"])).unwrap();
    let err = payhook::config::Settings::load(Some(&path), &std::collections::HashMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sources[0].secrets") && err.contains("<public_key>:<private_key>"),
        "{err}"
    );
    assert!(!err.contains("integration_private_key"), "{err}");
}
