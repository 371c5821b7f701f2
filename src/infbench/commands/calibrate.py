"""``infbench calibrate``: how fast this machine can generate load, per sender (DESIGN §6, §12).

A load generator that cannot keep up measures itself, not the server. Calibration runs short
open-loop constant-rate levels through the real engine (``load.run_local``: sender, recorder,
raw rows and all) against the loopback sink (``sink.py``, its own process) and searches for the
highest rate a level passes at: send lag p99 ≤ 1 ms, every arrival completed, no error, no drop.
The search is the one of ``sweep --find-max`` (``analysis/search.py``): double from
``start_rate`` until a level fails (halve while none has passed), then bisect until the bracket
is within ``precision`` or the sender's time budget is spent. A level that fails by a little
lag only (p99 ≤ 5 ms, everything completed) is run once more before it counts: on a shared
machine a moment's preemption looks the same, while a generator that cannot keep up falls
behind by far more. CPU per request comes from one closed-loop level first (``connections``
workers, no waiting between requests, hence no spin-waiting): this process's CPU time over the
requests.

The result is saved as JSON in a per-user cache (``$INFBENCH_CALIBRATION``, else
``$XDG_CACHE_HOME/infbench/calibration.json``, else ``~/.cache/infbench/calibration.json``), and
``infbench run`` warns before it starts when a scenario's peak rate is above the capacity of its
sender × processes (``warn_if_over_capacity``). Without a calibration file nothing happens.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from infbench.analysis.search import LevelVerdict, SearchSettings, search_max
from infbench.errors import UsageError
from infbench.figure_format import format_figure
from infbench.scenario.model import Scenario
from infbench.schedule.arrivals import Schedule
from infbench.schedule.peak import peak_rate

if TYPE_CHECKING:
    from infbench.recorder.tally import PhaseTally

__all__ = [
    "CALIBRATION_ENV",
    "CalibrationSettings",
    "Level",
    "calibration_path",
    "capacity_warning",
    "load_calibration",
    "run_calibration",
    "search_capacity",
    "warn_if_over_capacity",
]

CALIBRATION_ENV = "INFBENCH_CALIBRATION"
FORMAT_VERSION = 1  # v1: senders{name: capacity_rps, lag_p99_ms, closed_loop_rps,
#                            cpu_us_per_request, stopped_by, levels[]}
LAG_LIMIT_MS = 1.0
MARGINAL_LAG_FACTOR = 5.0  # a level failed by lag p99 up to 5 ms is tried twice
SENDER_NAMES = ("aiohttp", "httpx", "fast")


@dataclass(frozen=True)
class CalibrationSettings:
    senders: tuple[str, ...] = SENDER_NAMES
    level_s: float = 3.0  # measured seconds per rate level
    warmup_s: float = 0.5  # before each level, at its rate (connections opened, caches warm)
    budget_s: float = 60.0  # search time per sender; the level under way always finishes
    connections: int = 64
    start_rate: float = 1000.0
    min_rate: float = 250.0  # below this the machine is too busy to calibrate
    min_arrivals: int = 500  # a level lasts long enough for p99 to be the 5th-worst lag
    max_rate: float = 500_000.0
    precision: float = 0.05  # stop bisecting once the lowest failure is within 5 % of the best
    timeout_s: float = 1.0  # request timeout: a sink answers in microseconds

    @classmethod
    def quick(cls) -> CalibrationSettings:
        """A rough figure in ~10 s per sender, for CI."""
        return cls(level_s=1.0, warmup_s=0.2, budget_s=10.0, precision=0.25, min_arrivals=300)


@dataclass(frozen=True)
class Level:
    """One constant-rate level and whether the generator kept up with it."""

    rate: float
    passed: bool
    scheduled: int
    completed: int
    failed: int  # errors and dropped arrivals
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    cpu_pct: float  # this process's CPU, % of one core (spin-waiting included)
    wall_s: float
    reason: str = ""


# --- the capacity search, probing with one level ---------------------------------------------


class _Budget:
    """``budget_s`` per sender: a level starts only if one as long as the last still fits."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.seconds, self.clock = seconds, clock
        self.started = clock()
        self.last_s = 0.0

    def allows(self) -> bool:
        return self.clock() - self.started + self.last_s <= self.seconds

    def timed(self, measure: Callable[[float], Level], rate: float) -> Level:
        start = self.clock()
        level = measure(rate)
        self.last_s = self.clock() - start
        return level


def search_capacity(
    measure: Callable[[float], Level],
    settings: CalibrationSettings,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[list[Level], str]:
    """Bracket, then bisect (``search_max``, in whole requests per second, trying
    ``max_rate`` and ``min_rate`` themselves); returns every level run and what ended the
    search (``precision``, ``budget``, ``ceiling`` or ``floor``). A marginal failure
    (``_marginal``) is measured once more when the budget allows, and the second counts."""
    levels: list[Level] = []
    budget = _Budget(settings.budget_s, clock)

    def probe(rate: float) -> LevelVerdict:
        levels.append(budget.timed(measure, rate))
        if _marginal(levels[-1]) and budget.allows():
            levels.append(budget.timed(measure, rate))  # a moment's stall looks the same: again
        return LevelVerdict(levels[-1].passed, confident=True, reason=levels[-1].reason)

    limits = (settings.max_rate, settings.min_rate)
    search = SearchSettings(
        settings.start_rate, settings.precision, *limits, try_limits=True, bisect="whole"
    )
    return levels, search_max(probe, search, budget.allows).stopped


def _marginal(level: Level) -> bool:
    """Failed by lag alone, and by little: a generator that cannot keep up falls behind by
    far more (its lag grows for the whole level), so this one is measured again."""
    lag = level.lag_p99_ms
    return (
        not level.passed
        and level.failed == 0
        and level.completed == level.scheduled
        and (lag is not None and lag <= MARGINAL_LAG_FACTOR * LAG_LIMIT_MS)
    )


# --- one level through the real engine -------------------------------------------------------


def _level_scenario(
    sender: str, arrival: dict[str, Any], url: str, s: CalibrationSettings
) -> dict[str, Any]:
    rate = arrival.get("rate")
    duration = max(s.level_s, s.min_arrivals / rate) if rate else s.level_s
    return {
        "version": 1,
        "name": f"calibrate-{sender}",
        "target": {"kind": "url", "url": url},
        "request": {"method": "GET", "path": "/", "timeout": s.timeout_s},
        "client": {"sender": sender, "connections": s.connections},
        "workload": {
            "seed": 1,
            "warmup": {"duration": s.warmup_s},
            "phases": [{"name": "level", "duration": duration, "arrival": arrival}],
        },
    }


@dataclass(frozen=True)
class _Ran:
    tally: PhaseTally  # the measured phase
    scheduled: int
    completed: int  # warm-up included
    cpu_s: float  # this process's CPU time over the whole run, warm-up included
    wall_s: float


def _run_level(sender: str, arrival: dict[str, Any], url: str, s: CalibrationSettings) -> _Ran:
    """Warm-up, then ``level_s`` of ``arrival``, through ``load.run_local`` in this process."""
    import psutil

    from infbench.load.job import LoadJob
    from infbench.load.local import run_local
    from infbench.scenario.source import LoadedScenario
    from infbench.schedule.arrivals import build_schedule

    data = _level_scenario(sender, arrival, url, s)
    scenario = Scenario.model_validate(data)
    with tempfile.TemporaryDirectory(prefix="infbench-calibrate-") as work:
        base = Path(work)
        loaded = LoadedScenario(scenario, base / "calibrate.yaml", base, data, "")
        schedule = build_schedule(scenario.workload, base)
        me, started = psutil.Process(), time.monotonic()
        before = me.cpu_times()
        result = run_local(LoadJob(loaded, schedule, base, url))
        after = me.cpu_times()
    if result.report.interrupted:
        raise KeyboardInterrupt
    return _Ran(
        tally=result.tallies[-1],
        scheduled=schedule.phases[-1].scheduled,
        completed=sum(t.completed for t in result.tallies),
        cpu_s=(after.user - before.user) + (after.system - before.system),
        wall_s=time.monotonic() - started,
    )


def _judge(tally: PhaseTally, scheduled: int, lag_p99: float | None) -> str:
    failed = sum(tally.errors.values()) + tally.dropped
    if tally.completed < scheduled:
        return f"{scheduled - tally.completed} of {scheduled} arrivals not completed"
    if failed:
        return f"{failed} requests failed ({', '.join(sorted(tally.errors)) or 'dropped'})"
    if lag_p99 is None or lag_p99 > LAG_LIMIT_MS:
        return f"lag p99 {lag_p99} ms > {LAG_LIMIT_MS:g} ms"
    return ""


def measure_level(sender: str, rate: float, url: str, settings: CalibrationSettings) -> Level:
    """One open-loop level at a constant ``rate``."""
    from infbench.analysis.stats import histogram_summary

    ran = _run_level(sender, {"process": "constant", "rate": rate}, url, settings)
    tally = ran.tally
    lag = histogram_summary(tally.histograms["lag"], ("p50", "p99"))
    reason = _judge(tally, ran.scheduled, lag["p99"])
    return Level(
        rate=rate,
        passed=not reason,
        scheduled=ran.scheduled,
        completed=tally.completed,
        failed=sum(tally.errors.values()) + tally.dropped,
        lag_p50_ms=lag["p50"],
        lag_p99_ms=lag["p99"],
        cpu_pct=round(100 * ran.cpu_s / ran.wall_s, 1),
        wall_s=round(ran.wall_s, 3),
        reason=reason,
    )


def measure_cpu(sender: str, url: str, settings: CalibrationSettings) -> dict[str, Any]:
    """Closed loop at ``connections`` workers: req/s and CPU per request with no waiting in
    between, so no spin-waiting either (open loop busy-waits before each due time)."""
    closed = {"process": "closed", "concurrency": settings.connections}
    ran = _run_level(sender, closed, url, settings)
    done = ran.completed
    return {
        "closed_loop_rps": round(ran.tally.completed / settings.level_s),
        "cpu_us_per_request": round(1e6 * ran.cpu_s / done, 1) if done else None,
    }


# --- the command -------------------------------------------------------------------------------


def calibration_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the calibration lives: $INFBENCH_CALIBRATION, else the per-user cache."""
    env = os.environ if env is None else env
    if env.get(CALIBRATION_ENV):
        return Path(env[CALIBRATION_ENV]).expanduser()
    cache = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(cache) / "infbench" / "calibration.json"


def _settings(
    quick: bool, senders: list[str], budget_s: float | None, level_s: float | None, connections: int
) -> CalibrationSettings:
    unknown = [name for name in senders if name not in SENDER_NAMES]
    if unknown:
        choices = ", ".join(SENDER_NAMES)
        raise UsageError(f"--sender {unknown[0]!r}: not a sender; choose one of: {choices}")
    settings = CalibrationSettings.quick() if quick else CalibrationSettings()
    settings = replace(settings, connections=connections)
    if senders:
        settings = replace(settings, senders=tuple(dict.fromkeys(senders)))
    if budget_s is not None:
        settings = replace(settings, budget_s=budget_s)
    if level_s is not None:
        settings = replace(settings, level_s=level_s, warmup_s=min(settings.warmup_s, level_s))
    return settings


def _sender_entry(levels: list[Level], stopped_by: str, cpu: dict[str, Any]) -> dict[str, Any]:
    best = max((lv for lv in levels if lv.passed), key=lambda lv: lv.rate, default=None)
    return {
        "capacity_rps": best.rate if best else None,
        "lag_p99_ms": best.lag_p99_ms if best else None,
        **cpu,
        "stopped_by": stopped_by,
        "levels": [asdict(level) for level in levels],
    }


def _save(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def _show_level(console: Console, sender: str, level: Level) -> None:
    verdict = "[green]kept up[/]" if level.passed else f"[red]fell behind[/] ({level.reason})"
    lag = format_figure(level.lag_p99_ms, "ms")
    console.print(f"  {sender:8} {level.rate:>9,.0f}/s  lag p99 {lag:>10}  {verdict}")


def print_calibration(console: Console, document: dict[str, Any]) -> None:
    from infbench.report.tables import fit, new_grid

    machine = document["machine"]
    title = f"generator capacity on {machine['cpu_model']} ({machine['cores']} cores)"
    columns = ("sender", "capacity/s", "lag p99", "closed loop/s", "CPU/req", "levels")
    grid = new_grid(title, columns)
    for name, entry in document["senders"].items():
        capacity, cpu_us = entry["capacity_rps"], entry["cpu_us_per_request"]
        grid.add_row(
            name,
            format_figure(capacity, "count") if capacity else "none passed",
            format_figure(entry["lag_p99_ms"], "ms"),
            format_figure(entry["closed_loop_rps"], "count"),
            format_figure(None if cpu_us is None else cpu_us / 1000, "ms"),
            f"{len(entry['levels'])} ({entry['stopped_by']})",
        )
    for table in fit(console, grid):
        console.print(table)


def run_calibration(
    console: Console,
    *,
    output: Path | None = None,
    quick: bool = False,
    senders: list[str] | None = None,
    budget_s: float | None = None,
    level_s: float | None = None,
    connections: int = 64,
) -> dict[str, Any]:
    """Measure each sender against a loopback sink, save the result, print the table."""
    from infbench.load.loopback_server import Sink
    from infbench.results.rundir import environment_record

    settings = _settings(quick, senders or [], budget_s, level_s, connections)
    path = output or calibration_path()
    results: dict[str, Any] = {}
    console.print(f"calibrating {', '.join(settings.senders)} against a loopback sink …")
    with Sink() as sink:
        for sender in settings.senders:

            def measure(rate: float, sender: str = sender) -> Level:
                level = measure_level(sender, rate, sink.url, settings)
                _show_level(console, sender, level)
                return level

            cpu = measure_cpu(sender, sink.url, settings)
            levels, stopped_by = search_capacity(measure, settings)
            results[sender] = _sender_entry(levels, stopped_by, cpu)
    environment = environment_record(Path.cwd()).to_json()
    environment.pop("git_sha", None)
    document = {
        "format_version": FORMAT_VERSION,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": environment,
        "settings": {**asdict(settings), "quick": quick, "lag_limit_ms": LAG_LIMIT_MS},
        "senders": results,
    }
    _save(path, document)
    print_calibration(console, document)
    console.print(f"saved to {path}", style="dim", markup=False, highlight=False)
    return document


# --- the warning in `infbench run` -------------------------------------------------------------


def load_calibration(path: Path) -> dict[str, Any] | None:
    """The saved calibration, or None when there is none; ValueError when it is unreadable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"not a version {FORMAT_VERSION} calibration file")
    return document


def capacity_warning(
    scenario: Scenario, schedule: Schedule, calibration: dict[str, Any]
) -> str | None:
    """The warning text when the scenario's peak rate is above the calibrated capacity."""
    from infbench.load.processes import resolve_processes
    from infbench.senders import resolve_sender

    target_url = getattr(scenario.target, "url", None) or "http://"  # launched: plain HTTP
    sender = resolve_sender(scenario.client.sender, target_url, scenario.client.http2)
    entry = calibration.get("senders", {}).get(sender) or {}
    per_process = entry.get("capacity_rps")
    peak = peak_rate(scenario.workload, schedule)
    if not per_process or peak is None:
        return None
    processes = resolve_processes(scenario.client.processes)
    capacity = float(per_process) * min(processes, os.cpu_count() or 1)
    if peak <= capacity:
        return None
    plural = "es" if processes != 1 else ""
    fix = "client.sender: fast, " if sender != "fast" else ""
    return (
        f"the scenario's peak rate {peak:,.0f}/s is above the calibrated capacity of the "
        f"{sender} sender on this machine: {capacity:,.0f}/s ({float(per_process):,.0f}/s per "
        f"process × {processes} process{plural}, lag p99 < {LAG_LIMIT_MS:g} ms, calibrated "
        f"{calibration.get('created_utc', '?')}). The generator will likely fall behind and the "
        f"run be invalid; use {fix}more client.processes, or a lower rate. "
        "Run `infbench calibrate` again if this machine has changed."
    )


def warn_if_over_capacity(
    scenario: Scenario, schedule: Schedule, console: Console, path: Path | None = None
) -> str | None:
    """Print a yellow warning before a run that asks more than the generator can give."""
    where = path or calibration_path()
    try:
        calibration = load_calibration(where)
    except ValueError as exc:
        console.print(
            f"[yellow]warning:[/] ignoring calibration file {escape(str(where))}: "
            f"{escape(str(exc))} (run `infbench calibrate` to write it again)",
            highlight=False,
        )
        return None
    message = capacity_warning(scenario, schedule, calibration) if calibration else None
    if message:
        console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)
    return message
