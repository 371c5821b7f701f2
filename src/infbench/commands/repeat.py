"""``infbench run --repeat N``: N independent runs and one aggregate run.json above them.

The aggregate keeps the v1 contract, so every reader of a single run reads it too: counts are
summed, and percentiles come from the runs' histograms merged exactly (HDR histograms add
without loss), not from averaging percentiles. ``repetitions`` lists the run directories, which
``compare`` uses as its samples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from infbench.analysis.slo import check_run, parse_slo
from infbench.analysis.stats import PhaseInfo, phase_summary
from infbench.errors import ResultFormatError
from infbench.recorder.recorder import METRICS, PhaseTally
from infbench.results.hlog import tag_totals
from infbench.results.records import GeneratorSummary, PhaseSummary, RunRecord, Timings
from infbench.results.rundir import ResultDir
from infbench.run.measure import RunOutcome, highest_us, slo_records

__all__ = ["aggregate_repetitions", "merged_histograms"]


def merged_histograms(run_dir: Path) -> dict[str, HdrHistogram]:
    """Every ``phase/metric`` tag of a run's latency.hlog, its intervals added together."""
    path = run_dir / "latency.hlog"
    if not path.exists():
        raise ResultFormatError(f"{path}: missing; the run's interval log was not written")
    return tag_totals(path)


def _merge_phase(
    name: str, runs: list[RunRecord], hists: list[dict[str, HdrHistogram]], ceiling_us: int
) -> PhaseSummary | None:
    entries = [p for run in runs for p in run.phases if p.name == name]
    if not entries:
        return None
    tally = PhaseTally(name, ceiling_us)
    tally.sent = sum(p.sent for p in entries)
    tally.completed = sum(p.completed for p in entries)
    tally.ok = sum(p.ok for p in entries)
    tally.dropped = sum(p.dropped for p in entries)
    tally.out_of_range = sum(p.out_of_range for p in entries)
    tally.bytes_in = sum(p.bytes_in for p in entries)
    tally.bytes_out = sum(p.bytes_out for p in entries)
    tally.ok_within_slo = round(sum((p.goodput_rps or 0.0) * p.duration_s for p in entries))
    tally.errors = Counter()
    for phase in entries:
        tally.errors.update(phase.errors)
        tally.statuses.update({int(code): n for code, n in phase.status_codes.items()})
    for metric in METRICS:
        for run_hists in hists:
            if (hist := run_hists.get(f"{name}/{metric}")) is not None:
                tally.histograms[metric].add(hist)
    duration = sum(p.duration_s for p in entries)
    scheduled = sum(p.scheduled for p in entries)
    return phase_summary(tally, PhaseInfo(name, entries[0].process, duration, scheduled))


def _generator(runs: list[RunRecord]) -> GeneratorSummary:
    """Each generator figure at its highest over the repetitions (did it keep up every time)."""
    generators = [run.generator or GeneratorSummary() for run in runs]
    return GeneratorSummary(
        cpu_pct=max(g.cpu_pct or 0.0 for g in generators),
        busy_cpu_pct=max(g.busy_cpu_pct or 0.0 for g in generators),
        rss_mb=max(g.rss_mb or 0.0 for g in generators),
        processes=generators[0].processes,
    )


def _run_dir(run: RunRecord) -> Path:
    if run.result_dir is None:
        raise ResultFormatError("a repetition's run.json has no result_dir")
    return Path(run.result_dir)


def aggregate_repetitions(
    results: ResultDir, runs: list[RunRecord], slo: Mapping[str, Any]
) -> RunOutcome:
    """Write the aggregate run.json and summaries for the repetitions in ``runs``."""
    first = runs[0]
    timeout = first.scenario.request_timeout_s
    if timeout is None:
        raise ResultFormatError("a repetition's run.json has no scenario request.timeout")
    highest = highest_us(timeout)
    hists = [merged_histograms(_run_dir(run)) for run in runs]
    names = list(dict.fromkeys(p.name for run in runs for p in run.phases))
    phases = [m for n in names if (m := _merge_phase(n, runs, hists, highest)) is not None]
    rules = check_run(parse_slo(slo), phases)
    reasons = [f"{_run_dir(r).name}: {why}" for r in runs for why in r.invalid_reasons]
    errors_by_kind: Counter[str] = Counter()
    for run in runs:
        errors_by_kind.update(run.errors_by_kind)
    interrupted = any(run.status == "interrupted" for run in runs)
    aggregate = replace(
        first,  # the scenario, environment and target of the first; its extra keys kept
        status="interrupted" if interrupted else "complete",
        valid=all(run.valid for run in runs),
        invalid_reasons=tuple(reasons),
        repetitions=tuple(_run_dir(run).name for run in runs),
        timings=Timings(
            started_utc=first.timings.started_utc,
            start_epoch_s=first.timings.start_epoch_s,
            duration_s=round(sum(run.timings.duration_s or 0.0 for run in runs), 3),
        ),
        phases=tuple(phases),
        warmup=None,
        errors_by_kind=dict(errors_by_kind),
        server=None,
        generator=_generator(runs),
        slo=slo_records(rules),
        warnings=tuple(w for run in runs for w in run.warnings),
        result_dir=str(results.path),
    )
    results.finalize(aggregate, with_timeseries=False)
    return RunOutcome(run=aggregate, slo=rules, interrupted=interrupted)
