"""One measurement each: wrk, Locust and infbench closed loop, infbench open loop at a rate, a
long run's memory, and the time to summarize and compare two result directories.

Every function returns a plain dict (saved as JSON and turned into tables by suite_tables.py).
A tool that fails leaves ``error`` in its dict instead of figures; nothing is ever guessed.
"""

from __future__ import annotations

import contextlib
import json
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from suite_env import ROOT, Layout, Tools

INFBENCH = [sys.executable, "-m", "infbench"]
LOCUSTFILE = ROOT / "benchmarks" / "locustfile.py"


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: list[str], timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run to completion; the second value is the CPU seconds it (and what it waited for) used."""
    before = _children_cpu_s()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    return done, _children_cpu_s() - before


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _per_request_us(cpu_s: float, requests: int) -> float | None:
    return round(1e6 * cpu_s / requests, 2) if requests else None


# --- closed loop: wrk, Locust, infbench -----------------------------------------------------------


def run_wrk(
    tools: Tools, layout: Layout, url: str, seconds: float, connections: int
) -> dict[str, Any]:
    cpus = layout.generator(1)
    command = [
        *Layout.prefix(cpus),
        tools.wrk or "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        url + "/",
    ]
    done, cpu_s = _run(command, seconds + 60)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", done.stdout)
    rate = re.search(r"Requests/sec:\s*([\d.]+)", done.stdout)
    if done.returncode or not total or not rate:
        return {"tool": "wrk", "error": _tail(done.stdout + done.stderr)}
    requests = int(total.group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", done.stdout)
    return {
        "tool": "wrk",
        "processes": 1,
        "cores": layout.cores(1),
        "requests": requests,
        "rps": float(rate.group(1)),
        "cpu_us_per_request": _per_request_us(cpu_s, requests),
        "errors": bad.group(0) if bad else None,
    }


def run_locust(
    tools: Tools, layout: Layout, url: str, seconds: float, users: int
) -> dict[str, Any]:
    assert tools.locust is not None
    with tempfile.TemporaryDirectory(prefix="infbench-bench-locust-") as tmp:
        prefix = f"{tmp}/locust"
        command = [
            *Layout.prefix(layout.generator(1)), *tools.locust,
            "-f", str(LOCUSTFILE), "--headless", "--only-summary",
            "-u", str(users), "-r", str(users), "-t", f"{seconds:g}s", "--host", url,
            "--csv", prefix, "--loglevel", "ERROR", "--stop-timeout", "1",
        ]  # fmt: skip
        done, cpu_s = _run(command, seconds + 120)
        stats = Path(prefix + "_stats.csv")
        if not stats.exists():
            return {"tool": "locust", "error": _tail(done.stdout + done.stderr)}
        rows = stats.read_text().splitlines()
    header = rows[0].split(",")
    aggregated = next(r.split(",") for r in rows[1:] if ",Aggregated," in r)
    row = dict(zip(header, aggregated, strict=False))
    requests, failures = int(row["Request Count"]), int(row["Failure Count"])
    return {
        "tool": "locust",
        "processes": 1,
        "cores": layout.cores(1),
        "requests": requests,
        "rps": float(row["Requests/s"]),
        "cpu_us_per_request": _per_request_us(cpu_s, requests),
        "errors": f"{failures} failures" if failures else None,
    }


def _scenario(
    name: str, url: str, client: dict[str, Any], phase: dict[str, Any], warmup: float
) -> str:
    document = {
        "version": 1,
        "name": name,
        "target": {"kind": "url", "url": url},
        "request": {"method": "GET", "path": "/", "timeout": "5s"},
        "client": client,
        "workload": {"seed": 1, "warmup": warmup or None, "phases": [phase]},
    }
    return json.dumps(document)  # JSON is YAML


def _infbench(
    layout: Layout, processes: int, scenario: str, timeout: float, work: Path
) -> tuple[dict[str, Any] | None, str]:
    """``infbench run --json``; returns run.json (or None) and the tail of what it printed."""
    path = work / "scenario.yaml"
    path.write_text(scenario)
    command = [
        *Layout.prefix(layout.generator(processes)), *INFBENCH,
        "run", str(path), "--out", str(work / "results"), "--json", "-q",
    ]  # fmt: skip
    done, _ = _run(command, timeout)
    if done.returncode not in (0, 4):
        return None, _tail(done.stderr + done.stdout)
    try:
        return json.loads(done.stdout), ""
    except json.JSONDecodeError:
        return None, _tail(done.stderr + done.stdout)


def _generator_cpu_s(run: dict[str, Any]) -> float:
    """Busy CPU seconds of all generator processes during the load (spin-waiting excluded)."""
    wall = run["timings"]["duration_s"] + 0.1  # plus the start lead
    parts = run["generator"].get("per_process") or [run["generator"]]
    return float(sum(part["busy_cpu_pct"] / 100 * wall for part in parts))


def _completed(run: dict[str, Any]) -> int:
    warmup = (run.get("warmup") or {}).get("completed") or 0
    return int(sum(p["completed"] for p in run["phases"]) + warmup)


def run_infbench_closed(
    layout: Layout, url: str, sender: str, processes: int, seconds: float, connections: int
) -> dict[str, Any]:
    name = f"{sender} ×{processes}"
    client = {"sender": sender, "connections": connections, "processes": processes}
    phase = {
        "name": "closed",
        "duration": seconds,
        "arrival": {"process": "closed", "concurrency": connections},
    }
    with tempfile.TemporaryDirectory(prefix="infbench-bench-") as tmp:
        run, error = _infbench(
            layout,
            processes,
            _scenario("closed", url, client, phase, 1.0),
            seconds + 120,
            Path(tmp),
        )
    if run is None:
        return {"tool": f"infbench {name}", "error": error}
    (measured,) = run["phases"]
    return {
        "tool": f"infbench {name}",
        "sender": sender,
        "processes": processes,
        "cores": layout.cores(processes),
        "requests": measured["completed"],
        "rps": measured["achieved_rps"],
        "cpu_us_per_request": _per_request_us(_generator_cpu_s(run), _completed(run)),
        "errors": (f"{measured['error_rate']:.2%} errors" if measured["error_rate"] else None),
    }


def run_infbench_open(
    layout: Layout,
    url: str,
    sender: str,
    processes: int,
    rate: float,
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    client = {"sender": sender, "connections": connections, "processes": processes}
    phase = {"name": "open", "duration": seconds, "arrival": {"process": "constant", "rate": rate}}
    with tempfile.TemporaryDirectory(prefix="infbench-bench-") as tmp:
        run, error = _infbench(
            layout, processes, _scenario("open", url, client, phase, 1.0), seconds + 120, Path(tmp)
        )
    base = {
        "sender": sender,
        "processes": processes,
        "cores": layout.cores(processes),
        "rate": rate,
    }
    if run is None:
        return {**base, "error": error}
    (measured,) = run["phases"]
    lag = measured["lag_ms"]
    kept_up = (
        lag["p99"] is not None
        and lag["p99"] < 1.0
        and measured["completed"] == measured["scheduled"]
        and not measured["dropped"]
        and not measured["error_rate"]
    )
    return {
        **base,
        "scheduled": measured["scheduled"],
        "completed": measured["completed"],
        "achieved_rps": measured["achieved_rps"],
        "lag_p50_ms": lag["p50"],
        "lag_p99_ms": lag["p99"],
        "latency_p99_ms": measured["latency_ms"]["p99"],
        "cpu_us_per_request": _per_request_us(_generator_cpu_s(run), _completed(run)),
        "generator_cpu_pct": run["generator"]["cpu_pct"],
        "kept_up": kept_up,
        "valid": run["valid"],
    }


# --- a long run's memory, and the analysis of two long runs ---------------------------------------


def _watch_peak_rss(process: subprocess.Popen[bytes], out: Path) -> int:
    """Peak RSS of the infbench process, sampled until its run.json appears (or it exits)."""
    peak, watched = 0, psutil.Process(process.pid)
    while process.poll() is None and not list(out.glob("*/run.json")):
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.1)
    return peak


def run_long(
    layout: Layout, url: str, requests: int, connections: int, keep: Path, rate_hint: float
) -> dict[str, Any]:
    """A closed-loop run of ``requests`` requests (fast sender, one process), its result directory
    kept under ``keep``. A closed phase runs for its whole duration even once ``max_requests``
    are done, so the duration is sized from ``rate_hint`` (req/s) as twice the time needed, a
    shared machine being slower now and then; ``completed`` says how many were actually sent.
    RSS: the generator's own figure at the end of the load (run.json) and the peak of the
    infbench process sampled every 0.1 s until run.json was written (the HTML report rendered
    afterwards is not part of the load)."""
    duration = round(2.0 * requests / max(rate_hint, 100.0) + 5.0, 1)
    client = {"sender": "fast", "connections": connections, "processes": 1}
    phase = {
        "name": "long", "duration": duration, "max_requests": requests,
        "arrival": {"process": "closed", "concurrency": connections},
    }  # fmt: skip
    keep.mkdir(parents=True, exist_ok=True)
    path = keep / f"long-{requests}.yaml"
    path.write_text(_scenario("long", url, client, phase, 0.0))
    out = keep / f"results-{requests}"
    log = keep / f"long-{requests}.log"
    command = [*Layout.prefix(layout.generator(1)), *INFBENCH, "run", str(path), "--out", str(out)]
    started = time.monotonic()
    with open(log, "wb") as sink:
        process = subprocess.Popen([*command, "-q"], stdout=subprocess.DEVNULL, stderr=sink)
    try:
        peak = _watch_peak_rss(process, out)
        process.wait(timeout=duration + 600)
    finally:
        if process.poll() is None:  # interrupted: let it finalize, then make sure it is gone
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    runs = list(out.glob("*/run.json"))
    if process.returncode not in (0, 4) or not runs:
        return {"requests": requests, "error": _tail(log.read_text(errors="replace"))}
    run = json.loads(runs[0].read_text())
    (measured,) = run["phases"]
    return {
        "requests": requests,
        "completed": measured["completed"],
        "rps": round(measured["completed"] / _busy_seconds(run), 1),
        "rss_end_mb": run["generator"]["rss_mb"],
        "rss_peak_mb": round(peak / 2**20, 1),
        "wall_s": round(time.monotonic() - started, 1),
        "result_dir": str(runs[0].parent),
    }


def _busy_seconds(run: dict[str, Any]) -> float:
    """Seconds from the phase start to the last completion (the phase idles after that)."""
    series = Path(run["result_dir"]) / "timeseries.csv"
    seconds = 0
    with contextlib.suppress(OSError):
        for line in series.read_text().splitlines()[1:]:
            cells = line.split(",")
            if len(cells) > 4 and cells[4] not in ("", "0"):
                seconds += 1
    return float(max(seconds, 1))


def _timed(command: list[str], timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "error": f"did not finish within {timeout:.0f} s"}
    seconds = round(time.monotonic() - started, 2)
    if done.returncode != 0:
        return {
            "seconds": None,
            "error": f"exit {done.returncode}: {_tail(done.stderr + done.stdout, 3)}",
        }
    return {"seconds": seconds, "error": None}


def time_analysis(first: Path, second: Path) -> dict[str, Any]:
    """Wall seconds, Python start-up and imports included, as a user waits for them."""
    return {
        "startup": _timed([*INFBENCH, "--version"], 120),
        "summarize": _timed([*INFBENCH, "report", str(first)], 600),
        "compare": _timed([*INFBENCH, "compare", str(first), str(second), "--format", "json"], 600),
    }
