"""Readiness waits in virtual time: which failures end a wait early, and what is reported.

The probes go through an httpx MockTransport whose answer depends on the virtual time; the
wait's ``sleep`` moves that time, and a probe that times out moves it by the probe timeout.
Nothing here waits for real.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import pytest
from rich.console import Console

from infbench.errors import TargetError
from infbench.report.console import WaitView
from infbench.scenario.model import BentomlTarget, Readiness, UrlTarget
from infbench.targets.process import wait_until_ready
from infbench.targets.ready import REFUSED_GRACE_S, WaitStatus, wait_until_accepting
from infbench.targets.url import refusal_grace

URL = "http://127.0.0.1:3000/readyz"
READY = Readiness(timeout=120.0)  # interval 50 ms, probe timeout 0.5 s

Behaviour = Callable[[float], int | str]  # virtual time -> status code, "refused" or "timeout"


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def wait(
    behaviour: Behaviour,
    *,
    grace: float | None = REFUSED_GRACE_S,
    ready: Readiness = READY,
    reports: list[WaitStatus] | None = None,
) -> tuple[VirtualTime, float | TargetError]:
    """Run wait_until_ready against ``behaviour``; the seconds it returned or what it raised."""
    time = VirtualTime()

    def handle(request: httpx.Request) -> httpx.Response:
        answer = behaviour(time.now)
        if answer == "refused":
            cause = ConnectionRefusedError(111, "Connection refused")
            raise httpx.ConnectError("[Errno 111] Connection refused") from cause
        if answer == "timeout":
            time.now += ready.probe_timeout
            raise httpx.ReadTimeout("timed out")
        assert isinstance(answer, int)
        return httpx.Response(answer)

    try:
        waited = wait_until_ready(
            URL,
            ready,
            clock=time.clock,
            sleep=time.sleep,
            progress=None if reports is None else reports.append,
            refused_grace_s=grace,
            transport=httpx.MockTransport(handle),
        )
    except TargetError as exc:
        return time, exc
    return time, waited


# --- which failures end a wait early ------------------------------------------------------------


def test_refused_connections_end_an_attached_wait_after_the_grace() -> None:
    time, result = wait(lambda t: "refused")
    assert isinstance(result, TargetError)
    assert REFUSED_GRACE_S <= time.now < REFUSED_GRACE_S + 0.1  # not the 120 s timeout
    assert result.exit_code == 3
    assert f"{URL} refused every connection for 3 s" in result.message
    assert result.hint is not None and "start the server" in result.hint
    assert "--url" in result.hint


def test_without_a_grace_refusals_are_waited_out() -> None:
    """Launched servers refuse while they boot: only the process watch ends their wait early."""
    _, result = wait(lambda t: "refused" if t < 30 else 200, grace=None)
    assert result == pytest.approx(30, abs=0.1)
    time, result = wait(lambda t: "refused", grace=None, ready=Readiness(timeout=10.0))
    assert isinstance(result, TargetError) and time.now == pytest.approx(10, abs=0.1)
    assert "did not answer 200 within 10 s (last: connection refused)" in result.message


def test_non_ready_answers_and_timeouts_keep_the_wait_going() -> None:
    def booting(t: float) -> int | str:
        return 503 if t < 20 else "timeout" if t < 40 else 200

    _, result = wait(booting)
    assert result == pytest.approx(40, abs=0.6)
    time, result = wait(lambda t: 503)
    assert isinstance(result, TargetError) and time.now == pytest.approx(120, abs=0.1)
    assert "did not answer 200 within 120 s (last: HTTP 503)" in result.message
    _, result = wait(lambda t: "timeout", ready=Readiness(timeout=30.0))
    assert isinstance(result, TargetError)
    assert "(last: no answer within 0.5 s)" in result.message


def test_only_consecutive_refusals_count() -> None:
    """Refused for 2.5 s, one 503, refused for 2.4 s more, then ready: 4.9 s refused in all,
    never 3 s in a row."""

    def flapping(t: float) -> int | str:
        return "refused" if t < 2.5 or 2.55 <= t < 5.0 else 503 if t < 2.55 else 200

    _, result = wait(flapping)
    assert result == pytest.approx(5.0, abs=0.1)


# --- what is reported -------------------------------------------------------------------------


def test_each_failed_probe_is_reported() -> None:
    reports: list[WaitStatus] = []
    wait(lambda t: 503 if t < 1 else "refused" if t < 2 else 200, reports=reports)
    assert len(reports) == pytest.approx(2 / READY.interval, abs=2)  # one per probe, ready not
    first, last = reports[0], reports[-1]
    assert (first.url, first.goal, first.last, first.waited_s) == (URL, "answer 200", "HTTP 503", 0)
    assert first.gives_up_s is None  # answers are waited for until the timeout
    assert last.last == "connection refused" and last.waited_s == pytest.approx(2, abs=0.06)
    assert last.gives_up_s == pytest.approx(1 + REFUSED_GRACE_S, abs=0.06)
    assert [r.waited_s for r in reports] == sorted(r.waited_s for r in reports)


def test_the_status_line_says_what_is_waited_for() -> None:
    status = WaitStatus(URL, "answer 200", "connection refused", 4.7, 120.0)
    assert status.describe() == (
        f"waiting for {URL} to answer 200 (last: connection refused, 4 s of 120 s)"
    )
    status = WaitStatus(URL, "answer 200", "connection refused", 1.2, 120.0, gives_up_s=3.0)
    assert status.describe().endswith("1 s of 120 s, giving up at 3 s if still refused)")


def test_a_grace_past_the_timeout_is_not_announced() -> None:
    reports: list[WaitStatus] = []
    wait(lambda t: "refused", ready=Readiness(timeout=2.0), reports=reports)
    assert reports and all(r.gives_up_s is None for r in reports)


# --- attaching without a readiness probe -------------------------------------------------------


def test_a_port_that_refuses_fails_and_any_other_outcome_returns() -> None:
    time = VirtualTime()

    def check(error: OSError | None) -> TargetError | None:
        def connect(host: str, port: int) -> None:
            assert (host, port) == ("10.0.0.5", 80)
            if error is not None:
                raise error

        try:
            wait_until_accepting(
                "http://10.0.0.5", clock=time.clock, sleep=time.sleep, connect=connect
            )
        except TargetError as exc:
            return exc
        return None

    failure = check(ConnectionRefusedError(111, "Connection refused"))
    assert failure is not None and "http://10.0.0.5 refused every connection" in failure.message
    assert time.now == pytest.approx(REFUSED_GRACE_S, abs=0.06)
    time.now = 0.0
    assert check(None) is None and check(TimeoutError("timed out")) is None
    assert time.now == 0.0  # no probe was asked for: nothing but refusal is waited out


# --- the rule for the grace ---------------------------------------------------------------------


def test_only_an_explicit_timeout_of_a_url_target_waits_out_refusals() -> None:
    url = "http://127.0.0.1:3000"
    assert refusal_grace(UrlTarget(kind="url", url=url)) == REFUSED_GRACE_S
    assert refusal_grace(UrlTarget(kind="url", url=url, ready=Readiness())) == REFUSED_GRACE_S
    assert refusal_grace(UrlTarget(kind="url", url=url, ready=Readiness(timeout=60.0))) is None
    # a launched target's timeout is about its boot: --url over it keeps the grace
    bentoml = BentomlTarget(kind="bentoml", service="s:S", ready=Readiness(timeout=300.0))
    assert refusal_grace(bentoml) == REFUSED_GRACE_S


# --- the CLI's view of a wait -------------------------------------------------------------------


def status(waited_s: float) -> WaitStatus:
    return WaitStatus(URL, "answer 200", "HTTP 503", waited_s, 120.0)


def test_plain_output_gets_an_occasional_line_not_one_per_probe() -> None:
    out = io.StringIO()
    view = WaitView(Console(file=out, width=100))
    with view:
        for tick in range(0, 2200, 5):  # a report every 50 ms for 22 s
            view.update(status(tick / 100))
    view.update(status(30.0))  # after the wait: a relaunch during the run is not shown
    lines = out.getvalue().splitlines()
    assert [line.split("(last: HTTP 503, ")[1] for line in lines] == [
        "1 s of 120 s)",
        "11 s of 120 s)",
        "21 s of 120 s)",
    ]


def test_a_terminal_gets_one_line_updated_in_place_and_removed() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True)
    with WaitView(console) as view:
        view.update(status(0.5))
        assert out.getvalue() == ""  # nothing in the first second
        view.update(status(1.5))
        view.update(status(2.5))
    shown = out.getvalue()
    assert "waiting for http://127.0.0.1:3000/readyz to answer 200" in shown
    assert "(last: HTTP 503, 2 s of 120 s)" in shown  # the latest report
    with console.status("next"):  # rich refuses a second live display: ours has stopped
        pass


def test_quiet_shows_nothing() -> None:
    with WaitView(None) as view:
        view.update(status(5.0))  # no console: nothing to do, nothing raised
