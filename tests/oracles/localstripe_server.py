"""localstripe, the Stripe API emulator from PyPI, bound to 127.0.0.1 on a free port, its state
kept in the file given as the first argument (not in the shared /tmp/localstripe.pickle).
Prints the port on its first line. With `plain` as the second argument, nothing more: localstripe
as published.

Its event list is made to answer as Stripe's API reference ("List all events",
docs.stripe.com/api/events/list) and pagination guide describe, where localstripe does not:
newest first, `ending_before` (the events just newer than the cursor, still newest first) and
`delivery_success` ("If false, events which are still pending or have failed all delivery
attempts to a webhook endpoint will be returned"). For that, each event's delivery to the
configured webhook endpoints is recorded as it is sent: pending until sent, then delivered when
every endpoint answered 2xx, failed otherwise. Nothing else of Stripe is emulated here."""

import asyncio
import hashlib
import hmac
import json
import pickle
import socket
import sys

import aiohttp
from aiohttp import web
from localstripe import resources, server, webhooks

STATE = sys.argv[1]
PLAIN = sys.argv[2:] == ["plain"]


def dump_to_disk(store):
    with open(STATE, "wb") as f:
        pickle.dump(dict(store), f, protocol=pickle.HIGHEST_PROTOCOL)


resources.Store.dump_to_disk = dump_to_disk
resources.Store.try_load_from_disk = lambda store: None

# Event id -> "pending", "delivered" or "failed".
DELIVERY = {}


async def send_webhook(event):
    """localstripe's sender (a second later, signed as Stripe signs), recording the outcome."""
    DELIVERY[event.id] = "pending"
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode()
    await asyncio.sleep(1)
    delivered = True
    for hook in list(webhooks._webhooks.values()):
        if hook.events is not None and event.type not in hook.events:
            continue
        signed = b"%d.%s" % (event.created, payload)
        signature = hmac.new(hook.secret.encode(), signed, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Stripe-Signature": f"t={event.created},v1={signature}"}
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(hook.url, data=payload, headers=headers) as r:
                    delivered &= 200 <= r.status < 300
        except aiohttp.ClientError:
            delivered = False
    DELIVERY[event.id] = "delivered" if delivered else "failed"


if not PLAIN:
    webhooks._send_webhook = send_webhook


class Page(resources.List):
    """A page whose events and `has_more` are already decided."""

    def __init__(self, url, items, more):
        super().__init__(url)
        self._items, self._more = items, more

    @property
    def data(self):
        return [item._export() for item in self._items]

    @property
    def has_more(self):
        return self._more


_listed = resources.Event._api_list_all.__func__


def list_events(cls, url, limit=None, starting_after=None, ending_before=None,
                delivery_success=None, **kwargs):
    limit = resources.try_convert_to_int(limit)
    limit = 10 if limit is None else limit
    if delivery_success not in (None, "true", "false") or not (1 <= limit <= 100):
        raise resources.UserError(400, "Bad request")
    # localstripe's own filters (type, created), over every event, oldest first.
    events = _listed(cls, url, limit=10 ** 9, **kwargs)._list
    events = list(reversed(events))
    if delivery_success is not None:
        wanted = delivery_success == "true"
        events = [e for e in events if (DELIVERY.get(e.id, "delivered") == "delivered") == wanted]
    ids = [e.id for e in events]
    cursor = starting_after or ending_before
    if cursor is not None and cursor not in ids:
        raise resources.UserError(404, f"No such event: '{cursor}'")
    if starting_after is not None:
        older = events[ids.index(starting_after) + 1:]
        return Page(url, older[:limit], len(older) > limit)
    if ending_before is not None:
        newer = events[:ids.index(ending_before)]
        return Page(url, newer[-limit:], len(newer) > limit)
    return Page(url, events[:limit], len(events) > limit)


if not PLAIN:
    resources.Event._api_list_all = classmethod(list_events)

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
# Listening before the port is printed: a caller that connects at once is not refused.
sock.listen(128)
print(sock.getsockname()[1], flush=True)
web.run_app(server.app, sock=sock, print=None, access_log=None)
