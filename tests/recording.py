"""The recorder fed in this process, batch by batch, as its process would be (for tests)."""

from __future__ import annotations

from pathlib import Path

from infbench.load.engine import EngineReport
from infbench.recorder.recorder import IntervalStats, Recorder, SourceMark
from infbench.recorder.stamps import StampBuffer, read_batch


class InlineRecorder:
    """A ``BatchSink`` that records each batch at once; ``stamps`` feeds it."""

    def __init__(self, phases: list[str], highest_us: int, out_dir: Path) -> None:
        self.recorder = Recorder(phases, highest_us, out_dir)
        self.stamps = StampBuffer(self)
        self.intervals: list[IntervalStats] = []

    def start(self, t0_ns: int, start_epoch_s: float) -> None:
        self.recorder.start(t0_ns, start_epoch_s)

    def send_bytes(self, buf: bytes | bytearray | memoryview, offset: int, size: int) -> None:
        header, stamps = read_batch(bytes(buf[offset : offset + size]))
        self.recorder.add(stamps)
        self.recorder.mark(0, SourceMark(*header))
        self.intervals += self.recorder.ready_seconds()

    def finish(self, report: EngineReport) -> None:
        self.intervals += self.recorder.finish(report.end_ns)
        for tally, sent in zip(self.recorder.tallies, report.sent_by_phase, strict=True):
            tally.sent = sent
        self.recorder.close()
