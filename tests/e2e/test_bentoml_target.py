"""A real ``bentoml serve`` of the bundled services: start, answer, observe, stop with no orphan.

Each BentoML start costs seconds, so these tests are few and check several things at once.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psutil
import pytest

from infbench.errors import TargetError
from infbench.observe.observer import Observer
from infbench.scenario.model import BentomlTarget, Readiness
from infbench.targets.bentoml import BentomlHandle
from infbench.targets.factory import open_target
from infbench.targets.process import port_is_free
from proctools import alive

pytestmark = pytest.mark.e2e

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def workers_of(pids: list[int], service: str) -> int:
    count = 0
    for pid in alive(pids):
        cmdline = psutil.Process(pid).cmdline()
        if "--service-name" in cmdline and service in cmdline:
            count += 1
    return count


def test_sentiment_with_two_workers_serves_is_observed_and_leaves_nothing(tmp_path: Path) -> None:
    spec = BentomlTarget(kind="bentoml", service="services/sentiment:Sentiment", workers=2)
    handle = open_target(spec, SCENARIOS, tmp_path / "server.log")
    assert isinstance(handle, BentomlHandle)
    info = handle.start()
    home = handle._home
    try:
        assert info.startup_s is not None and 0 < info.startup_s < 60
        assert workers_of(handle.process_pids(), "Sentiment") == 2
        observer = Observer(handle.process_pids, info.metrics_url, tmp_path / "m", 0.2)
        observer.start()
        observer.phase_started("steady", wait=True)
        with httpx.Client(base_url=info.base_url, timeout=10) as client:
            for _ in range(20):
                answer = client.post("/classify", json={"text": "A wonderful, friendly hotel."})
                assert answer.status_code == 200 and answer.json()["label"] == "positive"
            batch = client.post("/classify_batch", json={"texts": ["Awful.", "Lovely!"]})
            assert [row["label"] for row in batch.json()] == ["negative", "positive"]
            assert client.post("/classify", json={}).status_code == 400
        time.sleep(0.5)
        observer.phase_ended("steady")
        phase = observer.stop()["phases"]["steady"]
        pids = handle.process_pids()
    finally:
        handle.stop()
    assert phase["requests_by_status"] == {"200": 21, "400": 1}
    assert (
        phase["duration_p50_ms"] is not None and phase["mean_batch_size"] == 1.0
    )  # requests per call, not items
    assert phase["rss_mb_max"] > 50 and phase["cpu_pct_max"] > 0
    assert (tmp_path / "m" / "steady-end.prom").read_text().startswith("# HELP")
    assert alive(pids) == [] and port_is_free(handle.port)
    assert home is not None and not home.exists()
    assert "Sentiment" in (tmp_path / "server.log").read_text()


def test_echo_returns_its_body_after_the_configured_delay(tmp_path: Path) -> None:
    spec = BentomlTarget(
        kind="bentoml", service="services/echo/service.py:Echo", env={"ECHO_DELAY_MS": "100"}
    )
    handle = open_target(spec, SCENARIOS, tmp_path / "server.log")
    info = handle.start()
    try:
        started = time.monotonic()
        answer = httpx.post(info.base_url + "/echo", json={"text": "hi", "n": [1, 2]})
        assert answer.json() == {"text": "hi", "n": [1, 2]}
        assert time.monotonic() - started >= 0.1
    finally:
        handle.stop()


BROKEN = {
    "init": (
        "import bentoml\n"
        "@bentoml.service\n"
        "class Broken:\n"
        "    def __init__(self) -> None:\n"
        "        raise RuntimeError('weights.bin is missing')\n"
        "    @bentoml.api\n"
        "    def hello(self, text: str) -> str:\n"
        "        return text\n",
        "Application startup failed",
    ),
    "import": ("raise ImportError('weights.bin is missing')\n", "exited with code"),
}


@pytest.mark.parametrize("where", sorted(BROKEN))
def test_a_broken_service_fails_fast_with_its_log(tmp_path: Path, where: str) -> None:
    source, reason = BROKEN[where]
    (tmp_path / "broken.py").write_text(source)
    spec = BentomlTarget(kind="bentoml", service="broken:Broken", ready=Readiness(timeout=60.0))
    handle = open_target(spec, tmp_path, tmp_path / "server.log")
    started = time.monotonic()
    with pytest.raises(TargetError) as caught:
        handle.start()
    assert time.monotonic() - started < 30
    message = str(caught.value)
    assert caught.value.exit_code == 3 and reason in message
    assert "weights.bin is missing" in message
    assert not handle.alive() and handle.process_pids() == []
