"""Starts the real payhook binary for the oracle tests: a fresh SQLite store, known secrets."""

import contextlib
import http.server
import os
import pathlib
import subprocess
import tempfile
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("PAYHOOK_BIN", str(ROOT / "target" / "debug" / "payhook"))
SECRETS = ["whsec_oracle_current_secret", "whsec_oracle_previous_secret"]


@contextlib.contextmanager
def running_payhook(tmp, webhook_secrets, args=(), extra_env=None):
    """`payhook [ARGS] serve` on a SQLite store in `tmp`, on loopback port 0, with `extra_env`
    added to its environment; yields its public base URL and expects a clean exit on SIGTERM."""
    with running_listeners(tmp, webhook_secrets, args, extra_env) as listeners:
        yield listeners["public"]


@contextlib.contextmanager
def running_listeners(tmp, webhook_secrets, args=(), extra_env=None):
    """Like `running_payhook`, yielding {"public": URL, "admin": URL}. With `webhook_secrets`
    None, STRIPE_WEBHOOK_SECRET is left for `extra_env` to give (or not)."""
    env = {
        "DATABASE_URL": f"sqlite://{tmp}/payhook.db",
        "PAYHOOK_LISTEN": "127.0.0.1:0",
        "PAYHOOK_ADMIN_LISTEN": "127.0.0.1:0",
        "RUST_LOG": "warn",
        **(extra_env or {}),
    }
    if webhook_secrets is not None:
        env["STRIPE_WEBHOOK_SECRET"] = ",".join(webhook_secrets)
        # Beside a webhook secret, checkout through the sandbox provider is asked for.
        if "STRIPE_SECRET_KEY" not in env:
            env.setdefault("PAYHOOK_SANDBOX", "true")
    proc = subprocess.Popen([BIN, *args, "serve"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        listeners = {}
        for line in proc.stdout:
            for name in ("public", "admin"):
                if line.startswith(f"{name} listener: "):
                    listeners[name] = line.split(": ", 1)[1].strip()
            if line.startswith("ready"):
                break
        assert "public" in listeners and "admin" in listeners, "payhook did not start"
        yield listeners
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


@pytest.fixture(scope="module")
def payhook():
    with tempfile.TemporaryDirectory() as tmp, running_payhook(tmp, SECRETS) as base:
        yield base


@contextlib.contextmanager
def capturing_server(answer=b"{}"):
    """A loopback HTTP server that answers every POST 200 with `answer` and keeps (body,
    Stripe-Signature header) of each; yields (its base URL, the list)."""
    received = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            received.append((self.rfile.read(length), self.headers["Stripe-Signature"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()
