"""The recorder fed in this process, batch by batch, as its process would be (for tests)."""

from __future__ import annotations

from pathlib import Path

from infbench.load.engine import EngineReport
from infbench.recorder.recorder import IntervalStats, Recorder, SourceMark
from infbench.recorder.stamps import StampArray, StampBuffer, read_batch, read_gaps


class InlineRecorder:
    """A ``BatchSink`` that records each batch at once; ``stamps`` feeds it."""

    def __init__(self, phases: list[str], highest_us: int, out_dir: Path) -> None:
        self.recorder = Recorder(phases, highest_us, out_dir)
        self.stamps = StampBuffer(self)
        self._waiting: tuple[tuple[int, ...], StampArray] | None = None
        self.intervals: list[IntervalStats] = []

    def start(self, t0_ns: int, start_epoch_s: float) -> None:
        self.recorder.start(t0_ns, start_epoch_s)

    def send_bytes(self, buf: bytes | bytearray | memoryview, offset: int, size: int) -> None:
        data = bytes(buf[offset : offset + size])
        if self._waiting is not None:  # the gaps message that follows its batch
            header, stamps = self._waiting
            self._waiting = None
            self.recorder.add(stamps, read_gaps(data))
            self.recorder.mark(0, SourceMark(*header[:4]))
            return
        header, stamps = read_batch(data)
        if header[4]:
            self._waiting = (header, stamps)
            return
        self.recorder.add(stamps)
        self.recorder.mark(0, SourceMark(*header[:4]))
        self.intervals += self.recorder.ready_seconds()

    def finish(self, report: EngineReport) -> None:
        self.intervals += self.recorder.finish(report.end_ns)
        for tally, sent in zip(self.recorder.tallies, report.sent_by_phase, strict=True):
            tally.sent = sent
        self.recorder.close()
