"""Loop lag (DESIGN §5): a 1 ms timer's lateness per phase, and the validity rule it feeds.

The probe runs on a real event loop that the test blocks on purpose (a 60 ms ``time.sleep``
inside a callback): one sample near 60 ms must appear, whatever else the shared machine does
(bounds far from the expected values). The rule is checked on phase summaries built by hand.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from infbench.analysis.stats import loop_lag_limit_ms, validity
from infbench.load.loop_lag import LoopLagProbe
from infbench.recorder.stamps import LOOP_LAG, SEGMENT_METRICS, StampBuffer, read_gaps
from infbench.results.records import LagPercentiles, Percentiles, PhaseSummary


class Sink:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def send_bytes(self, buf: object, offset: int, size: int) -> None:
        self.messages.append(bytes(memoryview(buf).cast("B")[offset : offset + size]))  # type: ignore[arg-type]


async def probe_a_blocked_loop(phase_ends_ns: list[int]) -> list[tuple[int, int, int, list[int]]]:
    sink = Sink()
    stamps = StampBuffer(sink)
    start = time.monotonic_ns()
    probe = LoopLagProbe(stamps, [start + end for end in phase_ends_ns])
    probe.start(asyncio.get_running_loop(), start)
    await asyncio.sleep(0.05)
    time.sleep(0.06)  # the loop is blocked: the timer is served ~60 ms late
    await asyncio.sleep(0.05)
    probe.stop()
    stamps.hand_over(time.monotonic_ns(), 0, 0, 0)
    segments = [s for message in sink.messages[1:] for s in read_gaps(message)]
    return [(phase, metric, at, values.tolist()) for phase, metric, at, values in segments]


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


def test_a_run_without_loop_lag_is_judged_as_before() -> None:
    assert validity([summary(None, 100.0, 700.0)], 40.0) == (True, [])
