"""``infbench sweep``: many runs of one scenario, each through ``run_scenario`` (so every target
is launched and stopped as in ``infbench run``), summarised in one sweep directory.

Three modes:

- rates (``--rates 5,10,20`` or ``5..80x2``): one phase run alone at each offered rate;
  a table and a plot of latency against offered load.
- find-max (``--find-max --slo 'p99<=200ms'``): the highest rate meeting the SLO, by
  bracketing and bisection (analysis/search.py), each level repeated until its verdict is
  confident or its run limit or the budget is reached; reported as an interval.
- grid (``--grid 'target.workers=1,2'``): every combination of settings, each compared with
  the first through ``compare.compare``.

The sweep directory holds one sub-directory per level (``rate-20/``, ``point-2/``) with the
ordinary result directories in it, and ``sweep.json`` (written after every level, so an
interrupted sweep keeps what it measured), ``summary.md`` and ``latency-vs-load.png``.
"""

from __future__ import annotations

import copy
import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rich.console import Console

from infbench import __version__
from infbench.analysis.metrics import metric_value
from infbench.analysis.search import (
    Estimate,
    LevelVerdict,
    SearchSettings,
    estimate_metric,
    judge,
    search_max,
)
from infbench.analysis.slo import Rule, parse_slo
from infbench.commands.sweep_plan import expand_grid, parse_rates, parse_slo_text
from infbench.compare.comparison import CompareSettings, Side, compare, with_seconds
from infbench.errors import GateFailed, Interrupted, UsageError
from infbench.report.cost_view import cost_at_capacity, cost_entry, print_cost
from infbench.report.sweep_views import (
    grid_rows,
    print_grid,
    print_levels,
    print_result,
    result_json,
    verdict_json,
    write_outputs,
)
from infbench.results.records import PhaseSummary, RunRecord
from infbench.results.rundir import load_run, new_run_dir
from infbench.scenario.model import (
    ClosedArrival,
    OnOffArrival,
    Phase,
    RampArrival,
    StepsArrival,
    TraceArrival,
)
from infbench.scenario.source import LoadedScenario, load_scenario

__all__ = ["Budget", "SweepOptions", "level_verdict", "phase_override", "run_sweep", "slo_rules"]

SWEEP_FORMAT_VERSION = 1


@dataclass(frozen=True)
class SweepOptions:
    rates: str | None = None
    find_max: bool = False
    grid: tuple[str, ...] = ()
    phase: str | None = None
    duration_s: float | None = None
    slo: str | None = None
    start: float | None = None
    max_rate: float | None = None
    precision: float = 0.10
    level_runs: int = 3
    budget_s: float | None = None
    max_runs: int | None = None
    repeat: int = 1
    seed: int = 1
    verbose: bool = False

    @property
    def mode(self) -> str:
        chosen = [m for m, on in (("rates", self.rates), ("find-max", self.find_max),
                                  ("grid", self.grid)) if on]  # fmt: skip
        if len(chosen) != 1:
            raise UsageError(
                "choose one mode: --rates LIST, --find-max or --grid KEY=V1,V2"
                + (f" (got {' and '.join(chosen)})" if chosen else "")
            )
        return chosen[0]


class Budget:
    """``--budget`` and ``--max-runs``: another run may start only if it can end in time,
    judged by the longest run so far."""

    def __init__(self, seconds: float | None, max_runs: int | None) -> None:
        self.seconds, self.max_runs = seconds, max_runs
        self.started = time.monotonic()
        self.runs = 0
        self.longest_s = 0.0

    def allows(self) -> bool:
        if self.max_runs is not None and self.runs >= self.max_runs:
            return False
        if self.seconds is None:
            return True
        return time.monotonic() - self.started + self.longest_s <= self.seconds

    def spent(self, seconds: float, runs: int = 1) -> None:
        self.runs += runs
        self.longest_s = max(self.longest_s, seconds)


@dataclass
class _Sweep:
    """Shared state of one sweep: where it writes, how it runs a level, what it has found."""

    loaded: LoadedScenario
    overrides: list[str]
    url: str | None
    options: SweepOptions
    console: Console
    directory: Path
    budget: Budget
    doc: dict[str, Any] = field(default_factory=dict)

    def run(self, level_dir: Path, extra: list[str], repeat: int = 1) -> RunRecord:
        """One ``infbench run`` into ``level_dir``; its full output only with --verbose."""
        from infbench.commands.run import (
            run_scenario,  # loads the engine and senders only when needed
        )

        quiet = Console(file=io.StringIO(), width=100)
        started = time.monotonic()
        run = run_scenario(
            self.loaded.path,
            level_dir,
            [*self.overrides, *extra],
            self.url,
            live=self.options.verbose,
            console=self.console if self.options.verbose else quiet,
            repeat=repeat,
        )
        self.budget.spent(time.monotonic() - started, repeat)
        if run.interrupted:
            self.save()
            raise Interrupted(f"interrupted; the sweep so far is in {self.directory}")
        return run

    def save(self) -> None:
        self.doc["runs"] = self.budget.runs
        self.doc["elapsed_s"] = round(time.monotonic() - self.budget.started, 3)
        write_outputs(self.directory, self.doc)


# --- which phase, and its rate set to a level --------------------------------------------------


def _phase_index(loaded: LoadedScenario, name: str | None) -> int:
    phases = loaded.scenario.workload.phases
    found = 0 if name is None else next((i for i, p in enumerate(phases) if p.name == name), None)
    if found is not None:
        return found
    names = ", ".join(p.name for p in phases)
    raise UsageError(f"--phase {name!r}: no such phase; the scenario has {names}")


def _check_rate_phase(phase: Phase) -> None:
    arrival = phase.arrival
    fixes = {
        RampArrival: "its rate changes over the phase; sweep `from`/`to` with --grid",
        StepsArrival: "its rate changes over the phase; sweep `rates` with --grid",
        TraceArrival: "its times come from a file; stretch them with --grid on `arrival.scale`",
        ClosedArrival: "a closed loop's rate follows the server; sweep the number of users "
        "with --grid 'workload.phases[N].arrival.concurrency=1,2,4'",
    }
    for kind, why in fixes.items():
        if isinstance(arrival, kind):
            raise UsageError(
                f"--phase {phase.name}: a {arrival.process} phase has no single arrival rate "
                f"to set: {why}",
                hint="rate sweeps and --find-max need a constant, poisson, gamma or onoff phase",
            )


def phase_override(
    loaded: LoadedScenario, index: int, rate: float, duration_s: float | None
) -> str:
    """``--set workload.phases=[...]``: the chosen phase alone, at ``rate`` requests/s.

    The other phases are left out (a level measures one rate), ``max_requests`` is dropped
    (a cap would cut a faster level short), and an on/off phase keeps its shape with both
    rates scaled. A warm-up without its own arrival follows the new rate by itself.
    """
    phase = loaded.scenario.workload.phases[index]
    _check_rate_phase(phase)
    stored = copy.deepcopy(loaded.stored["workload"]["phases"][index])
    arrival = stored["arrival"]
    if isinstance(phase.arrival, OnOffArrival):
        factor = rate / phase.arrival.mean_rate(0.0)
        arrival["rate_on"] = phase.arrival.rate_on * factor
        arrival["rate_off"] = phase.arrival.rate_off * factor
    else:
        arrival["rate"] = rate
    stored["max_requests"] = None
    if duration_s is not None:
        stored["duration"] = duration_s
    flow = yaml.safe_dump([stored], default_flow_style=True, width=10**9).strip()
    return f"workload.phases={flow}"


def level_entry(label: str, rate: float | None, run: RunRecord, phase: str) -> dict[str, Any]:
    """sweep.json's entry for one level: the phase's figures from the level's run."""
    entry = run.phase(phase) or PhaseSummary()
    return (
        {
            "label": label,
            "rate": rate,
            "phase": phase,
            "result_dir": run.result_dir,
            "offered_rps": entry.offered_rps,
            "achieved_rps": entry.achieved_rps,
            "p50_ms": entry.latency_ms.p50,
            "p90_ms": entry.latency_ms.p90,
            "p99_ms": entry.latency_ms.p99,
            "error_rate": entry.error_rate,
            "valid": run.valid,
            "invalid_reasons": list(run.invalid_reasons),
        }
        | _ttft_entry(entry)
        | cost_entry(entry)
    )


def _ttft_entry(entry: PhaseSummary) -> dict[str, Any]:
    """A streamed phase's TTFT (from the intended send), for the TTFT-vs-load panel."""
    ttft = entry.ttft_ms
    if ttft is None:
        return {}
    return {"ttft_p50_ms": ttft.p50, "ttft_p90_ms": ttft.p90, "ttft_p99_ms": ttft.p99}


def _run_dir(run: RunRecord) -> Path:
    return Path(run.result_dir or "")


def _rate_label(rate: float) -> str:
    return f"rate-{rate:.4g}"


# --- the three modes -----------------------------------------------------------------------------


def _rate_sweep(sweep: _Sweep, index: int, phase: str) -> None:
    rates = parse_rates(sweep.options.rates or "")
    levels: list[dict[str, Any]] = []
    sweep.doc["levels"] = levels
    for rate in rates:
        if not sweep.budget.allows():
            sweep.doc["stopped"] = f"budget spent after {len(levels)} of {len(rates)} levels"
            break
        override = phase_override(sweep.loaded, index, rate, sweep.options.duration_s)
        run = sweep.run(sweep.directory / _rate_label(rate), [override], sweep.options.repeat)
        levels.append(level_entry(_rate_label(rate), rate, run, phase))
        print_levels(sweep.console, levels[-1:], header=len(levels) == 1)
        sweep.save()


def slo_rules(options: SweepOptions, loaded: LoadedScenario) -> list[Rule]:
    """--slo, else the scenario's ``slo:`` block; one of them is needed. TTFT, TPOT and ITL
    rules need a streamed request (they would fail every level for want of data)."""
    rules = parse_slo_text(options.slo) if options.slo else parse_slo(loaded.scenario.slo)
    if not rules:
        raise UsageError(
            "--find-max needs an SLO: give --slo 'p99<=200ms,error_rate<=1%' or an `slo:` "
            "block in the scenario"
        )
    streamed = [r.metric for r in rules if r.metric.startswith(("ttft", "tpot", "itl"))]
    if streamed and not loaded.scenario.request.streams:
        raise UsageError(
            f"--find-max: the SLO on {', '.join(streamed)} needs streamed answers; "
            "request.api is http",
            hint="set request.api: openai-chat, openai-completions or text-stream",
        )
    return rules


def level_verdict(
    runs: list[RunRecord], phase: str, rules: list[Rule], rng: np.random.Generator
) -> LevelVerdict:
    """The SLO judged on every run of a level together (their seconds pooled)."""
    results = tuple(load_run(_run_dir(run)) for run in runs)
    seconds = with_seconds(Side(results[0], results)).seconds.get(phase)
    estimates = []
    for rule in rules:
        values = [v for run in runs if (p := run.phase(phase)) and
                  (v := metric_value(p, rule.metric)) is not None]  # fmt: skip
        point = statistics.median(values) if values else None
        if seconds is None:
            estimates.append(Estimate(rule.metric, None))
        else:
            estimates.append(estimate_metric(rule.metric, seconds, point, rng))
    return judge(rules, estimates)


def _probe(
    sweep: _Sweep, index: int, phase: str, rules: list[Rule]
) -> Callable[[float], LevelVerdict]:
    levels: list[dict[str, Any]] = sweep.doc["levels"]

    def probe(rate: float) -> LevelVerdict:
        override = phase_override(sweep.loaded, index, rate, sweep.options.duration_s)
        rng = np.random.default_rng([sweep.options.seed, len(levels)])
        runs: list[RunRecord] = []
        while True:
            runs.append(sweep.run(sweep.directory / _rate_label(rate), [override]))
            verdict = level_verdict(runs, phase, rules, rng)
            if verdict.confident or len(runs) >= sweep.options.level_runs:
                break
            if not sweep.budget.allows():
                break
        entry = level_entry(_rate_label(rate), rate, runs[-1], phase)
        entry["runs"] = [run.result_dir for run in runs]
        entry["verdict"] = verdict_json(verdict)
        levels.append(entry)
        print_levels(sweep.console, levels[-1:], header=len(levels) == 1, rules=rules)
        sweep.save()
        return verdict

    return probe


def _find_max(sweep: _Sweep, index: int, phase: str, rules: list[Rule]) -> None:
    declared = sweep.loaded.scenario.workload.phases[index].arrival.mean_rate(0.0)
    start = sweep.options.start or declared
    settings = SearchSettings(start, sweep.options.precision, sweep.options.max_rate)
    sweep.doc["slo"] = [{"metric": r.metric, "threshold": r.text, "value": r.threshold}
                        for r in rules]  # fmt: skip
    sweep.doc["levels"] = []
    result = search_max(_probe(sweep, index, phase, rules), settings, sweep.budget.allows)
    sweep.doc["result"] = result_json(result, settings.precision)
    sweep.doc["result"]["cost_at_capacity"] = cost_at_capacity(sweep.doc)
    sweep.save()
    print_result(sweep.console, sweep.doc)
    print_cost(sweep.console, sweep.doc)


def _grid(sweep: _Sweep) -> None:
    points = expand_grid(sweep.options.grid)
    entries: list[dict[str, Any]] = []
    sweep.doc["points"] = entries
    for number, point in enumerate(points, 1):
        if not sweep.budget.allows():
            sweep.doc["stopped"] = f"budget spent after {len(entries)} of {len(points)} points"
            break
        run = sweep.run(sweep.directory / f"point-{number}", point.overrides, sweep.options.repeat)
        entry = {"point": number, "settings": dict(point.settings), "label": point.label,
                 "result_dir": run.result_dir, "valid": run.valid,
                 "phases": [level_entry(point.label, None, run, p.name)
                            for p in run.phases]}  # fmt: skip
        if number > 1:
            settings = CompareSettings(seed=sweep.options.seed)
            comparison = compare(Path(entries[0]["result_dir"]), _run_dir(run), settings)
            entry["comparison"] = grid_rows(comparison)
        entries.append(entry)
        sweep.console.print(f"point {number}/{len(points)} done: {point.label}", highlight=False)
        sweep.save()
    print_grid(sweep.console, entries)


def run_sweep(
    scenario_path: Path,
    out_root: Path,
    overrides: list[str],
    url: str | None,
    options: SweepOptions,
    console: Console,
) -> dict[str, Any]:
    """Run the sweep; returns sweep.json's content. Raises GateFailed when --find-max found
    no rate that meets the SLO."""
    mode = options.mode
    loaded = load_scenario(scenario_path, overrides)  # a bad file or --set fails before any run
    index = _phase_index(loaded, options.phase)
    phase = loaded.scenario.workload.phases[index].name
    if mode != "grid":
        phase_override(loaded, index, 1.0, options.duration_s)  # refuse ramps etc. up front
    rules = slo_rules(options, loaded) if mode == "find-max" else []
    directory = new_run_dir(out_root, f"sweep-{loaded.scenario.name}")
    sweep = _Sweep(loaded, overrides, url, options, console, directory,
                   Budget(options.budget_s, options.max_runs))  # fmt: skip
    sweep.doc = {
        "format": "infbench-sweep",
        "format_version": SWEEP_FORMAT_VERSION,
        "infbench_version": __version__,
        "mode": mode,
        "scenario_path": str(loaded.path),
        "scenario_name": loaded.scenario.name,
        "overrides": overrides,
        "phase": phase if mode != "grid" else None,
        "started_utc": datetime.now(timezone.utc).isoformat(),
        "sweep_dir": str(directory),
    }
    console.print(f"sweep ({mode}) of {loaded.scenario.name} into {directory}", highlight=False)
    if mode == "rates":
        _rate_sweep(sweep, index, phase)
    elif mode == "find-max":
        _find_max(sweep, index, phase, rules)
    else:
        _grid(sweep)
    sweep.save()
    if mode == "find-max" and sweep.doc["result"]["max_rate"] is None:
        raise GateFailed(f"no tested rate met the SLO; see {directory / 'sweep.json'}")
    return sweep.doc
