"""The providers' official SDKs (PyPI) as oracles for payhook's presets of Adyen and GoCardless:
payhook accepts what the SDK signs, the SDK accepts what `payhook trigger` signs, and tampered or
wrongly signed requests are refused with their codes."""

import copy
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request

import pytest
from Adyen.util import generate_notification_sig, is_valid_hmac_notification
from gocardless_pro import webhooks as gocardless_webhooks
from gocardless_pro.errors import InvalidSignatureError

from conftest import BIN, SECRETS, running_payhook

# The HMAC key of the Adyen SDK's own tests (test/UtilTest.py), hex as the Customer Area shows it.
ADYEN_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
ADYEN_OTHER_KEY = "74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174"
GOCARDLESS_SECRET = "gc_webhook_secret_7rXbC6kY"
# The vector of the GoCardless SDK's own tests (tests/webhooks_test.py, tests/fixtures/webhook_body.json).
GOCARDLESS_SDK_KEY = "ED7D658C-D8EB-4941-948B-3973214F2D49"
GOCARDLESS_SDK_SIGNATURE = "2693754819d3e32d7e8fcb13c729631f316c6de8dc1cf634d6527f1c07276e7e"
GOCARDLESS_SDK_BODY = (
    '{"events":[{"id":"EV00BD05S5VM2T","created_at":"2018-07-05T09:13:51.404Z","resource_type":"subscriptions",'
    '"action":"created","links":{"subscription":"SB0003JJQ2MR06"},"details":{"origin":"api",'
    '"cause":"subscription_created","description":"Subscription created via the API."},"metadata":{}},'
    '{"id":"EV00BD05TB8K63","created_at":"2018-07-05T09:13:56.893Z","resource_type":"mandates","action":"created",'
    '"links":{"mandate":"MD000AMA19XGEC"},"details":{"origin":"api","cause":"mandate_created",'
    '"description":"Mandate created via the API."},"metadata":{}}]}')

CONFIG = f"""
[[sources]]
name = "adyen"
kind = "adyen"
secrets = ["{ADYEN_KEY}"]

[[sources]]
name = "gocardless"
kind = "gocardless"
secrets = ["{GOCARDLESS_SECRET}"]

[[sources]]
name = "gocardless-vector"
kind = "gocardless"
secrets = ["{GOCARDLESS_SDK_KEY}"]
"""


@pytest.fixture(scope="module")
def payhook():
    """payhook serving the sources above; yields (base URL, the config path, the store dir)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "payhook.toml")
        with open(config, "w") as f:
            f.write(CONFIG)
        with running_payhook(tmp, SECRETS, ["--config", config]) as base:
            yield base, config, tmp


def post(url, body, headers=None):
    """POSTs `body` (bytes); (status, answer text)."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def code(text):
    return json.loads(text)["error"]["code"]


def captured_trigger(config, tmp, source, event_type):
    """What `payhook trigger --source SOURCE EVENT_TYPE` sends, captured by a loopback server:
    (body bytes, headers)."""
    received = []

    class Capture(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            received.append((self.rfile.read(length), {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"[accepted]")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = subprocess.run(
            [BIN, "--config", config, "trigger", "--source", source, event_type,
             "--booking", "bk_oracle", "--url", f"http://127.0.0.1:{server.server_port}/hook"],
            capture_output=True, text=True, timeout=30,
            env={"RUST_LOG": "warn", "DATABASE_URL": f"sqlite://{tmp}/payhook.db"})
        assert out.returncode == 0, out.stdout + out.stderr
    finally:
        server.shutdown()
        server.server_close()
    assert len(received) == 1
    return received[0]


# --- Adyen ---------------------------------------------------------------------------------------

def adyen_item(psp, event, success, value, booking, original=None, key=ADYEN_KEY):
    item = {"pspReference": psp, "merchantReference": booking, "merchantAccountCode": "HotelCoECOM",
            "amount": {"currency": "EUR", "value": value}, "eventCode": event, "success": success,
            "eventDate": "2026-01-02T10:00:00+01:00", "paymentMethod": "visa"}
    if original:
        item["originalReference"] = original
    item["additionalData"] = {"hmacSignature": generate_notification_sig(item, key).decode()}
    return {"NotificationRequestItem": item}


def adyen_batch(*items):
    return json.dumps({"live": "false", "notificationItems": list(items)}).encode()


def test_payhook_accepts_the_batches_the_adyen_sdk_signs(payhook):
    base, _, _ = payhook
    body = adyen_batch(adyen_item("QFQTPCQ8HXSKGK82", "AUTHORISATION", "true", 11900, "bk_42"),
                       adyen_item("ZC4R4RBFJGXXGN82", "REFUND", "true", 5000, "bk_42",
                                  original="QFQTPCQ8HXSKGK82"),
                       adyen_item("QFQTPCQ8HXSKGK83", "AUTHORISATION", "false", 1, "bk:with:colons"))
    assert post(f"{base}/webhooks/adyen", body) == (200, "[accepted]")
    # Sent again: duplicates, acknowledged the same way.
    assert post(f"{base}/webhooks/adyen", body) == (200, "[accepted]")


def test_a_batch_with_one_tampered_item_is_refused_though_the_sdk_whole_body_check_passes(payhook):
    base, _, _ = payhook
    batch = json.loads(adyen_batch(adyen_item("P100", "AUTHORISATION", "true", 100, "bk_t"),
                                   adyen_item("P101", "AUTHORISATION", "true", 100, "bk_t")))
    tampered = copy.deepcopy(batch)
    tampered["notificationItems"][1]["NotificationRequestItem"]["amount"]["value"] = 1
    # The SDK's whole-body helper looks at the first item only; payhook checks every one.
    assert is_valid_hmac_notification(tampered, ADYEN_KEY)
    status, text = post(f"{base}/webhooks/adyen", json.dumps(tampered).encode())
    assert (status, code(text)) == (400, "invalid_signature")
    wrong = adyen_batch(adyen_item("P102", "AUTHORISATION", "true", 100, "bk_t", key=ADYEN_OTHER_KEY))
    status, text = post(f"{base}/webhooks/adyen", wrong)
    assert (status, code(text)) == (400, "invalid_signature")
    unsigned = copy.deepcopy(batch)
    del unsigned["notificationItems"][0]["NotificationRequestItem"]["additionalData"]
    status, text = post(f"{base}/webhooks/adyen", json.dumps(unsigned).encode())
    assert (status, code(text)) == (400, "missing_signature")


@pytest.mark.parametrize("event_type", ["AUTHORISATION", "CAPTURE", "CANCELLATION", "REFUND", "CHARGEBACK"])
def test_the_adyen_sdk_verifies_every_item_payhook_trigger_signs(payhook, event_type):
    _, config, tmp = payhook
    body, headers = captured_trigger(config, tmp, "adyen", event_type)
    items = json.loads(body)["notificationItems"]
    assert items
    for wrapper in items:
        item = wrapper["NotificationRequestItem"]
        assert item["eventCode"] == event_type and item["merchantReference"] == "bk_oracle"
        assert is_valid_hmac_notification(item, ADYEN_KEY) is True
        assert is_valid_hmac_notification(item, ADYEN_OTHER_KEY) is False
        bad = copy.deepcopy(item)
        bad["amount"]["value"] += 1
        assert is_valid_hmac_notification(bad, ADYEN_KEY) is False


# --- GoCardless ----------------------------------------------------------------------------------

def gocardless_sign(secret, body):
    """`Webhook-Signature` as GoCardless documents it: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_payhook_accepts_the_gocardless_sdk_vector(payhook):
    base, _, _ = payhook
    body = GOCARDLESS_SDK_BODY.encode()
    events = gocardless_webhooks.parse(body, GOCARDLESS_SDK_KEY, GOCARDLESS_SDK_SIGNATURE)
    assert [e.id for e in events] == ["EV00BD05S5VM2T", "EV00BD05TB8K63"]
    status, text = post(f"{base}/webhooks/gocardless-vector", body,
                        {"Webhook-Signature": GOCARDLESS_SDK_SIGNATURE})
    assert status == 200, text
    assert json.loads(text)["events"] == ["EV00BD05S5VM2T", "EV00BD05TB8K63"]


def test_payhook_accepts_what_the_sdk_verifies_and_refuses_what_it_refuses(payhook):
    base, _, _ = payhook
    body = json.dumps({"events": [
        {"id": "EVO001", "created_at": "2026-01-02T10:00:00.000Z", "resource_type": "payments",
         "action": "confirmed", "links": {"payment": "PMO001"},
         "details": {"origin": "gocardless", "cause": "payment_confirmed", "description": "..."},
         "metadata": {}, "resource_metadata": {"booking_id": "bk_42"}},
        {"id": "EVO002", "created_at": "2026-01-02T10:00:01.000Z", "resource_type": "refunds",
         "action": "created", "links": {"refund": "RFO001", "payment": "PMO001"},
         "details": {"origin": "api", "cause": "payment_refunded", "description": "..."},
         "metadata": {}}], "meta": {"webhook_id": "WBO001"}}, separators=(",", ":")).encode()
    signature = gocardless_sign(GOCARDLESS_SECRET, body)
    parsed = gocardless_webhooks.parse_with_meta(body, GOCARDLESS_SECRET, signature)
    assert [e.id for e in parsed.events] == ["EVO001", "EVO002"]
    status, text = post(f"{base}/webhooks/gocardless", body, {"Webhook-Signature": signature})
    assert status == 200, text
    assert json.loads(text)["events"] == ["EVO001", "EVO002"]

    tampered = body.replace(b"PMO001", b"PMO002")
    with pytest.raises(InvalidSignatureError):
        gocardless_webhooks.parse(tampered, GOCARDLESS_SECRET, signature)
    # GoCardless's guide answers a signature that does not match "498 Token Invalid".
    status, text = post(f"{base}/webhooks/gocardless", tampered, {"Webhook-Signature": signature})
    assert (status, code(text)) == (498, "invalid_signature")
    wrong = gocardless_sign("gc_some_other_secret", body)
    with pytest.raises(InvalidSignatureError):
        gocardless_webhooks.parse(body, GOCARDLESS_SECRET, wrong)
    status, text = post(f"{base}/webhooks/gocardless", body, {"Webhook-Signature": wrong})
    assert (status, code(text)) == (498, "invalid_signature")
    status, text = post(f"{base}/webhooks/gocardless", body)
    assert (status, code(text)) == (498, "missing_signature")


@pytest.mark.parametrize("event_type", ["payments.confirmed", "payments.paid_out", "payments.failed",
                                        "payments.cancelled", "payments.charged_back"])
def test_the_gocardless_sdk_verifies_what_payhook_trigger_signs(payhook, event_type):
    _, config, tmp = payhook
    body, headers = captured_trigger(config, tmp, "gocardless", event_type)
    events = gocardless_webhooks.parse(body, GOCARDLESS_SECRET, headers["webhook-signature"])
    assert len(events) == 1
    event = events[0]
    assert f"{event.resource_type}.{event.action}" == event_type
    assert event.links.payment and event.resource_metadata == {"booking_id": "bk_oracle"}
    with pytest.raises(InvalidSignatureError):
        gocardless_webhooks.parse(body + b" ", GOCARDLESS_SECRET, headers["webhook-signature"])
