"""Output tokens per second of a streamed run, read back from ``requests.csv.gz`` (DESIGN §5b).

Each row carries its answer's output tokens (the usage chunk's count, else the local one), so
the rows are the one honest source: ``latency.hlog`` counts TTFT and TPOT per *answer* and ITL
per *gap between content chunks* (a chunk may carry several tokens), never tokens. A row counts
in the second its answer ended (``done_ns``), failed answers included, which is how the recorder
sums a phase's ``output_tokens`` and finds its ``peak_output_tps``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from infbench.results.rows import read_row_chunks

__all__ = ["OutputTokens", "by_second", "read_output_tokens"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class OutputTokens:
    """Output tokens per second of completion, one row per phase (warm-up included)."""

    seconds: IntArray
    by_phase: Mapping[str, IntArray]  # phase -> tokens in each of ``seconds``


def read_output_tokens(path: Path) -> OutputTokens:
    """Sum each phase's output tokens by second of ``done_ns``. Read in chunks: memory stays
    flat; a damaged file raises ResultFormatError naming it."""
    sums: dict[tuple[int, str], int] = {}
    columns = {"phase": "str", "done_ns": "int64", "output_tokens": "int64"}
    for chunk in read_row_chunks(path, columns):
        _add(chunk, sums)
    return OutputTokens(*by_second(sums))


def by_second(counts: Mapping[tuple[int, str], int]) -> tuple[IntArray, dict[str, IntArray]]:
    """Counts keyed by (second, name) as one row per name over every second from the first to
    the last (zeros between)."""
    if not counts:
        return np.zeros(0, dtype=np.int64), {}
    first = min(s for s, _ in counts)
    seconds = np.arange(first, max(s for s, _ in counts) + 1, dtype=np.int64)
    rows: dict[str, IntArray] = {}
    for (second, name), n in sorted(counts.items()):
        row = rows.setdefault(name, np.zeros(len(seconds), dtype=np.int64))
        row[second - first] += n
    return seconds, rows


def _add(chunk: Any, sums: dict[tuple[int, str], int]) -> None:
    seconds = chunk["done_ns"] // 1_000_000_000
    grouped = chunk["output_tokens"].groupby([seconds, chunk["phase"]]).sum()
    for (second, phase), tokens in grouped.items():
        key = (int(second), str(phase))
        sums[key] = sums.get(key, 0) + int(tokens)
