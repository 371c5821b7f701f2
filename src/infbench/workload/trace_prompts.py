"""Prompts sized by a trace (``request.prompts.from_trace``, DESIGN §5c).

Arrival n of a trace phase sends a prompt of its row's input length L and asks for its
output length. The prompt is made of blocks of B = ``block_tokens`` words:

    prompt = block(h_1) + block(h_2) + … + block(h_m) + own words,

one block per hash id h_i of the row while words are still due (the last one cut to what is
left of L), then the row's own words for the rest of L. block(h) is B words drawn from a
generator seeded by (seed, h): two rows whose hash ids agree on their first k ids open with
the same k blocks, byte for byte, so a prefix cache hits as it did in production; different
ids give different words. A row's own words are seeded by (seed, its file line), so the same
file and seed send the same prompts whatever the window. A word of the vocabulary is about
one token (``prompts.py``), so L words are about L tokens; the server's usage says exactly.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from infbench.errors import InputError
from infbench.scenario.request import Request
from infbench.schedule.arrivals import Schedule
from infbench.schedule.traces import TraceRows
from infbench.wire import PreparedRequest
from infbench.workload.prompts import random_words

__all__ = ["TraceRequests", "trace_prompt", "trace_rows"]

_STREAM = 0x7B_ACE5  # mixed into the seed so trace prompts share no stream with arrivals
_BLOCK, _OWN = 0, 1
_MAX_WORDS = 20_000_000  # every prompt is rendered before the run: a bound on its memory


class _Blocks:
    """block(h) for each hash id, drawn once and kept (rows share their prefixes)."""

    def __init__(self, seed: int, block_tokens: int) -> None:
        self.seed, self.size = seed, block_tokens
        self._made: dict[int, str] = {}

    def words(self, hash_id: int, n: int) -> str:
        block = self._made.get(hash_id)
        if block is None:
            rng = np.random.default_rng([self.seed, _STREAM, _BLOCK, hash_id % 2**64])
            block = self._made[hash_id] = random_words(rng, self.size)
        return block if n >= self.size else " ".join(block.split(" ", n)[:n])


def trace_prompt(
    blocks: _Blocks, hash_ids: Sequence[int], length: int, line: int, seed: int
) -> str:
    """The prompt of one row: its blocks, then its own words, ``length`` words in all."""
    parts, left = [], length
    for hash_id in hash_ids:
        if left <= 0:
            break
        parts.append(blocks.words(hash_id, min(blocks.size, left)))
        left -= blocks.size
    if left > 0:
        parts.append(random_words(np.random.default_rng([seed, _STREAM, _OWN, line]), left))
    return " ".join(parts)


def trace_rows(rows: TraceRows, request: Request, seed: int) -> list[dict[str, Any]]:
    """One row of placeholders per trace row: ``prompt``/``text``, ``input_tokens`` and,
    where the trace gives one (> 0), ``max_tokens``."""
    assert request.prompts is not None and request.prompts.from_trace is not None
    blocks = _Blocks(seed, request.prompts.from_trace.block_tokens)
    if int(np.maximum(rows.inputs, 0).sum()) > _MAX_WORDS:
        raise InputError(
            f"{rows.path}: the replayed rows hold over {_MAX_WORDS:,} prompt tokens in all",
            hint="replay a slice: set `arrival.window` (and `start`), or `max_requests`",
        )
    out = []
    for i, line in enumerate(rows.lines.tolist()):
        length, output = int(rows.inputs[i]), int(rows.outputs[i])
        if length < 0:
            raise _no_length(rows, line, "input", "the prompt's length")
        if output <= 0 and request.max_tokens is None:
            raise _no_length(rows, line, "output", "max_tokens")
        text = trace_prompt(blocks, rows.hash_ids[i], length, line, seed)
        row: dict[str, Any] = {"prompt": text, "text": text, "input_tokens": length}
        if output > 0:
            row["max_tokens"] = output
        out.append(row)
    return out


def _no_length(rows: TraceRows, line: int, which: str, needed: str) -> InputError:
    fix = f"give every row its {which} length (`arrival.columns.{which}` names the column)" + (
        ", or set request.max_tokens for rows without one" if which == "output" else ""
    )
    what = f"this row has no {which} length, which from_trace needs for {needed}"
    return InputError(f"{rows.path}:{line}: {what}", hint=fix)


Render = Callable[[dict[str, Any], int], PreparedRequest]


class TraceRequests:
    """Request ``seq`` of trace phase p is the rendering of the phase's row ``seq - base_p``;
    phases without a trace (a warm-up, a closed loop) cycle through the first trace's rows."""

    def __init__(self, bases: list[int], rendered: list[list[PreparedRequest] | None]) -> None:
        fallback = next((r for r in rendered if r), None)
        if fallback is None:
            raise InputError(
                "request.prompts.from_trace sizes prompts by a trace, but no phase replays one",
                hint="give a phase `arrival: {process: trace, ...}`, or use prompts.synthetic",
            )
        self._bases = bases
        self._rendered = [r or fallback for r in rendered]

    @classmethod
    def build(
        cls, schedule: Schedule, bases: list[int], request: Request, seed: int, render: Render
    ) -> TraceRequests:
        rendered: list[list[PreparedRequest] | None] = []
        for plan in schedule.phases:
            if plan.trace is None or not len(plan.trace):
                rendered.append(None)
                continue
            rows = trace_rows(plan.trace, request, seed)
            rendered.append([render(row, i) for i, row in enumerate(rows)])
        return cls(bases, rendered)

    def __len__(self) -> int:
        return sum(len(r) for r in self._rendered)

    def request(self, seq: int) -> PreparedRequest:
        phase = bisect_right(self._bases, seq) - 1
        rendered = self._rendered[phase]
        return rendered[(seq - self._bases[phase]) % len(rendered)]
