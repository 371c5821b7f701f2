"""Waiting for a server, and saying what is waited for.

Every readiness wait reports a :class:`WaitStatus` after each failed probe to an optional
callback, so the CLI can show "waiting for URL to answer 200 (last: connection refused, 4 s of
120 s)" while the library prints nothing.

One rule ends a wait before its timeout, for attached servers only: connections refused for
:data:`REFUSED_GRACE_S` in a row. A refusal means nothing listens on that host and port (the
server was not started, or the port is wrong), and waiting cannot fix a server someone else
runs. A server that accepts but answers another status, or does not answer in time, is alive and
may be loading a model, so it is waited for until ``ready.timeout``. A launched server refuses
connections while it boots, so its waits never use the rule; they end early on the process's
exit or a fatal log line instead (``process.py``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx

from infbench.errors import TargetError

__all__ = [
    "REFUSED_GRACE_S",
    "WaitProgress",
    "WaitStatus",
    "Waiter",
    "probe_failure",
    "refused_error",
    "wait_until_accepting",
]

REFUSED_GRACE_S = 3.0
ACCEPT_PROBE_TIMEOUT_S = 0.5

Verdict = Literal["refused", "timeout"]


@dataclass(frozen=True)
class WaitStatus:
    """A readiness wait in progress, as reported after each failed probe."""

    url: str
    goal: str  # "answer 200", "accept connections"
    last: str  # "connection refused", "HTTP 503", "no answer within 0.5 s"
    waited_s: float
    timeout_s: float
    gives_up_s: float | None = None  # when the wait ends if connections stay refused

    def describe(self) -> str:
        text = (
            f"waiting for {self.url} to {self.goal} "
            f"(last: {self.last}, {int(self.waited_s)} s of {self.timeout_s:g} s"
        )
        if self.gives_up_s is not None:
            text += f", giving up at {self.gives_up_s:.0f} s if still refused"
        return text + ")"


WaitProgress = Callable[[WaitStatus], None]


def _refused(exc: BaseException) -> bool:
    """True when ``exc`` or an exception it was raised from is a refused connection."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectionRefusedError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def probe_failure(exc: Exception, probe_timeout_s: float) -> tuple[str, bool]:
    """What a failed probe met, in a few words, and whether the connection was refused."""
    if _refused(exc):
        return "connection refused", True
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {probe_timeout_s:g} s", False
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({exc})", False
    return type(exc).__name__, False


def refused_error(url: str, grace_s: float) -> TargetError:
    return TargetError(
        f"target not reachable: {url} refused every connection for {grace_s:g} s "
        "(nothing listens on that host and port)",
        hint="start the server, or check the host and port of --url (or target.url); "
        "to wait for a server that is still starting, give a url target an explicit "
        "target.ready.timeout",
    )


class Waiter:
    """The bookkeeping of one wait: its deadline, the current run of refusals, the reports."""

    def __init__(
        self,
        url: str,
        goal: str,
        timeout_s: float,
        *,
        refused_grace_s: float | None,
        clock: Callable[[], float],
        progress: WaitProgress | None,
    ) -> None:
        self.url, self.goal, self.timeout_s = url, goal, timeout_s
        self.refused_grace_s = refused_grace_s
        self.clock, self.progress = clock, progress
        self.started = clock()
        self.last = "no answer yet"
        self._refused_since: float | None = None

    def waited(self) -> float:
        return self.clock() - self.started

    def failed(self, last: str, refused: bool) -> Verdict | None:
        """Note a failed probe; say why the wait must end now, or None to keep waiting."""
        now = self.clock()
        self.last = last
        if not refused:
            self._refused_since = None
        elif self._refused_since is None:
            self._refused_since = now
        gives_up = None
        if self.refused_grace_s is not None and self._refused_since is not None:
            gives_up = self._refused_since + self.refused_grace_s - self.started
        if self.progress is not None:
            waited, shown = now - self.started, gives_up
            if shown is not None and shown >= self.timeout_s:
                shown = None  # the timeout comes first
            self.progress(WaitStatus(self.url, self.goal, last, waited, self.timeout_s, shown))
        if gives_up is not None and now - self.started >= gives_up:
            return "refused"
        return "timeout" if now - self.started >= self.timeout_s else None


def _connect(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=ACCEPT_PROBE_TIMEOUT_S):
        pass


def wait_until_accepting(
    url: str,
    *,
    grace_s: float = REFUSED_GRACE_S,
    interval_s: float = 0.05,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: WaitProgress | None = None,
    connect: Callable[[str, int], None] = _connect,
) -> None:
    """Return once the URL's host and port accept a TCP connection (nothing is sent).

    For attached servers without a readiness probe: TargetError after ``grace_s`` of refused
    connections. Any other failure (a timeout, an unknown host) returns at once, as no probe was
    asked for; the run's requests then show it as errors.
    """
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    waiter = Waiter(
        url, "accept connections", grace_s, refused_grace_s=grace_s, clock=clock, progress=progress
    )
    while True:
        try:
            connect(parsed.host, port)
            return
        except ConnectionRefusedError:
            if waiter.failed("connection refused", refused=True) is not None:
                raise refused_error(url, grace_s) from None
        except OSError:
            return
        sleep(interval_s)
