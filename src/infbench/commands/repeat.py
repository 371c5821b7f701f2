"""``infbench run --repeat N``: N independent runs and one aggregate run.json above them.

The aggregate keeps the v1 contract, so every reader of a single run reads it too: counts are
summed, and percentiles come from the runs' histograms merged exactly (HDR histograms add
without loss), not from averaging percentiles. ``repetitions`` lists the run directories, which
``compare`` uses as its samples.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from infbench.analysis.slo import check_run, parse_slo
from infbench.analysis.stats import PhaseInfo, phase_summary
from infbench.errors import ResultFormatError
from infbench.load.job import merge_generators
from infbench.recorder.hdr import new_histogram
from infbench.recorder.tally import PhaseTally
from infbench.results.hlog import tag_totals
from infbench.results.records import GeneratorSummary, PhaseSummary, RunRecord, Timings
from infbench.results.rundir import ResultDir
from infbench.run.measure import highest_us, slo_records

__all__ = ["aggregate_repetitions", "merged_histograms"]


def merged_histograms(run_dir: Path) -> dict[str, HdrHistogram]:
    """Every ``phase/metric`` tag of a run's latency.hlog, its intervals added together."""
    path = run_dir / "latency.hlog"
    if not path.exists():
        raise ResultFormatError(f"{path}: missing; the run's interval log was not written")
    return tag_totals(path)


def _tally(phase: PhaseSummary, hists: dict[str, HdrHistogram], ceiling_us: int) -> PhaseTally:
    """A repetition's phase read back as a tally: each count run.json keeps under the tally's
    own name, the figures phase_summary derived turned back into what they came from, and
    every histogram of the phase from its interval log (they add up to the tally's)."""
    tally = PhaseTally(phase.name, ceiling_us, streamed=phase.ttft_ms is not None)
    for f in fields(PhaseTally):
        stored = getattr(phase, f.name, None)
        if f.metadata and isinstance(stored, int | Mapping):
            setattr(tally, f.name, Counter(stored) if isinstance(stored, Mapping) else stored)
    tally.statuses = Counter({int(code): n for code, n in phase.status_codes.items()})
    tally.ok_within_slo = round((phase.goodput_rps or 0.0) * phase.duration_s)
    tally.service_ns = round((phase.mean_concurrency or 0.0) * phase.duration_s * 1e9)
    if phase.tokens_source is not None:
        tally.token_sources[phase.tokens_source] = phase.ok
    if phase.peak_output_tps:  # which second it was is not kept: second 0 stands for it
        tally.output_tokens_by_second[0] = round(phase.peak_output_tps)
    prefix = f"{phase.name}/"
    for tag, hist in hists.items():
        if tag.startswith(prefix):
            tally.histograms.setdefault(tag[len(prefix) :], new_histogram(ceiling_us)).add(hist)
    return tally


def _merge_phase(
    name: str, runs: list[RunRecord], hists: list[dict[str, HdrHistogram]], ceiling_us: int
) -> PhaseSummary | None:
    """One phase over the repetitions, by the tallies' one merge; each repetition's seconds
    follow those of the runs before it."""
    parts, tallies, offsets, elapsed = [], [], [], 0
    for run, run_hists in zip(runs, hists, strict=True):
        if (phase := run.phase(name)) is not None:
            parts.append(phase)
            offsets.append(elapsed)
            tallies.append(_tally(phase, run_hists, ceiling_us))
        elapsed += math.ceil(run.timings.duration_s or 0.0) + 1
    if not parts:
        return None
    tally = PhaseTally.merged(tallies, after_s=offsets)
    duration = sum(p.duration_s for p in parts)
    scheduled = sum(p.scheduled for p in parts)
    return phase_summary(tally, PhaseInfo(name, parts[0].process, duration, scheduled))


def _run_dir(run: RunRecord) -> Path:
    if run.result_dir is None:
        raise ResultFormatError("a repetition's run.json has no result_dir")
    return Path(run.result_dir)


def aggregate_repetitions(
    results: ResultDir, runs: list[RunRecord], slo: Mapping[str, Any]
) -> RunRecord:
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
        generator=merge_generators(
            [run.generator or GeneratorSummary() for run in runs], side_by_side=False
        ),
        slo=slo_records(rules),
        warnings=tuple(w for run in runs for w in run.warnings),
        result_dir=str(results.path),
    )
    results.finalize(aggregate, with_timeseries=False)
    return aggregate
