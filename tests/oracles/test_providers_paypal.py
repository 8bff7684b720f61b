"""The official Braintree SDK (PyPI `braintree`) as the oracle for the `braintree` preset: payhook
accepts the notifications `gateway.webhook_testing.sample_notification` signs, the SDK's
`gateway.webhook_notification.parse` accepts what `payhook trigger --source braintree` sends, and
tampered or wrongly keyed notifications are refused with payhook's codes.

PayPal has no SDK that can sign (its notifications are signed with PayPal's RSA key; the current
`@paypal/paypal-server-sdk` has no webhook code): its preset is tested against a loopback PayPal
API in tests/providers_paypal.rs."""

import http.server
import json
import os
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
from decimal import Decimal

import pytest

with warnings.catch_warnings():
    # braintree 4.48 warns about its own deprecated dispute and search constants on import.
    warnings.simplefilter("ignore", DeprecationWarning)
    import braintree
    from braintree.exceptions.invalid_signature_error import InvalidSignatureError
    from braintree.webhook_notification import WebhookNotification

from conftest import BIN, running_payhook

PUBLIC, PRIVATE = "integration_public_key", "integration_private_key"


def gateway(private=PRIVATE, public=PUBLIC):
    return braintree.BraintreeGateway(braintree.Configuration(
        braintree.Environment.Sandbox, merchant_id="integration_merchant_id",
        public_key=public, private_key=private))


CONFIG = f"""
[[sources]]
name = "braintree"
kind = "braintree"
secrets = ["{PUBLIC}:{PRIVATE}"]
"""


@pytest.fixture(scope="module")
def payhook():
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "payhook.toml")
        with open(config, "w") as f:
            f.write(CONFIG)
        with running_payhook(tmp, None, ["--config", config]) as base:
            yield base, config


def post(base, fields):
    body = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(
        f"{base}/webhooks/braintree", data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def sample(kind, object_id, gw=None):
    s = (gw or gateway()).webhook_testing.sample_notification(kind, object_id)
    return {"bt_signature": s["bt_signature"], "bt_payload": s["bt_payload"]}


@pytest.mark.parametrize("kind", [
    WebhookNotification.Kind.TransactionSettled,
    WebhookNotification.Kind.TransactionSettlementDeclined,
    WebhookNotification.Kind.TransactionDisbursed,
    WebhookNotification.Kind.DisputeOpened,
    WebhookNotification.Kind.DisputeWon,
    WebhookNotification.Kind.SubscriptionChargedSuccessfully,
])
def test_payhook_accepts_what_the_sdk_signs(payhook, kind):
    base, _ = payhook
    status, answer = post(base, sample(kind, f"oracle_{kind}"))
    assert status == 200, answer
    assert answer["event_id"].startswith(f"{kind}:"), answer
    if kind.startswith(("transaction_", "dispute_")):
        assert f":oracle_{kind}:" in answer["event_id"], answer


def test_tampered_and_wrongly_keyed_notifications_are_refused(payhook):
    base, _ = payhook
    good = sample(WebhookNotification.Kind.TransactionSettled, "oracle_tampered")
    payload = good["bt_payload"]
    # One character of the base64 changed: the SDK refuses it, and so does payhook.
    flipped = payload[:40] + (b"B" if payload[40:41] != b"B" else b"C") + payload[41:]
    with pytest.raises(InvalidSignatureError):
        gateway().webhook_notification.parse(good["bt_signature"], flipped)
    cases = [
        ({**good, "bt_payload": flipped}, "invalid_signature"),
        (sample(WebhookNotification.Kind.TransactionSettled, "x", gateway(private="other")),
         "invalid_signature"),
        (sample(WebhookNotification.Kind.TransactionSettled, "x", gateway(public="pk_other")),
         "invalid_signature"),
        ({"bt_payload": payload}, "missing_signature"),
        ({**good, "bt_payload": b"<notification/>"}, "malformed_payload"),
    ]
    for fields, code in cases:
        status, answer = post(base, fields)
        assert (status, answer["error"]["code"]) == (400, code), (fields, answer)


def capturing_server():
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            received.append((self.rfile.read(length), self.headers["Content-Type"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


@pytest.mark.parametrize("kind", ["transaction_settled", "transaction_settlement_declined",
                                  "transaction_disbursed", "dispute_opened"])
def test_the_sdk_accepts_what_payhook_trigger_sends(payhook, kind):
    _, config = payhook
    server, received = capturing_server()
    try:
        out = subprocess.run(
            [BIN, "--config", config, "trigger", "--source", "braintree", kind,
             "--url", f"http://127.0.0.1:{server.server_port}/bt", "--payment", "txn_oracle",
             "--booking", "booking-bt", "--amount", "11900", "--currency", "EUR"],
            capture_output=True, text=True, env={"RUST_LOG": "warn"}, timeout=30)
    finally:
        server.shutdown()
    assert out.returncode == 0, out.stdout + out.stderr
    (body, content_type), = received
    assert content_type == "application/x-www-form-urlencoded"
    fields = urllib.parse.parse_qs(body.decode())
    n = gateway().webhook_notification.parse(fields["bt_signature"][0], fields["bt_payload"][0])
    assert n.kind == kind
    transaction = n.dispute.transaction if kind == "dispute_opened" else n.transaction
    assert transaction.id == "txn_oracle"
    if kind == "dispute_opened":
        assert n.dispute.amount_disputed == Decimal("119.00")
        assert n.dispute.currency_iso_code == "EUR"
    else:
        assert transaction.amount == Decimal("119.00")
        assert transaction.currency_iso_code == "EUR"
        assert transaction.order_id == "booking-bt"
    # Signed with another key, the SDK refuses it.
    with pytest.raises(InvalidSignatureError):
        gateway(private="other").webhook_notification.parse(
            fields["bt_signature"][0], fields["bt_payload"][0])
