"""Figures of conversation phases (DESIGN §5c, §8: ``sessions`` and ``turns``), read from the
raw rows after the run.

A session's turns carry request numbers ``session + turn·2⁴⁸`` (workload/conversations.py),
so ``requests.csv.gz`` names each row's session and turn index and the figures need no
field of their own in the stamps: per turn index, the requests, their TTFT (first content
chunk − intended) and mean input tokens; per phase, the sessions started, completed, cut by
the phase's end and failed.

A session's fate is read from its last row: an error (or drop) there failed it; an answer to
its last planned turn completed it; an answer to an earlier turn means the next one was due
after the phase ended: cut. ``planned(session)`` says how many turns a session has.

Percentiles are those of DESIGN §5 on the exact values: the value of rank ⌈p/100·N⌉.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from infbench.results.percentile import percentile_rank
from infbench.results.records import Percentiles, SessionCounts, TurnFigures
from infbench.results.rows import read_row_chunks

__all__ = ["TURN_SHIFT", "conversation_figures", "exact_percentiles"]

TURN_SHIFT = 48  # as workload/conversations.py numbers a session's turns
_COLUMNS = {
    "seq": "int64", "phase": "str", "intended_ns": "int64", "first_token_ns": "str",
    "error": "str", "input_tokens": "int64",
}  # fmt: skip


@dataclass
class _Phase:
    ttft_ms: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    tokens: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    requests: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    ok: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    last: dict[int, tuple[int, bool]] = field(default_factory=dict)  # session -> (turn, ok)

    def add(self, seq: int, first_token: str, error: str, intended: int, tokens: int) -> None:
        turn, session = seq >> TURN_SHIFT, seq & ((1 << TURN_SHIFT) - 1)
        self.requests[turn] += 1
        if not error:
            self.ok[turn] += 1
            self.tokens[turn].append(tokens)
            if first_token:
                self.ttft_ms[turn].append((int(first_token) - intended) / 1e6)
        if turn >= self.last.get(session, (-1, True))[0]:
            self.last[session] = (turn, not error)


def exact_percentiles(values: Iterable[float]) -> Percentiles | None:
    data = np.sort(np.fromiter(values, dtype=np.float64))
    if not len(data):
        return None

    def at(p: float) -> float:  # the reference definition's rank (DESIGN §5)
        return round(float(data[percentile_rank(p, len(data)) - 1]), 3)

    return Percentiles(
        at(50), at(90), at(95), at(99), at(99.9), round(float(data[-1]), 3),
        round(float(data.mean()), 3),
    )  # fmt: skip


def conversation_figures(
    rows_path: Path, planned: Callable[[int], int]
) -> dict[str, tuple[SessionCounts, tuple[TurnFigures, ...]]]:
    """Per phase name: its session counts and its figures per turn index (1-based)."""
    phases: dict[str, _Phase] = defaultdict(_Phase)
    for chunk in read_row_chunks(rows_path, _COLUMNS):
        columns = (chunk[c].tolist() for c in _COLUMNS)
        for seq, phase, intended, first, error, tokens in zip(*columns, strict=True):
            phases[phase].add(seq, first, error, intended, tokens)
    return {name: _figures(phase, planned) for name, phase in phases.items()}


def _figures(
    phase: _Phase, planned: Callable[[int], int]
) -> tuple[SessionCounts, tuple[TurnFigures, ...]]:
    completed = cut = failed = 0
    for session, (turn, ok) in phase.last.items():
        if not ok:
            failed += 1
        elif turn + 1 >= planned(session):
            completed += 1
        else:
            cut += 1
    counts = SessionCounts(len(phase.last), completed, cut, failed, sum(phase.requests.values()))
    turns = tuple(
        TurnFigures(
            turn + 1,
            phase.requests[turn],
            phase.ok[turn],
            exact_percentiles(phase.ttft_ms[turn]),
            round(float(np.mean(phase.tokens[turn])), 1) if phase.tokens[turn] else None,
        )
        for turn in sorted(phase.requests)
    )
    return counts, turns
