"""payhook against localstripe (PyPI), a stateful Stripe API emulator that sends real signed
webhooks: payhook creates the payment intent there through its Stripe API client, the intent is
confirmed with a test card, localstripe posts its signed event to payhook, and the ledger and the
example booking service (payhook's own binary, a real server on loopback) end where they must."""

import contextlib
import json
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import BIN, running_payhook

HERE = pathlib.Path(__file__).resolve().parent
WEBHOOK_SECRET = "whsec_localstripe_oracle_secret"
API_KEY = "sk_test_payhook_localstripe"
SERVICE_TOKEN = "localstripe-oracle-service-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, form=None, json_body=None, bearer=None):
    """An HTTP call; returns (status, parsed JSON body)."""
    data, headers = None, {}
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, _parse(r.read())
    except urllib.error.HTTPError as e:
        return e.code, _parse(e.read())


def _parse(body):
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


def eventually(what, check, within=20.0):
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        time.sleep(0.1)


@contextlib.contextmanager
def stripe_and_bookings(tmp, plain=False):
    """localstripe with its own state file in `tmp` (`plain`: as published, without the event
    list made to answer as Stripe's), and the example booking service, both on loopback; yields
    their base URLs."""
    stripe = subprocess.Popen(
        [sys.executable, str(HERE / "localstripe_server.py"), f"{tmp}/localstripe.pickle"]
        + (["plain"] if plain else []),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    bookings_port = free_port()
    bookings = subprocess.Popen(
        [BIN, "example-booking-service", "--listen", f"127.0.0.1:{bookings_port}",
         "--token", SERVICE_TOKEN],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        stripe_port = int(stripe.stdout.readline().strip())
        stripe_base = f"http://127.0.0.1:{stripe_port}"
        eventually("localstripe listens", lambda: _listening(stripe_port))
        eventually("the booking service listens", lambda: _listening(bookings_port))
        yield stripe_base, f"http://127.0.0.1:{bookings_port}"
    finally:
        for proc in (stripe, bookings):
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def world():
    with tempfile.TemporaryDirectory() as tmp, stripe_and_bookings(tmp) as (stripe_base, bookings_base):
        env = {
            "STRIPE_SECRET_KEY": API_KEY,
            "STRIPE_API_BASE": stripe_base,
            "BOOKING_SERVICE_URL": bookings_base,
            "INTERNAL_SERVICE_TOKEN": SERVICE_TOKEN,
        }
        with running_payhook(tmp, [WEBHOOK_SECRET], extra_env=env) as payhook:
            status, _ = call("POST", f"{stripe_base}/_config/webhooks/payhook",
                             form={"url": f"{payhook}/webhooks/stripe",
                                   "secret": WEBHOOK_SECRET})
            assert status == 200
            yield {"stripe": stripe_base, "payhook": payhook, "bookings": bookings_base}


def _listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def pay_with(world, booking, card):
    """A pending booking, its intent created by payhook in localstripe, confirmed with `card`."""
    status, _ = call("POST", f"{world['bookings']}/api/v1/bookings",
                     json_body={"id": booking, "amount": 4200, "currency": "eur"},
                     bearer=SERVICE_TOKEN)
    assert status in (200, 201)
    status, created = call("POST", f"{world['payhook']}/api/v1/payment-intents",
                           json_body={"booking_id": booking, "amount": 4200, "currency": "eur"},
                           bearer=SERVICE_TOKEN)
    assert status == 201, created
    intent = created["payment_intent_id"]
    assert intent.startswith("pi_") and created["client_secret"].startswith(intent)

    # The intent is really in localstripe, with the booking in its metadata.
    status, stored = call("GET", f"{world['stripe']}/v1/payment_intents/{intent}", bearer=API_KEY)
    assert status == 200, stored
    assert stored["metadata"]["bookingId"] == booking
    assert (stored["amount"], stored["currency"]) == (4200, "eur")

    # localstripe cannot confirm with a payment_method parameter: attach it, then confirm.
    status, _ = call("POST", f"{world['stripe']}/v1/payment_intents/{intent}",
                     form={"payment_method": card}, bearer=API_KEY)
    assert status == 200
    call("POST", f"{world['stripe']}/v1/payment_intents/{intent}/confirm", form={}, bearer=API_KEY)
    return intent


def payment(world, booking):
    status, body = call("GET", f"{world['payhook']}/api/v1/payments/{booking}/status",
                        bearer=SERVICE_TOKEN)
    return body["data"] if status == 200 else None


def booking_status(world, booking):
    status, body = call("GET", f"{world['bookings']}/api/v1/bookings/{booking}",
                        bearer=SERVICE_TOKEN)
    assert status == 200, body
    return body["data"]["status"]


def test_a_visa_payment_confirmed_in_localstripe_confirms_the_booking(world):
    intent = pay_with(world, "booking-ls-visa", "pm_card_visa")
    data = eventually("payhook's ledger says succeeded",
                      lambda: (p := payment(world, "booking-ls-visa")) and
                      p["status"] == "succeeded" and p)
    assert data["paymentIntentId"] == intent
    assert (data["amount"], data["currency"]) == (4200, "eur")
    eventually("the booking service says confirmed",
               lambda: booking_status(world, "booking-ls-visa") == "confirmed")
    status, read = call("GET", f"{world['payhook']}/api/v1/payment-intents/{intent}",
                        bearer=SERVICE_TOKEN)
    assert status == 200 and read["status"] == "succeeded", read


def test_a_card_that_fails_ends_failed_with_the_booking_still_pending(world):
    intent = pay_with(world, "booking-ls-fail", "pm_card_chargeCustomerFail")
    data = eventually("payhook's ledger says failed",
                      lambda: (p := payment(world, "booking-ls-fail")) and
                      p["status"] == "failed" and p)
    assert data["failureMessage"]
    time.sleep(0.5)
    assert booking_status(world, "booking-ls-fail") == "pending"


def test_the_service_token_is_required_and_provider_refusals_are_named(world):
    status, body = call("POST", f"{world['payhook']}/api/v1/payment-intents",
                        json_body={"booking_id": "b", "amount": 100, "currency": "eur"})
    assert status == 401
    # localstripe has no checkout sessions: its 404 comes back as the provider's refusal, named,
    # never as payhook's own failure.
    status, body = call("POST", f"{world['payhook']}/api/v1/checkout/sessions",
                        json_body={"booking_id": "b", "amount": 100, "currency": "eur"},
                        bearer=SERVICE_TOKEN)
    assert status == 502, body
    assert body["error"]["code"] == "provider_refused"
    assert "HTTP 404" in body["error"]["message"]
    # A session neither payhook nor the provider knows.
    status, body = call("GET", f"{world['payhook']}/api/v1/checkout/sessions/cs_test_unknown")
    assert status == 404 and body["error"]["code"] == "session_not_found", body


@pytest.mark.parametrize("plain", [False, True], ids=["stripe-list", "localstripe-as-published"])
def test_events_created_while_payhook_was_down_appear_after_payhook_reconcile(plain):
    """Payments happen in localstripe while payhook is down (its webhooks to payhook fail); once
    it is up, `payhook reconcile --since 1h` fetches the undelivered events from Stripe's event
    list and stores what it missed; the ledger and the booking service end as if the webhooks had
    come. A second run stores nothing. localstripe as published lists its events oldest first
    and refuses `delivery_success` and `ending_before`: payhook then reads every event."""
    from conftest import running_listeners

    with tempfile.TemporaryDirectory() as tmp, stripe_and_bookings(tmp, plain) as (stripe_base, bookings_base):
        # payhook is down: Stripe's endpoint does not answer, and nobody hears of the payments.
        status, _ = call("POST", f"{stripe_base}/_config/webhooks/payhook",
                         form={"url": f"http://127.0.0.1:{free_port()}/webhooks/stripe",
                               "secret": WEBHOOK_SECRET})
        assert status == 200
        intents = {}
        for booking, card in [("booking-ls-missed", "pm_card_visa"),
                              ("booking-ls-missed-fail", "pm_card_chargeCustomerFail")]:
            intents[booking] = _pay_in_stripe(stripe_base, bookings_base, booking, card)

        env = {
            "STRIPE_SECRET_KEY": API_KEY,
            "STRIPE_API_BASE": stripe_base,
            "BOOKING_SERVICE_URL": bookings_base,
            "INTERNAL_SERVICE_TOKEN": SERVICE_TOKEN,
        }
        with running_listeners(tmp, [WEBHOOK_SECRET], extra_env=env) as urls:
            world = {"payhook": urls["public"], "bookings": bookings_base}
            assert payment(world, "booking-ls-missed") is None

            out = _reconcile(urls["admin"])
            assert out["stored"] >= 2, out

            data = eventually("the missed payment is in the ledger",
                              lambda: (p := payment(world, "booking-ls-missed")) and
                              p["status"] == "succeeded" and p)
            assert data["paymentIntentId"] == intents["booking-ls-missed"]
            eventually("the booking service says confirmed",
                       lambda: _booking(bookings_base, "booking-ls-missed") == "confirmed")
            eventually("the failed one too",
                       lambda: (p := payment(world, "booking-ls-missed-fail")) and
                       p["status"] == "failed")
            assert _booking(bookings_base, "booking-ls-missed-fail") == "pending"

            # Twice changes nothing the second time.
            again = _reconcile(urls["admin"])
            assert (again["stored"], again["duplicates"]) == (0, out["listed"]), again


def test_reconcile_fetches_only_the_events_whose_delivery_failed_oldest_first():
    """One payment's events reach payhook (localstripe records them delivered); the next one's
    fail (Stripe's endpoint points nowhere). `payhook reconcile` asks Stripe for the undelivered
    ones only: the delivered events are not fetched again, the failed ones are stored once, in
    the order Stripe created them, and applied."""
    from conftest import running_listeners

    with tempfile.TemporaryDirectory() as tmp, stripe_and_bookings(tmp) as (stripe_base, bookings_base):
        env = {"STRIPE_SECRET_KEY": API_KEY, "STRIPE_API_BASE": stripe_base,
               "BOOKING_SERVICE_URL": bookings_base, "INTERNAL_SERVICE_TOKEN": SERVICE_TOKEN}
        with running_listeners(tmp, [WEBHOOK_SECRET], extra_env=env) as urls:
            world = {"payhook": urls["public"], "bookings": bookings_base}
            status, _ = call("POST", f"{stripe_base}/_config/webhooks/payhook",
                             form={"url": f"{urls['public']}/webhooks/stripe",
                                   "secret": WEBHOOK_SECRET})
            assert status == 200
            delivered = _pay_in_stripe(stripe_base, bookings_base, "booking-ls-delivered",
                                       "pm_card_visa")
            eventually("the delivered payment is in the ledger",
                       lambda: (p := payment(world, "booking-ls-delivered")) and
                       p["status"] == "succeeded")
            sent = _events_of(stripe_base, delivered)
            eventually("localstripe counts its events delivered",
                       lambda: len(_events_of(stripe_base, delivered, delivery_success="true"))
                       == len(sent))

            # Stripe's endpoint now points nowhere: the next payment's webhooks fail.
            status, _ = call("POST", f"{stripe_base}/_config/webhooks/payhook",
                             form={"url": f"http://127.0.0.1:{free_port()}/webhooks/stripe",
                                   "secret": WEBHOOK_SECRET})
            assert status == 200
            failed = _pay_in_stripe(stripe_base, bookings_base, "booking-ls-failed",
                                    "pm_card_visa")
            missed = _events_of(stripe_base, failed)
            assert missed and not _events_of(stripe_base, failed, delivery_success="true")
            assert payment(world, "booking-ls-failed") is None

            out = _reconcile(urls["admin"])
            # Only the failed payment's events were listed, each stored once.
            assert (out["listed"], out["stored"], out["duplicates"]) == (len(missed), len(missed), 0), out
            eventually("the failed delivery's payment is in the ledger",
                       lambda: (p := payment(world, "booking-ls-failed")) and
                       p["status"] == "succeeded")
            stored = _stored_event_ids(urls["admin"])
            assert len(stored) == len(sent) + len(missed), stored
            # Oldest first: payhook's rows follow Stripe's order of creation (its list is
            # newest first).
            assert [e for e in stored if e in missed] == list(reversed(missed)), (stored, missed)

            again = _reconcile(urls["admin"])
            assert (again["listed"], again["stored"], again["duplicates"]) == (len(missed), 0, len(missed)), again
            assert len(_stored_event_ids(urls["admin"])) == len(sent) + len(missed)


def _pay_in_stripe(stripe_base, bookings_base, booking, card):
    """A pending booking, and its intent created and confirmed in localstripe with `card`."""
    status, _ = call("POST", f"{bookings_base}/api/v1/bookings",
                     json_body={"id": booking, "amount": 3100, "currency": "eur"},
                     bearer=SERVICE_TOKEN)
    assert status in (200, 201)
    status, intent = call("POST", f"{stripe_base}/v1/payment_intents",
                          form={"amount": 3100, "currency": "eur",
                                "metadata[bookingId]": booking},
                          bearer=API_KEY)
    assert status == 200, intent
    call("POST", f"{stripe_base}/v1/payment_intents/{intent['id']}",
         form={"payment_method": card}, bearer=API_KEY)
    call("POST", f"{stripe_base}/v1/payment_intents/{intent['id']}/confirm",
         form={}, bearer=API_KEY)
    return intent["id"]


def _events_of(stripe_base, intent, **params):
    """The ids of Stripe's events about `intent` (the intent or its charge), newest first."""
    query = urllib.parse.urlencode({"limit": 100, **params})
    status, page = call("GET", f"{stripe_base}/v1/events?{query}", bearer=API_KEY)
    assert status == 200, page
    return [e["id"] for e in page["data"]
            if intent in (e["data"]["object"].get("id"), e["data"]["object"].get("payment_intent"))]


def _stored_event_ids(admin):
    """payhook's stored event ids, oldest row first."""
    status, page = call("GET", f"{admin}/admin/api/events?limit=200")
    assert status == 200, page
    return [row["event_id"] for row in sorted(page["data"], key=lambda r: r["id"])]


def _reconcile(admin):
    """`payhook reconcile --since 1h --json`, its totals."""
    run = subprocess.run(
        [BIN, "reconcile", "--since", "1h", "--json"],
        env={"PAYHOOK_ADMIN_URL": admin, "RUST_LOG": "warn", "PAYHOOK_LISTEN": "127.0.0.1:0"},
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "page 1:" in run.stderr, run.stderr
    return json.loads(run.stdout)


def _booking(bookings_base, booking):
    status, body = call("GET", f"{bookings_base}/api/v1/bookings/{booking}", bearer=SERVICE_TOKEN)
    assert status == 200, body
    return body["data"]["status"]


def test_a_thin_event_is_applied_with_the_object_payhook_fetches_from_localstripe():
    """An event destination set to thin events sends only `v1.payment_intent.succeeded` and the
    intent's API path; payhook fetches the intent from localstripe (a real Stripe API emulator)
    with its secret key and applies what it says. localstripe is not told where payhook is, so
    the thin event is the only news payhook gets; it is signed the way Stripe signs, by the
    official SDK."""
    import datetime

    import stripe

    from conftest import running_listeners

    with tempfile.TemporaryDirectory() as tmp, stripe_and_bookings(tmp) as (stripe_base, bookings_base):
        env = {"STRIPE_SECRET_KEY": API_KEY, "STRIPE_API_BASE": stripe_base,
               "BOOKING_SERVICE_URL": bookings_base, "INTERNAL_SERVICE_TOKEN": SERVICE_TOKEN}
        with running_listeners(tmp, [WEBHOOK_SECRET], extra_env=env) as urls:
            world = {"stripe": stripe_base, "payhook": urls["public"], "bookings": bookings_base}
            status, _ = call("POST", f"{bookings_base}/api/v1/bookings",
                             json_body={"id": "booking-ls-thin", "amount": 2600, "currency": "eur"},
                             bearer=SERVICE_TOKEN)
            assert status in (200, 201)
            status, intent = call("POST", f"{stripe_base}/v1/payment_intents",
                                  form={"amount": 2600, "currency": "eur",
                                        "metadata[bookingId]": "booking-ls-thin"},
                                  bearer=API_KEY)
            assert status == 200, intent
            call("POST", f"{stripe_base}/v1/payment_intents/{intent['id']}",
                 form={"payment_method": "pm_card_visa"}, bearer=API_KEY)
            status, confirmed = call("POST", f"{stripe_base}/v1/payment_intents/{intent['id']}/confirm",
                                     form={}, bearer=API_KEY)
            assert confirmed["status"] == "succeeded", confirmed

            created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
            thin = json.dumps({
                "id": "evt_thin_localstripe_0001", "object": "v2.core.event",
                "type": "v1.payment_intent.succeeded", "created": created.replace("+00:00", "Z"),
                "livemode": False, "context": None, "reason": None,
                "related_object": {"id": intent["id"], "type": "payment_intent",
                                   "url": f"/v1/payment_intents/{intent['id']}"},
            })
            header = stripe.WebhookSignature.generate_signature_header(thin, WEBHOOK_SECRET)
            request = urllib.request.Request(
                f"{urls['public']}/webhooks/stripe", data=thin.encode(), method="POST",
                headers={"Content-Type": "application/json", "Stripe-Signature": header})
            with urllib.request.urlopen(request, timeout=10) as r:
                assert json.loads(r.read())["event_id"] == "evt_thin_localstripe_0001"
            data = eventually("payhook's ledger says succeeded",
                              lambda: (p := payment(world, "booking-ls-thin")) and
                              p["status"] == "succeeded" and p)
            assert data["paymentIntentId"] == intent["id"]
            assert (data["amount"], data["currency"]) == (2600, "eur")
            eventually("the booking service says confirmed",
                       lambda: booking_status(world, "booking-ls-thin") == "confirmed")
