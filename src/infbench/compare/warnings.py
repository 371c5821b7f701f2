"""The warnings that qualify a Comparison: a catalogue, each saying what to do about it.

They travel inside the Comparison (every view prints them) instead of going to a log, so a
reader of a CI summary sees why a verdict deserves less trust.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infbench.results.records import Environment
from infbench.results.rundir import RunResult

__all__ = [
    "CompareWarning",
    "environment",
    "few_runs",
    "one_sided",
    "run_warnings",
    "seconds_warnings",
    "server_untested",
]


@dataclass(frozen=True)
class CompareWarning:
    """``code`` is stable (for JSON consumers); ``message`` is for people."""

    code: str
    message: str


def _environment_differences(base: Environment, cand: Environment) -> list[str]:
    pairs = (
        ("cpu_model", base.cpu_model, cand.cpu_model),
        ("cores", base.cores, cand.cores),
        ("python", base.python, cand.python),
        ("infbench", base.infbench, cand.infbench),
    )
    found = [f"{key} {b} vs {c}" for key, b, c in pairs if b != c]
    versions = base.versions, cand.versions
    for name in sorted(set(versions[0]) | set(versions[1])):
        if versions[0].get(name) != versions[1].get(name):
            found.append(f"{name} {versions[0].get(name)} vs {versions[1].get(name)}")
    return found


def _scenario_differences(base: Mapping[str, Any], cand: Mapping[str, Any]) -> str:
    """`` (in target.url, workload)``: the keys, two levels deep, whose values differ."""
    if not base or not cand:
        return ""
    found = []
    for key in sorted(set(base) | set(cand)):
        b, c = base.get(key), cand.get(key)
        if b == c:
            continue
        if isinstance(b, dict) and isinstance(c, dict):
            found += [f"{key}.{k}" for k in sorted(set(b) | set(c)) if b.get(k) != c.get(k)]
        else:
            found.append(key)
    return f" (in {', '.join(found)})" if found else ""


def _same(b: str | None, c: str | None) -> bool:
    return b is None or c is None or b == c


Runs = Sequence[RunResult]


def _side_warnings(label: str, runs: Runs) -> list[CompareWarning]:
    warnings = []
    invalid = [run for run in runs if not run.valid]
    if invalid:
        reasons = invalid[0].record.invalid_reasons or ("no reason recorded",)
        which = (
            f"{len(invalid)} of {len(runs)} {label} runs are"
            if len(runs) > 1
            else f"the {label} run is"
        )
        warnings.append(
            CompareWarning(
                "invalid-run",
                f"{which} invalid ({reasons[0]}): the generator's own delays are in "
                "their latencies (DESIGN §5): fix the load generator before trusting a change",
            )
        )
    stopped = [run for run in runs if run.record.status != "complete"]
    if stopped:
        warnings.append(
            CompareWarning(
                "interrupted-run",
                f"{len(stopped)} {label} run(s) did not complete (status "
                f"{stopped[0].record.status!r}): their phases may be cut short",
            )
        )
    return warnings


def run_warnings(base: Runs, cand: Runs, min_runs: int) -> list[CompareWarning]:
    """Invalid or interrupted runs, and repetitions too few for Mann-Whitney."""
    warnings = _side_warnings("base", base) + _side_warnings("candidate", cand)
    if max(len(base), len(cand)) > 1 and min(len(base), len(cand)) < min_runs:
        warnings.append(
            CompareWarning(
                "few-repetitions",
                f"Mann-Whitney across runs needs {min_runs} repetitions a side (have "
                f"{len(base)} and {len(cand)}): using the bootstrap over their pooled seconds",
            )
        )
    return warnings


def environment(base: RunResult, cand: RunResult) -> list[CompareWarning]:
    """Different scenario, schedule, machine or versions: the things that matter (pyperf)."""
    warnings = []
    b, c = base.record, cand.record
    if not _same(b.scenario_sha256, c.scenario_sha256):
        where = _scenario_differences(b.scenario.data, c.scenario.data)
        warnings.append(
            CompareWarning(
                "scenario-differs",
                f"the scenario files differ{where}: make sure the difference is the one you "
                "mean to measure",
            )
        )
    if not _same(b.schedule_sha256, c.schedule_sha256):
        warnings.append(
            CompareWarning(
                "schedule-differs",
                "the schedules differ (schedule_sha256): the runs did not offer the same load "
                "(arrival process, rate, duration or seed differ)",
            )
        )
    found = (
        _environment_differences(b.environment, c.environment)
        if b.environment is not None and c.environment is not None
        else []
    )
    if found:
        warnings.append(
            CompareWarning(
                "environment-differs",
                "the environments differ (" + "; ".join(found) + "): a change may come from "
                "the machine or the versions rather than from what you changed",
            )
        )
    return warnings


def one_sided(base_names: list[str], cand_names: list[str]) -> list[CompareWarning]:
    return [
        CompareWarning("phase-missing", f"phase {name} is only in the {side} run: not compared")
        for names, others, side in (
            (base_names, cand_names, "base"),
            (cand_names, base_names, "candidate"),
        )
        for name in names
        if name not in others
    ]


def few_runs(phase: str, metrics: list[str], min_runs: int) -> list[CompareWarning]:
    if not metrics:
        return []
    return [
        CompareWarning(
            "few-runs",
            f"phase {phase}: {', '.join(metrics)} have a value in fewer than {min_runs} runs "
            "on a side: shown untested",
        )
    ]


def seconds_warnings(
    phase: str, n: Sequence[int], short: list[str], min_seconds: int, min_tail: int
) -> list[CompareWarning]:
    """Too few seconds for the bootstrap, or too few requests for some percentiles."""
    if min(n) < min_seconds:
        return [
            CompareWarning(
                "few-seconds",
                f"phase {phase}: {n[0]} s of interval data in the base and {n[1]} s in the "
                f"candidate; the bootstrap needs at least {min_seconds} s a side, so nothing "
                "is tested (lengthen the phase or use `infbench run --repeat 4`)",
            )
        ]
    if not short:
        return []
    return [
        CompareWarning(
            "few-samples",
            f"phase {phase}: too few requests to test {', '.join(short)} (a percentile q needs "
            f"n·(1−q) ≥ {min_tail} values beyond it on each side, e.g. 1,000 requests for "
            "p99): shown untested; gates use the point estimate (run longer or faster)",
        )
    ]


def server_untested(min_runs: int) -> list[CompareWarning]:
    return [
        CompareWarning(
            "server-untested",
            "server-side metrics are measured once per run, with no per-second data: they are "
            f"shown untested; use `infbench run --repeat {min_runs}` or more on both sides to "
            "test them",
        )
    ]
