"""Targets with real processes: launch, readiness, failure reports and stopping whole trees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil
import pytest

from infbench.errors import InputError, ScenarioError, TargetError, UsageError
from infbench.scenario.model import BentomlTarget, CommandTarget, Readiness, UrlTarget
from infbench.targets.bentoml import BentomlHandle, bentoml_config, resolve_service
from infbench.targets.command import CommandHandle
from infbench.targets.factory import open_target
from infbench.targets.process import (
    LaunchedProcess,
    free_port,
    port_is_free,
    stop_all_targets,
    wait_until_ready,
)
from infbench.targets.ready import REFUSED_GRACE_S, WaitStatus
from infbench.targets.url import UrlHandle

PY = sys.executable
FAST = Readiness(path="/", timeout=20.0)


def gone(pids: list[int]) -> bool:
    """True when no pid is a live process (zombies awaiting their reaper count as gone)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def command(argv: list[str], ready: Readiness = FAST, **extra: object) -> CommandTarget:
    return CommandTarget(
        kind="command", command=argv, url="http://127.0.0.1:{port}", ready=ready, **extra
    )


@pytest.fixture
def http_server_cmd() -> list[str]:
    return [PY, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]


# --- command target -----------------------------------------------------------------------------


def test_command_target_starts_answers_and_stops_clean(
    tmp_path: Path, http_server_cmd: list[str]
) -> None:
    handle = CommandHandle(command(http_server_cmd), tmp_path, tmp_path / "server.log")
    info = handle.start()
    try:
        assert info.kind == "command" and info.startup_s is not None and info.startup_s > 0
        assert info.command == [PY, "-m", "http.server", str(handle.port), "--bind", "127.0.0.1"]
        assert handle.alive() and info.pids and info.pids == handle.process_pids()
        assert httpx.get(info.base_url + "/").status_code == 200
    finally:
        handle.stop()
    assert gone(info.pids) and handle.port is not None and port_is_free(handle.port)
    assert not handle.alive() and handle.process_pids() == []
    handle.stop()  # idempotent


def test_command_fills_port_in_env_and_runs_in_the_scenario_directory(tmp_path: Path) -> None:
    script = "import os, http.server as h; h.test(h.SimpleHTTPRequestHandler, port=int(os.environ['P']), bind='127.0.0.1')"  # noqa: E501
    (tmp_path / "marker.txt").write_text("here")
    spec = command([PY, "-c", script], env={"P": "{port}"})
    handle = CommandHandle(spec, tmp_path, tmp_path / "logs" / "server.log")
    info = handle.start()
    try:
        assert httpx.get(info.base_url + "/marker.txt").text == "here"  # cwd = base_dir
    finally:
        handle.stop()
    assert (tmp_path / "logs" / "server.log").exists()


def test_command_that_exits_at_once_reports_its_log(tmp_path: Path) -> None:
    argv = [PY, "-c", "import sys; print('cannot load weights.bin'); sys.exit(3)"]
    handle = CommandHandle(command(argv), tmp_path, tmp_path / "server.log")
    started = time.monotonic()
    with pytest.raises(TargetError) as caught:
        handle.start()
    assert time.monotonic() - started < 10
    assert caught.value.exit_code == 3
    assert "exited with code 3" in str(caught.value)
    assert "cannot load weights.bin" in str(caught.value)


def test_command_that_never_becomes_ready_fails_at_the_deadline(tmp_path: Path) -> None:
    argv = [PY, "-c", "import time; print('warming up', flush=True); time.sleep(60)"]
    handle = CommandHandle(
        command(argv, Readiness(path="/", timeout=0.6)), tmp_path, tmp_path / "server.log"
    )
    with pytest.raises(TargetError) as caught:
        handle.start()
    message = str(caught.value)
    assert "did not answer 200 within 0.6 s" in message and "warming up" in message
    assert "target.ready.timeout" in message
    process = handle.supervisor.process
    assert not handle.alive() and process is not None
    assert process.pid is not None and gone([process.pid])


def test_a_fatal_log_line_fails_fast_although_the_process_lives(tmp_path: Path) -> None:
    argv = [
        PY,
        "-c",
        "import time; print('Application startup failed. Exiting.', flush=True); time.sleep(60)",
    ]
    handle = CommandHandle(command(argv), tmp_path, tmp_path / "server.log")
    started = time.monotonic()
    with pytest.raises(TargetError, match="Application startup failed"):
        handle.start()
    assert time.monotonic() - started < 5 and not handle.alive()


def test_a_missing_program_is_a_target_error(tmp_path: Path) -> None:
    handle = CommandHandle(command(["/nonexistent/server"]), tmp_path, tmp_path / "server.log")
    with pytest.raises(TargetError, match="cannot run"):
        handle.start()


def test_a_missing_cwd_is_an_input_error(tmp_path: Path, http_server_cmd: list[str]) -> None:
    with pytest.raises(InputError, match=r"target\.cwd"):
        CommandHandle(command(http_server_cmd, cwd="nope"), tmp_path, tmp_path / "server.log")


# --- process trees --------------------------------------------------------------------------------

TREE_SERVER = textwrap.dedent(
    """
    import http.server, signal, subprocess, sys, time
    # A grandchild in a session of its own that ignores SIGTERM, like a BentoML worker would
    # survive a process-group kill.
    subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"],
        start_new_session=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leaves its child behind
    http.server.test(http.server.SimpleHTTPRequestHandler, port=int(sys.argv[1]), bind="127.0.0.1")
    """
)


def launch_tree(tmp_path: Path, port: int) -> LaunchedProcess:
    script = tmp_path / "tree_server.py"
    script.write_text(TREE_SERVER)
    process = LaunchedProcess(
        [PY, str(script), str(port)],
        log_path=tmp_path / "server.log",
        cwd=tmp_path,
        port=port,
        stop_timeout_s=1.0,
    )
    process.launch()
    wait_until_ready(f"http://127.0.0.1:{port}/", FAST, process=process)
    return process


def wait_for_tree(process: LaunchedProcess, size: int) -> list[int]:
    deadline = time.monotonic() + 10
    while len(pids := process.pids()) < size and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


def test_stop_kills_a_grandchild_in_its_own_session(tmp_path: Path) -> None:
    port = free_port()
    process = launch_tree(tmp_path, port)
    pids = wait_for_tree(process, 2)
    assert len(pids) == 2
    assert psutil.Process(pids[1]).ppid() == process.pid
    assert os.getsid(pids[1]) != os.getsid(pids[0])  # out of reach of a session or group kill
    process.stop()
    assert gone(pids) and port_is_free(port)


def test_stop_all_targets_stops_every_live_launch(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = launch_tree(tmp_path / "a", free_port())
    second = launch_tree(tmp_path / "b", free_port())
    pids = wait_for_tree(first, 2) + wait_for_tree(second, 2)
    stop_all_targets()
    assert gone(pids) and not first.alive() and not second.alive()


def test_stop_from_another_thread_while_the_main_thread_stops(tmp_path: Path) -> None:
    process = launch_tree(tmp_path, free_port())
    pids = wait_for_tree(process, 2)
    other = threading.Thread(target=process.stop)
    other.start()
    process.stop()
    other.join(timeout=10)
    assert not other.is_alive() and gone(pids)


# --- url target and the factory ------------------------------------------------------------------


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/up" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_target_probes_only_when_asked(local_server: str, tmp_path: Path) -> None:
    plain = UrlHandle(UrlTarget(kind="url", url=local_server + "/"))
    info = plain.start()
    assert info.base_url == local_server and info.startup_s is None and info.metrics_url is None
    probed = UrlHandle(
        UrlTarget(kind="url", url=local_server, ready=Readiness(path="/up"), metrics_path="/m")
    )
    info = probed.start()
    assert info.startup_s is not None and info.metrics_url == local_server + "/m"
    probed.stop()
    assert probed.process_pids() == [] and probed.alive()


def test_url_target_that_never_gets_ready_fails(local_server: str) -> None:
    handle = UrlHandle(
        UrlTarget(kind="url", url=local_server, ready=Readiness(path="/down", timeout=0.3))
    )
    with pytest.raises(TargetError, match="last: HTTP 404"):
        handle.start()


def test_url_override_attaches_with_the_targets_probe(tmp_path: Path) -> None:
    spec = BentomlTarget(kind="bentoml", service="services/sentiment:Sentiment")
    handle = open_target(spec, tmp_path, tmp_path / "log", url_override="http://10.0.0.5:3000")
    assert isinstance(handle, UrlHandle)
    assert handle.spec.ready == spec.ready and handle.spec.metrics_path == "/metrics"
    with pytest.raises(UsageError, match="--url"):
        open_target(spec, tmp_path, tmp_path / "log", url_override="10.0.0.5:3000")


def test_attaching_to_a_closed_port_fails_fast(tmp_path: Path) -> None:
    """Nothing listens: exit 3 after a few seconds of refusals, not after the 120 s timeout."""
    closed = f"http://127.0.0.1:{free_port()}"
    spec = BentomlTarget(kind="bentoml", service="services/sentiment:Sentiment")
    assert spec.ready.timeout == 120
    reports: list[WaitStatus] = []
    handles = [
        open_target(spec, tmp_path, tmp_path / "log", closed, progress=reports.append),
        open_target(UrlTarget(kind="url", url=closed), tmp_path, tmp_path / "log"),  # no probe
    ]
    for handle, probed in zip(handles, (closed + "/readyz", closed), strict=True):
        started = time.monotonic()
        with pytest.raises(TargetError) as caught:
            handle.start()
        assert time.monotonic() - started < 30
        assert caught.value.exit_code == 3
        assert f"{probed} refused every connection" in caught.value.message
    assert reports and reports[-1].last == "connection refused"


def test_an_explicit_url_timeout_waits_for_a_server_that_starts_late(tmp_path: Path) -> None:
    """A url target that sets ready.timeout waits out refusals: here a server that starts
    after the grace would have ended the wait."""
    port = free_port()
    server: list[ThreadingHTTPServer] = []

    def start_late() -> None:
        server.append(ThreadingHTTPServer(("127.0.0.1", port), _Ok))
        threading.Thread(target=server[0].serve_forever, daemon=True).start()

    timer = threading.Timer(REFUSED_GRACE_S + 1, start_late)
    timer.start()
    try:
        ready = Readiness(path="/up", timeout=60.0)
        spec = UrlTarget(kind="url", url=f"http://127.0.0.1:{port}", ready=ready)
        info = open_target(spec, tmp_path, tmp_path / "log").start()
        assert info.startup_s is not None and info.startup_s > REFUSED_GRACE_S
    finally:
        timer.cancel()
        timer.join()
        if server:
            server[0].shutdown()


# --- bentoml: resolving the service and building its config (no server started) -----------------


@pytest.fixture
def services(tmp_path: Path) -> Path:
    (tmp_path / "svc" / "pkg").mkdir(parents=True)
    (tmp_path / "svc" / "service.py").write_text("")
    (tmp_path / "svc" / "app.py").write_text("")
    (tmp_path / "svc" / "pkg" / "__init__.py").write_text("")
    return tmp_path


@pytest.mark.parametrize(
    ("service", "cwd", "import_str"),
    [
        ("svc:Model", "svc", "service:Model"),
        ("svc/app.py:Model", "svc", "app:Model"),
        ("svc/app:Model", "svc", "app:Model"),
        ("svc.app:Model", ".", "svc.app:Model"),
        ("svc.pkg:Model", ".", "svc.pkg:Model"),
    ],
)
def test_resolve_service(services: Path, service: str, cwd: str, import_str: str) -> None:
    ref = resolve_service(service, services)
    assert ref.cwd == (services / cwd).resolve() and ref.import_str == import_str


@pytest.mark.parametrize("service", ["svc", "svc:", "missing:Model", "svc/none.py:Model"])
def test_resolve_service_errors_name_the_key(services: Path, service: str) -> None:
    with pytest.raises(InputError, match=r"target\.service") as caught:
        resolve_service(service, services)
    assert caught.value.exit_code == 2


def test_bentoml_config_is_keyed_by_class_and_carries_workers_and_config() -> None:
    spec = BentomlTarget(
        kind="bentoml", service="s:Model", workers=2, config={"traffic": {"timeout": 5}}
    )
    service = bentoml_config(spec, "Model")["services"]["Model"]
    assert service["workers"] == 2 and service["traffic"] == {"timeout": 5}
    assert service["metrics"]["duration"] == {"min": 0.0005, "max": 120.0, "factor": 1.5}


def test_bentoml_config_workers_from_config_when_not_set_explicitly() -> None:
    spec = BentomlTarget(kind="bentoml", service="s:M", config={"workers": 3, "metrics": {}})
    service = bentoml_config(spec, "M")["services"]["M"]
    assert service["workers"] == 3 and service["metrics"] == {}


@pytest.mark.parametrize("key", ["threads", "batching"])
def test_bentoml_config_refuses_decorator_only_keys(key: str) -> None:
    spec = BentomlTarget(kind="bentoml", service="s:M", config={key: {}})
    with pytest.raises(ScenarioError, match=f"target.config.{key}"):
        bentoml_config(spec, "M")


def test_bentoml_handle_command_line(services: Path) -> None:
    spec = BentomlTarget(kind="bentoml", service="svc:Model")
    handle = BentomlHandle(spec, services, services / "server.log")
    assert handle.argv[1:5] == ["-m", "bentoml", "serve", "service:Model"]
    assert handle.argv[-4:] == ["--host", "127.0.0.1", "--port", str(handle.port)]
    handle.stop()  # never started: nothing to do


SIGNALLED = textwrap.dedent(
    """
    import signal, sys
    from pathlib import Path
    from infbench.scenario.model import CommandTarget, Readiness
    from infbench.targets.command import CommandHandle
    from infbench.targets.process import stop_all_targets

    def on_signal(signum, frame):
        stop_all_targets()  # what the CLI does from its handlers
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    base = Path(sys.argv[1])
    spec = CommandTarget(kind="command", command=[sys.executable, sys.argv[2], "{port}"],
                         url="http://127.0.0.1:{port}", ready=Readiness(path="/"))
    handle = CommandHandle(spec, base, base / "server.log")
    handle.start()
    print(handle.port, *handle.process_pids(), flush=True)
    if sys.argv[3] == "raise":
        sys.stdin.readline()
        raise RuntimeError("a bug in infbench")  # atexit must still stop the server
    signal.pause()
    """
)


@pytest.mark.parametrize("ending", ["signal", "raise"])
def test_no_server_outlives_a_sigterm_or_an_exception(tmp_path: Path, ending: str) -> None:
    (tmp_path / "tree_server.py").write_text(TREE_SERVER)
    (tmp_path / "driver.py").write_text(SIGNALLED)
    driver = subprocess.Popen(
        [PY, str(tmp_path / "driver.py"), str(tmp_path), str(tmp_path / "tree_server.py"), ending],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert driver.stdout is not None and driver.stdin is not None
        port, *pids = (int(word) for word in driver.stdout.readline().split())
        deadline = time.monotonic() + 5  # the grandchild may still be starting
        while len(pids) < 2 and time.monotonic() < deadline:
            pids = [pids[0], *(c.pid for c in psutil.Process(pids[0]).children(recursive=True))]
            time.sleep(0.05)
        if ending == "signal":
            driver.send_signal(signal.SIGTERM)
        else:
            driver.stdin.write("go\n")
            driver.stdin.flush()
        expected = 128 + signal.SIGTERM if ending == "signal" else 1
        assert driver.wait(timeout=20) == expected
    finally:
        if driver.poll() is None:
            driver.kill()
    assert len(pids) == 2 and gone(pids) and port_is_free(port)
