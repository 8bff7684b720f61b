"""OpenTelemetry traces as a real collector receives them: an OTLP/HTTP receiver on loopback that
decodes each ExportTraceServiceRequest with the `opentelemetry-proto` package. A signed Stripe event
must give one trace: the request, its inbox commit, the ledger batch that applied it and the
delivery attempt to the booking service, each the parent of the next, and the booking service
(a recording server here) must receive the attempt's own `traceparent`. Without an OTLP endpoint
nothing is exported, no `traceparent` is sent and no trace context is stored. On SQLite, and on
PostgreSQL when PAYHOOK_ORACLE_PG_URL names a server (scripts/test sets it)."""

import contextlib
import http.server
import json
import os
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid

import pytest
import stripe
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from conftest import running_listeners

SECRET = "whsec_tracing_oracle_secret"
TOKEN = "tracing-oracle-service-token"
PSQL = "/usr/lib/postgresql/15/bin/psql"


def eventually(what, check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def value(any_value):
    """An OTLP AnyValue as a Python value."""
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes(key_values):
    return {kv.key: value(kv.value) for kv in key_values}


@contextlib.contextmanager
def collector(port=0):
    """An OTLP/HTTP trace receiver: every span of every export, decoded; and each request's path
    and headers."""
    spans, requests = [], []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
            export = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            for resource_spans in export.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for s in scope_spans.spans:
                        spans.append({
                            "name": s.name, "trace": s.trace_id.hex(), "id": s.span_id.hex(),
                            "parent": s.parent_span_id.hex(), "kind": s.kind,
                            "start": s.start_time_unix_nano, "end": s.end_time_unix_nano,
                            "status": s.status.code, "attributes": attributes(s.attributes),
                            "resource": resource,
                        })
            answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", spans, requests
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def booking_service():
    """A booking service that accepts every payment status and keeps (path, traceparent) of each."""
    received = []

    class Bookings(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers.get("traceparent")))
            answer = b'{"data":{"status":"confirmed"}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Bookings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()


def store_urls(tmp):
    yield "sqlite", f"sqlite://{tmp}/payhook.db"
    pg = os.environ.get("PAYHOOK_ORACLE_PG_URL")
    if pg:
        name = f"tracing_{uuid.uuid4().hex[:12]}"
        subprocess.run([PSQL, pg, "-q", "-c", f"CREATE DATABASE {name}"], check=True)
        yield "postgres", pg.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request):
    with tempfile.TemporaryDirectory() as tmp:
        urls = dict(store_urls(tmp))
        if request.param not in urls:
            pytest.skip("PAYHOOK_ORACLE_PG_URL is not set")
        yield tmp, urls[request.param]


def stored_trace_contexts(database_url):
    """Every event's and every notification's stored trace context."""
    query = ("SELECT 'event', trace_context FROM webhook_events "
             "UNION ALL SELECT 'delivery', trace_context FROM deliveries")
    if database_url.startswith("sqlite://"):
        path = database_url.removeprefix("sqlite://")
        with contextlib.closing(sqlite3.connect(path)) as db:
            # The inbox (webhook_events) has a file of its own beside the store's.
            db.execute("ATTACH DATABASE ? AS intake", (path + "-inbox",))
            return db.execute(query).fetchall()
    out = subprocess.run([PSQL, database_url, "-At", "-F", "\t", "-c", query],
                         check=True, capture_output=True, text=True).stdout
    return [(kind, trace or None) for kind, trace in (line.split("\t") for line in out.splitlines())]


def send_payment(public, booking):
    """A `payment_intent.succeeded` for `booking`, signed by Stripe's SDK; returns its id."""
    event_id = f"evt_{uuid.uuid4().hex[:24]}"
    event = {"id": event_id, "object": "event", "api_version": "2024-06-20",
             "created": int(time.time()) - 5, "type": "payment_intent.succeeded",
             "data": {"object": {
                 "id": f"pi_{uuid.uuid4().hex[:16]}", "object": "payment_intent", "amount": 2000,
                 "amount_received": 2000, "currency": "eur", "status": "succeeded",
                 "metadata": {"bookingId": booking}, "livemode": False,
                 "created": int(time.time()) - 60}},
             "livemode": False, "pending_webhooks": 1}
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(body, SECRET)
    request = urllib.request.Request(
        f"{public}/webhooks/stripe", data=body.encode(), method="POST",
        headers={"Content-Type": "application/json", "Stripe-Signature": header})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200
    return event_id


def env(database_url, bookings, **otel):
    return {"DATABASE_URL": database_url, "BOOKING_SERVICE_URL": bookings,
            "INTERNAL_SERVICE_TOKEN": TOKEN, **otel}


def one(spans, name):
    found = [s for s in spans if s["name"] == name]
    assert len(found) == 1, (name, [s["name"] for s in spans])
    return found[0]


def test_a_webhook_is_one_trace_from_its_request_to_the_delivery_and_the_target_gets_its_traceparent(database_url):
    tmp, url = database_url
    booking = f"booking-{uuid.uuid4().hex[:8]}"
    with collector() as (endpoint, spans, requests), booking_service() as (bookings, received):
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "payhook-oracle",
                "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-token=oracle%20token",
                "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with running_listeners(tmp, [SECRET], extra_env=env(url, bookings, **otel)) as urls:
            event_id = send_payment(urls["public"], booking)
            eventually("the booking service is told", lambda: received)
            eventually("the delivery attempt's span is exported",
                       lambda: any(s["name"] == "delivery.attempt" for s in spans))
            stored = stored_trace_contexts(url)

    request = one(spans, "webhook.receive")
    commit = one(spans, "inbox.commit")
    batch = one(spans, "ledger.batch")
    attempt = one(spans, "delivery.attempt")
    # One trace, each span the parent of the next; the request is its root.
    assert len({s["trace"] for s in (request, commit, batch, attempt)}) == 1
    assert request["parent"] == ""
    assert commit["parent"] == request["id"]
    assert batch["parent"] == commit["id"]
    assert attempt["parent"] == batch["id"]
    # The request waits for its commit; the later work starts after what caused it (it may end
    # after the next step began: the processor wakes the dispatcher before it closes its spans).
    assert request["start"] <= commit["start"] <= commit["end"] <= request["end"]
    assert commit["start"] <= batch["start"] <= attempt["start"]
    assert request["kind"] == trace_pb2.Span.SPAN_KIND_SERVER
    assert attempt["kind"] == trace_pb2.Span.SPAN_KIND_CLIENT
    # What each says.
    assert request["attributes"]["payhook.source"] == "stripe"
    assert request["attributes"]["http.response.status_code"] == 200
    assert commit["attributes"]["payhook.event_id"] == event_id
    assert commit["attributes"]["payhook.duplicate"] is False
    assert batch["attributes"]["payhook.event_id"] == event_id
    assert batch["attributes"]["payhook.event.status"] == "processed"
    assert batch["attributes"]["payhook.booking_id"] == booking
    assert batch["attributes"]["payhook.notifications"] == 1
    assert attempt["attributes"]["payhook.target"] == "booking-service"
    assert attempt["attributes"]["payhook.notification.event"] == "confirmed"
    assert attempt["attributes"]["payhook.delivery.attempt"] == 1
    assert attempt["attributes"]["http.response.status_code"] == 200
    assert attempt["attributes"]["payhook.delivery.outcome"] == "delivered"
    # The booking service heard the attempt's own span as its parent.
    [(path, traceparent)] = received
    assert path == f"/api/v1/bookings/{booking}/payment-status"
    assert traceparent == f"00-{attempt['trace']}-{attempt['id']}-01"
    # The standard variables: the endpoint's path, the headers, the service name.
    assert {r["path"] for r in requests} == {"/v1/traces"}
    assert all(r["headers"].get("x-collector-token") == "oracle token" for r in requests)
    assert all(s["resource"]["service.name"] == "payhook-oracle" for s in spans)
    # The context crossed the store: the event and its notification each kept theirs.
    assert sorted(stored) == [("delivery", f"00-{batch['trace']}-{batch['id']}-01"),
                              ("event", f"00-{commit['trace']}-{commit['id']}-01")]


def test_the_last_spans_are_exported_when_payhook_stops():
    booking = f"booking-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp, collector() as (endpoint, spans, _), \
            booking_service() as (bookings, received):
        # Nothing would be sent for ten minutes but for the flush on shutdown.
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "600000"}
        with running_listeners(tmp, [SECRET],
                               extra_env=env(f"sqlite://{tmp}/payhook.db", bookings, **otel)) as urls:
            send_payment(urls["public"], booking)
            eventually("the booking service is told", lambda: received)
            assert spans == []
        names = sorted(s["name"] for s in spans)
        assert names == ["delivery.attempt", "inbox.commit", "ledger.batch", "webhook.receive"]
        assert all(s["resource"]["service.name"] == "payhook" for s in spans)


def test_without_an_endpoint_nothing_is_exported_sent_or_stored(database_url):
    tmp, url = database_url
    booking = f"booking-{uuid.uuid4().hex[:8]}"
    # On OTLP's default port if it is free: a payhook that exported by default would send there.
    try:
        listening = collector(4318)
        endpoint, spans, requests = listening.__enter__()
    except OSError:
        listening = collector()
        endpoint, spans, requests = listening.__enter__()
    try:
        with booking_service() as (bookings, received):
            # The other standard variables alone do not turn tracing on.
            otel = {"OTEL_SERVICE_NAME": "payhook-oracle", "OTEL_BSP_SCHEDULE_DELAY": "100"}
            with running_listeners(tmp, [SECRET], extra_env=env(url, bookings, **otel)) as urls:
                send_payment(urls["public"], booking)
                eventually("the booking service is told", lambda: received)
                stored = stored_trace_contexts(url)
    finally:
        listening.__exit__(None, None, None)
    [(_, traceparent)] = received
    assert traceparent is None
    assert sorted(stored) == [("delivery", None), ("event", None)]
    assert spans == [] and requests == []


def test_grpc_is_refused_at_start_up_with_what_to_set():
    with tempfile.TemporaryDirectory() as tmp:
        from conftest import BIN
        run = subprocess.run(
            [BIN, "serve"], capture_output=True, text=True, timeout=20,
            env={"DATABASE_URL": f"sqlite://{tmp}/payhook.db", "PAYHOOK_LISTEN": "127.0.0.1:0",
                 "PAYHOOK_ADMIN_LISTEN": "127.0.0.1:0",
                 "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
                 "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
        assert run.returncode == 2, run
        assert "OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in run.stderr
        assert "http/protobuf" in run.stderr
        assert "ready" not in run.stdout
