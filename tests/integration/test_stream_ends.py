"""How a streamed answer ends (DESIGN §5b), on every sender that streams, against a real server.

``[DONE]``, or a clean end of the body after a chunk with a ``finish_reason``, is a complete
answer; a body that ends before either is ``reset``. A ``data:`` line that never ends is cut
at its own bound (``EVENT_MAX_BYTES``) as ``too_large``, and a 64 MiB one costs the generating
process about what an ordinary run does (peak RSS of a subprocess, bound asserted loosely).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infbench.load.job import LoadJob
from infbench.load.local import run_local
from infbench.recorder.tally import PhaseTally
from infbench.scenario.source import load_scenario
from infbench.schedule.arrivals import build_schedule
from streamserver import StreamServer

SENDERS = ("fast", "aiohttp", "httpx")
MIB = 2**20
RUNAWAY = 64 * MIB


def scenario(tmp_path: Path, url: str, sender: str, rate: int = 8) -> Path:
    path = tmp_path / "ends.yaml"
    path.write_text(
        f"""version: 1
name: ends
target: {{kind: url, url: "{url}"}}
request: {{api: openai-chat, model: m, prompt: "hi", max_tokens: 8, timeout: 5s}}
client: {{sender: {sender}, connections: 2}}
workload:
  phases:
    - {{name: p, duration: 0.25s, arrival: {{process: constant, rate: {rate}}}}}
"""
    )
    return path


def run(tmp_path: Path, sender: str, **knobs: Any) -> PhaseTally:
    with StreamServer(ttft_s=0.005, itl_s=0.002, chunks=3, **knobs) as server:
        loaded = load_scenario(scenario(tmp_path, server.url, sender))
        schedule = build_schedule(loaded.scenario.workload, tmp_path)
        result = run_local(LoadJob(loaded, schedule, tmp_path, server.url))
    (tally,) = result.tallies
    assert tally.completed == schedule.phases[0].scheduled > 0
    return tally


ENDS = {
    "[DONE] and a finish_reason": ({}, None),
    "[DONE] alone": ({"finish": False}, None),
    "a finish_reason, then the body ends": ({"done": False}, None),
    "a finish_reason alone, no usage either": ({"done": False, "usage": False}, None),
    "neither: the body ends early": ({"done": False, "finish": False}, "reset"),
    "the connection drops mid-stream": ({"cut_at": 2}, "reset"),
    "a runaway data line": ({"runaway": RUNAWAY}, "too_large"),
}


@pytest.mark.parametrize("sender", SENDERS)
@pytest.mark.parametrize(("knobs", "kind"), ENDS.values(), ids=ENDS.keys())
def test_how_a_stream_ends(
    tmp_path: Path, sender: str, knobs: dict[str, Any], kind: str | None
) -> None:
    tally = run(tmp_path, sender, **knobs)
    if kind is None:
        assert tally.ok == tally.completed and not tally.errors, dict(tally.errors)
    else:
        assert tally.ok == 0 and dict(tally.errors) == {kind: tally.completed}


_PEAK_SCRIPT = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from infbench.load.job import LoadJob
from infbench.load.local import run_local
from infbench.scenario.source import load_scenario
from infbench.schedule.arrivals import build_schedule
path = Path(sys.argv[2])
loaded = load_scenario(path)
schedule = build_schedule(loaded.scenario.workload, path.parent)
result = run_local(LoadJob(loaded, schedule, path.parent, loaded.scenario.target.url))
(tally,) = result.tallies
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_mb": peak_mb, "errors": dict(tally.errors), "ok": tally.ok}))
"""


def peak(tmp_path: Path, sender: str, url: str) -> dict[str, Any]:
    """Peak RSS of a subprocess that runs one phase against ``url`` (the server stays here)."""
    path = scenario(tmp_path, url, sender, rate=4)  # one request
    tests_dir = str(Path(__file__).parents[1])
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, tests_dir, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize("sender", SENDERS)
def test_a_64_mib_runaway_line_costs_about_what_an_ordinary_stream_does(
    tmp_path: Path, sender: str
) -> None:
    with StreamServer(ttft_s=0.005, itl_s=0.002, chunks=3) as server:
        ordinary = peak(tmp_path, sender, server.url)
    with StreamServer(ttft_s=0.005, itl_s=0.002, chunks=3, runaway=RUNAWAY) as server:
        runaway = peak(tmp_path, sender, server.url)
    assert ordinary["ok"] == 1 and runaway["errors"] == {"too_large": 1}, (ordinary, runaway)
    # Copying the growing line on every read peaked near 290 MB; cut at 1 MiB it adds ~nothing.
    assert runaway["peak_mb"] - ordinary["peak_mb"] < 100, (ordinary, runaway)


def test_itl_per_token_from_continuous_usage(tmp_path: Path) -> None:
    """Chunks of 1, 4 and 2 tokens 20 ms apart, with the running usage on each (vLLM's
    continuous_usage_stats): the chunk gaps are 20 ms, the gaps per token 5 and 10 ms."""
    knobs = {"chunk_tokens": (1, 4, 2), "continuous_usage": True, "itl_s": 0.02}
    with StreamServer(ttft_s=0.005, **knobs) as server:
        loaded = load_scenario(scenario(tmp_path, server.url, "fast", rate=4))
        schedule = build_schedule(loaded.scenario.workload, tmp_path)
        result = run_local(LoadJob(loaded, schedule, tmp_path, server.url))
    (tally,) = result.tallies
    assert tally.ok == 1 and tally.output_tokens == 7
    itl, per_token = tally.histograms["itl"], tally.histograms["itl_token"]
    assert itl.get_total_count() == per_token.get_total_count() == 2
    assert itl.get_min_value() >= 19_000 and itl.get_max_value() <= 40_000  # µs
    # 20 ms ÷ 4 and 20 ms ÷ 2 (scheduling noise only adds, and is divided too)
    assert 4_500 <= per_token.get_min_value() <= 10_000 <= per_token.get_max_value() <= 20_000
    assert per_token.get_min_value() * 1.6 < per_token.get_max_value()
