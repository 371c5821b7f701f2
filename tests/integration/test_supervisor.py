"""The supervised command target: restart policy, fault actions, pid file, no orphans.

The server is tests/servers/prefork.py: a supervisor process and one worker child (restarted
by the supervisor when it dies), like BentoML's layout in miniature.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from infbench.scenario.model import CommandTarget, Readiness
from infbench.targets.command import CommandHandle
from infbench.targets.process import port_is_free, stop_all_targets
from proctools import alive, wait_for

PREFORK = str(Path(__file__).parents[1] / "servers" / "prefork.py")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def handle(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CommandHandle]:
    policy = getattr(request, "param", "on-failure")
    spec = CommandTarget(
        kind="command",
        command=[sys.executable, PREFORK, "{port}"],
        url="http://127.0.0.1:{port}",
        ready=Readiness(path="/", timeout=20.0),
        restart=policy,
    )
    target = CommandHandle(spec, tmp_path, tmp_path / "server.log", tmp_path / "target.pid")
    seen: list[int] = []
    target.start()
    seen += target.process_pids()
    try:
        yield target
    finally:
        seen += target.process_pids()
        target.stop()
        assert wait_for(lambda: not alive(seen)), f"orphans: {alive(seen)}"
        assert not (tmp_path / "target.pid").exists()


def test_pid_file_names_the_tree_with_create_times(handle: CommandHandle, tmp_path: Path) -> None:
    data = json.loads((tmp_path / "target.pid").read_text())
    listed = {p["pid"]: p["create_time"] for p in data["processes"]}
    assert set(handle.process_pids()) <= set(listed)
    for pid, created in listed.items():
        assert abs(psutil.Process(pid).create_time() - created) < 0.05
    assert data["owner"]["pid"] == psutil.Process().pid and data["port"] == handle.port


def test_on_failure_relaunches_a_killed_server_on_the_same_port(handle: CommandHandle) -> None:
    supervisor = handle.supervisor
    supervisor.watch()
    before = handle.process_pids()
    killed = supervisor.kill_server()
    assert sorted(killed) == sorted(before)
    assert wait_for(lambda: supervisor.restarts and supervisor.restarts[0].ready_ns, 20)
    (restart,) = supervisor.restarts
    assert restart.exit_code == -9 and restart.relaunched and restart.error is None
    assert restart.ready_ns is not None and restart.ready_ns > restart.detected_ns
    assert not set(handle.process_pids()) & set(before)
    assert answers(handle.base_url + "/")
    assert not alive(before)


@pytest.mark.parametrize("handle", ["never"], indirect=True)
def test_never_records_the_exit_and_leaves_the_server_down(handle: CommandHandle) -> None:
    supervisor = handle.supervisor
    supervisor.watch()
    supervisor.kill_server()
    assert wait_for(lambda: supervisor.restarts, 10)
    time.sleep(0.3)
    (restart,) = supervisor.restarts
    assert not restart.relaunched and restart.exit_code == -9
    assert not handle.alive() and not answers(handle.base_url + "/")


def test_kill_worker_kills_one_child_and_the_server_recovers(handle: CommandHandle) -> None:
    root = handle.supervisor.process
    assert root is not None and root.pid is not None
    children = [child.pid for child in psutil.Process(root.pid).children()]
    (worker,) = handle.supervisor.kill_worker()
    assert worker in children
    assert wait_for(lambda: worker not in handle.process_pids() and answers(handle.base_url + "/"))
    assert handle.alive() and handle.supervisor.restarts == []


def test_pause_stops_the_tree_and_resume_continues_it(handle: CommandHandle) -> None:
    paused = handle.supervisor.pause()
    assert len(paused) == 2
    stopped = psutil.STATUS_STOPPED
    assert wait_for(lambda: all(psutil.Process(pid).status() == stopped for pid in paused), 2)
    assert not answers(handle.base_url + "/")
    handle.supervisor.resume()
    assert answers(handle.base_url + "/")


def test_stop_while_paused_is_quick(handle: CommandHandle) -> None:
    handle.supervisor.pause()
    process = handle.supervisor.process
    assert process is not None
    handle.stop()
    # resumed first, so the SIGTERM was heard: a stopped tree would have waited for the SIGKILL
    assert process.returncode() in (0, -15)


def test_restart_action_relaunches_gracefully(handle: CommandHandle) -> None:
    before = handle.process_pids()
    record = handle.supervisor.restart()
    assert record.error is None and record.relaunched and record.ready_ns is not None
    assert record.exit_code in (0, -15)  # it went on SIGTERM
    assert answers(handle.base_url + "/") and not set(handle.process_pids()) & set(before)


def test_stop_during_a_relaunch_leaves_no_orphan(handle: CommandHandle) -> None:
    """stop() racing the supervisor's relaunch: whichever wins, nothing survives."""
    handle.supervisor.watch()
    seen: list[int] = list(handle.process_pids())
    handle.supervisor.kill_server()
    assert wait_for(lambda: handle.supervisor.restarts, 5)
    watcher = threading.Thread(target=lambda: seen.extend(handle.process_pids()))
    watcher.start()
    handle.stop()
    watcher.join()
    seen += handle.process_pids()
    assert wait_for(lambda: not alive(seen)), alive(seen)
    assert handle.port is not None and wait_for(lambda: port_is_free(handle.port))  # type: ignore[arg-type]


def test_stop_all_targets_closes_the_supervisor_first(handle: CommandHandle) -> None:
    handle.supervisor.watch()
    pids = handle.process_pids()
    stop_all_targets()  # what the CLI's handlers and atexit do
    time.sleep(0.5)  # a relaunch would have happened by now
    assert not alive(pids) and handle.process_pids() == []
    assert handle.supervisor.restarts == []
