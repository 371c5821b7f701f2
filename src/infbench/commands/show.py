"""``infbench show``: a finished run's tables printed again, as a table, markdown or JSON.

It reads what ``run`` wrote and nothing else: a single run's ``run.json``; a ``run --repeat``
directory's aggregate ``run.json`` with its repetitions (``run-1`` … ``run-N``) side by side;
or a ``sweep`` directory's ``sweep.json``. The SLO verdicts are checked again from the stored
phases and the scenario's ``slo:``, as ``run`` checked them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from infbench.analysis.slo import RuleResult
from infbench.errors import ResultFormatError, ScenarioError, UsageError
from infbench.report.console import print_run, repetitions_grid, run_markdown
from infbench.report.resilience_view import print_resilience
from infbench.report.sweep_views import markdown as sweep_markdown
from infbench.report.sweep_views import print_grid, print_levels, print_result
from infbench.report.tables import fit, to_markdown
from infbench.results.records import RunRecord
from infbench.results.rundir import load_run
from infbench.run.measure import slo_verdicts

__all__ = ["FORMATS", "show_results"]

FORMATS = ("table", "md", "json")
SWEEP_FILE = "sweep.json"


def show_results(path: Path, fmt: str, console: Console) -> None:
    """Print the run or sweep in ``path``; exit 2 (an InfbenchError) naming the fix otherwise."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if (path / SWEEP_FILE).is_file():
        _show_sweep(path, fmt, console)
    elif (path / "run.json").is_file():
        _show_run(path, fmt, console)
    else:
        raise ResultFormatError(_not_a_result(path))


def _not_a_result(path: Path) -> str:
    """What was given instead of a result directory, and what to give."""
    fix = "give a directory that `infbench run` or `infbench sweep` wrote (results/<time>-<name>)"
    if not path.exists():
        return f"{path}: no such directory; {fix}"
    if path.is_file():
        return (
            f"{path}: a file, not a result directory; give its folder: infbench show {path.parent}"
        )
    inside = [p.parent for name in ("run.json", SWEEP_FILE) for p in path.glob(f"*/{name}")]
    if inside:
        latest = max(inside, key=lambda p: p.name)  # names start with the UTC time
        held = f"{len(inside)} result directories" if len(inside) > 1 else "a result directory"
        return f"{path}: holds {held}; name one: infbench show {latest}"
    return f"{path}: no run.json or {SWEEP_FILE} (the run never finished, or {fix})"


def _show_run(path: Path, fmt: str, console: Console) -> None:
    run = replace(load_run(path).record, result_dir=str(path))  # where it is now
    if fmt == "json":
        console.out(json.dumps(run.to_json(), indent=2, default=str), highlight=False)
        return
    slo = _slo(run)
    repetitions = _repetitions(path, run)
    if fmt == "md":
        text = run_markdown(run, slo)
        if repetitions:
            text += "\n" + to_markdown(repetitions_grid(repetitions))
        console.out(text, highlight=False, end="")
        return
    print_run(console, run, slo)
    print_resilience(console, run)
    if repetitions:
        for table in fit(console, repetitions_grid(repetitions)):
            console.print(table)


def _slo(run: RunRecord) -> list[RuleResult]:
    """The SLO lines ``run`` printed under its tables, derived again from run.json."""
    try:
        return slo_verdicts(run)
    except ScenarioError as exc:  # written by another infbench version, or edited by hand
        raise ResultFormatError(f"{run.result_dir}/run.json: scenario.{exc}") from None


def _repetitions(path: Path, run: RunRecord) -> dict[str, RunRecord]:
    """The runs of a ``--repeat`` aggregate, by directory name; {} for a single run."""
    return {name: load_run(path / name).record for name in run.repetitions or ()}


def _show_sweep(path: Path, fmt: str, console: Console) -> None:
    try:
        doc: dict[str, Any] = json.loads((path / SWEEP_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultFormatError(f"{path / SWEEP_FILE}: corrupt or truncated ({exc})") from None
    if fmt == "json":
        console.out(json.dumps(doc, indent=2, default=str), highlight=False)
        return
    if fmt == "md":
        console.out(sweep_markdown(doc), highlight=False, end="")
        return
    console.print(f"sweep ({doc.get('mode')}) of {doc.get('scenario_name')}", highlight=False)
    levels = sorted(doc.get("levels") or [], key=lambda level: level.get("rate") or 0)
    if levels:
        print_levels(console, levels, header=True, rules=doc.get("slo"))
    print_grid(console, doc.get("points") or [])
    print_result(console, doc)
