"""The LLM server's own view of a run: queue, batch, KV cache and its own latency histograms.

A probe of the Observer (observe/probe.py): fed every scrape of the server's ``/metrics``
(each second, and at phase boundaries) on the observer thread. Gauges (requests running and
waiting, KV-cache use) are sampled each second into the open phases and the time series;
counters (preemptions, prefix-cache hits) and histograms (the server's TTFT, inter-token,
queue and end-to-end times) are read as deltas between a phase's boundary scrapes, like the
BentoML figures of observe/prometheus.py. The server's TTFT and queue-time p99 are also read
each second, from the histogram's increase since the previous second's scrape, so the report
can draw them over time beside the client's TTFT p99.

A quantile of a histogram is an interpolation inside one bucket: each comes with the bounds
of its bucket (``p50_bucket_ms``), the resolution it really has (DESIGN §9).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infbench.observe.llm_presets import AUTO_ORDER, PRESETS, Preset, detect_preset
from infbench.observe.prometheus import (
    Labels,
    Series,
    quantile_bucket,
    sample_names,
    selected_buckets,
    selected_increase,
    selected_sum,
)
from infbench.scenario.observing import SERIES_ROLES, parse_selector

__all__ = ["LLM_COLUMNS", "LlmView", "histogram_figures"]

LLM_COLUMNS = (
    "server_running",
    "server_waiting",
    "server_kv_cache_usage",
    "server_ttft_p99_ms",
    "server_queue_p99_ms",
)
_GAUGES = ("running", "waiting", "kv_cache_usage", "prefix_cache_hit_rate")
_HISTOGRAMS = {"ttft": "ttft_ms", "itl": "itl_ms", "queue": "queue_ms", "e2e": "e2e_ms"}
_PER_SECOND = ("ttft", "queue")  # the histograms whose p99 each second goes to timeseries.csv
Selector = tuple[str, Labels]


def _ms_per_unit(name: str) -> float:
    """Histograms are in seconds unless their name says otherwise (Triton's ``_ms``, ``_us``)."""
    if name.endswith("_ms"):
        return 1.0
    return 0.001 if name.endswith("_us") else 1000.0


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def histogram_figures(
    buckets: list[tuple[float, float]], ms_per_unit: float
) -> dict[str, Any] | None:
    """p50 and p99 in ms with their buckets' bounds (None for an unbounded top), and the count."""
    figures: dict[str, Any] = {}
    for q, key in ((0.5, "p50"), (0.99, "p99")):
        found = quantile_bucket(q, buckets)
        if found is None:
            return None
        value, lower, upper = (bound * ms_per_unit for bound in found)
        figures[key] = _round(value)
        top = _round(upper) if upper != float("inf") else None  # JSON has no infinity
        figures[f"{key}_bucket_ms"] = [_round(lower), top]
    figures["count"] = round(buckets[-1][1])
    return figures


@dataclass
class _Phase:
    start: Series | None = None
    end: Series | None = None
    open: bool = True
    gauges: dict[str, list[float]] = field(default_factory=lambda: {g: [] for g in _GAUGES})


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


class LlmView:
    """Reads one preset's series (or ``auto``: the first server recognised), plus ``series``.

    ``explicit``: the scenario named ``target.metrics``, so finding nothing is worth a warning.
    """

    key: str = "llm"
    columns: tuple[str, ...] = LLM_COLUMNS

    def __init__(
        self,
        preset: str,
        series: Mapping[str, str],
        url: str | None,
        *,
        explicit: bool = False,
    ) -> None:
        self.url, self.explicit, self.asked = url, explicit, preset
        self.custom = {role: parse_selector(text) for role, text in series.items()}
        self.preset: Preset | None = PRESETS.get(preset)
        self._chosen: dict[str, Selector] = {}
        self._phases: dict[str, _Phase] = {}
        self._scraped = False
        self._previous: Series | None = None  # the last per-second scrape

    @property
    def active(self) -> bool:
        """Whether anything is read: a preset found or named, or series of the scenario's own."""
        return self.preset is not None or bool(self.custom)

    # -- what the observer calls, on its thread --

    def sample(self, series: Series | None) -> dict[str, float | None]:
        gauges = self._gauges(series)
        for phase in (p for p in self._phases.values() if p.open):
            for role, value in gauges.items():
                if value is not None:
                    phase.gauges[role].append(value)
        values = [_round(gauges[g]) for g in _GAUGES[:3]]
        values += [self._p99_since_previous(series, role) for role in _PER_SECOND]
        if series is not None:
            self._previous = series
        return dict(zip(LLM_COLUMNS, values, strict=True))

    def _p99_since_previous(self, series: Series | None, role: str) -> float | None:
        """p99 in ms of what the histogram observed since the previous second's scrape; None
        for a second without observations. An interpolation inside its bucket, like every
        server quantile: the per-phase figures carry the bucket's bounds."""
        chosen = self._chosen.get(role)
        if series is None or self._previous is None or chosen is None:
            return None
        buckets = selected_buckets(self._previous, series, *chosen)
        found = quantile_bucket(0.99, buckets) if buckets else None
        return None if found is None else _round(found[0] * _ms_per_unit(chosen[0]))

    def boundary(self, kind: str, name: str, series: Series | None) -> None:
        if kind == "start":
            self._phases[name] = _Phase(start=series)
        elif name in self._phases:
            self._phases[name].end, self._phases[name].open = series, False
        if name not in self._phases:
            return
        for role, value in self._gauges(series).items():
            if value is not None:
                self._phases[name].gauges[role].append(value)

    # -- reading a scrape --

    def _gauges(self, series: Series | None) -> dict[str, float | None]:
        if series is None:
            return dict.fromkeys(_GAUGES)
        self._resolve(series)
        return {role: self._gauge(series, role) for role in _GAUGES}

    def _gauge(self, series: Series, role: str) -> float | None:
        chosen = self._chosen.get(role)
        return selected_sum(series, *chosen) if chosen else None

    def _resolve(self, series: Series) -> None:
        """Pick, once per role, the first candidate this server exposes (renames included)."""
        self._scraped = True
        names = sample_names(series)
        if self.preset is None and self.asked == "auto":
            self.preset = detect_preset(names)
        for role, candidates in self._candidates().items():
            if role in self._chosen:
                continue
            for name, labels in candidates:
                wanted = name + "_bucket" if SERIES_ROLES[role] == "histogram" else name
                labelled = not labels or selected_sum(series, wanted, labels) is not None
                if wanted in names and labelled:
                    self._chosen[role] = (name, labels)
                    break

    def _candidates(self) -> dict[str, list[Selector]]:
        roles: dict[str, list[Selector]] = {}
        if self.preset is not None:
            for role, texts in self.preset.series.items():
                roles[role] = [parse_selector(text) for text in texts]
        for role, selector in self.custom.items():
            roles[role] = [selector]  # the scenario's name replaces the preset's
        return roles

    # -- the section of run.json --

    def summary(self) -> dict[str, Any]:
        """``server.llm``: what was read, from where, what was missing; figures per phase."""
        return {
            "preset": self.preset.name if self.preset else None,
            "source": self.preset.source if self.preset else None,
            "url": self.url,
            "series": {role: _text(sel) for role, sel in sorted(self._chosen.items())},
            "missing": self._missing(),
            "warnings": self._warnings(),
            "phases": {name: self._phase_figures(p) for name, p in self._phases.items()}
            if self.active
            else {},
        }

    def _phase_figures(self, phase: _Phase) -> dict[str, Any]:
        g = phase.gauges
        figures: dict[str, Any] = {
            "running_mean": _round(_mean(g["running"])),
            "running_max": _round(max(g["running"], default=None)),
            "waiting_mean": _round(_mean(g["waiting"])),
            "waiting_max": _round(max(g["waiting"], default=None)),
            "kv_cache_usage_mean": _round(_mean(g["kv_cache_usage"]), 4),
            "kv_cache_usage_max": _round(max(g["kv_cache_usage"], default=None), 4),
            "preemptions": None,
            "prefix_cache_hit_rate": _round(_mean(g["prefix_cache_hit_rate"]), 4),
        }
        figures.update(dict.fromkeys(_HISTOGRAMS.values()))
        if phase.start is None or phase.end is None:
            return figures
        figures.update(self._deltas(phase.start, phase.end))
        return figures

    def _deltas(self, start: Series, end: Series) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for role, key in _HISTOGRAMS.items():
            if role in self._chosen:
                name, labels = self._chosen[role]
                buckets = selected_buckets(start, end, name, labels)
                out[key] = histogram_figures(buckets, _ms_per_unit(name)) if buckets else None
        if "preemptions" in self._chosen:
            increase = selected_increase(start, end, *self._chosen["preemptions"])
            out["preemptions"] = None if increase is None else round(increase)
        rate = self._hit_rate(start, end)
        if rate is not None:
            out["prefix_cache_hit_rate"] = rate
        return out

    def _hit_rate(self, start: Series, end: Series) -> float | None:
        """Δhits / Δqueries (tokens) where the server counts both; else the gauge's mean."""
        if not {"prefix_cache_hits", "prefix_cache_queries"} <= self._chosen.keys():
            return None
        hits = selected_increase(start, end, *self._chosen["prefix_cache_hits"])
        queries = selected_increase(start, end, *self._chosen["prefix_cache_queries"])
        return _round(hits / queries, 4) if hits is not None and queries else None

    def _missing(self) -> list[str]:
        if self.preset is None or not self._scraped:
            return []
        return [
            f"{role} ({' or '.join(texts)})"
            for role, texts in self.preset.series.items()
            if role not in self._chosen and not _counted_elsewhere(role, self._chosen)
        ]

    def _warnings(self) -> list[str]:
        if not self._scraped:
            return []  # the observer says the URL could not be read
        if self.preset is None and not self.custom:
            if not self.explicit:
                return []
            engines = ", ".join(p for name in AUTO_ORDER for p in PRESETS[name].prefixes)
            return [
                f"target.metrics: no series of a known LLM server at {self.url} (looked for "
                f"{engines}); name the preset or the series (target.metrics.series)"
            ]
        missing = self._missing()
        if not missing:
            return []
        name = self.preset.name if self.preset else "series"
        return [
            f"target.metrics preset {name}: series not found at {self.url}: "
            + "; ".join(missing)
            + " (those figures are absent)"
        ]


def _counted_elsewhere(role: str, chosen: Mapping[str, Selector]) -> bool:
    """A hit rate read as a gauge needs no counters, and counters need no gauge."""
    counters = {"prefix_cache_hits", "prefix_cache_queries"}
    if role in counters:
        return "prefix_cache_hit_rate" in chosen
    return role == "prefix_cache_hit_rate" and counters <= chosen.keys()


def _text(selector: Selector) -> str:
    name, labels = selector
    inside = ",".join(f'{k}="{v}"' for k, v in labels)
    return f"{name}{{{inside}}}" if labels else name
