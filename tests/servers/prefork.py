"""A tiny pre-fork server for target and fault tests, launched as a `command` target.

    python prefork.py PORT [DELAY_S]

The supervisor process binds the port and runs one worker process that serves HTTP/1.1 on the
inherited socket; when the worker dies the supervisor starts another after 0.2 s (as BentoML's
does), so connections wait in the listen backlog meanwhile. SIGTERM stops both.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body meet delayed ACKs: 40 ms answers
    delay_s = 0.0

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.delay_s:
            time.sleep(self.delay_s)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def worker(fd: int, delay_s: float) -> None:
    Handler.delay_s = delay_s
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = socket.socket(fileno=fd)
    server.daemon_threads = True
    server.serve_forever()


def supervisor(port: int, delay: str) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    fd = listener.fileno()
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        argv = [sys.executable, __file__, "worker", str(fd), delay]
        child = subprocess.Popen(argv, pass_fds=[fd])
        child.wait()
        if not stopping:
            print(
                f"worker {child.pid} exited with {child.returncode}; starting another", flush=True
            )
            time.sleep(0.2)


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        worker(int(sys.argv[2]), float(sys.argv[3]))
    else:
        supervisor(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "0")
