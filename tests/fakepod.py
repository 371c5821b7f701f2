"""One fake pod's server process: ``python tests/fakepod.py PORT [START_S [DELAY_S]]``.

HTTP/1.1 with keep-alive (like a real model server), ``/readyz`` and ``/livez`` 200 once
``START_S`` (a model load) has passed, any other path answers a small JSON body. SIGTERM ends
it at once, dropping open connections, as a pod's container is stopped.
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.monotonic()
START_S = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
DELAY_S = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0  # per request: some are in flight


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        loading = time.monotonic() - STARTED < START_S
        status = 503 if loading and self.path in ("/readyz", "/livez") else 200
        if not loading and DELAY_S:
            time.sleep(DELAY_S)
        body = b'{"label": "POSITIVE", "score": 0.99}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        return None


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
