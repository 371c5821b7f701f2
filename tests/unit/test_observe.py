"""The Observer's pure maths on hand-written Prometheus exposition text, plus its threading."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from infbench.observe.observer import Observer
from infbench.observe.prometheus import (
    duration_quantiles_ms,
    histogram_quantile,
    in_progress,
    mean_batch_size,
    parse_exposition,
    requests_by_status,
)

L = 'runner_name="S",service_name="S",service_version="not available"'
R, G = "bentoml_service_request_total", "bentoml_service_request_in_progress"
D, B = "bentoml_service_request_duration_seconds", "bentoml_service_adaptive_batch_size"


def exposition(
    classify_200: float = 0,
    classify_503: float = 0,
    readyz: float = 0,
    buckets: tuple[float, float, float] = (0, 0, 0),
    batch: tuple[float, float] = (0, 0),
    busy: float = 0,
) -> str:
    """A BentoML-shaped /metrics page: le 0.005, 0.01, +Inf buckets for /classify 200s."""
    b1, b2, total = buckets
    return f"""\
# HELP bentoml_service_request_total Total number of runner RPC
# TYPE bentoml_service_request_total counter
{R}{{endpoint="/classify",code_="200",{L}}} {classify_200}
{R}{{endpoint="/classify",code_="503",{L}}} {classify_503}
{R}{{endpoint="/readyz",code_="200",{L}}} {readyz}
# HELP bentoml_service_request_duration_seconds Request duration
# TYPE bentoml_service_request_duration_seconds histogram
{D}_bucket{{endpoint="/classify",code_="200",le="0.005",{L}}} {b1}
{D}_bucket{{endpoint="/classify",code_="200",le="0.01",{L}}} {b2}
{D}_bucket{{endpoint="/classify",code_="200",le="+Inf",{L}}} {total}
{D}_count{{endpoint="/classify",code_="200",{L}}} {total}
{D}_sum{{endpoint="/classify",code_="200",{L}}} 1.0
{D}_bucket{{endpoint="/readyz",code_="200",le="0.005",{L}}} {readyz}
{D}_bucket{{endpoint="/readyz",code_="200",le="0.01",{L}}} {readyz}
{D}_bucket{{endpoint="/readyz",code_="200",le="+Inf",{L}}} {readyz}
# HELP bentoml_service_adaptive_batch_size Service adaptive batch size
# TYPE bentoml_service_adaptive_batch_size histogram
{B}_sum{{method_name="b",worker_index="1",{L}}} {batch[0]}
{B}_count{{method_name="b",worker_index="1",{L}}} {batch[1]}
{B}_sum{{method_name="b",worker_index="2",{L}}} {batch[0]}
{B}_count{{method_name="b",worker_index="2",{L}}} {batch[1]}
# HELP bentoml_service_request_in_progress Requests in progress
# TYPE bentoml_service_request_in_progress gauge
{G}{{endpoint="/classify",{L}}} {busy}
{G}{{endpoint="/readyz",{L}}} 1.0
""".replace("code_=", "http_response_code=")


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


# --- the observer thread -------------------------------------------------------------------------


class _Metrics(BaseHTTPRequestHandler):
    page = exposition()

    def do_GET(self) -> None:
        body = self.page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_observer_reports_phases_and_saves_snapshots(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    observer = Observer(lambda: [os.getpid()], url, tmp_path, interval_s=0.05)
    try:
        observer.start()
        _Metrics.page = exposition(classify_200=5, buckets=(5, 5, 5))
        observer.phase_started("steady", wait=True)
        time.sleep(0.3)
        _Metrics.page = exposition(classify_200=25, buckets=(5, 25, 25), busy=2)
        time.sleep(0.2)
        observer.phase_ended("steady")
        latest = observer.latest()
        section = observer.stop()
    finally:
        server.shutdown()
    phase = section["phases"]["steady"]
    assert phase["requests_by_status"] == {"200": 20}
    assert phase["duration_p50_ms"] == pytest.approx(7.5)
    assert phase["in_progress_max"] == 2.0
    assert phase["rss_mb_max"] > 0
    assert latest["server_in_progress"] == 2.0 and latest["server_rss_mb"] is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["steady-end.prom", "steady-start.prom"]
    assert section["scrapes"]["failed"] == 0


def test_observer_survives_an_unreachable_metrics_url(tmp_path: Path) -> None:
    observer = Observer(lambda: [], "http://127.0.0.1:9/metrics", tmp_path, interval_s=0.05)
    observer.start()
    observer.phase_started("steady", wait=True)
    time.sleep(0.15)
    observer.phase_ended("steady")
    section = observer.stop()
    phase = section["phases"]["steady"]
    assert phase["requests_by_status"] is None and phase["cpu_pct_mean"] is None
    assert section["scrapes"]["failed"] > 0
    assert section["generator"]["rss_mb_max"] > 0
    assert list(tmp_path.iterdir()) == []


def test_observer_pids_callback_errors_are_swallowed() -> None:
    def broken() -> list[int]:
        raise RuntimeError("target gone")

    observer = Observer(broken, None, None, interval_s=0.05)
    observer.start()
    time.sleep(0.12)
    assert observer.latest()["server_cpu_pct"] is None
    assert observer.stop()["phases"] == {}


def test_infbench_tree_is_scanned_seldom_and_its_started_processes_always(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scan of every process (psutil's children) runs once per CHILDREN_SCAN_S; a process
    infbench started meanwhile (the recorder, a generator) is sampled from the next tick."""
    scans: list[int] = []
    real_children = psutil.Process.children

    def counted(self: psutil.Process, recursive: bool = False) -> list[psutil.Process]:
        scans.append(1)
        return real_children(self, recursive=recursive)

    monkeypatch.setattr(psutil.Process, "children", counted)
    observer = Observer(lambda: [], None, None)
    assert observer._generator_pids([])[0] == os.getpid()  # (earlier tests may leave others)
    child = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(5,))
    child.start()
    try:
        for _ in range(5):
            pids = observer._generator_pids([])
        assert child.pid in pids and len(scans) == 1
        assert child.pid not in observer._generator_pids([child.pid])  # the target's own
    finally:
        child.kill()
        child.join()
