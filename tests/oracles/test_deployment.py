"""The deployment pieces in deploy/, run with the real programs: the systemd unit checked by
`systemd-analyze` and its environment and credentials given to payhook as systemd gives them, and
payhook behind Debian's nginx with TLS (a self-signed certificate made by openssl): signatures
verify, bodies arrive byte for byte, and X-Forwarded-For is believed from the trusted proxy only."""

import contextlib
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import time

import stripe

from conftest import BIN, ROOT, running_listeners

UNIT = ROOT / "deploy" / "payhook.service"
NGINX_SITE = ROOT / "deploy" / "nginx.conf"
SECRET = "whsec_deployment_oracle_secret_0123"
ADMIN_TOKEN = "deployment-admin-token-0123456789"


def test_the_systemd_unit_verifies_and_is_hardened(tmp_path):
    unit = tmp_path / "payhook.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/payhook", BIN))
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True
    )
    # An unknown or misspelt directive is only a warning: any output at all fails.
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
    )
    found = re.search(r"Overall exposure level for payhook.service: ([0-9.]+)", security.stdout)
    assert found, security.stdout + security.stderr
    assert float(found.group(1)) <= 2.0, security.stdout


def unit_environment(credentials):
    """The Environment= lines of the unit, with %d (the credentials directory) expanded."""
    env = {}
    for line in UNIT.read_text().splitlines():
        if line.startswith("Environment="):
            name, value = line.removeprefix("Environment=").split("=", 1)
            env[name] = value.replace("%d", str(credentials))
    return env


def post(base, payload, header, source=None, headers=None, chunked=False):
    """POSTs to {base}/webhooks/stripe (http or https, trusting the test certificate), from the
    loopback address `source`; returns (status, parsed JSON body)."""
    url = http.client.urlsplit(base)
    bind = (source, 0) if source else None
    if url.scheme == "https":
        context = ssl.create_default_context(cafile=os.environ["DEPLOY_TEST_CA"])
        conn = http.client.HTTPSConnection(
            url.hostname, url.port, context=context, source_address=bind, timeout=10
        )
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port, source_address=bind, timeout=10)
    all_headers = {"Content-Type": "application/json", "Stripe-Signature": header, **(headers or {})}
    body = payload.encode("utf-8")
    if chunked:
        conn.request("POST", "/webhooks/stripe", body=iter([body[:50], body[50:]]),
                     headers=all_headers, encode_chunked=True)
    else:
        conn.request("POST", "/webhooks/stripe", body=body, headers=all_headers)
    response = conn.getresponse()
    answer = response.read()
    conn.close()
    return response.status, json.loads(answer)


def admin_get(admin, path, token=ADMIN_TOKEN):
    conn = http.client.HTTPConnection(http.client.urlsplit(admin).netloc, timeout=10)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"null")


def event(event_id):
    # Odd spacing and non-ASCII: any re-encoding on the way would break the signature.
    return (
        '{ "id":"%s", "object":"event","type":"payment_intent.succeeded", "created":%d,'
        '  "data":{"object":{"id":"pi_%s","amount":1500,"currency":"eur",'
        '"description":"Réservation 東京","metadata":{"bookingId":"booking-%s"}}}}'
        % (event_id, int(time.time()), event_id, event_id)
    )


def test_the_units_environment_and_credentials_run_payhook(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "stripe_webhook_secret").write_text(SECRET + "\n")
    (credentials / "admin_token").write_text(ADMIN_TOKEN + "\n")
    env = unit_environment(credentials)
    assert "STRIPE_WEBHOOK_SECRET" not in env and "PAYHOOK_ADMIN_TOKEN" not in env
    # The state directory is systemd's; the listeners on port 0 so tests never collide.
    env.update(
        DATABASE_URL=f"sqlite://{tmp_path}/payhook.db",
        PAYHOOK_LISTEN="127.0.0.1:0",
        PAYHOOK_ADMIN_LISTEN="127.0.0.1:0",
    )
    with running_listeners(tmp_path, None, extra_env=env) as listeners:
        payload = event("evt_unit_1")
        header = stripe.WebhookSignature.generate_signature_header(payload, SECRET)
        status, body = post(listeners["public"], payload, header)
        assert (status, body["event_id"]) == (200, "evt_unit_1")
        assert admin_get(listeners["admin"], "/admin/api/events", token=None)[0] == 401
        status, listed = admin_get(listeners["admin"], "/admin/api/events")
        assert status == 200 and listed["data"][0]["event_id"] == "evt_unit_1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def nginx_in_front_of(tmp, upstream):
    """Debian's nginx serving deploy/nginx.conf on a free loopback port, with a self-signed
    certificate for 127.0.0.1, proxying to `upstream` (host:port); yields the https base URL."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=payments.example.com",
         "-addext", "subjectAltName=DNS:payments.example.com,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    os.environ["DEPLOY_TEST_CA"] = str(cert)
    port, plain_port = free_port(), free_port()
    site = NGINX_SITE.read_text()
    site = site.replace("server 127.0.0.1:3003;", f"server {upstream};")
    site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{plain_port};")
    site = re.sub(r"\n\s*listen \[::\]:\d+( ssl)?;", "", site)
    site = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", site)
    site = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", site)
    (tmp / "payhook.conf").write_text(site)
    # As root, nginx's workers would switch to nobody, who cannot read the test's directory.
    user = "user root;" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(f"""
{user}
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/payhook.conf;
}}
""")
    nginx = "/usr/sbin/nginx"
    check = subprocess.run([nginx, "-t", "-p", str(tmp), "-c", str(tmp / "nginx.conf")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf")])
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            assert time.monotonic() < deadline, (tmp / "error.log").read_text()
            time.sleep(0.05)
        yield f"https://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_behind_nginx_with_tls_signatures_verify_and_forwarded_addresses_are_trusted_from_the_proxy_only(
    tmp_path,
):
    # Only 127.0.0.3 may post: the proxy (127.0.0.1) says who the client is.
    config = tmp_path / "payhook.toml"
    config.write_text('[stripe]\nallowed_cidrs = ["127.0.0.3/32"]\n')
    env = {"PAYHOOK_TRUSTED_PROXIES": "127.0.0.1/32", "PAYHOOK_ADMIN_TOKEN": ADMIN_TOKEN}
    with running_listeners(tmp_path, [SECRET], ("--config", str(config)), env) as listeners, \
            nginx_in_front_of(tmp_path, listeners["public"].removeprefix("http://")) as proxy:
        sign = stripe.WebhookSignature.generate_signature_header

        payload = event("evt_proxy_1")
        status, body = post(proxy, payload, sign(payload, SECRET), source="127.0.0.3")
        assert (status, body["event_id"]) == (200, "evt_proxy_1"), body
        # The body reached payhook byte for byte.
        _, listed = admin_get(listeners["admin"], "/admin/api/events?limit=1")
        _, shown = admin_get(listeners["admin"], f"/admin/api/events/{listed['data'][0]['id']}")
        assert shown["body"] == payload

        # A chunked body: nginx passes it on whole, and it still verifies.
        payload = event("evt_proxy_chunked")
        status, body = post(proxy, payload, sign(payload, SECRET), source="127.0.0.3",
                            chunked=True)
        assert (status, body["event_id"]) == (200, "evt_proxy_chunked"), body

        # Through the proxy, a tampered body is still caught.
        payload = event("evt_proxy_tampered")
        status, body = post(proxy, payload.replace("1500", "15"), sign(payload, SECRET),
                            source="127.0.0.3")
        assert (status, body["error"]["code"]) == (400, "invalid_signature")

        # A client elsewhere cannot claim the allowed address: nginx appends the address it saw,
        # and that one decides.
        payload = event("evt_proxy_spoofed")
        status, body = post(proxy, payload, sign(payload, SECRET), source="127.0.0.4",
                            headers={"X-Forwarded-For": "127.0.0.3"})
        assert (status, body["error"]["code"]) == (403, "ip_not_allowed"), body
        # Nor straight to payhook: only the trusted proxy's X-Forwarded-For is believed.
        status, body = post(listeners["public"], payload, sign(payload, SECRET),
                            source="127.0.0.4", headers={"X-Forwarded-For": "127.0.0.3"})
        assert (status, body["error"]["code"]) == (403, "ip_not_allowed"), body

        # An oversized body gets payhook's JSON 413, not nginx's HTML page.
        payload = event("evt_proxy_big")[:-1] + ', "pad": "' + "x" * (1 << 20) + '"}'
        status, body = post(proxy, payload, sign(payload, SECRET), source="127.0.0.3")
        assert (status, body["error"]["code"]) == (413, "payload_too_large")

        _, listed = admin_get(listeners["admin"], "/admin/api/events")
        assert sorted(e["event_id"] for e in listed["data"]) == [
            "evt_proxy_1", "evt_proxy_chunked"]
