"""Stripe's official Python SDK as the oracle for payhook's signature checks, in both directions:
headers the SDK generates are accepted (and refused once tampered, stale or for another secret), and
events `payhook trigger` signs pass the SDK's own `stripe.Webhook.construct_event`."""

import json
import subprocess
import time
import urllib.error
import urllib.request

import stripe

from conftest import BIN, SECRETS, capturing_server

CURRENT, PREVIOUS = SECRETS


def event(event_id, extra=None):
    body = {
        "id": event_id,
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {"object": {"id": "pi_oracle", "amount": 1500, "currency": "eur",
                            "description": "Réservation 東京 — 2 places",
                            "metadata": {"bookingId": "booking-py"}}},
    }
    body.update(extra or {})
    return json.dumps(body, ensure_ascii=False)


def post(base, payload, header):
    request = urllib.request.Request(
        f"{base}/webhooks/stripe",
        data=payload.encode("utf-8"),
        headers={"Content-Type": "application/json", "Stripe-Signature": header},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_sdk_signed_events_are_accepted_with_any_rotated_secret(payhook):
    for i, secret in enumerate(SECRETS):
        payload = event(f"evt_py_ok_{i}")
        header = stripe.WebhookSignature.generate_signature_header(payload, secret)
        status, body = post(payhook, payload, header)
        assert status == 200, body
        assert body == {"received": True, "event_id": f"evt_py_ok_{i}", "duplicate": False}


def test_sdk_headers_for_a_tampered_body_are_refused(payhook):
    payload = event("evt_py_tampered")
    header = stripe.WebhookSignature.generate_signature_header(payload, CURRENT)
    status, body = post(payhook, payload.replace("1500", "15"), header)
    assert (status, body["error"]["code"]) == (400, "invalid_signature")


def test_sdk_headers_for_another_secret_are_refused(payhook):
    payload = event("evt_py_wrong_secret")
    header = stripe.WebhookSignature.generate_signature_header(payload, "whsec_not_configured_here")
    status, body = post(payhook, payload, header)
    assert (status, body["error"]["code"]) == (400, "invalid_signature")


def test_sdk_headers_with_a_stale_timestamp_are_refused(payhook):
    payload = event("evt_py_stale")
    header = stripe.WebhookSignature.generate_signature_header(payload, CURRENT, timestamp=int(time.time()) - 301)
    status, body = post(payhook, payload, header)
    assert (status, body["error"]["code"]) == (400, "timestamp_out_of_tolerance")
    # The SDK's own verifier agrees that the same header is too old.
    try:
        stripe.Webhook.construct_event(payload, header, CURRENT, tolerance=300)
        raise AssertionError("the SDK accepted a stale header")
    except stripe.SignatureVerificationError:
        pass


def test_events_signed_by_payhook_trigger_pass_the_sdk_verifier():
    with capturing_server(b'{"received":true}') as (base, received):
        url = f"{base}/stripe/webhooks"
        for event_type in ["payment_intent.succeeded", "checkout.session.completed", "charge.refunded"]:
            out = subprocess.run(
                [BIN, "trigger", event_type, "--url", url, "--secret", CURRENT,
                 "--add", "metadata.bookingId=booking-sdk"],
                capture_output=True, text=True, env={"RUST_LOG": "warn"}, timeout=30,
            )
            assert out.returncode == 0, out.stdout + out.stderr
    assert len(received) == 3
    for payload, header in received:
        verified = stripe.Webhook.construct_event(payload.decode("utf-8"), header, CURRENT)
        assert verified["id"].startswith("evt_")
        assert verified["data"]["object"]["metadata"]["bookingId"] == "booking-sdk"
