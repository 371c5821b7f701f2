"""Open-loop ceilings: the highest constant rate each generator holds with send-lag p99 < 1 ms.

Generators: the bare generator (benchmarks/bare_generator.py, the Python floor: records nothing
but lag) and ``infbench run`` with each sender this infbench accepts among auto, fast and aiohttp
(``auto`` is tried with ``infbench validate``), at 1 and 2 processes. A level is one constant-rate
run (a 1 s warm-up, then ``level_s`` measured); it **holds** when lag p99 < 1 ms, every arrival
completed, and nothing failed or was dropped. A level that fails by a stall only (lag p50 ≤ 1 ms,
every arrival completed) is run once more and the second try counts.

The search: from ``start`` (1,000/s) the rate doubles until a level fails (halves while none
has held, down to ``floor``), then bisects (geometric mean) between the highest rate held and the
lowest that failed until they are within ``precision`` (10 %), ``top`` is reached, or the
generator's ``budget_s`` of wall time is spent (checked before each level and before a second
try, so a search may overrun it by one level).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from suite_env import ROOT, Layout
from suite_runs import INFBENCH, _scenario, run_infbench_open

BARE = ROOT / "benchmarks" / "bare_generator.py"
OPEN_SENDERS = ("auto", "fast", "aiohttp")


@dataclass(frozen=True)
class Search:
    start: float = 1_000.0
    level_s: float = 3.0
    budget_s: float = 150.0
    precision: float = 0.10
    floor: float = 250.0
    top: float = 1_024_000.0
    connections: int = 64

    def describe(self) -> dict[str, Any]:
        return dict(self.__dict__)


def accepts_sender(sender: str, url: str) -> bool:
    """Whether this infbench accepts ``client.sender: <sender>`` (``infbench validate``)."""
    client = {"sender": sender, "connections": 1}
    phase = {"name": "probe", "duration": 1, "arrival": {"process": "constant", "rate": 1}}
    with tempfile.TemporaryDirectory(prefix="infbench-bench-probe-") as tmp:
        path = Path(tmp) / "probe.yaml"
        path.write_text(_scenario("probe", url, client, phase, 0.0))
        done = subprocess.run(
            [*INFBENCH, "validate", str(path)], capture_output=True, timeout=60, check=False
        )
    return done.returncode == 0


def held(row: dict[str, Any]) -> bool:
    """Lag p99 < 1 ms, every arrival completed, nothing failed or dropped."""
    if "kept_up" in row:  # infbench's own row: the same rule, over its run.json
        return bool(row["kept_up"])
    return bool(
        "error" not in row
        and row["lag_p99_ms"] is not None
        and row["lag_p99_ms"] < 1.0
        and row["completed"] == row["scheduled"]
        and not row.get("errors")
    )


def clearly_behind(row: dict[str, Any]) -> bool:
    """Fell behind for good (most requests late, or arrivals lost), not by a moment's stall."""
    if "error" in row:
        return True
    lag_p50 = row["lag_p50_ms"]
    return row["completed"] < row["scheduled"] or lag_p50 is None or lag_p50 > 1.0


def _bare_command(
    layout: Layout, url: str, processes: int, rate: float, seconds: float, connections: int
) -> list[str]:
    return [
        *Layout.prefix(layout.generator(processes)), sys.executable, str(BARE), url + "/",
        f"--rate={rate:g}", f"--duration={seconds:g}", "--warmup=1", f"--connections={connections}",
    ]  # fmt: skip


def _percentile_ms(ordered: np.ndarray[Any, Any], q: float) -> float | None:
    if not len(ordered):
        return None
    return round(float(ordered[min(int(q * len(ordered)), len(ordered) - 1)]) / 1e6, 4)


def run_bare(
    layout: Layout, url: str, processes: int, rate: float, seconds: float, connections: int
) -> dict[str, Any]:
    """The bare generator as ``processes`` shards of one schedule from a common start instant,
    each with ``connections`` connections (as infbench's processes), lags merged exactly."""
    command = _bare_command(layout, url, processes, rate, seconds, connections)
    start_at = f"{time.time() + 1.0:.6f}"  # Python start-up and the connections, then arrival 0
    outputs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="infbench-bench-bare-") as tmp:
        files = [f"{tmp}/lags-{shard}" for shard in range(processes)]
        shards = [
            subprocess.Popen(
                [*command, f"--shard={i}/{processes}", f"--start-at={start_at}", f"--lags={f}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i, f in enumerate(files)
        ]
        try:
            for shard in shards:
                out, err = shard.communicate(timeout=seconds + 60)
                if shard.returncode != 0:
                    return {"error": " ".join((err or out).split())[-300:]}
                outputs.append(json.loads(out))
        except (subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            return {"error": f"bare generator: {exc}"}
        finally:
            for shard in shards:  # a timeout, a failed shard or Ctrl-C: none is left behind
                if shard.poll() is None:
                    shard.kill()
                    shard.wait()
        lags = np.sort(np.concatenate([np.fromfile(f, dtype=np.int64) for f in files]))
    row = {
        key: sum(o[key] for o in outputs) for key in ("scheduled", "sent", "completed", "errors")
    }
    return {
        **row,
        "lag_p50_ms": _percentile_ms(lags, 0.5),
        "lag_p99_ms": _percentile_ms(lags, 0.99),
    }


def _level(
    measure: Callable[[float], dict[str, Any]], rate: float, retry_until: float
) -> dict[str, Any]:
    """One level; a second try when the first failed by a stall only (a shared machine) and the
    budget is not spent (``retry_until``, monotonic seconds)."""
    row: dict[str, Any] = {}
    for attempt in (1, 2):
        row = {"rate": rate, **measure(rate), "attempts": attempt}
        row["held"] = held(row)
        if row["held"] or clearly_behind(row) or time.monotonic() >= retry_until:
            break
    return row


def find_ceiling(
    measure: Callable[[float], dict[str, Any]], search: Search, say: Callable[[str], None]
) -> dict[str, Any]:
    """Doubling, then bisection; returns the ceiling (None if no level held) and every level."""
    began = time.monotonic()
    levels: list[dict[str, Any]] = []
    best: float | None = None  # highest rate held
    fail: float | None = None  # lowest rate failed
    rate, end = search.start, "budget"
    while time.monotonic() - began < search.budget_s:
        row = _level(measure, rate, began + search.budget_s)
        levels.append(row)
        figure = f"error: {row['error']}" if "error" in row else f"lag p99 {row['lag_p99_ms']} ms"
        say(f"  {rate:>10,.0f}/s: {figure}, {'held' if row['held'] else 'failed'} "
            f"(try {row['attempts']})")  # fmt: skip
        if row["held"]:
            best = rate if best is None else max(best, rate)
        else:
            fail = rate if fail is None else min(fail, rate)
        if fail is None:
            if rate * 2 > search.top:
                end = "top"
                break
            rate *= 2
        elif best is None:
            if rate / 2 < search.floor:
                end = "floor"
                break
            rate /= 2
        else:
            rate = float(round(math.sqrt(best * fail), -1))
            if fail / best <= 1 + search.precision or rate in (best, fail):
                end = "precision"
                break
    at_best = next((r for r in levels if r["held"] and r["rate"] == best), {})
    return {
        "ceiling": best,
        "lowest_failed": fail,
        "lag_p99_ms": at_best.get("lag_p99_ms"),
        "end": end,
        "seconds": round(time.monotonic() - began, 1),
        "levels": levels,
    }


def _measure(
    layout: Layout, url: str, search: Search, generator: str, processes: int, rate: float
) -> dict[str, Any]:
    if generator == "bare":
        return run_bare(layout, url, processes, rate, search.level_s, search.connections)
    return run_infbench_open(
        layout, url, generator, processes, rate, search.level_s, search.connections
    )


def open_ceilings(
    layout: Layout, url: str, search: Search, say: Callable[[str], None]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every generator's ceiling at 1 and 2 processes; also the senders this infbench accepts."""
    senders = [s for s in OPEN_SENDERS if s != "auto" or accepts_sender("auto", url)]
    rows: list[dict[str, Any]] = []
    for generator in ("bare", *senders):
        for processes in (1, 2):
            name = "bare generator" if generator == "bare" else f"infbench {generator}"
            say(f"open-loop ceiling: {name} ×{processes}")
            measure = partial(_measure, layout, url, search, generator, processes)
            found = find_ceiling(measure, search, say)
            rows.append(
                {"generator": generator, "processes": processes,
                 "cores": layout.cores(processes), **found}
            )  # fmt: skip
    return rows, senders
