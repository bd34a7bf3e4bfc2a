"""The web process's gunicorn worker: gevent, and JSON for the errors gunicorn answers itself.

gevent workers read each request in a greenlet, so a client that declares a body and sends it
slowly (or never) costs a socket and a greenlet, not one of a few threads: the process goes on
answering everyone else. The app's own errors are JSON (provider/views/errors.py); the ones
gunicorn answers before the app sees a request (a request line over its limit: 414, headers over
theirs: 431, a malformed request: 400) would be HTML pages. Gunicorn has no hook for those pages:
every one is written by `gunicorn.util.write_error`, so this worker installs a writer of
`{"message": ...}` in its place, in the worker process only. It also has app log shipping asked
for off the requests (`log_shipping_queue.ask_in_background`).
"""

from __future__ import annotations

import contextlib
import json
import socket
import time

from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's error answer (same status, reason and closed connection) as a JSON body."""
    body = json.dumps({"message": mesg or reason}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)
    _drain_before_close(sock)


LINGER_SECONDS = 1.0
LINGER_BYTES = 64 * 1024


def _drain_before_close(sock: socket.socket) -> None:
    """Read (and drop) what the client is still sending before gunicorn closes the socket.

    The error usually comes mid-request (the rest of a too-long request line is still on its way);
    closing a socket with unread input makes the kernel send a reset, which can destroy the answer
    before the client reads it. Bounded in time and bytes, and cheap in a greenlet.
    """
    deadline = time.monotonic() + LINGER_SECONDS
    drained = 0
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        while drained < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            chunk = sock.recv(16384)
            if not chunk:
                return
            drained += len(chunk)


class Worker(GeventWorker):
    def init_process(self) -> None:
        util.write_error = write_json_error
        super().init_process()

    def load_wsgi(self) -> None:
        """After gevent's patching (`init_process` patches, then loads the app): a Redis round trip
        in a request costs it a turn in the hub, so app log shipping is asked for off the requests."""
        from . import log_shipping_queue

        log_shipping_queue.ask_in_background()
        super().load_wsgi()
