"""Pure maths on Prometheus exposition text: deltas between two scrapes, histogram quantiles.

BentoML 1.4 series used (verified against ``bentoml serve`` 1.4.40):
``bentoml_service_request_total`` (counter; labels endpoint, http_response_code),
``bentoml_service_request_duration_seconds`` (histogram; same labels),
``bentoml_service_request_in_progress`` (gauge; label endpoint),
``bentoml_service_adaptive_batch_size`` (histogram; labels method_name, worker_index), which
counts the *requests* merged into one call, not the items inside them.
Any other server simply yields None for the figures it does not expose.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "HEALTH_ENDPOINTS",
    "Series",
    "duration_buckets_ms",
    "duration_quantiles_ms",
    "histogram_quantile",
    "in_progress",
    "mean_batch_size",
    "parse_exposition",
    "quantile_bucket",
    "requests_by_status",
    "sample_names",
    "selected_buckets",
    "selected_increase",
    "selected_sum",
]

REQUESTS = "bentoml_service_request_total"
DURATION = "bentoml_service_request_duration_seconds"
IN_PROGRESS = "bentoml_service_request_in_progress"
BATCH = "bentoml_service_adaptive_batch_size"
HEALTH_ENDPOINTS = frozenset({"/readyz", "/livez", "/healthz", "/health", "/metrics"})

LabelKey = frozenset[tuple[str, str]]
Series = dict[tuple[str, LabelKey], float]


# --- pure maths on exposition text -------------------------------------------------------------


def parse_exposition(text: str) -> Series:
    """Samples keyed by (sample name, labels); ``_created`` timestamps are dropped."""
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                series[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return series


def _deltas(start: Series, end: Series, name: str) -> Iterable[tuple[dict[str, str], float]]:
    """Per-series increase of a counter-like sample; a series that went down was reset."""
    for (sample_name, labels), value in end.items():
        if sample_name != name:
            continue
        before = start.get((sample_name, labels), 0.0)
        yield dict(labels), value - before if value >= before else value


def _is_health(labels: dict[str, str]) -> bool:
    return labels.get("endpoint") in HEALTH_ENDPOINTS


def requests_by_status(start: Series, end: Series) -> dict[str, int]:
    """Requests finished between two scrapes, by HTTP status, health endpoints excluded."""
    counts: dict[str, int] = {}
    for labels, delta in _deltas(start, end, REQUESTS):
        code = labels.get("http_response_code", "unknown")
        if not _is_health(labels) and delta > 0:
            counts[code] = counts.get(code, 0) + round(delta)
    return dict(sorted(counts.items()))


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus ``histogram_quantile``: cumulative ``(le, count)`` buckets, linear inside one.

    The lower edge of the first bucket is 0; a rank in the +Inf bucket returns the highest
    finite bound (the histogram cannot say more). None when the histogram is empty.
    """
    found = quantile_bucket(q, buckets)
    return None if found is None else found[0]


def quantile_bucket(
    q: float, buckets: list[tuple[float, float]]
) -> tuple[float, float, float] | None:
    """``histogram_quantile`` with the bucket it fell in: (value, lower, upper bound).

    The value is an interpolation inside that bucket: all the histogram knows is that the
    quantile lies between the bounds. In the +Inf bucket the upper bound is +Inf.
    """
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank and count > below:
            if math.isinf(upper):
                return lower, lower, upper
            return lower + (upper - lower) * (rank - below) / (count - below), lower, upper
        lower, below = (upper if not math.isinf(upper) else lower), count
    return lower, lower, lower


def _bucket_deltas(start: Series, end: Series, name: str) -> list[tuple[float, float]]:
    """Bucket increases summed across series by bound, successful non-health requests only."""
    by_bound: dict[float, float] = {}
    for labels, delta in _deltas(start, end, name + "_bucket"):
        code = labels.get("http_response_code", "200")
        if _is_health(labels) or not code.startswith(("2", "3")):
            continue
        bound = float(labels["le"])
        by_bound[bound] = by_bound.get(bound, 0.0) + delta
    return sorted(by_bound.items())


def duration_quantiles_ms(
    start: Series, end: Series, quantiles: Iterable[float] = (0.5, 0.99)
) -> dict[float, float | None]:
    """Server-side duration quantiles (ms) of the 2xx/3xx requests finished between scrapes."""
    buckets = _bucket_deltas(start, end, DURATION)
    result: dict[float, float | None] = {}
    for q in quantiles:
        seconds = histogram_quantile(q, buckets)
        result[q] = None if seconds is None else seconds * 1000.0
    return result


def duration_buckets_ms(
    start: Series, end: Series, quantiles: Iterable[float] = (0.5, 0.99)
) -> dict[float, list[float | None] | None]:
    """The bounds (ms) of the bucket each duration quantile lies in; None for an unbounded top."""
    buckets = _bucket_deltas(start, end, DURATION)
    result: dict[float, list[float | None] | None] = {}
    for q in quantiles:
        found = quantile_bucket(q, buckets)
        top = None if found is None or math.isinf(found[2]) else round(found[2] * 1000.0, 3)
        result[q] = None if found is None else [round(found[1] * 1000.0, 3), top]
    return result


def mean_batch_size(start: Series, end: Series) -> float | None:
    """Mean adaptive batch size between scrapes: Δsum / Δcount over every worker and method."""
    total = sum(delta for _, delta in _deltas(start, end, BATCH + "_sum"))
    count = sum(delta for _, delta in _deltas(start, end, BATCH + "_count"))
    return total / count if count > 0 else None


def in_progress(series: Series) -> float | None:
    """Requests in progress at one scrape, health endpoints excluded."""
    values = [
        value
        for (name, labels), value in series.items()
        if name == IN_PROGRESS and not _is_health(dict(labels))
    ]
    return sum(values) if values else None


# --- any server's series, chosen by name and labels (observe/llm_metrics.py) ----------------

Labels = tuple[tuple[str, str], ...]


def sample_names(series: Series) -> set[str]:
    return {name for name, _ in series}


def _selected(series: Series, name: str, labels: Labels) -> list[float]:
    return [v for (n, key), v in series.items() if n == name and all(p in key for p in labels)]


def selected_sum(series: Series, name: str, labels: Labels = ()) -> float | None:
    """The sum over every series of that name carrying the labels; None when there is none."""
    values = _selected(series, name, labels)
    return sum(values) if values else None


def selected_increase(start: Series, end: Series, name: str, labels: Labels = ()) -> float | None:
    """A counter's increase between two scrapes, summed over its series (a reset counts from 0)."""
    if not _selected(end, name, labels):
        return None
    return sum(d for key, d in _deltas(start, end, name) if all(key.get(k) == v for k, v in labels))


def selected_buckets(
    start: Series, end: Series, name: str, labels: Labels = ()
) -> list[tuple[float, float]]:
    """A histogram's bucket increases between two scrapes, summed across series by bound."""
    by_bound: dict[float, float] = {}
    for key, delta in _deltas(start, end, name + "_bucket"):
        if all(key.get(k) == v for k, v in labels) and "le" in key:
            bound = float(key["le"])
            by_bound[bound] = by_bound.get(bound, 0.0) + delta
    return sorted(by_bound.items())
