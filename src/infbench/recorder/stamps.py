"""The event loop's side of recording: fixed-width stamps in a preallocated buffer.

Per request the loop packs seventeen integers (``wire.STAMP``) into a bytearray: no object per
request, no formatting, no histogram. Every ≤ 50 ms, and whenever the buffer is full, the filled
part goes to the recorder process in one pipe write, headed by the generator's clock and
running totals (``wire.BATCH_HEADER``). The recorder reads a batch as a numpy record array.
"""

from __future__ import annotations

import contextlib
import fcntl
from array import array
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Protocol

import numpy as np
import numpy.typing as npt

from infbench.wire import BATCH_HEADER, STAMP, STAMP_FIELDS

__all__ = [
    "ITL",
    "ITL_TOKEN",
    "LOOP_LAG",
    "SEGMENT_METRICS",
    "STAMP_DTYPE",
    "BatchSink",
    "PipeSink",
    "StampArray",
    "StampBuffer",
    "read_batch",
    "read_gaps",
]

# What a segment of values handed over beside the stamps is of (its index is on the wire).
SEGMENT_METRICS = ("itl", "loop_lag", "itl_token")
ITL, LOOP_LAG, ITL_TOKEN = range(3)
STAMP_DTYPE = np.dtype([(name, "<i8") for name in STAMP_FIELDS])
StampArray = npt.NDArray[np.void]
CAPACITY = 16_384  # stamps per batch at most: 1.3 MB, a third of a second at 50k requests/s
_PIPE_BYTES = 1 << 20  # Linux pipes hold 64 KiB by default; a batch should never wait on one
_F_SETPIPE_SZ = 1031


class BatchSink(Protocol):
    """Where full batches go: a pipe to the recorder process, or a list in tests."""

    def send_bytes(
        self, buf: bytes | bytearray | memoryview | array[int], offset: int, size: int
    ) -> None: ...


class StampBuffer:
    """Stamps of the requests completed since the last hand-over."""

    def __init__(self, sink: BatchSink, capacity: int = CAPACITY) -> None:
        self._sink = sink
        self._capacity = capacity
        self._buffer = bytearray(BATCH_HEADER.size + capacity * STAMP.size)
        self._count = 0
        self._pack = STAMP.pack_into
        # Segments: phase, metric, at (ns), count, then the values (ns): ITL gaps per answer,
        # loop-lag samples per hand-over.
        self._gaps = array("q")

    def add(
        self,
        seq: int,
        phase: int,
        intended_ns: int,
        sent_ns: int,
        first_byte_ns: int,
        done_ns: int,
        status: int,
        error: int,
        bytes_out: int,
        bytes_in: int,
        stream: tuple[int, int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0, -1),
    ) -> bool:
        """Write one stamp (``stream``: first and last token, chunks, input and output tokens,
        their source, the tokenizer's count beside usage or -1); True when the buffer is full
        and must be handed over now."""
        offset = BATCH_HEADER.size + self._count * STAMP.size
        self._pack(
            self._buffer, offset, seq, phase, intended_ns, sent_ns, first_byte_ns, done_ns,
            status, error, bytes_out, bytes_in, *stream,
        )  # fmt: skip
        self._count += 1
        return self._count == self._capacity

    def add_gaps(self, phase: int, done_ns: int, gaps: Sequence[int]) -> None:
        """The gaps between a streamed answer's content chunks, for the ITL histogram."""
        self.add_segment(phase, done_ns, gaps, ITL)

    def add_segment(self, phase: int, at_ns: int, values: Sequence[int], metric: int) -> None:
        """Values (ns) of one of ``SEGMENT_METRICS`` for a phase, placed in the second of
        ``at_ns``: ITL gaps, loop-lag samples, gaps per token."""
        self._gaps.extend((phase, metric, at_ns, len(values)))
        self._gaps.extend(values)

    def hand_over(self, now_ns: int, offered: int, sent: int, in_flight: int) -> None:
        """Send the stamps so far with the generator's totals (then the gaps, if any, as a
        message of their own); the buffers are reused."""
        gaps = self._gaps
        BATCH_HEADER.pack_into(self._buffer, 0, now_ns, offered, sent, in_flight, len(gaps))
        self._sink.send_bytes(self._buffer, 0, BATCH_HEADER.size + self._count * STAMP.size)
        self._count = 0
        if gaps:
            self._sink.send_bytes(gaps, 0, len(gaps) * gaps.itemsize)
            del gaps[:]


def read_batch(data: bytes) -> tuple[tuple[int, int, int, int, int], StampArray]:
    """A hand-over's header (now, offered, sent, in flight, gap words) and its stamps."""
    header: tuple[int, int, int, int, int] = BATCH_HEADER.unpack_from(data)
    stamps: StampArray = np.frombuffer(data, dtype=STAMP_DTYPE, offset=BATCH_HEADER.size)
    return header, stamps


def read_gaps(data: bytes) -> list[tuple[int, int, int, npt.NDArray[np.int64]]]:
    """The segments message of a hand-over: (phase, metric, at ns, values) per segment."""
    words = np.frombuffer(data, dtype="<i8")
    segments = []
    at = 0
    while at < words.size:
        phase, metric, at_ns, count = (int(w) for w in words[at : at + 4])
        segments.append((phase, metric, at_ns, words[at + 4 : at + 4 + count]))
        at += 4 + count
    return segments


class PipeSink:
    """The write end of a pipe to the recorder process, widened so a batch fits at once."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        with contextlib.suppress(OSError):  # not Linux, or above pipe-max-size: default size
            fcntl.fcntl(connection.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)

    def send_bytes(
        self, buf: bytes | bytearray | memoryview | array[int], offset: int, size: int
    ) -> None:
        self._connection.send_bytes(buf, offset, size)
