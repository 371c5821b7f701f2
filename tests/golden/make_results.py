"""Synthetic result directories for compare's tests, golden files and timing.

Real v1 directories — run.json from ``stats.phase_summary``, latency.hlog from the recorder's
``IntervalLogWriter`` — built from seeded random latencies instead of a server, so they are
small, exact and reproducible. ``python tests/golden/make_results.py`` rewrites the golden
directories (tests/golden/base, cand, cand-slow, rep-base, rep-cand).
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from infbench.analysis.stats import PhaseInfo, phase_summary
from infbench.recorder.hdr import new_histogram
from infbench.recorder.tally import PhaseTally
from infbench.results.hlog import IntervalLogWriter, bucket_layout

HIGHEST_US = 25_000_000
ENVIRONMENT = {
    "host": "synthetic",
    "os": "Linux",
    "cpu_model": "Synthetic CPU",
    "cores": 4,
    "python": "3.11.7",
    "infbench": "0.1.0",
    "versions": {"aiohttp": "3.9.5", "numpy": "2.0.0"},
    "git_sha": None,
}


@dataclass(frozen=True)
class PhaseSpec:
    """Lognormal latencies around ``median_ms`` at ``rate`` per second for ``seconds``."""

    name: str
    seconds: int
    rate: float
    median_ms: float
    sigma: float = 0.25
    error_rate: float = 0.0


def fill(hist: HdrHistogram, values_us: np.ndarray) -> None:
    """Record many values at once (hdrh's record_value is one Python call per value)."""
    grid = bucket_layout(1, hist.highest_trackable_value, hist.significant_figures)
    values = np.clip(np.asarray(values_us, dtype=np.int64), 0, hist.highest_trackable_value)
    index = np.searchsorted(grid.lows, values, side="right") - 1
    counts = np.ctypeslib.as_array(hist.counts)
    counts += np.bincount(index, minlength=len(counts)).astype(counts.dtype)
    used = np.flatnonzero(counts)
    if len(used):
        hist.set_internal_tacking_values(int(used[0]), int(used[-1]), int(counts.sum()))


def _second(spec: PhaseSpec, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    latency = spec.median_ms * 1000 * np.exp(spec.sigma * rng.standard_normal(n))
    failed = rng.random(n) < spec.error_rate
    return {
        "latency": latency[~failed],
        "service": latency[~failed] * 0.97,
        "failed": latency[failed],
    }


def _record_phase(
    spec: PhaseSpec,
    arrivals: np.ndarray,
    rng: np.random.Generator,
    writer: IntervalLogWriter,
    start: int,
) -> dict[str, Any]:
    tally = PhaseTally(spec.name, HIGHEST_US)
    for second, n in enumerate(arrivals):
        values = _second(spec, int(n), rng)
        for metric, data in values.items():
            hist = new_histogram(HIGHEST_US)
            fill(hist, data)
            if hist.get_total_count():
                writer.write(f"{spec.name}/{metric}", start + second, 1.0, hist)
                tally.histograms[metric].add(hist)
        ok, errors = len(values["latency"]), len(values["failed"])
        tally.completed += ok + errors
        tally.sent += ok + errors
        tally.ok += ok
        tally.ok_within_slo += ok
        tally.errors["http_5xx"] += errors
        tally.statuses[200] += ok
    info = PhaseInfo(spec.name, "poisson", float(spec.seconds), tally.completed)
    return phase_summary(tally, info).to_json()


def run_data(phases: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format_version": 1,
        "status": "complete",
        "valid": True,
        "invalid_reasons": [],
        "scenario": {"name": "synthetic", "slo": {}},
        "scenario_sha256": "a" * 64,
        "schedule_sha256": "b" * 64,
        "seed": 1,
        "environment": ENVIRONMENT,
        "phases": phases,
        "server": None,
        "warnings": [],
    }
    data.update(extra)
    return data


def write_run(
    path: Path, specs: list[PhaseSpec], seed: int, schedule_seed: int = 0, **extra: Any
) -> dict[str, Any]:
    """A plain result directory; ``extra`` overrides run.json keys.

    Arrivals per second come from ``schedule_seed`` (like a scenario's seed, the same in both
    runs of an A/A pair); latencies and errors from ``seed`` (what varies from run to run).
    """
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    buffer = io.StringIO()
    writer = IntervalLogWriter(buffer, 1_700_000_000.0)
    phases, start = [], 0
    for index, spec in enumerate(specs):
        arrivals = np.random.default_rng([schedule_seed, index]).poisson(spec.rate, spec.seconds)
        phases.append(_record_phase(spec, arrivals, rng, writer, start))
        start += spec.seconds
    (path / "latency.hlog").write_text(buffer.getvalue(), encoding="ascii")
    data = run_data(phases, **extra)
    (path / "run.json").write_text(json.dumps(data, indent=1) + "\n")
    return data


def write_repeated(
    path: Path, specs: list[PhaseSpec], seeds: list[int], scale: list[float] | None = None
) -> None:
    """A ``run --repeat`` directory: run-1..run-N inside, each optionally slowed by ``scale``.

    Its top-level phases are the last run's (compare reads the runs; a real aggregate merges).
    """
    names = []
    for i, seed in enumerate(seeds):
        factor = scale[i] if scale else 1.0
        slowed = [replace(s, median_ms=s.median_ms * factor) for s in specs]
        names.append(f"run-{i + 1}")
        last = write_run(path / names[-1], slowed, seed)
    data = run_data(last["phases"], repetitions=names)
    (path / "run.json").write_text(json.dumps(data, indent=1) + "\n")


GOLDEN = Path(__file__).parent
GOLDEN_SPECS = [
    PhaseSpec("steady", 8, 140, 20.0, sigma=0.15, error_rate=0.002),
    PhaseSpec("bursty", 8, 60, 24.0, sigma=0.3, error_rate=0.01),
]


def make_golden(root: Path = GOLDEN) -> None:
    """The checked-in directories; a few kilobytes each."""
    write_run(root / "base", GOLDEN_SPECS, seed=1)
    write_run(root / "cand", GOLDEN_SPECS, seed=2)
    slow = [replace(s, median_ms=s.median_ms * 1.25) for s in GOLDEN_SPECS]
    write_run(root / "cand-slow", slow, seed=3)
    short = [PhaseSpec("steady", 5, 30, 20.0, sigma=0.1)]
    write_repeated(root / "rep-base", short, seeds=[11, 12, 13, 14])
    write_repeated(root / "rep-cand", short, seeds=[21, 22, 23, 24], scale=[1.15] * 4)


if __name__ == "__main__":
    make_golden(Path(sys.argv[1]) if len(sys.argv) > 1 else GOLDEN)
