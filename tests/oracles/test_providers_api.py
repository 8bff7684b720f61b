"""Official SDKs as oracles for the providers payhook confirms by API.

- Mercado Pago: the PyPI `mercadopago` SDK's `WebhookSignatureValidator` (it verifies; Mercado
  Pago publishes no signer) accepts what `payhook trigger --source` sends, payhook accepts a
  request signed as that validator checks, and what the validator refuses (tampered, stale, wrong
  secret) payhook refuses with its codes.
- Mollie: `mollie-api-python` has no signature code (classic webhooks are unsigned); its client,
  pointed at the same loopback API payhook confirms with, shows payhook asks Mollie the way the
  SDK does (`payments.get`) and reads the payment as the SDK's `Payment` does.
"""

import hashlib
import hmac
import http.server
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from mercadopago.webhook import InvalidWebhookSignatureError, WebhookSignatureValidator
from mollie.api.client import Client

from conftest import BIN, running_payhook

MP_SECRET = "mp_oracle_clave_secreta"
MOLLIE_KEY = "test_dHar4XY7LxsDOtmnkVtjNVWXLSlXsM"
SERVICE_TOKEN = "providers-api-oracle-token"


class Loopback:
    """A loopback HTTP server answering `answer(method, path, headers, body) -> (status, dict)`
    and keeping every request as (method, path with query, headers, body)."""

    def __init__(self, answer):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                outer.requests.append((self.command, self.path,
                                       {k.lower(): v for k, v in self.headers.items()}, body))
                status, reply = answer(self.command, self.path, self.headers, body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = handle_one

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def post(url, body, headers, content_type="application/json"):
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type, **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def payment_status(base, booking):
    """The booking's payment as payhook's ledger has it, once there (within 15 s)."""
    deadline = time.time() + 15
    while True:
        request = urllib.request.Request(f"{base}/api/v1/payments/{booking}/status",
                                         headers={"Authorization": f"Bearer {SERVICE_TOKEN}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                data = json.loads(r.read())["data"]
                if data.get("status") not in (None, "processing", "requires_payment_method"):
                    return data
        except urllib.error.HTTPError:
            pass
        assert time.time() < deadline, f"no payment for {booking}"
        time.sleep(0.1)


def config_file(tmp, text):
    path = os.path.join(tmp, "payhook.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


# Mercado Pago ------------------------------------------------------------------------------------

def mp_signed(data_id, request_id, ts, secret=MP_SECRET):
    """x-signature as the SDK's validator checks it (the SDK has no signer)."""
    manifest = f"id:{data_id};request-id:{request_id};ts:{ts};"
    return f"ts={ts},v1=" + hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()


def sdk_accepts(signature, request_id, data_id):
    try:
        WebhookSignatureValidator.validate(signature, request_id, data_id, MP_SECRET,
                                           tolerance_seconds=300)
        return True
    except InvalidWebhookSignatureError:
        return False


def test_mercadopago_sdk_accepts_what_payhook_trigger_sends():
    captured = Loopback(lambda *a: (200, {}))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = config_file(tmp, f"""
[[sources]]
name = "mp"
kind = "mercadopago"
secrets = ["{MP_SECRET}"]
[sources.api]
access_token = "TEST-oracle"
""")
            for event_type in ["payment.updated", "payment.created"]:
                out = subprocess.run(
                    [BIN, "--config", config, "trigger", "--source", "mp", event_type,
                     "--payment", "1319000123", "--url", f"{captured.url}/webhooks/mp"],
                    capture_output=True, text=True, timeout=30,
                    env={"RUST_LOG": "warn", "DATABASE_URL": f"sqlite://{tmp}/payhook.db"})
                assert out.returncode == 0, out.stdout + out.stderr
        assert len(captured.requests) == 2
        for method, path, headers, body in captured.requests:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
            data_id = query["data.id"][0]
            assert data_id == "1319000123" == json.loads(body)["data"]["id"]
            signature, request_id = headers["x-signature"], headers["x-request-id"]
            WebhookSignatureValidator.validate(signature, request_id, data_id, MP_SECRET,
                                               tolerance_seconds=300)
            with pytest.raises(InvalidWebhookSignatureError):
                WebhookSignatureValidator.validate(signature, request_id, data_id, "other",
                                                   tolerance_seconds=300)
    finally:
        captured.close()


def test_payhook_accepts_what_the_mercadopago_sdk_validates_and_refuses_what_it_refuses():
    api = Loopback(lambda method, path, *_: (
        (200, {"id": 1319000124, "status": "approved", "status_detail": "accredited",
               "transaction_amount": 150.5, "currency_id": "BRL",
               "external_reference": "bk_mp_oracle"})
        if path == "/v1/payments/1319000124" else (404, {"message": "Payment not found"})))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = config_file(tmp, f"""
[[sources]]
name = "mp"
kind = "mercadopago"
secrets = ["{MP_SECRET}"]
[sources.api]
url = "{api.url}"
access_token = "TEST-oracle"
""")
            env = {"INTERNAL_SERVICE_TOKEN": SERVICE_TOKEN}
            with running_payhook(tmp, ["whsec_unused"], ["--config", config], env) as base:
                data_id, request_id = "1319000124", "bb56a2f1-6aae-46ac-982e-9dcd3581d08e"
                body = json.dumps({"id": 12345, "live_mode": False, "type": "payment",
                                   "action": "payment.updated", "api_version": "v1",
                                   "data": {"id": data_id}}).encode()
                url = f"{base}/webhooks/mp?data.id={data_id}&type=payment"
                now = int(time.time())
                good = mp_signed(data_id, request_id, now)
                stale = mp_signed(data_id, request_id, now - 3600)
                wrong = mp_signed(data_id, request_id, now, secret="another")
                assert sdk_accepts(good, request_id, data_id)
                for signature, code in [(stale, "timestamp_out_of_tolerance"),
                                        (wrong, "invalid_signature")]:
                    assert not sdk_accepts(signature, request_id, data_id)
                    status, answer = post(url, body, {"x-signature": signature,
                                                      "x-request-id": request_id})
                    assert (status, answer["error"]["code"]) == (400, code), answer
                # Another payment in the URL: the SDK refuses the signature, and so does payhook.
                assert not sdk_accepts(good, request_id, "1319000125")
                status, answer = post(url.replace(data_id, "1319000125"), body,
                                      {"x-signature": good, "x-request-id": request_id})
                assert (status, answer["error"]["code"]) == (400, "invalid_signature")

                status, answer = post(url, body, {"x-signature": good, "x-request-id": request_id})
                assert status == 200, answer
                data = payment_status(base, "bk_mp_oracle")
                assert (data["status"], data["amount"], data["currency"]) == ("succeeded", 15050, "brl")
                gets = [r for r in api.requests if r[1] == f"/v1/payments/{data_id}"]
                assert gets and gets[0][2]["authorization"] == "Bearer TEST-oracle"
    finally:
        api.close()


# Mollie ------------------------------------------------------------------------------------------

PAYMENT = {
    "resource": "payment", "id": "tr_WDqYK6vllg", "mode": "test", "status": "paid",
    "amount": {"value": "119.00", "currency": "EUR"}, "description": "Booking bk_mollie_oracle",
    "metadata": {"booking_id": "bk_mollie_oracle"}, "paidAt": "2026-11-30T10:00:00+00:00",
    "_links": {"self": {"href": "https://api.mollie.com/v2/payments/tr_WDqYK6vllg",
                        "type": "application/hal+json"}},
}


def test_payhook_asks_mollie_as_mollie_api_python_does_and_reads_the_same_payment():
    api = Loopback(lambda method, path, *_: (
        (200, PAYMENT) if urllib.parse.urlsplit(path).path == "/v2/payments/tr_WDqYK6vllg"
        else (404, {"status": 404, "title": "Not Found",
                    "detail": "No payment exists with token tr_nope."})))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = config_file(tmp, f"""
[[sources]]
name = "mollie"
kind = "mollie"
[sources.api]
url = "{api.url}"
api_key = "{MOLLIE_KEY}"
""")
            env = {"INTERNAL_SERVICE_TOKEN": SERVICE_TOKEN}
            with running_payhook(tmp, ["whsec_unused"], ["--config", config], env) as base:
                # What Mollie posts: a form naming the payment, nothing else.
                status, answer = post(f"{base}/webhooks/mollie", b"id=tr_WDqYK6vllg", {},
                                      "application/x-www-form-urlencoded")
                assert status == 200, answer
                data = payment_status(base, "bk_mollie_oracle")
            payhook_asked = [r for r in api.requests if r[0] == "GET"]
            assert len(payhook_asked) == 1

            client = Client(api_endpoint=api.url)
            client.set_api_key(MOLLIE_KEY)
            payment = client.payments.get("tr_WDqYK6vllg")
            sdk_asked = api.requests[-1]
            # The same request: method, path, credentials.
            assert payhook_asked[0][0] == sdk_asked[0] == "GET"
            assert (urllib.parse.urlsplit(payhook_asked[0][1]).path
                    == urllib.parse.urlsplit(sdk_asked[1]).path)
            assert payhook_asked[0][2]["authorization"] == sdk_asked[2]["authorization"]
            # The same payment: paid, 119.00 EUR, for the booking in its metadata.
            assert payment.is_paid() and payment.status == "paid"
            assert data["status"] == "succeeded"
            value = payment.amount["value"]
            assert data["amount"] == int(value.replace(".", ""))
            assert data["currency"] == payment.amount["currency"].lower()
            assert payment.metadata["booking_id"] == "bk_mollie_oracle"
    finally:
        api.close()
