"""``infbench run --repeat N``: N independent runs and one aggregate run.json above them.

The aggregate keeps the v1 contract, so every reader of a single run reads it too: counts are
summed, and percentiles come from the runs' histograms merged exactly (HDR histograms add
without loss), not from averaging percentiles. ``repetitions`` lists the run directories, which
``compare`` uses as its samples.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from infbench.analysis.slo import check_run, parse_slo
from infbench.analysis.stats import PhaseInfo, phase_summary
from infbench.errors import ResultFormatError
from infbench.recorder.recorder import METRICS, PhaseTally
from infbench.results.hlog import tag_totals
from infbench.results.rundir import ResultDir
from infbench.run.measure import RunOutcome, highest_us, slo_json

__all__ = ["aggregate_repetitions", "merged_histograms"]


def merged_histograms(run_dir: Path) -> dict[str, HdrHistogram]:
    """Every ``phase/metric`` tag of a run's latency.hlog, its intervals added together."""
    path = run_dir / "latency.hlog"
    if not path.exists():
        raise ResultFormatError(f"{path}: missing; the run's interval log was not written")
    return tag_totals(path)


def _merge_phase(
    name: str, runs: list[dict[str, Any]], hists: list[dict[str, HdrHistogram]], ceiling_us: int
) -> dict[str, Any] | None:
    entries = [p for run in runs for p in run["phases"] if p["name"] == name]
    if not entries:
        return None
    tally = PhaseTally(name, ceiling_us)
    for key in ("sent", "completed", "ok", "dropped", "out_of_range", "bytes_in", "bytes_out"):
        setattr(tally, key, sum(int(p.get(key, 0)) for p in entries))
    tally.ok_within_slo = round(sum(p["goodput_rps"] * p["duration_s"] for p in entries))
    tally.errors = Counter()
    for phase in entries:
        tally.errors.update(phase["errors"])
        tally.statuses.update({int(code): n for code, n in phase.get("status_codes", {}).items()})
    for metric in METRICS:
        for run_hists in hists:
            if (hist := run_hists.get(f"{name}/{metric}")) is not None:
                tally.histograms[metric].add(hist)
    duration = sum(p["duration_s"] for p in entries)
    scheduled = sum(p["scheduled"] for p in entries)
    return phase_summary(tally, PhaseInfo(name, entries[0]["process"], duration, scheduled))


def aggregate_repetitions(
    results: ResultDir, runs: list[dict[str, Any]], slo: dict[str, Any]
) -> RunOutcome:
    """Write the aggregate run.json and summaries for the repetitions in ``runs``."""
    highest = highest_us(float(runs[0]["scenario"]["request"]["timeout"]))
    hists = [merged_histograms(Path(run["result_dir"])) for run in runs]
    names = list(dict.fromkeys(p["name"] for run in runs for p in run["phases"]))
    phases = [m for n in names if (m := _merge_phase(n, runs, hists, highest)) is not None]
    rules = check_run(parse_slo(slo), phases)
    first = runs[0]
    reasons = [f"{Path(r['result_dir']).name}: {why}" for r in runs for why in r["invalid_reasons"]]
    errors_by_kind: Counter[str] = Counter()
    for run in runs:
        errors_by_kind.update(run["errors_by_kind"])
    interrupted = any(run["status"] == "interrupted" for run in runs)
    aggregate = {
        **first,
        "status": "interrupted" if interrupted else "complete",
        "valid": all(run["valid"] for run in runs),
        "invalid_reasons": reasons,
        "repetitions": [Path(run["result_dir"]).name for run in runs],
        "timings": {
            "started_utc": first["timings"]["started_utc"],
            "start_epoch_s": first["timings"]["start_epoch_s"],
            "duration_s": round(sum(run["timings"]["duration_s"] for run in runs), 3),
        },
        "phases": phases,
        "warmup": None,
        "errors_by_kind": dict(errors_by_kind),
        "server": None,
        "generator": {
            "cpu_pct": max(run["generator"]["cpu_pct"] for run in runs),
            "busy_cpu_pct": max(run["generator"]["busy_cpu_pct"] for run in runs),
            "rss_mb": max(run["generator"]["rss_mb"] for run in runs),
            "processes": first["generator"]["processes"],
        },
        "slo": slo_json(rules),
        "warnings": [w for run in runs for w in run["warnings"]],
        "result_dir": str(results.path),
    }
    results.finalize(aggregate, with_timeseries=False)
    return RunOutcome(run=aggregate, slo=rules, interrupted=interrupted)
