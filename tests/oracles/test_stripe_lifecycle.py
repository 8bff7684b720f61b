"""Stripe's payment lifecycle end to end, with events shaped as Stripe's API reference shows them
and signed by Stripe's official Python SDK, through payhook and the example booking service (a
real server on loopback): what the status route, the admin API and the booking service each end
with. On SQLite, and on PostgreSQL when PAYHOOK_ORACLE_PG_URL names a server (scripts/test sets it)."""

import contextlib
import json
import os
import subprocess
import tempfile
import time
import uuid

import pytest
import stripe

from conftest import BIN, running_listeners
from test_localstripe import _listening, call, eventually, free_port

SECRET = "whsec_lifecycle_oracle_secret"
TOKEN = "lifecycle-oracle-service-token"
ADMIN = "lifecycle-oracle-admin-token"
PSQL = "/usr/lib/postgresql/15/bin/psql"


def store_urls(tmp):
    yield f"sqlite://{tmp}/payhook.db"
    pg = os.environ.get("PAYHOOK_ORACLE_PG_URL")
    if pg:
        name = f"lifecycle_{uuid.uuid4().hex[:12]}"
        subprocess.run([PSQL, pg, "-q", "-c", f"CREATE DATABASE {name}"], check=True)
        yield pg.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def world(database_url, tmp):
    port = free_port()
    bookings = subprocess.Popen(
        [BIN, "example-booking-service", "--listen", f"127.0.0.1:{port}", "--token", TOKEN],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually("the booking service listens", lambda: _listening(port))
        env = {"DATABASE_URL": database_url, "BOOKING_SERVICE_URL": f"http://127.0.0.1:{port}",
               "INTERNAL_SERVICE_TOKEN": TOKEN, "PAYHOOK_ADMIN_TOKEN": ADMIN}
        with running_listeners(tmp, [SECRET], extra_env=env) as urls:
            yield {**urls, "bookings": f"http://127.0.0.1:{port}"}
    finally:
        bookings.terminate()
        bookings.wait(timeout=10)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def app(request):
    with tempfile.TemporaryDirectory() as tmp:
        urls = list(store_urls(tmp))
        if request.param == "postgres" and len(urls) < 2:
            pytest.skip("PAYHOOK_ORACLE_PG_URL is not set")
        url = urls[0] if request.param == "sqlite" else urls[1]
        with world(url, tmp) as w:
            yield w


def ids(booking):
    tag = uuid.uuid4().hex[:16]
    return {"booking": booking, "pi": f"pi_{tag}", "ch": f"ch_{tag}", "re": f"re_{tag}",
            "dp": f"dp_{tag}", "cs": f"cs_test_{tag}"}


def send(app, event_type, obj, at):
    """A Stripe event (API reference shape) signed by the official SDK, posted to payhook."""
    event = {"id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "api_version": "2024-06-20",
             "created": at, "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
             "request": {"id": None, "idempotency_key": None}, "type": event_type}
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(body, SECRET)
    import urllib.request
    request = urllib.request.Request(
        f"{app['public']}/webhooks/stripe", data=body.encode(), method="POST",
        headers={"Content-Type": "application/json", "Stripe-Signature": header})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200
    return event["id"]


def intent(p, status, amount=2000, received=None, capture="automatic"):
    return {"id": p["pi"], "object": "payment_intent", "amount": amount,
            "amount_capturable": amount if status == "requires_capture" else 0,
            "amount_received": amount if received is None and status == "succeeded" else (received or 0),
            "capture_method": capture, "currency": "eur", "status": status,
            "latest_charge": p["ch"], "metadata": {"bookingId": p["booking"]},
            "cancellation_reason": None, "last_payment_error": None, "livemode": False,
            "created": int(time.time()) - 300}


def charge(p, amount=2000, captured=2000, refunded=0):
    return {"id": p["ch"], "object": "charge", "amount": amount, "amount_captured": captured,
            "amount_refunded": refunded, "captured": captured > 0, "currency": "eur",
            "paid": True, "refunded": refunded >= amount, "status": "succeeded",
            "payment_intent": p["pi"], "metadata": {"bookingId": p["booking"]},
            "livemode": False, "created": int(time.time()) - 300}


def refund(p, status, created, amount=2000):
    r = {"id": p["re"], "object": "refund", "amount": amount, "charge": p["ch"],
         "currency": "eur", "payment_intent": p["pi"], "reason": "requested_by_customer",
         "status": status, "metadata": {}, "created": created}
    if status == "failed":
        r["failure_reason"] = "expired_or_canceled_card"
    return r


def dispute(p, status):
    return {"id": p["dp"], "object": "dispute", "amount": 2000, "charge": p["ch"],
            "currency": "eur", "payment_intent": p["pi"], "reason": "fraudulent",
            "status": status, "is_charge_refundable": False, "livemode": False,
            "created": int(time.time()) - 100, "metadata": {}}


def book(app, booking):
    status, _ = call("POST", f"{app['bookings']}/api/v1/bookings",
                     json_body={"id": booking, "amount": 2000, "currency": "eur"}, bearer=TOKEN)
    assert status in (200, 201)


def settled(app, *event_ids):
    for event_id in event_ids:
        eventually(f"{event_id} applied", lambda: (
            (r := call("GET", f"{app['admin']}/admin/api/events?event_id={event_id}",
                       bearer=ADMIN))[0] == 200
            and r[1]["data"] and r[1]["data"][0]["status"] not in ("received", "waiting")))


def status(app, booking):
    code, body = call("GET", f"{app['public']}/api/v1/payments/{booking}/status", bearer=TOKEN)
    return body["data"] if code == 200 else None


def admin_payments(app, booking):
    code, body = call("GET", f"{app['admin']}/admin/api/payments?booking_id={booking}", bearer=ADMIN)
    assert code == 200, body
    return body["data"]


def booking_service(app, booking):
    code, body = call("GET", f"{app['bookings']}/api/v1/bookings/{booking}", bearer=TOKEN)
    assert code == 200, body
    return body["data"]["status"]


def told(app, booking, expected):
    eventually(f"{booking}: the booking service says {expected}",
               lambda: booking_service(app, booking) == expected)


def test_a_refund_that_fails_after_refunded_gives_the_money_back_and_is_flagged(app):
    p = ids(f"booking-{uuid.uuid4().hex[:8]}")
    book(app, p["booking"])
    t = int(time.time()) - 200
    settled(app, send(app, "payment_intent.succeeded", intent(p, "succeeded"), t))
    told(app, p["booking"], "confirmed")
    # The refund is created, then the charge reports it (the charge's own snapshot).
    settled(app, send(app, "refund.created", refund(p, "pending", t + 9), t + 9),
            send(app, "charge.refunded", charge(p, refunded=2000), t + 10))
    told(app, p["booking"], "refunded")
    settled(app, send(app, "refund.failed", refund(p, "failed", t + 9), t + 60),
            send(app, "charge.refund.updated", refund(p, "failed", t + 9), t + 60))
    data = status(app, p["booking"])
    assert data["status"] == "succeeded", data
    assert data["amountRefunded"] == 0
    assert data["attention"] == ["refund_failed"]
    assert data["refunds"][0]["status"] == "failed"
    [row] = admin_payments(app, p["booking"])
    assert row["attention"] == ["refund_failed"] and row["amount_refunded"] == 0
    # The contract cannot take `refunded` back: the booking service keeps what it was told.
    assert booking_service(app, p["booking"]) == "refunded"


def test_a_partial_capture_pays_what_was_captured_and_an_authorisation_confirms_nothing(app):
    p = ids(f"booking-{uuid.uuid4().hex[:8]}")
    book(app, p["booking"])
    t = int(time.time()) - 200
    settled(app, send(app, "payment_intent.amount_capturable_updated",
                      intent(p, "requires_capture", capture="manual"), t))
    assert status(app, p["booking"])["status"] == "authorized"
    time.sleep(0.5)
    assert booking_service(app, p["booking"]) == "pending"
    settled(app, send(app, "charge.captured", charge(p, captured=1500), t + 30),
            send(app, "payment_intent.succeeded",
                 intent(p, "succeeded", received=1500, capture="manual"), t + 30))
    data = status(app, p["booking"])
    assert (data["status"], data["amount"], data["amountCaptured"]) == ("succeeded", 1500, 1500)
    told(app, p["booking"], "confirmed")


def test_a_session_that_takes_no_money_never_confirms(app):
    p = ids(f"booking-{uuid.uuid4().hex[:8]}")
    book(app, p["booking"])
    session = {"id": p["cs"], "object": "checkout.session", "mode": "setup",
               "payment_status": "no_payment_required", "status": "complete",
               "payment_intent": None, "setup_intent": "seti_1", "amount_total": None,
               "currency": None, "client_reference_id": p["booking"],
               "metadata": {"booking_id": p["booking"]}, "livemode": False}
    settled(app, send(app, "checkout.session.completed", session, int(time.time()) - 10))
    assert status(app, p["booking"]) is None
    assert booking_service(app, p["booking"]) == "pending"


def test_a_booking_paid_twice_stays_confirmed_when_the_duplicate_is_refunded(app):
    booking = f"booking-{uuid.uuid4().hex[:8]}"
    first, second = ids(booking), ids(booking)
    book(app, booking)
    t = int(time.time()) - 200
    settled(app, send(app, "payment_intent.succeeded", intent(first, "succeeded"), t),
            send(app, "payment_intent.succeeded", intent(second, "succeeded"), t + 30))
    told(app, booking, "confirmed")
    settled(app, send(app, "charge.refunded", charge(second, refunded=2000), t + 60))
    data = status(app, booking)
    assert data["status"] == "succeeded", data
    assert data["paymentIntentId"] == first["pi"]
    assert data["attention"] == ["duplicate"]
    flagged = [p["paymentIntentId"] for p in data["payments"] if p["duplicate"]]
    assert flagged == [second["pi"]]
    rows = {r["payment_intent_id"]: r for r in admin_payments(app, booking)}
    assert rows[second["pi"]]["attention"] == ["duplicate"]
    assert rows[second["pi"]]["status"] == "refunded"
    time.sleep(0.5)
    assert booking_service(app, booking) == "confirmed"


def test_a_dispute_inquiry_is_not_a_chargeback(app):
    p = ids(f"booking-{uuid.uuid4().hex[:8]}")
    book(app, p["booking"])
    t = int(time.time()) - 200
    settled(app, send(app, "payment_intent.succeeded", intent(p, "succeeded"), t),
            send(app, "charge.dispute.created", dispute(p, "warning_needs_response"), t + 10))
    data = status(app, p["booking"])
    assert data["status"] == "succeeded"
    assert data["disputes"][0]["inquiry"] is True and data["amountDisputed"] == 0
    settled(app, send(app, "charge.dispute.closed", dispute(p, "warning_closed"), t + 20))
    assert status(app, p["booking"])["status"] == "succeeded"
    told(app, p["booking"], "confirmed")


def test_an_authorisation_that_lapses_ends_canceled_and_confirms_nothing(app):
    p = ids(f"booking-{uuid.uuid4().hex[:8]}")
    book(app, p["booking"])
    t = int(time.time()) - 200
    lapsed = charge(p, captured=0, refunded=2000)  # Stripe releases the hold as a refund
    settled(app, send(app, "payment_intent.amount_capturable_updated",
                      intent(p, "requires_capture", capture="manual"), t),
            send(app, "charge.expired", lapsed, t + 100))
    data = status(app, p["booking"])
    assert (data["status"], data["amountRefunded"], data["paidAt"]) == ("canceled", 0, None), data
    time.sleep(0.5)
    assert booking_service(app, p["booking"]) == "pending"


def test_a_chargeback_holds_the_money_until_it_is_won(app):
    p = ids(f"booking-{uuid.uuid4().hex[:8]}")
    book(app, p["booking"])
    t = int(time.time()) - 200
    settled(app, send(app, "payment_intent.succeeded", intent(p, "succeeded"), t),
            send(app, "charge.dispute.created", dispute(p, "needs_response"), t + 10),
            send(app, "charge.dispute.funds_withdrawn", dispute(p, "needs_response"), t + 10))
    data = status(app, p["booking"])
    assert (data["status"], data["amountDisputed"]) == ("disputed", 2000), data
    [row] = admin_payments(app, p["booking"])
    assert row["disputes"][0]["id"] == p["dp"] and row["disputes"][0]["funds_held"] == 2000
    settled(app, send(app, "charge.dispute.funds_reinstated", dispute(p, "won"), t + 40),
            send(app, "charge.dispute.closed", dispute(p, "won"), t + 40))
    data = status(app, p["booking"])
    assert (data["status"], data["amountDisputed"], data["disputeStatus"]) == ("succeeded", 0, "won")
    # Disputes are the events target's business: the booking stays confirmed throughout.
    told(app, p["booking"], "confirmed")
