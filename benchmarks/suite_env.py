"""The benchmark suite's surroundings: tools found, CPU layout, machine facts, the target server.

The target is nginx from the distribution's packages, started with its own configuration in a
temporary directory (one worker, keep-alive, ``return 200 "ok"``), or, when nginx is absent,
infbench's own loopback sink. It is pinned to one core and every generator to another, so a
generator's figures are per core and the two never compete for a CPU.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / "benchmarks" / ".venv"

INSTALL_HINTS = {
    "nginx": "sudo apt-get install -y nginx   (the suite falls back to infbench's sink without it)",
    "wrk": "sudo apt-get install -y wrk",
    "locust": (
        "python3 -m venv benchmarks/.venv && benchmarks/.venv/bin/pip install 'locust>=2.20,<3'"
        "   (or: pip install -e '.[bench]' in the project's venv)"
    ),
    "taskset": "sudo apt-get install -y util-linux   (without it nothing is pinned)",
}


@dataclass(frozen=True)
class Tools:
    nginx: str | None
    wrk: str | None
    locust: list[str] | None
    taskset: str | None

    def missing(self) -> list[str]:
        return [name for name in INSTALL_HINTS if getattr(self, name) is None]


def _locust_command() -> list[str] | None:
    """Locust from benchmarks/.venv, else on PATH, else importable by this Python."""
    candidate = BENCH_VENV / "bin" / "locust"
    if candidate.exists():
        return [str(candidate)]
    if found := shutil.which("locust"):
        return [found]
    probe = subprocess.run(
        [sys.executable, "-c", "import locust"], capture_output=True, timeout=60, check=False
    )
    return [sys.executable, "-m", "locust"] if probe.returncode == 0 else None


def find_tools() -> Tools:
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None
    )
    taskset = shutil.which("taskset") if hasattr(os, "sched_getaffinity") else None
    return Tools(nginx, shutil.which("wrk"), _locust_command(), taskset)


@dataclass(frozen=True)
class Layout:
    """Which CPUs the target and the generators get. Generator k of n gets its own core while
    cores are left (the target's excluded); beyond that they share, and per-core figures divide
    by the cores actually given."""

    pinned: bool
    cpus: tuple[int, ...]
    target: tuple[int, ...]

    def generator(self, processes: int) -> tuple[int, ...]:
        if not self.pinned:
            return ()
        free = [cpu for cpu in self.cpus if cpu not in self.target]
        return tuple(free[: max(1, processes)])

    def cores(self, processes: int) -> int:
        return len(self.generator(processes)) if self.pinned else max(1, processes)

    @staticmethod
    def prefix(cpus: tuple[int, ...]) -> list[str]:
        return ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []

    def describe(self) -> str:
        if not self.pinned:
            return "nothing pinned (one CPU, or no taskset): per-core figures assume one core each"
        gen = self.generator(1)[0]
        return f"generator pinned to core {gen}, target to core {self.target[0]}"


def cpu_layout(tools: Tools) -> Layout:
    cpus = tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else (0,)
    if tools.taskset is None or len(cpus) < 2:
        return Layout(False, cpus, ())
    return Layout(True, cpus, (cpus[1],))


def _version(command: list[str]) -> str | None:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].strip() if text else None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(tools: Tools) -> dict[str, Any]:
    git = _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "infbench_git": git,
        "nginx": _version([tools.nginx, "-v"]) if tools.nginx else None,
        "wrk": _version([tools.wrk, "-v"]) if tools.wrk else None,
        "locust": _version([*tools.locust, "--version"]) if tools.locust else None,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_NGINX_CONF = """worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 "ok"; }}
    }}
}}
"""


class Target:
    """nginx (or the sink) on a free loopback port, pinned to the layout's target core."""

    def __init__(self, kind: str, tools: Tools, layout: Layout) -> None:
        self.kind, self.tools, self.layout = kind, tools, layout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="infbench-bench-target-"))

    def command(self) -> list[str]:
        if self.kind == "nginx":
            assert self.tools.nginx is not None
            conf = self.tmp / "nginx.conf"
            conf.write_text(_NGINX_CONF.format(tmp=self.tmp, port=self.port))
            return [
                self.tools.nginx,
                "-c",
                str(conf),
                "-p",
                str(self.tmp),
                "-e",
                str(self.tmp / "error.log"),
            ]
        return [sys.executable, "-m", "infbench.load.loopback_server", "--port", str(self.port)]

    def describe(self) -> str:
        if self.kind == "nginx":
            version = _version([self.tools.nginx or "nginx", "-v"]) or "nginx"
            return f'{version}, 1 worker, `return 200 "ok"`, keep-alive'
        return "infbench's loopback sink (nginx not installed), 1 process"

    def start(self) -> str:
        command = Layout.prefix(self.layout.target) + self.command()
        log = open(self.tmp / "target.log", "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                text = (self.tmp / "target.log").read_text(errors="replace")
                raise RuntimeError(f"{self.kind} exited at start:\n{text}")
            if self._answers():
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.kind} did not answer on {self.url} within 20 s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return sock.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)  # its own session: nginx and its worker
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Target:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
