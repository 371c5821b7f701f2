"""Servers that crash, stall or lie, driven through the real engine with every sender.

For each hostile behaviour and each sender: every request ends in a classified outcome within
its timeout, the run finishes, and the test process's memory stays bounded (the fake server
lives in this process too, streaming its large answers).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from fakeserver import FakeServer
from infbench.cli import app
from infbench.load.job import LoadJob
from infbench.load.local import run_local
from infbench.scenario.source import load_scenario
from infbench.schedule.arrivals import build_schedule

SENDERS = ("aiohttp", "httpx", "fast")
TIMEOUT_S = 0.5
DURATION_S = 0.25
RATE = 20
MB = 2**20
RSS_GROWTH_LIMIT_MB = 300  # the whole module: 33 runs, 100 MB answers among them


@dataclass(frozen=True)
class Case:
    knobs: dict[str, Any]
    errors: frozenset[str]  # error kinds allowed (ok answers are allowed only with `ok`)
    ok: bool = False
    cap: int | None = None  # request.max_response_bytes
    stall: bool = False
    statuses: frozenset[int] = field(default_factory=frozenset)


CASES = {
    "connection_reset": Case({"reset": 1.0}, frozenset({"reset"})),
    "stall_never_answers": Case({}, frozenset({"timeout"}), stall=True),
    "garbage_status_line": Case({"malformed": 1.0}, frozenset({"protocol"})),
    "binary_garbage": Case({"raw": b"\x00\xff\xfe garbage \x01\r\n\r\n"}, frozenset({"protocol"})),
    "content_length_too_long": Case({"wrong_length": 100}, frozenset({"timeout"})),
    "content_length_too_long_then_close": Case(
        {"wrong_length": 100, "close": True}, frozenset({"reset", "protocol"})
    ),
    # The extra byte is garbage in front of the next answer on the same connection.
    "content_length_too_short": Case(
        {"wrong_length": -1}, frozenset({"protocol", "reset"}), ok=True
    ),
    "endless_chunked_body": Case({"endless": True}, frozenset({"too_large"}), cap=MB),
    "100MB_with_content_length": Case({"body_size": 100 * MB}, frozenset({"too_large"})),
    "100MB_chunked": Case(
        {"body_size": 100 * MB, "chunked": True}, frozenset({"too_large"}), cap=4 * MB
    ),
    "slow_drip": Case({"drip_s": 0.05, "drip_bytes": 1}, frozenset({"timeout"})),
    "redirect_loop": Case(
        {"status": 302, "headers": {"Location": "/r"}},
        frozenset(),
        ok=True,
        statuses=frozenset({302}),
    ),
}


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / MB


@pytest.fixture(scope="module")
def rss_start() -> Iterator[float]:
    start = rss_mb()
    yield start
    assert rss_mb() - start < RSS_GROWTH_LIMIT_MB


def scenario(tmp_path: Path, url: str, sender: str, cap: int | None) -> Path:
    path = tmp_path / "hostile.yaml"
    cap_line = f", max_response_bytes: {cap}" if cap else ""
    path.write_text(
        f"""version: 1
name: hostile
target: {{kind: url, url: "{url}"}}
request: {{method: GET, path: /r, timeout: {TIMEOUT_S}s{cap_line}}}
client: {{sender: {sender}, connections: 8}}
workload:
  phases:
    - {{name: p, duration: {DURATION_S}s, arrival: {{process: constant, rate: {RATE}}}}}
"""
    )
    return path


@pytest.mark.parametrize("sender", SENDERS)
@pytest.mark.parametrize("name", list(CASES))
def test_every_request_ends_classified_within_its_timeout(
    name: str, sender: str, tmp_path: Path, rss_start: float
) -> None:
    case = CASES[name]
    with FakeServer(**case.knobs) as server:
        if case.stall:
            server.stall_for(3600)
        loaded = load_scenario(scenario(tmp_path, server.url, sender, case.cap))
        schedule = build_schedule(loaded.scenario.workload, tmp_path)
        started = time.monotonic()
        result = run_local(LoadJob(loaded, schedule, tmp_path, server.url))
        elapsed = time.monotonic() - started
        received = server.count()
    (tally,) = result.tallies
    scheduled = schedule.phases[0].scheduled
    assert tally.completed + tally.dropped == scheduled, "a request ended unrecorded"
    assert set(tally.errors) <= case.errors, f"unexpected kinds {dict(tally.errors)}"
    assert case.ok or tally.ok == 0
    if not case.ok:
        assert sum(tally.errors.values()) + tally.dropped == scheduled
    # Each request ends within its timeout (plus scheduling slack) after its intended time.
    latency_max_s = tally.histograms["failed"].get_max_value() / 1e6
    assert latency_max_s < TIMEOUT_S + 0.5
    assert elapsed < DURATION_S + TIMEOUT_S + 3.0
    assert result.report.abandoned == 0
    if case.statuses:
        assert set(tally.statuses) == case.statuses
        assert received == scheduled  # 3xx answers are results: nothing was followed
    assert rss_mb() - rss_start < RSS_GROWTH_LIMIT_MB


def test_a_hostile_run_finishes_and_writes_its_results(tmp_path: Path) -> None:
    """The whole `infbench run` against a server that resets, stalls and answers garbage."""
    with FakeServer(status=(200, 200, 503)) as server:
        server.route("/r", reset=0.5, malformed=0.25)
        path = scenario(tmp_path, server.url, "aiohttp", None)
        server.stall(0.1, 3600)
        result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "out").iterdir()
    assert (run_dir / "run.json").exists() and "complete" in (run_dir / "run.json").read_text()
    assert "errors:" in result.output


_PEAK_SCRIPT = """
import sys, tracemalloc
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from fakeserver import FakeServer
from infbench.schedule.arrivals import build_schedule
from infbench.load.job import LoadJob
from infbench.load.local import run_local
from infbench.scenario.source import load_scenario
with FakeServer(body_size=60 * 2**20) as server:
    path = Path(sys.argv[2])
    path.write_text(path.read_text().replace("URL", server.url))
    loaded = load_scenario(path)
    schedule = build_schedule(loaded.scenario.workload, path.parent)
    tracemalloc.start()
    result = run_local(LoadJob(loaded, schedule, path.parent, server.url))
    peak = tracemalloc.get_traced_memory()[1]
assert result.tallies[0].ok == 1, dict(result.tallies[0].errors)
print(peak / 2**20)
"""


@pytest.mark.parametrize(
    "sender",
    [
        "aiohttp",
        "httpx",
        "fast",
    ],
)
def test_bodies_under_the_cap_are_counted_not_kept(sender: str, tmp_path: Path) -> None:
    """One 60 MB answer (under the default 64 MiB cap): the generating process's peak of
    Python allocations stays far below the body's size. Kept bodies would cost
    connections x max_response_bytes at worst."""
    import subprocess
    import sys

    path = scenario(tmp_path, "URL", sender, None)
    text = path.read_text().replace(f"timeout: {TIMEOUT_S}s", "timeout: 20s")
    path.write_text(text.replace(f"rate: {RATE}", "rate: 4"))  # one request
    tests_dir = str(Path(__file__).parents[1])
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, tests_dir, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[-1]) < 40  # kept, it would be 60 (aiohttp: 127)
