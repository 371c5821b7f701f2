"""The engine in virtual time: exact stamps for dispatch, catch-up, the connection cap and the
closed loop, with no real waiting (only the last two tests, of the real clock's polling, wait
a few milliseconds).

Virtual time passes only when every task waits: the event loop's selector, asked to block until
the next timer, moves the clock there instead (so ``asyncio.sleep``, ``wait_for`` timeouts and
the engine's own ``sleep_until`` all run on it). A stall of the generator is the clock jumping
while the loop runs nothing. The fake sender answers after a service time per request number.
Stamps are read back from the recorder's raw rows (requests.csv.gz), relative to the start.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import selectors
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infbench.load.clock import SPIN_NS, Clock, MonotonicClock
from infbench.load.engine import CATCH_UP_LATE_NS, CATCH_UP_RUN, Engine, EngineHooks, EngineReport
from infbench.load.local import highest_us
from infbench.recorder.recorder import IntervalStats
from infbench.recorder.tally import PhaseTally
from infbench.scenario.model import ClosedArrival
from infbench.schedule.arrivals import PhasePlan, Schedule
from infbench.wire import ErrorKind, Outcome, PreparedRequest
from recording import InlineRecorder

MS = 1_000_000
T0 = 1_000 * MS  # the run's start on the virtual clock, which starts at 0
HORIZON_NS = 60_000 * MS  # far past any test's end: an engine still going there never stops


class VirtualClock:
    """Nanoseconds that pass only when the loop has nothing to run, or when a test jumps them."""

    spin_ns = 0

    def __init__(self) -> None:
        self.ns = 0

    def now_ns(self) -> int:
        return self.ns

    async def sleep_until(self, due_ns: int) -> None:
        if due_ns > self.ns:
            await asyncio.sleep((due_ns - self.ns) / 1e9)

    def close(self) -> None:
        pass


class _VirtualSelector(selectors.DefaultSelector):
    """Never blocks for a timer: it moves the clock to it. Loop timers are float seconds; the gap
    rounded to whole nanoseconds lands exactly on the integer due time."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only another thread could wake the loop
            ready = super().select(5.0)
            if not ready:
                raise RuntimeError("virtual time: no timer and nothing to run (a deadlock)")
            return ready
        self._clock.ns += round(timeout * 1e9)
        if self._clock.ns > HORIZON_NS:
            raise RuntimeError("virtual time: the run went on past the horizon")
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(_VirtualSelector(clock))
        self._clock = clock

    def time(self) -> float:
        return self._clock.ns / 1e9


class NumberedRequests:
    """Request ``seq`` asks for ``/seq``, so the fake sender knows which request it serves."""

    def request(self, seq: int) -> PreparedRequest:
        return PreparedRequest("POST", f"/{seq}", body=b"x")


class FakeSender:
    """Answers each request after its service time on ``clock``, with its configured error."""

    name = "fake"

    def __init__(
        self,
        clock: Clock,
        service_ms: float,
        service_ms_of: dict[int, float] | None = None,
        errors: dict[int, ErrorKind] | None = None,
    ) -> None:
        self.clock = clock
        self.service_ms = service_ms
        self.service_ms_of = service_ms_of or {}
        self.errors = errors or {}

    async def open(self) -> None:
        pass

    async def send(self, request: PreparedRequest) -> Outcome:
        seq = int(request.path[1:])
        service_ns = round(self.service_ms_of.get(seq, self.service_ms) * MS)
        await self.clock.sleep_until(self.clock.now_ns() + service_ns)
        done = self.clock.now_ns()
        error = self.errors.get(seq)
        status = 503 if error == "http_5xx" else 200
        return Outcome(done_ns=done, first_byte_ns=done, status=status, error=error, bytes_in=2)

    async def close(self) -> None:
        pass


class DirectFakeSender(FakeSender):
    """The fake with ``send_now``, as the fast sender has: a request finds one of its
    ``connections`` idle and is written at once; the outcome comes through a callback."""

    def __init__(self, clock: Clock, connections: int, *args: Any) -> None:
        super().__init__(clock, *args)
        self.idle = connections
        self.written_at_once = 0

    def send_now(self, request: PreparedRequest, on_done: Callable[[Outcome], None]) -> bool:
        if self.idle == 0:
            return False
        self.idle -= 1
        self.written_at_once += 1
        seq = int(request.path[1:])
        done = self.clock.now_ns() + round(self.service_ms_of.get(seq, self.service_ms) * MS)
        error = self.errors.get(seq)
        outcome = Outcome(done, done, 503 if error == "http_5xx" else 200, error, 2)

        def answer() -> None:
            self.idle += 1
            on_done(outcome)

        asyncio.get_running_loop().call_at(done / 1e9, answer)
        return True


def open_phase(name: str, offsets_ms: list[float], duration_ms: float) -> PhasePlan:
    offsets = np.asarray(offsets_ms, dtype=np.float64) / 1e3
    duration_s = duration_ms / 1e3
    seed = np.random.SeedSequence(0)
    rate = len(offsets) / duration_s
    return PhasePlan(name, 0, False, "trace", duration_s, offsets, None, seed, None, rate)


def closed_phase(
    concurrency: int, think_ms: float, duration_ms: float, max_requests: int | None = None
) -> PhasePlan:
    closed = ClosedArrival(process="closed", concurrency=concurrency, think=think_ms / 1e3)
    seed = np.random.SeedSequence(0)
    return PhasePlan(
        "closed", 0, False, "closed", duration_ms / 1e3, None, closed, seed, max_requests, 0.0
    )


# (seq, intended, sent, done, error) in ms from the start; sent is None for a dropped arrival
Row = tuple[int, float, float | None, float, str]


@dataclass(frozen=True)
class Case:
    id: str
    phases: list[PhasePlan]
    expected: list[Row]
    service_ms: float = 5.0
    service_ms_of: dict[int, float] = field(default_factory=dict)
    errors: dict[int, ErrorKind] = field(default_factory=dict)
    connections: int = 8
    timeout_ms: float = 1000.0
    stall_ms: tuple[float, float] | None = None  # (at, for): the generator's process freezes
    stride: tuple[int, int] = (0, 1)


@dataclass
class Run:
    rows: list[Row]
    report: EngineReport
    tallies: list[PhaseTally]
    intervals: list[IntervalStats]


def read_rows(out_dir: Path) -> list[Row]:
    def ms(ns: str) -> float:
        return int(ns) / MS

    def row(r: dict[str, str]) -> Row:
        sent = ms(r["sent_ns"]) if r["sent_ns"] else None
        return (int(r["seq"]), ms(r["intended_ns"]), sent, ms(r["done_ns"]), r["error"])

    with gzip.open(out_dir / "requests.csv.gz", "rt") as stream:
        return sorted(row(r) for r in csv.DictReader(stream))


async def stall(clock: VirtualClock, at_ns: int, length_ns: int) -> None:
    """Freeze the process (a long GC pause, a busy CPU): time passes, the loop runs nothing."""
    await clock.sleep_until(at_ns)
    clock.ns += length_ns


def run_engine(
    tmp_path: Path,
    case: Case,
    also: list[Coroutine[Any, Any, None]] | None = None,
    engine_out: list[Engine] | None = None,
    direct: bool = False,
) -> Run:
    clock = VirtualClock()
    timeout_s = case.timeout_ms / 1e3
    recorder = InlineRecorder([plan.name for plan in case.phases], highest_us(timeout_s), tmp_path)
    knobs = (case.service_ms, case.service_ms_of, case.errors)
    sender = (
        DirectFakeSender(clock, case.connections, *knobs) if direct else FakeSender(clock, *knobs)
    )
    engine = Engine(
        Schedule(tuple(case.phases), sha256=""),
        sender,
        NumberedRequests(),
        recorder.stamps,
        connections=case.connections,
        timeout_s=timeout_s,
        t0_ns=T0,
        hooks=EngineHooks(on_start=recorder.start),
        clock=clock,
        stride=case.stride,
    )
    side = list(also or [])
    if case.stall_ms is not None:
        at_ms, for_ms = case.stall_ms
        side.append(stall(clock, T0 + round(at_ms * MS), round(for_ms * MS)))
    if engine_out is not None:
        engine_out.append(engine)

    async def main() -> EngineReport:
        report, *_ = await asyncio.gather(engine.run(), *side)
        return report

    loop = VirtualTimeLoop(clock)
    try:
        report = loop.run_until_complete(main())
    finally:
        loop.close()
    recorder.finish(report)
    return Run(read_rows(tmp_path), report, recorder.recorder.tallies, recorder.intervals)


OPEN_LOOP = [
    Case(
        "every arrival at its due time, phases back to back",
        [open_phase("a", [0, 10, 12.5, 30], 50), open_phase("b", [0, 1], 20)],
        [
            (0, 0, 0, 3, ""),
            (1, 10, 10, 13, ""),
            (2, 12.5, 12.5, 15.5, "http_5xx"),
            (3, 30, 30, 33, ""),
            (4, 50, 50, 53, ""),
            (5, 51, 51, 54, ""),
        ],
        service_ms=3,
        errors={2: "http_5xx"},
    ),
    Case(
        "arrivals due at the same instant all go at it",
        [open_phase("a", [10, 10, 10], 20)],
        [(0, 10, 10, 15, ""), (1, 10, 10, 15, ""), (2, 10, 10, 15, "")],
    ),
    Case(
        "one process of three numbers its arrivals as the whole schedule does",
        [open_phase("a", [0, 10], 20)],
        [(1, 0, 0, 5, ""), (4, 10, 10, 15, "")],
        stride=(1, 3),
    ),
    Case(
        "after a stall, overdue arrivals go at once, latency from intended",
        [open_phase("a", [0, 10, 20, 30, 40, 50, 60, 70, 80, 90], 100)],
        [
            (0, 0, 0, 5, ""),
            (1, 10, 10, 15, ""),
            (2, 20, 20, 25, ""),
            (3, 30, 65, 70, ""),
            (4, 40, 65, 70, ""),
            (5, 50, 65, 70, ""),
            (6, 60, 65, 70, ""),
            (7, 70, 70, 75, ""),
            (8, 80, 80, 85, ""),
            (9, 90, 90, 95, ""),
        ],
        stall_ms=(27, 38),
    ),
]

CONNECTION_CAP = [
    Case(
        "an arrival waits for a free connection",
        [open_phase("a", [0, 10, 20], 100)],
        [(0, 0, 0, 30, ""), (1, 10, 30, 60, ""), (2, 20, 60, 90, "")],
        service_ms=30,
        connections=1,
    ),
    Case(
        "no connection within the timeout: dropped at intended + timeout",
        [open_phase("a", [0, 10, 20, 100], 150)],
        [
            (0, 0, 0, 80, ""),
            (1, 10, None, 60, "dropped"),
            (2, 20, None, 70, "dropped"),
            (3, 100, 100, 105, ""),
        ],
        service_ms_of={0: 80},
        connections=1,
        timeout_ms=50,
    ),
    Case(
        "an arrival dispatched late by a stall still times out from its intended time",
        [open_phase("a", [0, 10], 100)],
        [(0, 0, 0, 200, ""), (1, 10, None, 60, "dropped")],
        service_ms_of={0: 200},
        connections=1,
        timeout_ms=50,
        stall_ms=(5, 30),
    ),
]

CLOSED_LOOP = [
    Case(
        "no think time: intended is the moment the worker became free",
        [closed_phase(1, think_ms=0, duration_ms=50)],
        [
            (0, 0, 0, 10, ""),
            (1, 10, 10, 35, ""),
            (2, 35, 35, 40, ""),
            (3, 40, 40, 45, ""),
            (4, 45, 45, 50, ""),
        ],
        service_ms_of={0: 10, 1: 25},
    ),
    Case(
        "two workers, each thinking 5 ms after every reply",
        [closed_phase(2, think_ms=5, duration_ms=60)],
        [
            (0, 5, 5, 25, ""),
            (1, 5, 5, 25, ""),
            (2, 30, 30, 50, ""),
            (3, 30, 30, 50, ""),
            (4, 55, 55, 75, ""),
            (5, 55, 55, 75, ""),
        ],
        service_ms=20,
    ),
    Case(
        "max_requests is shared by the workers",
        [closed_phase(2, think_ms=0, duration_ms=100, max_requests=3)],
        [(0, 0, 0, 20, ""), (1, 0, 0, 20, ""), (2, 20, 20, 40, "")],
        service_ms=20,
    ),
]


@pytest.mark.parametrize("direct", [False, True], ids=["task", "send_now"])
@pytest.mark.parametrize("case", OPEN_LOOP + CONNECTION_CAP + CLOSED_LOOP, ids=lambda c: c.id)
def test_stamps(tmp_path: Path, case: Case, direct: bool) -> None:
    """The same stamps whether a request is written at once (send_now) or from a task."""
    run = run_engine(tmp_path, case, direct=direct)
    assert run.rows == case.expected
    dropped = sum(1 for row in case.expected if row[4] == "dropped")
    assert sum(tally.dropped for tally in run.tallies) == dropped
    assert sum(tally.completed for tally in run.tallies) == len(case.expected) - dropped
    assert run.report.spin_s == 0.0 and not run.report.interrupted


def test_a_burst_on_idle_connections_is_written_at_once_without_tasks(tmp_path: Path) -> None:
    case = Case("", [open_phase("a", [5.0] * 20, 50)], [], service_ms=3, connections=20)
    engines: list[Engine] = []
    run = run_engine(tmp_path, case, engine_out=engines, direct=True)
    assert [row[2] for row in run.rows] == [5.0] * 20  # all sent at their due time
    assert engines[0].sender.written_at_once == 20  # type: ignore[attr-defined]


def test_arrivals_queued_for_a_busy_connection_are_written_at_once_when_it_frees(
    tmp_path: Path,
) -> None:
    """With every connection busy, arrivals wait in the engine's queue, not in tasks: each is
    written by send_now on the connection the previous answer freed."""
    case = Case("", [open_phase("a", [0, 1, 2, 3], 50)], [], service_ms=10, connections=1)
    engines: list[Engine] = []
    run = run_engine(tmp_path, case, engine_out=engines, direct=True)
    assert [(row[1], row[2]) for row in run.rows] == [(0, 0), (1, 10), (2, 20), (3, 30)]
    assert engines[0].sender.written_at_once == 4  # type: ignore[attr-defined]


@pytest.mark.parametrize("late", [True, False])
def test_a_late_dispatcher_yields_to_the_loop_between_runs_of_sends(
    tmp_path: Path, late: bool
) -> None:
    """40 arrivals due at once. Overdue by more than CATCH_UP_LATE_NS (the process froze from
    4 to 7 ms), the dispatcher hands the loop back after every CATCH_UP_RUN sends, so answers
    are read (and connections freed) while it catches up. On time, the burst is written
    through without a break."""
    stall = (4.0, 3.0) if late else None
    case = Case(
        "", [open_phase("a", [5.0] * 40, 50)], [], service_ms=1, connections=40, stall_ms=stall
    )
    engines: list[Engine] = []
    seen: list[int] = []

    async def watch() -> None:
        await engines[0].clock.sleep_until(T0 + 5 * MS)
        for _ in range(3 * 40 // CATCH_UP_RUN):
            await asyncio.sleep(0)
            seen.append(engines[0]._offered)

    run = run_engine(tmp_path, case, [watch()], engine_out=engines, direct=True)
    assert len(run.rows) == 40 and all(row[4] == "" for row in run.rows)
    between = sorted({n for n in seen if 0 < n < 40})
    if late:
        assert between == [8, 16, 24, 32] == list(range(CATCH_UP_RUN, 40, CATCH_UP_RUN))
        assert CATCH_UP_LATE_NS < 2 * MS  # the arrivals were 2 ms late
    else:
        assert between == []


def test_phase_windows_and_the_end_of_the_run(tmp_path: Path) -> None:
    case = OPEN_LOOP[0]
    run = run_engine(tmp_path, case)
    assert run.report.t0_ns == T0
    assert run.report.phase_windows == {"a": (0.0, 0.05), "b": (0.05, 0.07)}
    assert run.report.end_ns == T0 + 70 * MS  # the last reply came before the end of phase b


def test_each_second_is_reported_with_its_counts(tmp_path: Path) -> None:
    offsets = [50 + 100 * k for k in range(25)]  # 10 a second, none on a second's boundary
    case = Case("", [open_phase("a", offsets, 2500)], [], service_ms=10)
    run = run_engine(tmp_path, case)
    seconds = [(s.start_s, s.offered, s.sent, s.completed, s.errors) for s in run.intervals]
    assert seconds == [(0.0, 10, 10, 10, 0), (1.0, 10, 10, 10, 0), (2.0, 5, 5, 5, 0)]
    assert run.report.end_ns == T0 + 2500 * MS


def test_requests_past_the_drain_grace_are_abandoned(tmp_path: Path) -> None:
    case = Case("", [open_phase("a", [0], 10)], [], service_ms=5000, timeout_ms=50)
    run = run_engine(tmp_path, case)
    assert run.report.abandoned == 1
    assert run.rows == []
    # grace = 2 × timeout + 1 s, counted from the end of the phase
    assert run.report.end_ns == T0 + 10 * MS + 1100 * MS


def test_stop_ends_dispatch_and_keeps_what_was_sent(tmp_path: Path) -> None:
    case = Case("", [open_phase("a", [0, 10, 20, 30, 40], 50)], [])
    engines: list[Engine] = []

    async def stop_at(at_ns: int) -> None:
        await engines[0].clock.sleep_until(at_ns)
        engines[0].stop()

    run = run_engine(tmp_path, case, [stop_at(T0 + 27 * MS)], engines)
    assert run.report.interrupted
    assert run.rows == [(0, 0, 0, 5, ""), (1, 10, 10, 15, ""), (2, 20, 20, 25, "")]
    assert run.report.end_ns == T0 + 27 * MS


def test_real_clock_polls_the_last_stretch_and_counts_it() -> None:
    clock = MonotonicClock()
    due = time.monotonic_ns() + SPIN_NS // 2  # within the polling stretch: no sleep at all
    asyncio.run(clock.sleep_until(due))
    assert time.monotonic_ns() >= due
    assert clock.spin_ns > 0


def test_real_time_engine_reports_its_polling(tmp_path: Path) -> None:
    recorder = InlineRecorder(["a"], highest_us(1.0), tmp_path)
    engine = Engine(
        Schedule((open_phase("a", [0, 2], 4),), sha256=""),
        FakeSender(MonotonicClock(), service_ms=0),
        NumberedRequests(),
        recorder.stamps,
        connections=2,
        timeout_s=1.0,
        hooks=EngineHooks(on_start=recorder.start),
    )
    report = asyncio.run(engine.run())
    recorder.finish(report)
    assert recorder.recorder.tallies[0].completed == 2
    assert report.spin_s > 0
    assert report.spin_s == engine.clock.spin_ns / 1e9
