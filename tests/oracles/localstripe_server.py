"""localstripe, the Stripe API emulator from PyPI, bound to 127.0.0.1 on a free port, its state
kept in the file given as the first argument (not in the shared /tmp/localstripe.pickle).
Prints the port on its first line."""

import pickle
import socket
import sys

from aiohttp import web
from localstripe import resources, server

STATE = sys.argv[1]


def dump_to_disk(store):
    with open(STATE, "wb") as f:
        pickle.dump(dict(store), f, protocol=pickle.HIGHEST_PROTOCOL)


resources.Store.dump_to_disk = dump_to_disk
resources.Store.try_load_from_disk = lambda store: None

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
# Listening before the port is printed: a caller that connects at once is not refused.
sock.listen(128)
print(sock.getsockname()[1], flush=True)
web.run_app(server.app, sock=sock, print=None, access_log=None)
