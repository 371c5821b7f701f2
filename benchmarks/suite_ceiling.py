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
generator's ``budget_s`` is spent (the time of its own levels, checked after each level and
before a second try, so a search may overrun it by one level). The searches of all generators
take turns, a level each per round (``CeilingSearch``): the bare generator's levels and
infbench's alternate, so drift of a shared machine over the run does not favour either.
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


class CeilingSearch:
    """One generator's search, a level at a time (doubling, then bisection), so that several
    searches can take turns: levels of the bare generator and of infbench then alternate and
    meet the same machine, not one quiet quarter of an hour and another busy one.

    ``budget_s`` counts the time of this search's own levels."""

    def __init__(self, search: Search) -> None:
        self.search = search
        self.levels: list[dict[str, Any]] = []
        self.best: float | None = None  # highest rate held
        self.fail: float | None = None  # lowest rate failed
        self.rate: float | None = search.start  # the next level; None once the search ended
        self.end = "budget"
        self.spent_s = 0.0

    def step(self, measure: Callable[[float], dict[str, Any]], say: Callable[[str], None]) -> None:
        """Run the next level and choose the one after it (or end the search)."""
        rate, search = self.rate, self.search
        assert rate is not None
        began = time.monotonic()
        row = _level(measure, rate, began + search.budget_s - self.spent_s)
        self.spent_s += time.monotonic() - began
        self.levels.append(row)
        figure = f"error: {row['error']}" if "error" in row else f"lag p99 {row['lag_p99_ms']} ms"
        say(f"  {rate:>10,.0f}/s: {figure}, {'held' if row['held'] else 'failed'} "
            f"(try {row['attempts']})")  # fmt: skip
        if row["held"]:
            self.best = rate if self.best is None else max(self.best, rate)
        else:
            self.fail = rate if self.fail is None else min(self.fail, rate)
        self.rate = self._next(rate)
        if self.rate is not None and self.spent_s >= search.budget_s:
            self.rate, self.end = None, "budget"

    def _next(self, rate: float) -> float | None:
        search, best, fail = self.search, self.best, self.fail
        if fail is None:
            if rate * 2 > search.top:
                self.end = "top"
                return None
            return rate * 2
        if best is None:
            if rate / 2 < search.floor:
                self.end = "floor"
                return None
            return rate / 2
        following = float(round(math.sqrt(best * fail), -1))
        if fail / best <= 1 + search.precision or following in (best, fail):
            self.end = "precision"
            return None
        return following

    def result(self) -> dict[str, Any]:
        at_best = next((r for r in self.levels if r["held"] and r["rate"] == self.best), {})
        return {
            "ceiling": self.best,
            "lowest_failed": self.fail,
            "lag_p99_ms": at_best.get("lag_p99_ms"),
            "end": self.end,
            "seconds": round(self.spent_s, 1),
            "levels": self.levels,
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
    """Every generator's ceiling at 1 and 2 processes; also the senders this infbench accepts.
    The searches take turns, one level each per round, so the ratios to the bare generator
    compare levels run minutes apart at most."""
    senders = [s for s in OPEN_SENDERS if s != "auto" or accepts_sender("auto", url)]
    searches = []
    for processes in (1, 2):
        for generator in ("bare", *senders):
            name = "bare generator" if generator == "bare" else f"infbench {generator}"
            measure = partial(_measure, layout, url, search, generator, processes)
            searches.append((generator, processes, name, measure, CeilingSearch(search)))
    round_ = 0
    while any(ceiling.rate is not None for *_, ceiling in searches):
        round_ += 1
        for _, processes, name, measure, ceiling in searches:
            if ceiling.rate is not None:
                say(f"open-loop ceiling, round {round_}: {name} ×{processes}")
                ceiling.step(measure, say)
    rows = [
        {"generator": generator, "processes": processes, "cores": layout.cores(processes),
         **ceiling.result()}
        for generator, processes, _, _, ceiling in searches
    ]  # fmt: skip
    order = ["bare", *senders]  # the table's order: by generator, then processes
    rows.sort(key=lambda row: (order.index(row["generator"]), row["processes"]))
    return rows, senders
