"""The loopback sink, ``infbench calibrate --quick`` against it, and the warning in ``run``.

Structure only: the figures depend on the machine and are measured by ``benchmarks/``.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
from typer.testing import CliRunner

from fakeserver import FakeServer
from infbench.cli import app
from infbench.load.loopback_server import Sink


def test_the_sink_answers_200_with_keep_alive_and_bodies() -> None:
    with Sink() as sink, httpx.Client(base_url=sink.url) as client:
        first = client.get("/anything?x=1")
        second = client.post("/classify", json={"text": "a" * 10_000})
        assert (first.status_code, first.text) == (200, "ok")
        assert (second.status_code, second.text) == (200, "ok")
        port = int(sink.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            pipelined = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" * 2
            raw.sendall(pipelined + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while received.count(b"HTTP/1.1 200 OK") < 3:
                chunk = raw.recv(4096)
                assert chunk, "the sink closed the connection"
                received += chunk
    assert sink.process is None  # stopped on leaving the block


def test_calibrate_quick_writes_a_calibration(tmp_path: Path) -> None:
    out = tmp_path / "calibration.json"
    result = CliRunner().invoke(
        app, ["calibrate", "--quick", "--budget", "0", "--level", "0.3", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["format_version"] == 1
    assert document["machine"]["cores"] >= 1 and document["machine"]["cpu_model"]
    assert document["settings"]["quick"] is True and document["settings"]["level_s"] == 0.3
    assert list(document["senders"]) == ["aiohttp", "httpx", "fast"]
    for entry in document["senders"].values():
        assert len(entry["levels"]) == 1  # a budget of 0 runs exactly one level
        level = entry["levels"][0]
        assert level["rate"] == 1000 and level["scheduled"] == 300
        assert isinstance(level["passed"], bool)
        assert entry["capacity_rps"] in (None, 1000)
        assert entry["closed_loop_rps"] > 0 and entry["cpu_us_per_request"] > 0
        assert entry["stopped_by"] in ("budget", "floor", "precision", "ceiling")
    assert "generator capacity" in result.output and str(out) in result.output.replace("\n", "")


def test_calibrate_refuses_an_unknown_sender(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["calibrate", "--sender", "curl", "--output", str(tmp_path / "c.json")]
    )
    assert result.exit_code == 2 and "choose one of: aiohttp, httpx, fast" in result.output


def test_run_warns_before_it_starts_when_over_capacity(tmp_path: Path) -> None:
    calibration = tmp_path / "calibration.json"
    calibration.write_text(
        json.dumps(
            {
                "format_version": 1,
                "created_utc": "2030-01-01T00:00:00+00:00",
                "senders": {"aiohttp": {"capacity_rps": 20}},
            }
        )
    )
    with FakeServer() as server:
        scenario = tmp_path / "s.yaml"
        scenario.write_text(
            f"""version: 1
name: over
target: {{kind: url, url: "{server.url}"}}
request: {{method: GET, path: /x}}
client: {{sender: aiohttp}}
workload:
  phases:
    - {{name: a, duration: 0.5s, arrival: {{process: constant, rate: 50}}}}
"""
        )
        result = CliRunner().invoke(
            app,
            ["run", str(scenario), "--out", str(tmp_path / "r"), "-q"],
            env={"INFBENCH_CALIBRATION": str(calibration)},
        )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning: the scenario's peak rate 50/s is above the calibrated capacity" in text
    assert "aiohttp sender" in text and "infbench calibrate" in text
