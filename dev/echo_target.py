"""A demo target for `make run`: prints each inbound POST the way an app's log would show it, answers 200.

It stands in for the customer's app so that mail sent to the demo forward address is visible at once.
"""

from __future__ import annotations

import contextlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EchoTarget(BaseHTTPRequestHandler):
    server_version = "demo-target"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        summary = f"{len(body)} bytes, {self.headers.get('Content-Type', '?').split(';')[0]}"
        if self.headers.get("Content-Type", "").startswith("application/json"):
            try:
                mail = json.loads(body)
                headers = mail.get("headers", {})
                summary = (
                    f"from={mail['envelope']['from']!r} to={mail['envelope']['to']!r} "
                    f"subject={headers.get('subject')!r} attachments={len(mail.get('attachments', []))}"
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                summary = "unreadable JSON"
        print(f"POST {self.path}: {summary}", flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, format: str, *args: object) -> None:
        """The one-line summary above says more than the access log."""


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5200
    server = ThreadingHTTPServer(("127.0.0.1", port), EchoTarget)
    print(f"demo target listening on http://127.0.0.1:{port}/incoming", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
