"""Streaming (DESIGN §12): the generator's CPU per received chunk, and the most concurrent streams
one core holds, for ``infbench run`` (``request.api: openai-chat``) with each sender and for the
bare aiohttp SSE reader (benchmarks/sse_reader.py), against the same SSE sink
(benchmarks/sse_sink.py) in the same run.

The sink runs in its own process pinned to the target's core and answers every POST with
``chunks`` content chunks, one per ``gap_ms`` tick shared by all streams. A **level** is one
closed-loop run of ``C`` streams at a time (each worker posts its next request when its stream
ends) for ``seconds``, the reader pinned to the generator's core. It **holds** when every
stream succeeded, the ITL p99 the reader observed is ≤ 2 × gap + 1 ms, and it received at
least 90 % of the chunks the sink sends C streams (C / gap per second): it kept up. A level
that failed by its ITL p99 only (chunk rate and errors fine) is run once more and the second
try counts, as a moment's preemption on a shared machine looks the same; so is a level during
which the sink's own ticks ran late (more than 1 % of them by half a gap or more: the sink was
held up, by other work on its core or by its own load).

CPU per chunk, both in a steady window (the streams running, none opening or ending the run):
the bare reader's own getrusage over its measured window (after a 1 s warm-up) ÷ the content
chunks it counted in it. infbench: the generator process's CPU time (sampled every 0.1 s with
the rest of its process tree) from 1 s after the run's start to 0.5 s before its phase ends ÷
the content chunks received in that window (each request's ``chunks`` of requests.csv.gz,
spread evenly between its first and last token); beside it, the recorder process's CPU over
the same window ÷ the same chunks.

Search: from ``concurrency`` C doubles until a level fails (halves while none has held, down to
8), then bisects (geometric mean) between the most streams held and the fewest failed until
within ``precision``, until ``top``, or until ``budget_s`` of wall time per generator is spent.
When a level fails while the sink's own CPU was ≥ 90 % of its core (its CPU per chunk × the
chunks per second of the level), the sink set the pace: the search ends there (``sink``) and
its figure is a lower bound.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import itertools
import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
from suite_env import ROOT, Layout
from suite_runs import INFBENCH

SINK = ROOT / "benchmarks" / "sse_sink.py"
READER = ROOT / "benchmarks" / "sse_reader.py"
STREAM_SENDERS = ("auto", "aiohttp")
GENERATORS = ("bare", *STREAM_SENDERS)
CHAT_PATH = "/v1/chat/completions"
SINK_BOUND = 0.9  # the sink's estimated CPU share of its core beyond which it sets the pace


@dataclass(frozen=True)
class StreamSettings:
    chunks: int = 100
    gap_ms: float = 10.0
    seconds: float = 5.0
    concurrency: int = 128
    budget_s: float = 90.0
    precision: float = 0.10
    floor: int = 8
    top: int = 4096

    @property
    def itl_bound_ms(self) -> float:
        return 2 * self.gap_ms + 1.0

    def pace(self, concurrency: int) -> float:
        """Content chunks per second the sink sends ``concurrency`` streams."""
        return concurrency * 1000.0 / self.gap_ms

    def describe(self) -> dict[str, Any]:
        return {**self.__dict__, "itl_bound_ms": self.itl_bound_ms}


class StreamSink:
    """benchmarks/sse_sink.py on a free loopback port, pinned to the layout's target core."""

    def __init__(self, layout: Layout, settings: StreamSettings, lifetime_s: float) -> None:
        self.layout, self.settings, self.lifetime_s = layout, settings, lifetime_s
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> str:
        command = [
            *Layout.prefix(self.layout.target), sys.executable, str(SINK), "--port", "0",
            "--chunks", str(self.settings.chunks), "--gap-ms", f"{self.settings.gap_ms:g}",
            "--lifetime", f"{self.lifetime_s:.0f}",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 30)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"the SSE sink did not start (it printed {line!r})")
        self.url = line.removeprefix("listening on ").strip()
        return self.url

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/stats", timeout=10) as answer:
            return dict(json.loads(answer.read()))

    def describe(self) -> str:
        s = self.settings
        return (
            f"benchmarks/sse_sink.py (uvloop, 1 process): {s.chunks} content chunks of "
            f"~230 bytes per answer, one every {s.gap_ms:g} ms on a clock all streams share, "
            "then usage and [DONE]"
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> StreamSink:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _sink_figures(before: dict[str, Any], after: dict[str, Any], rate: float) -> dict[str, Any]:
    """The sink's share of a level: CPU per chunk written, estimated CPU share at the level's
    chunk rate, ticks that ran half a gap late."""
    chunks = after["chunks"] - before["chunks"]
    cpu_us = 1e6 * (after["cpu_s"] - before["cpu_s"]) / chunks if chunks else None
    ticks = after["ticks"] - before["ticks"]
    late = after["late_ticks"] - before["late_ticks"]
    load = cpu_us * rate / 1e6 if cpu_us is not None else None
    return {
        "sink_cpu_us_per_chunk": round(cpu_us, 2) if cpu_us is not None else None,
        "sink_load": round(load, 2) if load is not None else None,
        "sink_late_ticks": late,
        "sink_worst_tick_lag_ms": after["worst_tick_lag_ms"],
        "sink_bound": bool((load or 0.0) >= SINK_BOUND),
        "sink_late": late > 0.01 * max(ticks, 1),  # its ticks were held up: noise, or the sink
    }


def _tail(text: str, lines: int = 4) -> str:
    return " ".join(" ".join(text.strip().splitlines()[-lines:]).split())[-300:]


# --- one level ------------------------------------------------------------------------------------


def measure_bare(
    layout: Layout,
    sink: StreamSink,
    settings: StreamSettings,
    concurrency: int,
    options: Sequence[str] = (),
) -> dict[str, Any]:
    """The bare aiohttp reader at one level (``options``: more of its flags, e.g. --floor)."""
    command = [
        *Layout.prefix(layout.generator(1)), sys.executable, str(READER), sink.url + CHAT_PATH,
        "-c", str(concurrency), "--duration", f"{settings.seconds:g}", "--warmup", "1", *options,
    ]  # fmt: skip
    timeout = settings.seconds + 60
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        out = json.loads(done.stdout) if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        return {"error": f"bare reader: {exc}"}
    if out is None:
        return {"error": _tail(done.stderr + done.stdout)}
    return {
        "chunks": out["chunks"],
        "chunks_per_s": out["chunks_per_s"],
        "cpu_us_per_chunk": out["cpu_us_per_chunk"],
        "itl_p50_ms": out["itl_p50_ms"],
        "itl_p99_ms": out["itl_p99_ms"],
        "errors": out["errors"],
        "streams": out["streams"],
    }


def stream_scenario(url: str, sender: str, concurrency: int, settings: StreamSettings) -> str:
    """A closed-loop phase of ``concurrency`` streamed chat answers against the sink (YAML)."""
    document = {
        "version": 1,
        "name": "streams",
        "target": {"kind": "url", "url": url},
        "request": {
            "api": "openai-chat", "model": "m", "prompt": "Say many words.",
            "max_tokens": settings.chunks, "timeout": "30s",
        },
        "client": {"sender": sender, "connections": concurrency},
        "workload": {"seed": 1, "phases": [{
            "name": "streams", "duration": settings.seconds,
            "arrival": {"process": "closed", "concurrency": concurrency},
        }]},
    }  # fmt: skip
    return json.dumps(document)  # JSON is YAML


def _tree_cpu(process: psutil.Process, seen: dict[int, float]) -> tuple[float, float]:
    """CPU seconds of the process itself and of every descendant seen so far: the live ones
    now, an exited one (the recorder ends with the run) at its last sample, so no sum falls."""
    times = process.cpu_times()
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child_times = child.cpu_times()
            seen[child.pid] = child_times.user + child_times.system
    return times.user + times.system, sum(seen.values())


CpuSample = tuple[float, float, float]  # Unix time, the generator's CPU s, its descendants'


def _at(samples: list[CpuSample], when: float, column: int) -> float | None:
    """A sampled cumulative figure at a Unix time, interpolated (None outside the samples)."""
    for before, after in itertools.pairwise(samples):
        t0, t1, v0, v1 = before[0], after[0], before[column], after[column]
        if t0 <= when <= t1:
            return v0 + (v1 - v0) * (when - t0) / (t1 - t0) if t1 > t0 else v0
    return None


def _run_sampled(
    command: list[str], timeout: float, work: Path
) -> tuple[int, str, list[CpuSample]]:
    """Run to completion, sampling the CPU of the process and of its descendants (the
    recorder) every 0.1 s; returns the exit status, what it printed, and the samples."""
    out_path = work / "out.txt"
    samples: list[CpuSample] = []
    seen: dict[int, float] = {}
    with open(out_path, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        watched = psutil.Process(process.pid)
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):
                samples.append((time.time(), *_tree_cpu(watched, seen)))
            time.sleep(0.1)
        if process.poll() is None:
            raise subprocess.TimeoutExpired(command, timeout)
    finally:
        if process.poll() is None:  # a timeout or Ctrl-C: let it finalize, then make sure
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return process.returncode, out_path.read_text(errors="replace"), samples


def _chunks_between(result_dir: Path, start_ns: int, end_ns: int) -> float:
    """Content chunks received between two instants (ns from the run's start): each request's
    chunks spread evenly between its first and last token."""
    total = 0.0
    with gzip.open(result_dir / "requests.csv.gz", "rt", newline="") as rows:
        for row in csv.DictReader(rows):
            chunks = int(row["chunks"] or 0)
            if not chunks:
                continue
            first, last = int(row["first_token_ns"]), int(row["last_token_ns"])
            if last <= first:
                total += chunks if start_ns <= first < end_ns else 0
                continue
            overlap = min(last, end_ns) - max(first, start_ns)
            total += chunks * max(overlap, 0) / (last - first)
    return total


STEADY_AFTER_S, STEADY_BEFORE_END_S = 1.0, 0.5  # the window CPU per chunk is measured in


def measure_infbench(
    layout: Layout, sink: StreamSink, settings: StreamSettings, sender: str, concurrency: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="infbench-bench-streams-") as tmp:
        work = Path(tmp)
        (work / "scenario.yaml").write_text(
            stream_scenario(sink.url, sender, concurrency, settings)
        )
        command = [
            *Layout.prefix(layout.generator(1)), *INFBENCH, "run", str(work / "scenario.yaml"),
            "--out", str(work / "results"), "-q",
        ]  # fmt: skip
        try:
            status, printed, samples = _run_sampled(command, settings.seconds + 120, work)
        except subprocess.TimeoutExpired:
            return {"error": "infbench run did not finish in time"}
        runs = list((work / "results").glob("*/run.json"))
        if status not in (0, 4) or not runs:
            return {"error": _tail(printed)}
        run = json.loads(runs[0].read_text())
        (phase,) = run["phases"]
        start = run["timings"]["start_epoch_s"]
        window = (STEADY_AFTER_S, phase["duration_s"] - STEADY_BEFORE_END_S)
        chunks = _chunks_between(runs[0].parent, *(int(t * 1e9) for t in window))
    cpu = [
        [_at(samples, start + t, column) for t in window] for column in (1, 2)
    ]  # the generator's, the recorder's
    per_chunk = [
        round(1e6 * (last - first) / chunks, 2)
        if chunks and first is not None and last is not None
        else None
        for first, last in cpu
    ]
    errors = sum(phase["errors"].values()) + phase["dropped"]
    return {
        "sender": run["generator"].get("sender", sender),
        "chunks": round(chunks),
        "chunks_per_s": round(phase["output_tokens"] / phase["duration_s"], 1),
        "cpu_us_per_chunk": per_chunk[0],
        "recorder_us_per_chunk": per_chunk[1],
        "ttft_p99_ms": phase["ttft_ms"]["p99"],
        "itl_p50_ms": phase["itl_ms"]["p50"],
        "itl_p99_ms": phase["itl_ms"]["p99"],
        "loop_lag_p99_ms": (phase.get("loop_lag_ms") or {}).get("p99"),
        "errors": errors,
        "streams": phase["ok"],
        "tokens_source": phase.get("tokens_source"),
        "valid": run["valid"],
        "reasons": run.get("invalid_reasons", []),
    }


def measure(
    layout: Layout, sink: StreamSink, settings: StreamSettings, generator: str, concurrency: int
) -> dict[str, Any]:
    """One level of one generator, the sink's share of it, and whether it held."""
    before = sink.stats()
    if generator == "bare":
        row = measure_bare(layout, sink, settings, concurrency)
    else:
        row = measure_infbench(layout, sink, settings, generator, concurrency)
    row = {"concurrency": concurrency, **row}
    if "error" in row:
        return {**row, "held": False, "itl_only": False, "sink_bound": False, "sink_late": False}
    row.update(_sink_figures(before, sink.stats(), row["chunks_per_s"]))
    itl_ok = row["itl_p99_ms"] is not None and row["itl_p99_ms"] <= settings.itl_bound_ms
    rate_ok = row["chunks_per_s"] >= 0.9 * settings.pace(concurrency)
    row["held"] = bool(itl_ok and rate_ok and not row["errors"])
    row["itl_only"] = bool(not itl_ok and rate_ok and not row["errors"])
    return row


# --- the search -----------------------------------------------------------------------------------


def most_streams(
    measure_at: Callable[[int], dict[str, Any]],
    settings: StreamSettings,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Doubling, then bisection; the most streams held (None if none) and every level."""
    began = time.monotonic()
    levels: list[dict[str, Any]] = []
    best: int | None = None
    fail: int | None = None
    level, end = settings.concurrency, "budget"
    while time.monotonic() - began < settings.budget_s:
        row: dict[str, Any] = {}
        for attempt in (1, 2):
            row = {**measure_at(level), "attempts": attempt}
            retry = (row["itl_only"] or row["sink_late"]) and not row["sink_bound"]
            retry = retry and time.monotonic() - began < settings.budget_s
            if row["held"] or not retry:
                break
        levels.append(row)
        say(f"  {level:>5} streams: {_level_text(row)}")
        if row["held"]:
            best = level if best is None else max(best, level)
        else:
            fail = level if fail is None else min(fail, level)
            if row.get("sink_bound"):
                end = "sink"
                break
        if fail is None:
            if level * 2 > settings.top:
                end = "top"
                break
            level *= 2
        elif best is None:
            if level // 2 < settings.floor:
                end = "floor"
                break
            level //= 2
        else:
            level = round(math.sqrt(best * fail))
            if fail / best <= 1 + settings.precision or level in (best, fail):
                end = "precision"
                break
    at_best = next((r for r in levels if r["held"] and r["concurrency"] == best), {})
    return {
        "most_streams": best,
        "fewest_failed": fail,
        "at_most": {k: at_best.get(k) for k in ("chunks_per_s", "cpu_us_per_chunk", "itl_p99_ms")},
        "end": end,
        "seconds": round(time.monotonic() - began, 1),
        "levels": levels,
    }


def _level_text(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"error: {row['error']}"
    verdict = "held" if row["held"] else "failed" + (" (sink-bound)" if row["sink_bound"] else "")
    return (
        f"{row['chunks_per_s']:,.0f} chunks/s, ITL p99 {row['itl_p99_ms']} ms, "
        f"CPU {row['cpu_us_per_chunk']} µs/chunk, sink load {row['sink_load']} "
        f"({row['sink_late_ticks']} ticks late), {row['errors']} errors: {verdict} "
        f"(try {row['attempts']})"
    )


def streams_section(
    layout: Layout, settings: StreamSettings, say: Callable[[str], None]
) -> dict[str, Any]:
    """CPU per chunk at ``settings.concurrency`` streams, then the most streams held, for the
    bare reader and infbench with each sender, all against one sink."""
    lifetime = 3 * (settings.budget_s + 4 * (settings.seconds + 30)) * len(GENERATORS) + 600
    with StreamSink(layout, settings, lifetime) as sink:
        say(f"streams: SSE sink on {sink.url}; {layout.describe()}")
        cpu: list[dict[str, Any]] = []
        for generator in GENERATORS:
            say(f"streams: CPU per chunk, {_name(generator)}, {settings.concurrency} streams")
            row = {"generator": generator, **measure(layout, sink, settings, generator,
                                                     settings.concurrency)}  # fmt: skip
            say(f"  {_level_text({**row, 'attempts': 1})}")
            cpu.append(row)
        ceilings: list[dict[str, Any]] = []
        for generator in GENERATORS:
            say(f"streams: most concurrent streams, {_name(generator)}")
            found = most_streams(partial(measure, layout, sink, settings, generator), settings, say)
            ceilings.append({"generator": generator, **found})
        sink_text = sink.describe()
    return {"settings": settings.describe(), "sink": sink_text, "cpu": cpu, "ceilings": ceilings}


def _name(generator: str) -> str:
    return "bare aiohttp reader" if generator == "bare" else f"infbench {generator}"
