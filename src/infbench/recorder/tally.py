"""A phase's tally and the one merge of tallies (STYLE 14: one type, one merge).

Three paths combine tallies: the Ray driver adds its actors' (each recorded its share on its own
host), ``run --repeat`` adds its repetitions', and every tally crosses a pipe or Ray's object
store on the way. All of them go through ``PhaseTally.merge`` and its wire form, which are driven
by the fields' declared kinds, as HdrHistogram's ``add`` and pyperf's ``add_runs`` are: a count,
a histogram or a per-second figure added once to the type is merged, shipped and read back
everywhere, and no path keeps a field list of its own to fall behind.

Kinds: ``SUM`` (an integer or a Counter: added), ``SECONDS`` (a Counter keyed by the second of
the run: added per second, so a peak is taken from the merged seconds, never summed per part),
and the histograms (added bucket by bucket, exact). The name, ceiling and ``streamed`` say what
the tally is of.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from hdrh.histogram import HdrHistogram

from infbench.recorder.hdr import new_histogram

__all__ = ["METRICS", "STREAM_METRICS", "PhaseTally"]

# loop_lag: the lateness of each generator's 1 ms timer (load/loop_lag.py), not per request.
METRICS = ("latency", "service", "lag", "ttfb", "failed", "loop_lag")
# Streamed answers (DESIGN §5b) add: TTFT from the intended time and from the send, TPOT, ITL.
STREAM_METRICS = ("ttft", "ttft_sent", "tpot", "itl")

_KIND = "merge"
SUM: dict[str, str] = {_KIND: "sum"}
SECONDS: dict[str, str] = {_KIND: "seconds"}


@dataclass
class PhaseTally:
    """Counts and histograms of one phase; what the phase summary is computed from."""

    name: str
    highest_us: int
    streamed: bool = False
    sent: int = field(default=0, metadata=SUM)
    completed: int = field(default=0, metadata=SUM)
    ok: int = field(default=0, metadata=SUM)
    ok_within_slo: int = field(default=0, metadata=SUM)
    dropped: int = field(default=0, metadata=SUM)
    out_of_range: int = field(default=0, metadata=SUM)
    bytes_in: int = field(default=0, metadata=SUM)
    bytes_out: int = field(default=0, metadata=SUM)
    errors: Counter[str] = field(default_factory=Counter, metadata=SUM)
    statuses: Counter[int] = field(default_factory=Counter, metadata=SUM)
    input_tokens: int = field(default=0, metadata=SUM)
    output_tokens: int = field(default=0, metadata=SUM)
    # the sum of every answer's service time: concurrency by Little's law
    service_ns: int = field(default=0, metadata=SUM)
    token_sources: Counter[str] = field(default_factory=Counter, metadata=SUM)
    # the token audit (DESIGN §5b), over ok answers counted by the server's usage and a local
    # tokenizer both: how many, their usage sum and the sum of |usage − tokenizer| per answer
    audited_answers: int = field(default=0, metadata=SUM)
    audited_usage_tokens: int = field(default=0, metadata=SUM)
    audited_token_difference: int = field(default=0, metadata=SUM)
    # output tokens completed in each second of the run (seconds from its start)
    output_tokens_by_second: Counter[int] = field(default_factory=Counter, metadata=SECONDS)
    histograms: dict[str, HdrHistogram] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for metric in METRICS + (STREAM_METRICS if self.streamed else ()):
            self.histograms.setdefault(metric, new_histogram(self.highest_us))

    @property
    def peak_output_tokens_per_s(self) -> int:
        """The most output tokens completed within one second."""
        return max(self.output_tokens_by_second.values(), default=0)

    def merge(self, other: PhaseTally, *, after_s: int = 0) -> None:
        """Add ``other`` into this tally. ``after_s`` places other's seconds that far after
        this one's start: 0 for parts of one run (processes, actors), the length of the runs
        before it for a repetition, whose seconds follow theirs instead of overlapping them."""
        self.streamed |= other.streamed
        for f in fields(self):
            kind = f.metadata.get(_KIND)
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if kind == "sum" and isinstance(mine, Counter):
                mine.update(theirs)
            elif kind == "sum":
                setattr(self, f.name, mine + theirs)
            elif kind == "seconds":
                mine.update({second + after_s: n for second, n in theirs.items()})
        for metric, hist in other.histograms.items():
            self.histograms.setdefault(metric, new_histogram(self.highest_us)).add(hist)

    @classmethod
    def merged(cls, parts: Iterable[PhaseTally], *, after_s: Iterable[int] = ()) -> PhaseTally:
        """One tally of several (``after_s``: each part's offset, see ``merge``)."""
        tallies = list(parts)
        offsets = list(after_s) or [0] * len(tallies)
        first = tallies[0]
        total = cls(first.name, first.highest_us, streamed=first.streamed)
        for part, offset in zip(tallies, offsets, strict=True):
            total.merge(part, after_s=offset)
        return total

    def to_wire(self) -> dict[str, Any]:
        """Plain data for a pipe or a Ray object: Counters as dicts, histograms encoded."""
        wire: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            wire[f.name] = dict(value) if isinstance(value, Counter) else value
        wire["histograms"] = {m: h.encode().decode("ascii") for m, h in self.histograms.items()}
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> PhaseTally:
        tally = cls(wire["name"], wire["highest_us"], streamed=wire["streamed"])
        for f in fields(cls):
            if f.metadata.get(_KIND):
                mine = getattr(tally, f.name)
                value = Counter(wire[f.name]) if isinstance(mine, Counter) else wire[f.name]
                setattr(tally, f.name, value)
        for metric, encoded in wire["histograms"].items():
            tally.histograms.setdefault(metric, new_histogram(tally.highest_us))
            tally.histograms[metric].add(HdrHistogram.decode(encoded))
        return tally
