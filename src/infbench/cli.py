"""The infbench command line. Each command parses, calls library functions, maps errors to exit
codes (DESIGN §11); the logic lives in the modules it calls."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

from infbench import __version__
from infbench.errors import GateFailed, InfbenchError, Interrupted, InvalidRun

if TYPE_CHECKING:
    from infbench.results.records import RunRecord

app = typer.Typer(
    name="infbench",
    help="Benchmark AI inference servers under steady, bursty and ramp traffic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}

ScenarioPath = Annotated[
    Path, typer.Argument(help="Scenario file (YAML, version 1).", show_default=False)
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a key: --set workload.phases[0].arrival.rate=100."),
]
OutOption = Annotated[Path, typer.Option("--out", help="Results root directory.")]
UrlOption = Annotated[
    str | None, typer.Option("--url", help="Attach to this running server instead.")
]


def _console(stderr: bool = False) -> Console:
    """The console of one command, made when it runs so that it takes the width then.

    ``soft_wrap``: rich never breaks a line it prints, so an error, a warning, a path or a
    command stays on one line for the user to copy; tables still fit the terminal.
    """
    return Console(stderr=stderr, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        _console().print(f"infbench {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    _state["debug"] = debug


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM outside the measured window: unwind like Ctrl-C so the target is stopped."""
    raise KeyboardInterrupt


def _fail(exc: InfbenchError) -> typer.Exit:
    """Print the error (as plain text: a message may hold brackets) and give its exit code."""
    errors = _console(stderr=True)
    if _state["debug"]:
        errors.print_exception()
    errors.print(Text.assemble(("error:", "bold red"), f" {exc}"), highlight=False)
    return typer.Exit(exc.exit_code)


@app.command()
def run(
    scenario: ScenarioPath,
    out: OutOption = Path("results"),
    set_: SetOption = None,
    url: UrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print run.json to stdout.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 4 when the run is invalid.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live display.")] = False,
    repeat: Annotated[
        int,
        typer.Option(
            "--repeat",
            min=1,
            max=100,
            help="N runs (target restarted each time) into one directory.",
        ),
    ] = 1,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Generate the load on Ray: a cluster address (auto, ray://host:10001), "
            "or local to start Ray on this machine.",
        ),
    ] = None,
) -> None:
    """Run a scenario: start the target, drive the load, write a result directory."""
    from infbench.commands.run import run_scenario

    overrides = (set_ or []) + (["client.engine=ray", f"client.ray.address={ray}"] if ray else [])

    signal.signal(signal.SIGTERM, _terminate)
    try:
        run = run_scenario(
            scenario,
            out,
            overrides,
            url,
            live=not (quiet or as_json),
            repeat=repeat,
            console=_console(stderr=as_json),
            wait_console=None if (quiet or as_json) else _console(stderr=True),
        )
    except InfbenchError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        raise _fail(
            Interrupted("interrupted before the load started; the target was stopped")
        ) from None
    if as_json:
        sys.stdout.write(json.dumps(run.to_json(), indent=2, default=str) + "\n")
    _check_run(run, strict)


def _check_run(run: RunRecord, strict: bool) -> None:
    """A finished run can still fail: interrupted, an SLO broken, or invalid under --strict."""
    from infbench.run.measure import slo_verdicts

    if run.status == "failed":  # the recorder was lost: what it wrote is kept
        raise _fail(InvalidRun(f"{run.invalid_reasons[0]}; results in {run.result_dir}"))
    if run.interrupted:
        raise _fail(Interrupted(f"interrupted; partial results kept in {run.result_dir}"))
    failed = [r for r in slo_verdicts(run) if not r.passed]
    if failed:
        raise _fail(GateFailed("; ".join(r.message for r in failed)))
    if strict and not run.valid:
        raise _fail(InvalidRun("invalid run: " + "; ".join(run.invalid_reasons)))


@app.command()
def validate(scenario: ScenarioPath, set_: SetOption = None) -> None:
    """Check a scenario file and preview each phase's request count and rate."""
    from infbench.commands.validate import validate_scenario

    try:
        validate_scenario(scenario, set_ or [], _console())
    except InfbenchError as exc:
        raise _fail(exc) from None


@app.command()
def schema() -> None:
    """Print the scenario file's JSON schema (for editors and CI linting)."""
    from infbench.commands.schema import scenario_schema

    sys.stdout.write(json.dumps(scenario_schema(), indent=2) + "\n")


@app.command()
def compare(
    base: Annotated[Path, typer.Argument(help="Baseline result directory.", show_default=False)],
    candidate: Annotated[
        Path, typer.Argument(help="Candidate result directory.", show_default=False)
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, markdown or json.")] = "table",
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="Gate rule, repeatable: p99=+10% (relative), error_rate=0.5% (absolute), "
            "achieved_rps=-5%.",
        ),
    ] = None,
    gate_file: Annotated[
        Path | None, typer.Option("--gate", help="YAML file of gate rules.")
    ] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write an HTML report here.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 1,
) -> None:
    """Compare two result directories with statistics; exit 1 when a gate rule fails."""
    from infbench.commands.compare import run_compare

    try:
        run_compare(
            base,
            candidate,
            fmt=fmt,
            fail_on=fail_on or [],
            gate_file=gate_file,
            junit=junit,
            html=html,
            seed=seed,
            console=_console(),
        )
    except InfbenchError as exc:
        raise _fail(exc) from None


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run's result directory.", show_default=False)],
    open_: Annotated[bool, typer.Option("--open", help="Open it in a web browser.")] = False,
) -> None:
    """Render a run's report.html again (one self-contained file, plots inline)."""
    from infbench.commands.report import render_report

    try:
        render_report(run_dir, _console(), open_browser=open_)
    except InfbenchError as exc:
        raise _fail(exc) from None


@app.command()
def show(
    run_dir: Annotated[
        Path,
        typer.Argument(help="A run, `run --repeat` or sweep result directory.", show_default=False),
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, md or json.")] = "table",
) -> None:
    """Print a finished run's tables again (also a --repeat aggregate or a sweep)."""
    from infbench.commands.show import show_results

    try:
        show_results(run_dir, fmt, _console())
    except InfbenchError as exc:
        raise _fail(exc) from None


@app.command()
def calibrate(
    quick: Annotated[
        bool, typer.Option("--quick", help="Short levels, ~10 s per sender: a rough figure (CI).")
    ] = False,
    sender: Annotated[
        list[str] | None,
        typer.Option("--sender", help="Calibrate only this sender (repeatable)."),
    ] = None,
    budget: Annotated[
        float | None,
        typer.Option("--budget", min=0, help="Seconds of search per sender (60; 10 quick)."),
    ] = None,
    level: Annotated[
        float | None,
        typer.Option("--level", min=0.1, help="Seconds per rate level (3; 1 quick)."),
    ] = None,
    connections: Annotated[
        int, typer.Option("--connections", min=1, help="Connections per sender.")
    ] = 64,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the calibration here (default: $INFBENCH_CALIBRATION, else "
            "$XDG_CACHE_HOME/infbench/calibration.json).",
        ),
    ] = None,
) -> None:
    """Measure this machine's load-generation capacity per sender; `run` warns above it."""
    from infbench.commands.calibrate import run_calibration

    try:
        run_calibration(
            _console(),
            output=output,
            quick=quick,
            senders=sender or [],
            budget_s=budget,
            level_s=level,
            connections=connections,
        )
    except InfbenchError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        raise _fail(Interrupted("calibration interrupted; nothing was saved")) from None


@app.command()
def cleanup(
    root: Annotated[
        Path, typer.Argument(help="Results root to search (as given to run --out).")
    ] = Path("results"),
) -> None:
    """Stop servers left running by an infbench that was killed (found by their pid files)."""
    from infbench.commands.cleanup import run_cleanup

    run_cleanup(root, _console())


# sweep's options, named here so that the command itself stays short
RatesOption = Annotated[
    str | None,
    typer.Option("--rates", help="Offered rates: a list 5,10,20 or a geometric range 5..80x2."),
]
FindMaxOption = Annotated[
    bool, typer.Option("--find-max", help="Search the highest rate that meets the SLO.")
]
GridOption = Annotated[
    list[str] | None,
    typer.Option(
        "--grid",
        help="KEY=V1,V2 over any --set key, repeatable (cartesian product); every point is "
        "compared with the first.",
    ),
]
PhaseOption = Annotated[
    str | None, typer.Option("--phase", help="Phase whose rate is set (default: the first).")
]
LevelDurationOption = Annotated[
    str | None, typer.Option("--duration", help="Length of each level, e.g. 30s.")
]
SloOption = Annotated[
    str | None,
    typer.Option("--slo", help="For --find-max: 'p99<=200ms,error_rate<=1%' (default: slo:)."),
]
StartOption = Annotated[
    float | None, typer.Option("--start", help="First rate of --find-max (default: the phase's).")
]
MaxRateOption = Annotated[
    float | None, typer.Option("--max-rate", help="--find-max doubles no further than this.")
]
PrecisionOption = Annotated[
    float, typer.Option("--precision", help="--find-max stops when fail/pass ≤ 1 + this.")
]
LevelRunsOption = Annotated[
    int, typer.Option("--level-runs", min=1, max=20, help="Most runs of one --find-max level.")
]
BudgetOption = Annotated[
    str | None, typer.Option("--budget", help="Start no run that would end after this, e.g. 10m.")
]
MaxRunsOption = Annotated[
    int | None, typer.Option("--max-runs", min=1, help="Run at most this many times in all.")
]
PointRepeatOption = Annotated[
    int, typer.Option("--repeat", min=1, max=100, help="Runs per rate level or grid point.")
]


@app.command()
def sweep(
    scenario: ScenarioPath,
    rates: RatesOption = None,
    find_max: FindMaxOption = False,
    grid: GridOption = None,
    phase: PhaseOption = None,
    duration: LevelDurationOption = None,
    slo: SloOption = None,
    start: StartOption = None,
    max_rate: MaxRateOption = None,
    precision: PrecisionOption = 0.10,
    level_runs: LevelRunsOption = 3,
    budget: BudgetOption = None,
    max_runs: MaxRunsOption = None,
    repeat: PointRepeatOption = 1,
    out: OutOption = Path("results"),
    set_: SetOption = None,
    url: UrlOption = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstraps.")] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every run.")] = False,
) -> None:
    """Run a scenario at many rates or settings: a rate sweep, a capacity search, or a grid."""
    from infbench.commands.sweep import SweepOptions, run_sweep

    signal.signal(signal.SIGTERM, _terminate)
    try:
        options = SweepOptions(
            rates=rates,
            find_max=find_max,
            grid=tuple(grid or ()),
            phase=phase,
            duration_s=_duration_option("--duration", duration),
            slo=slo,
            start=start,
            max_rate=max_rate,
            precision=precision,
            level_runs=level_runs,
            budget_s=_duration_option("--budget", budget),
            max_runs=max_runs,
            repeat=repeat,
            seed=seed,
            verbose=verbose,
        )
        run_sweep(scenario, out, set_ or [], url, options, _console())
    except InfbenchError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        raise _fail(Interrupted("sweep interrupted; the target was stopped")) from None


def _duration_option(flag: str, text: str | None) -> float | None:
    from infbench.errors import UsageError
    from infbench.units import parse_duration

    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{flag} {text!r}: {exc}") from None
    if seconds <= 0:
        raise UsageError(f"{flag} {text!r}: must be above 0")
    return seconds


def main() -> None:
    app()
