"""Stripe's official Python SDK as the oracle for the thin events (event notifications, `object:
"v2.core.event"`) that `payhook trigger --thin` sends: the SDK's own
`StripeClient.parse_event_notification` must verify and parse them into its typed notification for
the `v1.` event type, with a `related_object` pointing at the v1 resource, and must refuse the
same body under another secret or once tampered."""

import datetime
import json
import subprocess

import pytest
import stripe

from conftest import BIN, capturing_server

SECRET = "whsec_thin_oracle_secret"
CASES = [
    # (payhook event type, SDK event type, related object type, id prefix, v1 collection path)
    ("payment_intent.succeeded", "v1.payment_intent.succeeded", "payment_intent", "pi_", "/v1/payment_intents/"),
    ("charge.refunded", "v1.charge.refunded", "charge", "ch_", "/v1/charges/"),
]


def trigger_thin(event_type):
    """Runs `payhook trigger --thin EVENT_TYPE` against a loopback receiver answering 200 `{}`;
    returns the raw body bytes and the Stripe-Signature header it received."""
    with capturing_server() as (base, received):
        out = subprocess.run(
            [BIN, "trigger", "--thin", event_type, "--url", f"{base}/", "--secret", SECRET],
            capture_output=True, text=True, env={"RUST_LOG": "warn"}, timeout=30,
        )
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(received) == 1, received
    return received[0]


@pytest.fixture(scope="module")
def client():
    # No request is ever made: the key only satisfies the client's constructor.
    return stripe.StripeClient("sk_test_thin_oracle_unused")


@pytest.mark.parametrize("payhook_type,sdk_type,related_type,prefix,path", CASES)
def test_thin_events_sent_by_payhook_trigger_parse_with_the_sdk(client, payhook_type, sdk_type,
                                                                   related_type, prefix, path):
    payload, header = trigger_thin(payhook_type)
    assert header, "no Stripe-Signature header"
    assert json.loads(payload)["object"] == "v2.core.event"

    notification = client.parse_event_notification(payload, header, SECRET)
    # The SDK picked its typed class for this event, not UnknownEventNotification.
    assert type(notification).__name__ != "UnknownEventNotification"
    assert getattr(type(notification), "LOOKUP_TYPE", None) == sdk_type
    assert notification.type == sdk_type
    assert notification.object == "v2.core.event"
    assert notification.id.startswith("evt_")
    assert notification.livemode is False
    # Thin events carry `created` as an RFC 3339 string, not Unix seconds; the SDK does not check it.
    assert isinstance(notification.created, str)
    datetime.datetime.fromisoformat(notification.created.replace("Z", "+00:00"))

    related = notification.related_object
    assert related.type == related_type
    assert related.id.startswith(prefix)
    assert related.url == f"{path}{related.id}"

    with pytest.raises(stripe.SignatureVerificationError):
        client.parse_event_notification(payload, header, "whsec_not_the_trigger_secret")
    tampered = payload.replace(related.id.encode(), (related.id + "x").encode())
    assert tampered != payload
    with pytest.raises(stripe.SignatureVerificationError):
        client.parse_event_notification(tampered, header, SECRET)
