"""Launch a server command, wait until it is ready, and stop its whole process tree.

Shared by the ``bentoml`` and ``command`` targets. Three facts shape this module:

- Servers such as ``bentoml serve`` start workers in sessions of their own, so killing the
  launcher's process group misses them. Stop therefore snapshots the whole tree with psutil
  (refreshing the snapshot while the supervisor shuts down) and SIGKILLs every leftover pid
  (``proctree.stop_tree``, which also stops the trees a killed infbench left behind).
- A readiness probe can hang while workers start, so every probe has its own short timeout, and
  the loop also watches for the process exiting or logging a fatal start-up line (BentoML logs
  "Application startup failed" and then retries forever instead of exiting).
- infbench must leave no server behind after Ctrl-C, SIGTERM or a crash, so every launched
  process is registered and :func:`stop_all_targets` (called by the CLI from signal handlers
  and ``atexit``) stops them; ``stop`` is idempotent, re-entrant and thread-safe. Closers
  registered with :func:`register_closer` (a restart supervisor) run first, so nothing is
  relaunched behind the stop. For SIGKILL of infbench itself, each launch keeps a pid file
  (``pidfile.py``) that the next ``infbench run`` or ``infbench cleanup`` acts on.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx
import psutil

from infbench.errors import TargetError
from infbench.scenario.model import Readiness
from infbench.targets.pidfile import write_pid_file
from infbench.targets.proctree import running, stop_tree
from infbench.targets.ready import Waiter, WaitProgress, probe_failure, refused_error

__all__ = [
    "FATAL_LOG_MARKERS",
    "LaunchedProcess",
    "free_port",
    "port_is_free",
    "register_closer",
    "stop_all_targets",
    "tail_lines",
    "wait_until_ready",
]

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 20
# Lines after which a server never becomes ready although its process lives on.
FATAL_LOG_MARKERS = ("Application startup failed",)

_LIVE: dict[int, LaunchedProcess] = {}  # id(process) -> process; plain dict: no lock to deadlock on
_CLOSERS: dict[int, Callable[[], None]] = {}  # id(owner) -> close(); run before the stops


def register_closer(owner: object, close: Callable[[], None] | None) -> None:
    """Have ``close`` run before stop_all_targets stops servers (None unregisters ``owner``)."""
    if close is None:
        _CLOSERS.pop(id(owner), None)
    else:
        _CLOSERS[id(owner)] = close


def stop_all_targets() -> None:
    """Stop every launched server still registered (safe in signal handlers and atexit)."""
    for close in list(_CLOSERS.values()):
        try:
            close()
        except Exception:
            log.exception("could not close a target supervisor")
    for process in list(_LIVE.values()):
        try:
            process.stop()
        except Exception:  # one failure must not leave the other servers running
            log.exception("could not stop %s", process.argv[:3])


@functools.cache
def _register_atexit() -> None:
    """Stop servers when the interpreter exits on an uncaught exception, even without the CLI."""
    atexit.register(stop_all_targets)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free now (another process could still take it before the server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Without SO_REUSEADDR a port in TIME_WAIT reads as taken although a server could bind it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def tail_lines(path: Path, count: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``count`` lines of a log file (reading only its end: server logs can be large)."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 64 * 1024))
            text = file.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return list(deque(text.splitlines(), maxlen=count))


class _LogWatch:
    """Reads a log file incrementally, looking for fatal start-up lines."""

    def __init__(self, path: Path, markers: Sequence[str]) -> None:
        self.path, self.markers = path, tuple(markers)
        self._offset, self._carry = 0, ""

    def fatal_line(self) -> str | None:
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                chunk = file.read()
        except OSError:
            return None
        self._offset += len(chunk)
        text = self._carry + chunk.decode("utf-8", errors="replace")
        lines = text.split("\n")
        self._carry = lines.pop()  # an unfinished line is checked again once complete
        return next((line for line in lines if any(m in line for m in self.markers)), None)


def _failure(what: str, log_path: Path | None, hint: str) -> TargetError:
    message = f"target failed to start: {what}"
    if log_path is not None:
        lines = tail_lines(log_path)
        shown = "\n".join(f"  | {line}" for line in lines) if lines else "  | (empty)"
        message += f"\nlast {len(lines)} lines of {log_path}:\n{shown}"
    return TargetError(message, hint=hint)


def wait_until_ready(
    url: str,
    ready: Readiness,
    *,
    process: LaunchedProcess | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: WaitProgress | None = None,
    refused_grace_s: float | None = None,
    transport: httpx.BaseTransport | None = None,
) -> float:
    """Probe ``url`` until it answers ``ready.status``; return the seconds waited.

    Raises TargetError when the process exits, logs a fatal line, the deadline passes, or (for
    attached servers, which pass ``refused_grace_s``) every connection was refused for that
    long. A launched process is stopped before raising, so a failed start leaves nothing
    behind. ``progress`` hears about each failed probe (``ready.py``).
    """
    waiter = Waiter(
        url,
        f"answer {ready.status}",
        ready.timeout,
        refused_grace_s=refused_grace_s,
        clock=clock,
        progress=progress,
    )
    watch = _LogWatch(process.log_path, FATAL_LOG_MARKERS) if process else None
    with httpx.Client(timeout=ready.probe_timeout, trust_env=False, transport=transport) as client:
        while True:
            if process is not None and watch is not None:
                _check_process(process, watch, waiter.started, clock)
            try:
                status = client.get(url).status_code
            except httpx.HTTPError as exc:
                verdict = waiter.failed(*probe_failure(exc, ready.probe_timeout))
            else:
                if status == ready.status:
                    return waiter.waited()
                verdict = waiter.failed(f"HTTP {status}", refused=False)
            if verdict is not None:
                if process is not None:
                    process.stop()
                if verdict == "refused" and refused_grace_s is not None:
                    raise refused_error(url, refused_grace_s)
                raise _failure(
                    f"{url} did not answer {ready.status} within {ready.timeout:g} s "
                    f"(last: {waiter.last})",
                    process.log_path if process else None,
                    "raise `target.ready.timeout`, or check `target.ready.path` and the log",
                )
            sleep(ready.interval)


def _check_process(
    process: LaunchedProcess, watch: _LogWatch, started: float, clock: Callable[[], float]
) -> None:
    code = process.returncode()
    fatal = watch.fatal_line()
    if code is None and fatal is None:
        return
    process.stop()
    if code is not None:
        what = f"the server exited with code {code} after {clock() - started:.1f} s"
    else:
        what = f"the server logged {(fatal or '').strip()!r} and will not become ready"
    raise _failure(what, process.log_path, f"run it by hand to debug: {' '.join(process.argv)}")


class LaunchedProcess:
    """A server command running in its own session, its stdout and stderr in ``log_path``."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        port: int | None = None,
        stop_timeout_s: float = 5.0,
        on_stopped: Callable[[], None] | None = None,
        pid_file: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path, self.env, self.cwd, self.port = log_path, env, cwd, port
        self.stop_timeout_s = stop_timeout_s
        self._on_stopped = on_stopped
        self.pid_file = pid_file
        self._popen: subprocess.Popen[bytes] | None = None
        self._known: dict[int, psutil.Process] = {}  # every tree member seen, for stop
        # Re-entrant: a signal handler may interrupt a stop in progress on the same thread.
        self._lock = threading.RLock()
        self._stopped = False

    def launch(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.log_path.open("ab") as log_file:
                self._popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=dict(self.env) if self.env is not None else None,
                    cwd=self.cwd,
                    start_new_session=True,  # Ctrl-C at the terminal reaches infbench only
                )
        except OSError as exc:
            raise TargetError(
                f"target failed to start: cannot run {self.argv[0]!r}: {exc.strerror or exc}",
                hint="check the command (`target.command`) and that the program is installed",
            ) from exc
        _LIVE[id(self)] = self
        _register_atexit()
        self.record_pids()

    def record_pids(self) -> None:
        """Refresh the tree and write every member seen alive into the pid file."""
        self.tree()
        if self.pid_file is not None:
            alive = [proc for proc in self._known.values() if running(proc)]
            write_pid_file(self.pid_file, alive, Path(self.argv[0]).name, self.port)

    @property
    def stopped(self) -> bool:
        """True once ``stop`` ran: an exit after it was asked for, not a failure."""
        return self._stopped

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def alive(self) -> bool:
        return self._popen is not None and not self._stopped and self._popen.poll() is None

    def pids(self) -> list[int]:
        return [proc.pid for proc in self.tree()]

    def tree(self) -> list[psutil.Process]:
        """The live tree now (root first, every member remembered for stop); empty once the
        root has exited."""
        if self._popen is None or self._popen.poll() is not None:
            return []
        try:
            root = psutil.Process(self._popen.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return []
        for proc in tree:
            self._known.setdefault(proc.pid, proc)
        return tree

    def stop(self, *, final: bool = True) -> None:
        """SIGTERM the launched process, then SIGKILL whatever of its tree is left; idempotent.

        ``final=False`` (a restart) leaves ``on_stopped`` for the process launched next.
        """
        with self._lock:
            try:
                if not self._stopped and self._popen is not None:
                    self._terminate_tree(self._popen)
            finally:
                if not self._stopped and self.pid_file is not None:
                    with contextlib.suppress(OSError):
                        self.pid_file.unlink()
                self._stopped = True
                _LIVE.pop(id(self), None)
                if final and self._on_stopped is not None:
                    on_stopped, self._on_stopped = self._on_stopped, None
                    on_stopped()

    def _terminate_tree(self, popen: subprocess.Popen[bytes]) -> None:
        # SIGTERM to the launched process only: as a supervisor it shuts its workers down.
        root = self.tree()[:1]
        stop_tree(root, timeout_s=self.stop_timeout_s, signal_all=False, known=self._known)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=2.0)  # reap our direct child so no zombie stays
        self._wait_port_free()

    def _wait_port_free(self, timeout_s: float = 3.0) -> None:
        if self.port is None:
            return
        deadline = time.monotonic() + timeout_s
        while not port_is_free(self.port):
            if time.monotonic() >= deadline:
                log.warning("port %d still in use after stopping %s", self.port, self.argv[0])
                return
            time.sleep(0.05)
