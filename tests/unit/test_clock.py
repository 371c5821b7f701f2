"""The real clock's waits (a timerfd shared by every waiter) and the dispatcher's priority."""

from __future__ import annotations

import asyncio
import os
import select
import threading
import time

import pytest

from infbench.errors import ScenarioError
from infbench.load.clock import COARSE_SPIN_NS, SPIN_NS, MonotonicClock
from infbench.load.priority import (
    DispatchPriority,
    dispatch_priority,
    realtime_refused,
    require_priority,
)
from infbench.load.timerfd import TimerFd

MS = 1_000_000
linux_only = pytest.mark.skipif(TimerFd.create() is None, reason="timerfd is Linux only")


@linux_only
def test_timerfd_fires_at_its_instant_and_at_once_when_past() -> None:
    timer = TimerFd.create()
    assert timer is not None
    try:
        due = time.monotonic_ns() + 20 * MS
        timer.arm_at(due)
        assert select.select([timer.fd], [], [], 5.0)[0] == [timer.fd]
        assert time.monotonic_ns() >= due  # never before its instant
        timer.clear()
        assert select.select([timer.fd], [], [], 0)[0] == []  # consumed
        timer.arm_at(time.monotonic_ns() - 5 * MS)
        assert select.select([timer.fd], [], [], 5.0)[0] == [timer.fd]
    finally:
        timer.close()


@linux_only
def test_waiters_wake_in_due_order_never_early_and_a_cancelled_one_is_skipped() -> None:
    clock = MonotonicClock()
    woke: list[tuple[str, int, int]] = []

    async def wait(name: str, due_ns: int) -> None:
        await clock.sleep_until(due_ns)
        woke.append((name, due_ns, time.monotonic_ns()))

    async def main() -> None:
        start = time.monotonic_ns()
        dues = {"c": start + 60 * MS, "a": start + 20 * MS, "b": start + 40 * MS}
        tasks = [asyncio.create_task(wait(name, due)) for name, due in dues.items()]
        doomed = asyncio.create_task(wait("x", start + 10 * MS))  # the earliest, then cancelled
        await asyncio.sleep(0)
        doomed.cancel()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    clock.close()
    assert [name for name, _, _ in woke] == ["a", "b", "c"]
    assert all(at >= due for _, due, at in woke)
    assert clock.spin_ns > 0  # the last stretch of each wait is polled, and counted


@linux_only
def test_close_releases_the_timer_and_falls_back_to_loop_timers() -> None:
    clock = MonotonicClock()
    asyncio.run(clock.sleep_until(time.monotonic_ns() + 5 * MS))
    fd = clock._timer.fd  # type: ignore[union-attr]
    clock.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    assert clock._spin == COARSE_SPIN_NS > SPIN_NS
    due = time.monotonic_ns() + 5 * MS
    asyncio.run(clock.sleep_until(due))  # still a correct wait, on the loop's own timers
    assert time.monotonic_ns() >= due


def test_a_clock_can_serve_one_loop_after_another() -> None:
    clock = MonotonicClock()
    for _ in range(2):
        due = time.monotonic_ns() + 5 * MS
        asyncio.run(clock.sleep_until(due))
        assert time.monotonic_ns() >= due
    clock.close()


def test_normal_priority_changes_nothing() -> None:
    before = os.sched_getscheduler(0)
    with dispatch_priority("normal") as priority:
        assert priority.applied == "normal" and not priority.realtime
        assert os.sched_getscheduler(0) == before


@pytest.mark.skipif(realtime_refused(), reason="this process may not take a real-time priority")
def test_realtime_is_the_dispatching_threads_alone_and_undone_after() -> None:
    before = os.sched_getscheduler(0)
    seen: dict[str, int] = {}
    with dispatch_priority("auto") as priority:
        assert priority.applied == "realtime"
        assert os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO
        started = threading.Thread(target=lambda: seen.update(policy=os.sched_getscheduler(0)))
        started.start()
        started.join()
    assert seen["policy"] == os.SCHED_OTHER  # a thread the loop starts is ordinary again
    assert os.sched_getscheduler(0) == before


class FakeScheduler:
    """os.sched_* for a thread that may take real-time: records the policy it is given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.policy = os.SCHED_OTHER
        monkeypatch.setattr(os, "sched_getscheduler", lambda pid: self.policy)
        monkeypatch.setattr(os, "sched_getparam", lambda pid: os.sched_param(0))
        monkeypatch.setattr(os, "sched_setscheduler", self.set)

    def set(self, pid: int, policy: int, param: os.sched_param) -> None:
        self.policy = policy & ~os.SCHED_RESET_ON_FORK


@pytest.mark.parametrize(
    ("work_ms", "polling_ms", "realtime_after"),
    [
        (5, 0, True),  # asleep nearly all the 50 ms: stays
        (30, 0, False),  # working 60 % of its core (> WORK_HIGH): down to normal
        (5, 25, True),  # 60 % of its core, but mostly polling before due times: stays
        (2, 46, False),  # never leaving the core (> CPU_HIGH), even if only polling: down
    ],
)
def test_priority_follows_the_threads_work_and_cpu(
    monkeypatch: pytest.MonkeyPatch, work_ms: int, polling_ms: int, realtime_after: bool
) -> None:
    scheduler = FakeScheduler(monkeypatch)
    clock = {"now": 0, "cpu": 0}
    priority = DispatchPriority("auto", lambda: clock["now"], lambda: clock["cpu"])
    priority.start()
    assert scheduler.policy == os.SCHED_FIFO and priority.realtime
    clock["now"] += 50 * MS  # one hand-over interval
    clock["cpu"] += (work_ms + polling_ms) * MS
    priority.check(spin_ns=polling_ms * MS)
    assert priority.realtime is realtime_after
    assert scheduler.policy == (os.SCHED_FIFO if realtime_after else os.SCHED_OTHER)
    if not realtime_after:
        clock["now"] += 50 * MS  # idle again (< WORK_LOW, < CPU_LOW): back up
        clock["cpu"] += 5 * MS
        priority.check(spin_ns=polling_ms * MS)
        assert scheduler.policy == os.SCHED_FIFO
        assert priority.realtime_ns == 50 * MS  # the stretch at normal is not counted
    priority.stop()
    assert scheduler.policy == os.SCHED_OTHER and priority.applied == "realtime"


def test_realtime_refused_is_named_with_the_fix_and_auto_runs_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    assert realtime_refused()
    with pytest.raises(ScenarioError) as caught:
        require_priority("realtime")
    message = str(caught.value)
    assert "client.priority" in message and "auto" in message and "ulimit -r" in message
    require_priority("auto")  # auto never refuses: it runs at normal priority
    with dispatch_priority("auto") as priority:
        assert priority.applied == "normal"
        priority.check(spin_ns=0)  # nothing to follow
        assert not priority.realtime
