"""What the load stage takes and what it gives back: one ``LoadJob`` in, one ``LoadResult`` out.

Every way of generating the load (this process, generator processes, Ray actors) takes the same
job and returns the same result, so the run never asks which way it went.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infbench.load.engine import EngineHooks, EngineReport
from infbench.recorder.tally import PhaseTally
from infbench.results.records import GeneratorSummary
from infbench.scenario.source import LoadedScenario
from infbench.schedule.arrivals import Schedule

__all__ = ["LoadJob", "LoadResult", "merge_generators"]


@dataclass(frozen=True)
class LoadJob:
    """The load of one run, or of one generator's share of it: the scenario, the schedule to
    send, the result folder, the target's base URL and the caller's hooks."""

    loaded: LoadedScenario
    schedule: Schedule
    out_dir: Path
    base_url: str
    hooks: EngineHooks = field(default_factory=EngineHooks)

    def __reduce__(self) -> tuple[Any, ...]:
        # The hooks call back into the process that made the job: a generator process or a
        # Ray actor gets the job without them (its seconds reach the caller another way).
        return (LoadJob, (self.loaded, self.schedule, self.out_dir, self.base_url))


@dataclass
class LoadResult:
    """What the load stage produced: the phase tallies, the engine's report (merged over the
    generators), the generator's own figures, and what a reader of the run should be told."""

    tallies: list[PhaseTally]
    report: EngineReport
    generator: GeneratorSummary
    warnings: tuple[str, ...] = ()


def merge_generators(
    parts: Sequence[GeneratorSummary], *, side_by_side: bool = True
) -> GeneratorSummary:
    """The figures of several generators in one. Side by side (processes, Ray actors): the
    busiest one's CPU (validity asks whether any fell behind), their memory and times added,
    each one's own figures kept in ``per_process``. One after the other (the repetitions of
    ``run --repeat``): each figure at its highest (did the generator keep up every time)."""
    cpu = max(part.cpu_pct or 0.0 for part in parts)
    busy = max(part.busy_cpu_pct or 0.0 for part in parts)
    rss = [part.rss_mb or 0.0 for part in parts]
    loop_lag = _worst_per_phase([part.loop_lag_p99_ms or {} for part in parts])
    if not side_by_side:
        return GeneratorSummary(
            cpu, busy, rss_mb=max(rss), processes=parts[0].processes, loop_lag_p99_ms=loop_lag
        )
    return GeneratorSummary(
        cpu_pct=cpu,
        busy_cpu_pct=busy,
        spin_s=round(sum(part.spin_s or 0.0 for part in parts), 3),
        rss_mb=round(sum(rss), 1),
        processes=len(parts),
        per_process=tuple(part.to_json() for part in parts),
        sender=parts[0].sender,
        priority=min(part.priority or "normal" for part in parts),  # "normal" if any had to
        realtime_s=round(sum(part.realtime_s or 0.0 for part in parts), 3),
        loop_lag_p99_ms=loop_lag,
    )


def _worst_per_phase(figures: Sequence[Mapping[str, float]]) -> dict[str, float] | None:
    """Per phase, the highest of the generators' figures (None when none had any)."""
    worst: dict[str, float] = {}
    for figure in figures:
        for phase, value in figure.items():
            worst[phase] = max(worst.get(phase, value), value)
    return worst or None
