"""``infbench run``: the whole story of one run, in the order of the DESIGN diagram."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from infbench.analysis.slo import parse_slo
from infbench.commands.calibrate import warn_if_over_capacity
from infbench.commands.repeat import aggregate_repetitions
from infbench.load.priority import require_priority
from infbench.observe.observer import Observer
from infbench.observe.setup import observer_setup
from infbench.report.console import LiveView, WaitView, print_run
from infbench.report.html import write_run_html_quietly
from infbench.report.resilience_view import print_resilience
from infbench.results.records import RunRecord
from infbench.results.rundir import ResultDir, free_space_warning, new_run_dir
from infbench.run.measure import execute, slo_verdicts
from infbench.scenario.source import LoadedScenario, load_scenario
from infbench.schedule.arrivals import Schedule, build_schedule
from infbench.targets.cleanup import clean_leftovers
from infbench.targets.factory import open_target
from infbench.targets.faults import check_faults
from infbench.targets.pidfile import PID_FILE
from infbench.workload.sources import check_requests

__all__ = ["run_scenario"]


def run_scenario(
    scenario_path: Path,
    out_root: Path,
    overrides: list[str],
    url: str | None,
    *,
    live: bool,
    console: Console,
    repeat: int = 1,
    wait_console: Console | None = None,
) -> RunRecord:
    """Load scenario, build schedule, start target, run engine, save results, render report.

    ``wait_console`` shows what a readiness wait is waiting for (stderr in the CLI; None: quiet).
    """
    loaded = load_scenario(scenario_path, overrides)
    parse_slo(loaded.scenario.slo)  # a bad SLO fails now, before any load is sent
    schedule = build_schedule(loaded.scenario.workload, loaded.base_dir)
    scenario = loaded.scenario
    check_requests(scenario.request, loaded.base_dir, scenario.workload.seed, schedule)
    warn_if_over_capacity(loaded.scenario, schedule, console)
    check_faults(loaded.scenario, schedule, url)
    require_priority(loaded.scenario.client.priority)
    for leftover in clean_leftovers(out_root):  # servers of an infbench that was SIGKILLed
        console.print(f"cleanup: {leftover.describe()}", style="yellow", markup=False)
    run_dir = new_run_dir(out_root, loaded.scenario.name)
    warnings = _disk_warnings(out_root, schedule, repeat, console)
    waiting = WaitView(wait_console)
    if repeat == 1:
        run = _measure(loaded, schedule, ResultDir(run_dir), url, live, console, waiting, warnings)
    else:
        run = _repeat(loaded, schedule, run_dir, url, live, console, waiting, repeat, warnings)
    print_run(console, run, slo_verdicts(run))
    print_resilience(console, run)
    write_run_html_quietly(run_dir, console)
    return run


def _measure(
    loaded: LoadedScenario,
    schedule: Schedule,
    results: ResultDir,
    url: str | None,
    live: bool,
    console: Console,
    waiting: WaitView,
    warnings: list[str],
) -> RunRecord:
    """One run with a freshly started target, stopped again whatever happens."""
    log, pid_file = results.file("server.log"), results.file(PID_FILE)
    spec = loaded.scenario.target
    seed = loaded.scenario.workload.seed
    target = open_target(
        spec, loaded.base_dir, log, url, pid_file, progress=waiting.update, seed=seed
    )
    try:
        with waiting:
            info = target.start()
        snapshots = results.file("server_metrics")
        snapshots.mkdir(exist_ok=True)
        observing = observer_setup(loaded.scenario, info.base_url, info.metrics_url)
        observer = Observer(
            target.process_pids, observing.metrics_url, snapshots, probes=observing.probes
        )
        with LiveView(console, schedule.total_duration_s, enabled=live) as view:
            return execute(
                loaded,
                schedule,
                results,
                info,
                observer,
                view.update,
                supervisor=target.supervisor,
                events=target.events,
                warnings=[*warnings, *observing.warnings],
            )
    finally:
        target.stop()


def _repeat(
    loaded: LoadedScenario,
    schedule: Schedule,
    run_dir: Path,
    url: str | None,
    live: bool,
    console: Console,
    waiting: WaitView,
    repeat: int,
    warnings: list[str],
) -> RunRecord:
    """N independent runs (the target restarted for each) in run-1 .. run-N, then an aggregate."""
    runs = []
    for index in range(1, repeat + 1):
        child = run_dir / f"run-{index}"
        child.mkdir()
        console.print(f"[bold]repetition {index}/{repeat}[/]")
        runs.append(
            _measure(loaded, schedule, ResultDir(child), url, live, console, waiting, warnings)
        )
        if runs[-1].interrupted:
            break
    return aggregate_repetitions(ResultDir(run_dir), runs, loaded.scenario.slo)


def _disk_warnings(root: Path, schedule: Schedule, repeat: int, console: Console) -> list[str]:
    requests = repeat * sum(plan.scheduled for plan in schedule.phases)
    warning = free_space_warning(root, requests)
    if warning is None:
        return []
    console.print(f"warning: {warning}", style="yellow", markup=False)
    return [warning]
