"""Loop lag (DESIGN §5): a 1 ms timer's lateness per phase, and the validity rule it feeds.

The probe runs on a real event loop that the test blocks on purpose (a 60 ms ``time.sleep``
inside a callback): one sample near 60 ms must appear, whatever else the shared machine does
(bounds far from the expected values). With a sender's read notice the timer slows down while
the loop reads nothing and comes back at the next read; the samples still number one per
millisecond the loop was free. The rule is checked on phase summaries built by hand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import numpy as np

from infbench.analysis.stats import loop_lag_limit_ms, validity
from infbench.load.loop_lag import SLOW_TICKS, LoopLagProbe
from infbench.recorder.stamps import LOOP_LAG, SEGMENT_METRICS, StampBuffer, read_gaps
from infbench.results.percentile import percentile_rank
from infbench.results.records import LagPercentiles, Percentiles, PhaseSummary
from infbench.senders.base import ReadNotice


class Sink:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def send_bytes(self, buf: object, offset: int, size: int) -> None:
        self.messages.append(bytes(memoryview(buf).cast("B")[offset : offset + size]))  # type: ignore[arg-type]


Segment = tuple[int, int, int, list[int]]  # phase, metric, at ns, values


class CountingProbe(LoopLagProbe):
    """The probe, counting the times its timer woke the loop."""

    wake_ups = 0

    def _fired(self) -> None:
        self.wake_ups += 1
        super()._fired()


async def probed(
    phase_ends_ns: list[int],
    work: Callable[[CountingProbe], Awaitable[None]],
    notice: ReadNotice | None = None,
) -> tuple[list[Segment], CountingProbe]:
    """The loop-lag segments of a probe running while ``work`` runs on the loop."""
    sink = Sink()
    stamps = StampBuffer(sink)
    start = time.monotonic_ns()
    probe = CountingProbe(stamps, [start + end for end in phase_ends_ns], notice)
    probe.start(asyncio.get_running_loop(), start)
    await work(probe)
    probe.stop()
    stamps.hand_over(time.monotonic_ns(), 0, 0, 0)
    segments = [s for message in sink.messages[1:] for s in read_gaps(message)]
    found = [(phase, metric, at, values.tolist()) for phase, metric, at, values in segments]
    return found, probe


async def blocked_for_60_ms(_: CountingProbe) -> None:
    await asyncio.sleep(0.05)
    time.sleep(0.06)  # the loop is blocked: the timer is served ~60 ms late
    await asyncio.sleep(0.05)


async def probe_a_blocked_loop(phase_ends_ns: list[int]) -> list[Segment]:
    return (await probed(phase_ends_ns, blocked_for_60_ms))[0]


def values_of(segments: list[Segment]) -> list[int]:
    return [v for _, _, _, values in segments for v in values]


def test_a_blocked_loop_shows_as_one_late_sample_in_its_phase() -> None:
    segments = asyncio.run(probe_a_blocked_loop([80_000_000, 10**12]))
    assert {metric for _, metric, _, _ in segments} == {LOOP_LAG}
    assert SEGMENT_METRICS[LOOP_LAG] == "loop_lag"
    by_phase: dict[int, list[int]] = {}
    for phase, _, _, values in segments:
        by_phase.setdefault(phase, []).extend(values)
    late = [v for values in by_phase.values() for v in values if v > 40_000_000]
    assert len(late) == 1 and late[0] < 1_000_000_000  # one sample for the whole block
    assert set(by_phase) <= {0, 1} and 0 in by_phase
    # the samples number about one per ms that the loop was free (not one per missed tick)
    total = sum(len(v) for v in by_phase.values())
    assert 5 <= total <= 200
    assert np.median([v for values in by_phase.values() for v in values]) < 40_000_000


def test_an_idle_loop_wakes_up_a_few_times_and_still_counts_every_millisecond() -> None:
    async def idle(_: CountingProbe) -> None:
        await asyncio.sleep(0.2)

    segments, probe = asyncio.run(probed([100_000_000, 10**12], idle, ReadNotice()))
    per_phase = [sum(len(v) for p, _, _, v in segments if p == phase) for phase in (0, 1)]
    # ~100 ticks in each phase, counted whether the timer woke the loop for them or not
    assert 60 <= per_phase[0] <= 110 and 60 <= per_phase[1] <= 120
    assert probe.wake_ups < sum(per_phase) / 3  # every 8 ms: ~25 wake-ups, not ~200
    assert max(values_of(segments)) < 40_000_000


def test_without_a_read_notice_the_timer_stays_at_1_ms() -> None:
    async def idle(_: CountingProbe) -> None:
        await asyncio.sleep(0.1)

    segments, probe = asyncio.run(probed([10**12], idle))
    assert probe.wake_ups >= 50 and len(values_of(segments)) == probe.wake_ups


def test_reads_bring_the_1_ms_ticks_back_and_a_stall_while_slow_is_seen() -> None:
    notice = ReadNotice()

    async def read_then_stall(probe: CountingProbe) -> None:
        await asyncio.sleep(0.05)  # idle: the timer is slow now
        assert notice.wanted
        before = probe.wake_ups
        for _ in range(40):  # a read every 0.5 ms for 20 ms or more
            if notice.wanted:
                notice.notify()
            await asyncio.sleep(0.0005)
        assert probe.wake_ups - before >= 12  # ~1 a millisecond; a slow timer: 3
        await asyncio.sleep(0.05)
        time.sleep(0.06)  # a stall while the timer is slow, by a callback that reads nothing
        await asyncio.sleep(0.03)

    segments, _ = asyncio.run(probed([10**12], read_then_stall, notice))
    late = [v for v in values_of(segments) if v > 20_000_000]
    assert len(late) == 1 and 60_000_000 - SLOW_TICKS * 1_000_000 <= late[0] < 1_000_000_000


def test_a_stall_that_ends_with_a_read_is_seen_by_the_read() -> None:
    notice = ReadNotice()

    async def stall_then_read(_: CountingProbe) -> None:
        await asyncio.sleep(0.05)  # idle: the timer is slow now
        time.sleep(0.03)  # a stall, then the read that was waiting in the socket
        notice.notify()
        await asyncio.sleep(0.02)

    segments, _ = asyncio.run(probed([10**12], stall_then_read, notice))
    late = [v for v in values_of(segments) if v > 10_000_000]
    assert len(late) == 1 and 30_000_000 - SLOW_TICKS * 1_000_000 <= late[0] < 1_000_000_000


def test_a_cpu_stall_shorter_than_a_slow_tick_is_seen_by_the_read_after_it() -> None:
    notice = ReadNotice()

    async def spin_then_read(_: CountingProbe) -> None:
        await asyncio.sleep(0.05)  # idle: the timer is slow now
        end = time.thread_time_ns() + 5_000_000
        while time.thread_time_ns() < end:  # 5 ms of CPU, perhaps between two slow ticks
            pass
        notice.notify()
        await asyncio.sleep(0.02)

    segments, _ = asyncio.run(probed([10**12], spin_then_read, notice))
    assert 4_000_000 <= max(values_of(segments)) < 1_000_000_000


def test_each_process_counts_its_own_p99_as_the_recorder_would() -> None:
    async def two_stalls(_: CountingProbe) -> None:
        for _ in range(2):
            await asyncio.sleep(0.02)
            time.sleep(0.03)
        await asyncio.sleep(0.02)

    segments, probe = asyncio.run(probed([10**12], two_stalls))
    values = sorted(values_of(segments))
    reference = values[percentile_rank(99.0, len(values)) - 1] / 1e6
    own = probe.p99_ms()[0]
    assert 20 <= reference < 1000 and reference <= own <= reference + 0.01  # to 10 µs


def summary(loop_p99: float | None, ttft_p50: float | None, latency_p50: float) -> PhaseSummary:
    return PhaseSummary(
        name="steady",
        latency_ms=Percentiles(p50=latency_p50),
        lag_ms=LagPercentiles(p50=0.01, p99=0.02, max=0.1),
        loop_lag_ms=None if loop_p99 is None else LagPercentiles(p50=0.05, p99=loop_p99, max=9.0),
        ttft_ms=None if ttft_p50 is None else Percentiles(p50=ttft_p50),
    )


def test_the_bound_follows_ttft_when_streamed_and_latency_otherwise() -> None:
    assert loop_lag_limit_ms(summary(0.1, 100.0, 700.0)) == 5.0  # 5 % of TTFT p50
    assert loop_lag_limit_ms(summary(0.1, None, 700.0)) == 35.0  # 5 % of latency p50
    assert loop_lag_limit_ms(summary(0.1, 4.0, 700.0)) == 1.0  # never under 1 ms


def test_a_late_reading_generator_makes_the_run_invalid_and_says_why() -> None:
    valid, reasons = validity([summary(4.9, 100.0, 700.0)], 40.0)
    assert valid and not reasons
    valid, reasons = validity([summary(5.1, 100.0, 700.0)], 40.0)
    assert not valid
    (reason,) = reasons
    assert "loop lag p99 5.100 ms exceeds 5.000 ms" in reason
    assert "read the answers late" in reason and "client.processes" in reason


def test_one_late_process_among_several_makes_the_run_invalid() -> None:
    phase = summary(0.5, 100.0, 700.0)  # merged over the processes: within 5 ms
    valid, reasons = validity([phase], 40.0, process_loop_lag={"steady": 7.5}, processes=4)
    assert not valid
    (reason,) = reasons
    assert "loop lag p99 7.500 ms in one of 4 generator processes exceeds 5.000 ms" in reason
    assert "all merged: 0.500 ms" in reason and "client.processes" in reason
    assert validity([phase], 40.0, process_loop_lag={"steady": 4.0}, processes=4) == (True, [])


def test_a_run_without_loop_lag_is_judged_as_before() -> None:
    assert validity([summary(None, 100.0, 700.0)], 40.0) == (True, [])
