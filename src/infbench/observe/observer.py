"""Server-side view of a run: Prometheus ``/metrics`` and CPU/RSS of the target's process tree.

The Observer runs in a background thread so that scraping never delays a request: every
``interval_s`` it scrapes ``/metrics`` and samples CPU and RSS of the target's process tree and
of infbench itself; at phase boundaries it scrapes at once and saves the exposition text. Phase
figures are deltas between the boundary scrapes.

The maths on exposition text (deltas, quantiles, batch sizes) lives in ``prometheus.py``.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from infbench.observe.probe import Probe
from infbench.observe.prometheus import (
    Series,
    duration_buckets_ms,
    duration_quantiles_ms,
    in_progress,
    mean_batch_size,
    parse_exposition,
    requests_by_status,
)

__all__ = ["Observer"]

log = logging.getLogger(__name__)

MB = 1024 * 1024
# How often infbench's own process tree is scanned anew: psutil's scan reads every process's
# /proc stat in Python (3 ms with 74 processes), time in which the sampling thread holds the
# interpreter lock from the event loop. Between scans, its multiprocessing children (the
# recorder, generator processes) are known without one.
CHILDREN_SCAN_S = 10.0


# --- process tree sampling ---------------------------------------------------------------------


class _TreeSampler:
    """CPU % (of one core, so 4 busy cores read 400) and RSS of a changing set of processes.

    CPU comes from deltas of each process's cpu_times, so Process objects are kept between
    samples; a process born since the previous sample counts all its CPU time in this one.
    """

    def __init__(self) -> None:
        self._seen: dict[int, tuple[psutil.Process, float]] = {}
        self._last_wall: float | None = None

    def sample(self, pids: list[int]) -> tuple[float | None, float | None]:
        now = time.time()
        total_cpu, rss = 0.0, 0
        current: dict[int, tuple[psutil.Process, float]] = {}
        for pid in pids:
            try:
                proc, before = self._seen.get(pid) or (psutil.Process(pid), None)
                with proc.oneshot():
                    times, rss_now = proc.cpu_times(), proc.memory_info().rss
            except psutil.Error:
                continue
            cpu = times.user + times.system
            if before is None:  # new: all of its CPU is recent only if born after the last sample
                born_recently = (
                    self._last_wall is not None and proc.create_time() >= self._last_wall
                )
                before = 0.0 if born_recently else cpu
            total_cpu, rss = total_cpu + max(0.0, cpu - before), rss + rss_now
            current[pid] = (proc, cpu)
        elapsed = None if self._last_wall is None else now - self._last_wall
        self._seen, self._last_wall = current, now
        if not current:
            return None, None
        cpu_pct = 100.0 * total_cpu / elapsed if elapsed else None
        return cpu_pct, rss / MB


# --- the observer ------------------------------------------------------------------------------


@dataclass
class _PhaseStats:
    start_scrape: Series | None = None
    end_scrape: Series | None = None
    open: bool = True
    cpu: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    generator_cpu: list[float] = field(default_factory=list)
    in_progress: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        start, end = self.start_scrape, self.end_scrape
        figures: dict[str, object] = dict.fromkeys(
            ("requests_by_status", "duration_p50_ms", "duration_p99_ms", "mean_batch_size")
        )
        if start is not None and end is not None:
            quantiles = duration_quantiles_ms(start, end)
            buckets = duration_buckets_ms(start, end)  # what the histogram really resolved
            figures = {
                "requests_by_status": requests_by_status(start, end),
                "duration_p50_ms": _round(quantiles[0.5]),
                "duration_p99_ms": _round(quantiles[0.99]),
                "duration_p50_bucket_ms": buckets[0.5],
                "duration_p99_bucket_ms": buckets[0.99],
                "mean_batch_size": _round(mean_batch_size(start, end)),
            }
        return {
            **figures,
            "in_progress_max": max(self.in_progress, default=None),
            "cpu_pct_mean": _round(_mean(self.cpu)),
            "cpu_pct_max": _round(max(self.cpu, default=None)),
            "rss_mb_max": _round(max(self.rss, default=None)),
            "generator_cpu_pct_mean": _round(_mean(self.generator_cpu)),
            "generator_cpu_pct_max": _round(max(self.generator_cpu, default=None)),
        }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


TIMESERIES_COLUMNS = (
    "server_cpu_pct",
    "server_rss_mb",
    "generator_cpu_pct",
    "generator_rss_mb",
    "server_in_progress",
    "server_batch_size",
)


class Observer:
    """Samples the server and infbench in a background thread; see the module docstring.

    ``pids`` returns the target's process tree now (empty for an attached URL); ``metrics_url``
    None turns scraping off. Nothing here raises into the run: failures are logged and counted.
    """

    def __init__(
        self,
        pids: Callable[[], list[int]],
        metrics_url: str | None,
        snapshot_dir: Path | None,
        interval_s: float = 1.0,
        scrape_timeout_s: float = 1.0,
        probes: Sequence[Probe] = (),
    ) -> None:
        self._target_pids, self.metrics_url = pids, metrics_url
        self._probes = tuple(probes)  # LLM server view, GPUs: fed on the observer thread
        self.snapshot_dir, self.interval_s = snapshot_dir, interval_s
        self._scrape_timeout_s = scrape_timeout_s
        self._server, self._generator = _TreeSampler(), _TreeSampler()
        self._commands: queue.Queue[tuple[str, str, threading.Event | None]] = queue.Queue()
        self._lock = threading.Lock()  # guards what other threads read: latest, phases
        columns = TIMESERIES_COLUMNS + tuple(c for p in self._probes for c in p.columns)
        self._latest: dict[str, float | None] = dict.fromkeys(columns)
        self._phases: dict[str, _PhaseStats] = {}
        self._generator_cpu: list[float] = []
        self._generator_rss: list[float] = []
        self._last_scrape: Series | None = None
        self._scrapes = {"ok": 0, "failed": 0}
        self._scrape_error: str | None = None  # the first failure, for the run's warning
        self._client: httpx.Client | None = None
        self._thread: threading.Thread | None = None
        self._children: list[int] = []  # infbench's descendants at the last scan
        self._scanned_at: float | None = None

    # -- the caller's side (any thread) --

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="infbench-observer", daemon=True)
        self._thread.start()

    def phase_started(self, name: str, wait: bool = False) -> None:
        """Mark a boundary. The scrape runs on the observer thread so the caller (an event loop
        sending requests) is never delayed; ``wait=True`` blocks until it is done, for the first
        boundary, before any traffic, so no early request escapes the phase's counts. Marking
        the start of a phase that is already open keeps the first mark."""
        self._mark("start", name, wait)

    def phase_ended(self, name: str, wait: bool = False) -> None:
        self._mark("end", name, wait)

    def _mark(self, kind: str, name: str, wait: bool) -> None:
        done = threading.Event()
        self._commands.put((kind, name, done))
        if wait and self._thread is not None and self._thread.is_alive():
            done.wait(timeout=self._scrape_timeout_s + self.interval_s + 1.0)

    def latest(self) -> dict[str, float | None]:
        with self._lock:
            return dict(self._latest)

    def stop(self) -> dict[str, Any]:
        """End sampling and return the ``server`` section of run.json."""
        self._commands.put(("stop", "", None))
        if self._thread is not None:
            self._thread.join(timeout=10 * self._scrape_timeout_s + self.interval_s)
        else:
            self._run()  # never started: still honour the boundaries that were marked
        with self._lock:
            return {
                "metrics_url": self.metrics_url,
                "interval_s": self.interval_s,
                "scrapes": dict(self._scrapes),
                **self._probe_sections(),
                "phases": {name: stats.summary() for name, stats in self._phases.items()},
                "generator": {
                    "cpu_pct_mean": _round(_mean(self._generator_cpu)),
                    "cpu_pct_max": _round(max(self._generator_cpu, default=None)),
                    "rss_mb_max": _round(max(self._generator_rss, default=None)),
                },
            }

    def _probe_sections(self) -> dict[str, Any]:
        """Each probe's section, and a warning when the metrics URL was never read."""
        sections: dict[str, Any] = {p.key: p.summary() for p in self._probes}
        if self._scrape_error is not None and not self._scrapes["ok"]:
            sections["warnings"] = [
                f"the server's metrics at {self.metrics_url} could not be read "
                f"({self._scrape_error}); its figures are absent"
            ]
        return sections

    # -- the observer thread --

    def _run(self) -> None:
        self._client = httpx.Client(timeout=self._scrape_timeout_s, trust_env=False)
        try:
            self._guarded(self._tick)  # primes CPU baselines
            next_tick = time.monotonic() + self.interval_s
            while True:
                try:
                    kind, name, done = self._commands.get(
                        timeout=max(0.0, next_tick - time.monotonic())
                    )
                except queue.Empty:
                    kind, name, done = "tick", "", None
                if kind == "stop":
                    self._guarded(self._tick)
                    return
                if kind == "tick":
                    self._guarded(self._tick)
                    # Keep to the grid; after a stall skip the missed ticks rather than bunch them.
                    next_tick = max(next_tick + self.interval_s, time.monotonic())
                else:
                    self._guarded(functools.partial(self._boundary, kind, name))
                if done is not None:
                    done.set()
        finally:
            self._client.close()

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception:  # the run matters more than one lost sample
            log.warning("observer sample failed", exc_info=True)

    def _tick(self) -> None:
        target = self._safe_target_pids()
        cpu, rss = self._server.sample(target)
        generator_cpu, generator_rss = self._generator.sample(self._generator_pids(target))
        series = self._scrape(None)
        batch = mean_batch_size(self._last_scrape, series) if series and self._last_scrape else None
        busy = in_progress(series) if series else None
        values = (cpu, rss, generator_cpu, generator_rss, busy, batch)
        probed = {k: v for probe in self._probes for k, v in probe.sample(series).items()}
        with self._lock:
            self._latest = {k: _round(v) for k, v in zip(TIMESERIES_COLUMNS, values, strict=True)}
            self._latest.update(probed)
            _append(self._generator_cpu, generator_cpu)
            _append(self._generator_rss, generator_rss)
            for stats in (s for s in self._phases.values() if s.open):
                _append(stats.cpu, cpu)
                _append(stats.rss, rss)
                _append(stats.generator_cpu, generator_cpu)
                _append(stats.in_progress, busy)
        if series is not None:
            self._last_scrape = series

    def _boundary(self, kind: str, name: str) -> None:
        if kind == "start" and name in self._phases and self._phases[name].open:
            return  # marked by the caller (wait=True), then by the engine: keep the first
        series = self._scrape(f"{name}-{kind}.prom")
        scrape = series if series is not None else self._last_scrape
        for probe in self._probes:
            probe.boundary(kind, name, scrape)
        with self._lock:
            if kind == "start":
                self._phases[name] = _PhaseStats(start_scrape=scrape)
            elif name in self._phases:
                stats = self._phases[name]
                stats.end_scrape, stats.open = scrape, False
                _append(stats.in_progress, in_progress(series) if series else None)
        if series is not None:
            self._last_scrape = series

    def _scrape(self, snapshot_name: str | None) -> Series | None:
        if self.metrics_url is None or self._client is None:
            return None
        try:
            response = self._client.get(self.metrics_url)
            response.raise_for_status()
            series = parse_exposition(response.text)
        except Exception as exc:  # unreachable, non-200, or not Prometheus text
            self._scrapes["failed"] += 1
            self._scrape_error = self._scrape_error or f"{type(exc).__name__}: {exc}"
            level = logging.WARNING if self._scrapes["failed"] == 1 else logging.DEBUG
            log.log(level, "scrape of %s failed: %s", self.metrics_url, exc)
            return None
        self._scrapes["ok"] += 1
        if snapshot_name and self.snapshot_dir is not None:
            self.snapshot_dir.mkdir(parents=True, exist_ok=True)
            (self.snapshot_dir / snapshot_name).write_text(response.text)
        return series

    def _safe_target_pids(self) -> list[int]:
        try:
            return list(self._target_pids())
        except Exception:
            log.debug("target pids unavailable", exc_info=True)
            return []

    def _generator_pids(self, target: list[int]) -> list[int]:
        """infbench and its own children (load-generator processes), never the target's tree."""
        now = time.monotonic()
        if self._scanned_at is None or now - self._scanned_at >= CHILDREN_SCAN_S:
            self._scanned_at = now
            try:
                self._children = [c.pid for c in psutil.Process().children(recursive=True)]
            except psutil.Error:
                self._children = []
        started = [c.pid for c in multiprocessing.active_children() if c.pid is not None]
        children = dict.fromkeys(self._children + started)  # each once, in order
        excluded = set(target)
        return [os.getpid(), *(pid for pid in children if pid not in excluded)]


def _append(values: list[float], value: float | None) -> None:
    if value is not None:
        values.append(value)
