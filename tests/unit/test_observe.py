"""The Observer's pure maths on hand-written Prometheus exposition text (its thread, against a
real HTTP server, is tests/integration/test_observer.py)."""

from __future__ import annotations

import pytest

from infbench.observe.prometheus import (
    duration_quantiles_ms,
    histogram_quantile,
    in_progress,
    mean_batch_size,
    parse_exposition,
    requests_by_status,
)
from prom_page import exposition

# --- histogram_quantile -----------------------------------------------------------------------


def test_quantile_interpolates_linearly_inside_the_bucket() -> None:
    buckets = [(0.01, 10.0), (0.02, 30.0), (float("inf"), 40.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.015)  # rank 20: half of bucket 2
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.01)  # rank 10: top of bucket 1


def test_quantile_first_bucket_starts_at_zero() -> None:
    assert histogram_quantile(0.5, [(0.004, 4.0), (float("inf"), 4.0)]) == pytest.approx(0.002)


def test_quantile_in_the_inf_bucket_returns_the_highest_finite_bound() -> None:
    buckets = [(0.01, 1.0), (0.02, 2.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.02)


def test_quantile_skips_empty_buckets_and_sorts() -> None:
    buckets = [(float("inf"), 4.0), (0.002, 0.0), (0.001, 0.0), (0.004, 4.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.003)


def test_quantile_of_an_empty_histogram_is_none() -> None:
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.5, [(0.01, 0.0), (float("inf"), 0.0)]) is None


# --- deltas between scrapes -------------------------------------------------------------------


def test_requests_by_status_is_a_delta_without_health_endpoints() -> None:
    start = parse_exposition(exposition(classify_200=10, classify_503=1, readyz=5))
    end = parse_exposition(exposition(classify_200=110, classify_503=4, readyz=50))
    assert requests_by_status(start, end) == {"200": 100, "503": 3}


def test_a_counter_that_went_down_was_reset() -> None:
    start = parse_exposition(exposition(classify_200=500))
    end = parse_exposition(exposition(classify_200=20))
    assert requests_by_status(start, end) == {"200": 20}


def test_a_series_new_in_the_end_scrape_counts_whole() -> None:
    end = parse_exposition(exposition(classify_200=7))
    assert requests_by_status({}, end) == {"200": 7}


def test_duration_quantiles_use_bucket_deltas() -> None:
    start = parse_exposition(exposition(buckets=(100, 100, 100)))  # earlier requests all < 5 ms
    end = parse_exposition(exposition(buckets=(100, 140, 180)))  # 40 in 5-10 ms, 40 above
    quantiles = duration_quantiles_ms(start, end)
    assert quantiles[0.5] == pytest.approx(10.0)  # rank 40 = top of the 5-10 ms bucket
    assert duration_quantiles_ms(start, end, [0.25])[0.25] == pytest.approx(7.5)
    assert quantiles[0.99] == pytest.approx(10.0)  # in +Inf: the highest finite bound


def test_duration_quantiles_are_none_without_requests() -> None:
    same = parse_exposition(exposition(buckets=(3, 3, 3)))
    assert duration_quantiles_ms(same, same) == {0.5: None, 0.99: None}


def test_mean_batch_size_sums_every_worker() -> None:
    start = parse_exposition(exposition(batch=(10, 10)))
    end = parse_exposition(exposition(batch=(40, 20)))  # per worker: 30 items in 10 batches
    assert mean_batch_size(start, end) == pytest.approx(3.0)
    assert mean_batch_size(end, end) is None


def test_in_progress_excludes_health_endpoints() -> None:
    assert in_progress(parse_exposition(exposition(busy=3))) == 3.0
    assert in_progress(parse_exposition("# TYPE x gauge\nx 1\n")) is None


def test_created_samples_are_dropped() -> None:
    text = "# TYPE c counter\nc_total 4\nc_created 1.7e9\n"
    assert [name for name, _ in parse_exposition(text)] == ["c_total"]
