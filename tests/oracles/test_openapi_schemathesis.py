"""schemathesis (PyPI) against the API documents payhook serves at `GET /openapi.json` on each
listener: generated requests (valid and not) to every documented operation, including stateful
sequences along the links it infers. Each answer must be no 5xx, and a status code, content type
and body that the document allows for that operation."""

import hashlib
import hmac
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

from conftest import SECRETS, running_listeners

SCHEMATHESIS = pathlib.Path(sys.executable).parent / "schemathesis"
SERVICE_TOKEN = "service-token-for-schemathesis"
ADMIN_TOKEN = "admin-token-for-schemathesis"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def send_signed(base, event):
    body = json.dumps(event).encode()
    t = int(time.time())
    sig = hmac.new(SECRETS[0].encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"{base}/webhooks/stripe",
        data=body,
        headers={"Stripe-Signature": f"t={t},v1={sig}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 200


def get(url, token):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)


@pytest.fixture(scope="module")
def listeners():
    with tempfile.TemporaryDirectory() as tmp, running_listeners(
        tmp,
        SECRETS,
        extra_env={
            "INTERNAL_SERVICE_TOKEN": SERVICE_TOKEN,
            "PAYHOOK_ADMIN_TOKEN": ADMIN_TOKEN,
            # A booking service that is not there: notifications that wait and fail, a circuit.
            "BOOKING_SERVICE_URL": "http://127.0.0.1:9",
        },
    ) as urls:
        # Rows for the admin listings: a payment, a refund, an event that cannot apply.
        now = int(time.time())
        pi = {"object": "payment_intent", "id": "pi_schema_1", "amount": 2000,
              "currency": "eur", "status": "succeeded", "metadata": {"bookingId": "booking-schema"}}
        send_signed(urls["public"], {"id": "evt_schema_1", "object": "event", "created": now,
                                     "type": "payment_intent.succeeded", "data": {"object": pi}})
        send_signed(urls["public"], {"id": "evt_schema_2", "object": "event", "created": now,
                                     "type": "payment_intent.succeeded",
                                     "data": {"object": {"object": "payment_intent"}}})
        yield urls


# The event stream answers as long as the client listens (until payhook stops, or its `timeout`):
# a generated call without a timeout would never end, so the run leaves it out;
# tests/event_stream.rs checks its refusals and its timeout, tests/process_listen.rs a client.
STREAM = "/admin/api/events/stream"


def schemathesis(document, token, max_examples=25, exclude=()):
    """Runs schemathesis on one document; returns (exit code, output)."""
    seed = os.environ.get("PAYHOOK_SCHEMATHESIS_SEED", "20261122")
    excluded = [arg for path in exclude for arg in ("--exclude-path", path)]
    run = subprocess.run(
        [str(SCHEMATHESIS), "run", document, "--checks", CHECKS,
         "--max-examples", str(max_examples), "--seed", seed, "--workers", "2",
         "-H", f"Authorization: Bearer {token}", "--no-color", *excluded],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
    )
    return run.returncode, run.stdout + run.stderr


def paths(document):
    with urllib.request.urlopen(document) as answer:
        assert answer.headers["Content-Type"] == "application/json"
        return json.load(answer)["paths"]


def operations(described):
    return sum(len(methods) for methods in described.values())


def test_the_public_document_describes_the_public_routes_and_schemathesis_finds_nothing(listeners):
    described = paths(f"{listeners['public']}/openapi.json")
    for route in ["/webhooks/{source}", "/api/v1/payment-gateway/webhooks/stripe",
                  "/api/v1/payments/{booking_id}/status", "/api/v1/checkout/sessions",
                  "/api/v1/checkout/sessions/{session_id}", "/api/v1/payment-intents",
                  "/api/v1/payment-intents/{intent_id}", "/checkout/return",
                  "/sandbox/checkout/{session_id}", "/healthz", "/readyz"]:
        assert route in described, route
    assert not any(p.startswith("/admin") for p in described)

    code, output = schemathesis(f"{listeners['public']}/openapi.json", SERVICE_TOKEN)
    assert code == 0, output
    assert f"Tested: {operations(described)}" in output, output


def test_the_admin_document_describes_the_admin_routes_and_schemathesis_finds_nothing(listeners):
    described = paths(f"{listeners['admin']}/openapi.json")
    for route in ["/admin/api/events", "/admin/api/events/{id}", "/admin/api/events/{id}/replay",
                  "/admin/api/events/replay", "/admin/api/payments", "/admin/api/deliveries",
                  "/admin/api/deliveries/{id}/retry", "/admin/api/deliveries/retry",
                  "/admin/api/targets", "/admin/api/targets/{name}/reset",
                  "/admin/api/targets/{name}/enable", "/admin/api/targets/{name}/disable",
                  "/admin/api/overview", "/admin/api/reconcile", "/admin/api/jobs",
                  "/admin/api/jobs/{id}", "/admin/api/jobs/{id}/cancel", STREAM, "/metrics", "/"]:
        assert route in described, route
    # The rows the run reads are there.
    events = get(f"{listeners['admin']}/admin/api/events", ADMIN_TOKEN)["data"]
    assert {"evt_schema_1", "evt_schema_2"} <= {e["event_id"] for e in events}

    code, output = schemathesis(f"{listeners['admin']}/openapi.json", ADMIN_TOKEN,
                                exclude=[STREAM])
    assert code == 0, output
    assert f"Tested: {operations(described) - 1}" in output, output
