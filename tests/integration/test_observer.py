"""The Observer's sampling thread against a real HTTP server's /metrics and real processes."""

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
from prom_page import exposition

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
