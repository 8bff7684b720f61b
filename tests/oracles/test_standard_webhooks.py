"""The official `standardwebhooks` library (PyPI) as the oracle for the `events` target: every
notification payhook sends verifies with it, and a tampered one does not."""

import http.server
import json
import os
import subprocess
import tempfile
import threading
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from conftest import BIN, running_payhook

STRIPE_SECRET = "whsec_oracle_stripe_secret"
# A Standard Webhooks secret: whsec_ and a base64 key (24 random bytes here).
EVENTS_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def receiver():
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            received.append((self.rfile.read(length), dict(self.headers)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def test_events_target_notifications_verify_with_standardwebhooks():
    server, received = receiver()
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "payhook.toml")
        with open(config, "w") as f:
            f.write(f"""
[[targets]]
name = "subscribers"
kind = "events"
url = "http://127.0.0.1:{server.server_port}/payhook-events"
secret = "{EVENTS_SECRET}"
""")
        with running_payhook(tmp, [STRIPE_SECRET], ["--config", config]) as base:
            # One payment: the intent, then a refund of its charge.
            for event_type, object_id in [("payment_intent.succeeded", "pi_swh"),
                                          ("charge.refunded", "ch_swh")]:
                out = subprocess.run(
                    [BIN, "trigger", event_type, "--url", f"{base}/webhooks/stripe",
                     "--secret", STRIPE_SECRET, "--add", "metadata.bookingId=booking-swh",
                     "--add", "payment_intent=pi_swh", "--add", f"id={object_id}"],
                    capture_output=True, text=True, env={"RUST_LOG": "warn"}, timeout=30,
                )
                assert out.returncode == 0, out.stdout + out.stderr
            deadline = time.time() + 15
            while len(received) < 2 and time.time() < deadline:
                time.sleep(0.05)
    server.shutdown()

    assert len(received) == 2, received
    webhook = Webhook(EVENTS_SECRET)
    types = []
    for body, headers in received:
        lowered = {k.lower(): v for k, v in headers.items()}
        verified = webhook.verify(body, lowered)
        types.append(verified["type"])
        assert verified["data"]["booking_id"] == "booking-swh"
        with pytest.raises(WebhookVerificationError):
            webhook.verify(body.replace(b"booking-swh", b"booking-xxx"), lowered)
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 32).verify(body, lowered)
    assert types == ["payment.confirmed", "payment.refunded"]


def test_a_standard_webhooks_source_accepts_what_the_library_signs_and_refuses_tampering():
    """The other direction: a `standard-webhooks` source verifies messages the official library
    signed, several signatures and all, and refuses any change to the id, time or body."""
    import datetime
    import urllib.error
    import urllib.request

    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "payhook.toml")
        with open(config, "w") as f:
            f.write(f"""
[[sources]]
name = "billing"
kind = "standard-webhooks"
secrets = ["{EVENTS_SECRET}"]
""")
        with running_payhook(tmp, [STRIPE_SECRET], ["--config", config]) as base:
            hook = Webhook(EVENTS_SECRET)
            other = Webhook("whsec_" + "dGhpcyBpcyBhbm90aGVyIGtleSBvZiAzMiBieXRlcyE=")

            def send(msg_id, body, when, signature=None):
                ts = datetime.datetime.fromtimestamp(when, tz=datetime.timezone.utc)
                sig = signature or hook.sign(msg_id, ts, body)
                request = urllib.request.Request(
                    f"{base}/webhooks/billing", data=body.encode(), method="POST",
                    headers={"content-type": "application/json", "webhook-id": msg_id,
                             "webhook-timestamp": str(int(when)), "webhook-signature": sig})
                try:
                    with urllib.request.urlopen(request, timeout=10) as r:
                        return r.status, json.loads(r.read())
                except urllib.error.HTTPError as e:
                    return e.code, json.loads(e.read())

            now = time.time()
            body = json.dumps({"type": "invoice.paid", "data": {"id": "in_1"}})
            status, answer = send("msg_lib_1", body, now)
            assert status == 200, answer
            assert (status, answer["event_id"], answer["duplicate"]) == (200, "msg_lib_1", False)

            # Several signatures, as during a key rotation: one good one is enough.
            both = other.sign("msg_lib_2", datetime.datetime.fromtimestamp(
                now, tz=datetime.timezone.utc), body) + " " + hook.sign(
                "msg_lib_2", datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc), body)
            assert send("msg_lib_2", body, now, both)[0] == 200

            good = hook.sign("msg_lib_3", datetime.datetime.fromtimestamp(
                now, tz=datetime.timezone.utc), body)
            for msg_id, sent_body, when in [("msg_lib_other", body, now),
                                            ("msg_lib_3", body + " ", now),
                                            ("msg_lib_3", body, now + 1)]:
                status, answer = send(msg_id, sent_body, when, good)
                assert (status, answer["error"]["code"]) == (400, "invalid_signature"), msg_id
            status, answer = send("msg_lib_4", body, now - 3600)
            assert (status, answer["error"]["code"]) == (400, "timestamp_out_of_tolerance")
