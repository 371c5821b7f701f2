"""A launched server under supervision: restart policy and the faults infbench injects.

Both launching targets (bentoml, command) hold one :class:`Supervisor`. It launches the server
and waits until it is ready, and while the run is on (``watch``) a thread polls the launched
process: when it exits without having been asked to, the exit is recorded and, with
``restart: on-failure``, the server is launched again on the same port and waited for, as an
orchestrator would. The fault actions (kill a worker, kill the server, pause, restart) live
here too, since they act on the same process tree.

Why it is built this way:

- Every launch and every stop of the current process happens under one lock, and ``close``
  sets its flag under that lock: a relaunch can never slip in behind a stop and leave an
  orphan. The CLI's ``stop_all_targets`` calls ``close`` first (``register_closer``).
- Times are ``time.monotonic_ns()``: the runner turns them into seconds from the run's start.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from infbench.errors import TargetError
from infbench.scenario.faults import RestartPolicy
from infbench.scenario.model import BentomlTarget, CommandTarget
from infbench.targets.process import LaunchedProcess, register_closer, wait_until_ready
from infbench.targets.ready import WaitProgress

__all__ = ["MAX_RESTARTS", "Restart", "SupervisedHandle", "Supervisor"]

log = logging.getLogger(__name__)

POLL_S = 0.05
MAX_RESTARTS = 20  # a server that keeps crashing is measured dead, not relaunched forever


@dataclass
class Restart:
    """One exit of the server during the run, and what was done about it."""

    detected_ns: int
    reason: str  # "exited with code -9", "fault: restart"
    exit_code: int | None = None
    relaunched: bool = False
    ready_ns: int | None = None
    error: str | None = None

    def to_json(self, t0_ns: int) -> dict[str, object]:
        return {
            "time_s": round((self.detected_ns - t0_ns) / 1e9, 3),
            "reason": self.reason,
            "exit_code": self.exit_code,
            "relaunched": self.relaunched,
            "ready_s": None if self.ready_ns is None else round((self.ready_ns - t0_ns) / 1e9, 3),
            "startup_s": None
            if self.ready_ns is None
            else round((self.ready_ns - self.detected_ns) / 1e9, 3),
            "error": self.error,
        }


class Supervisor:
    """Launches a server with ``make`` and waits with ``wait_ready`` (returns seconds waited)."""

    def __init__(
        self,
        make: Callable[[], LaunchedProcess],
        wait_ready: Callable[[LaunchedProcess], float],
        policy: RestartPolicy = "never",
        is_worker: Callable[[psutil.Process], bool] | None = None,
    ) -> None:
        self._make, self._wait_ready = make, wait_ready
        self.policy = policy
        self._is_worker = is_worker
        self.process: LaunchedProcess | None = None
        self.restarts: list[Restart] = []
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._watching = threading.Event()
        self._thread: threading.Thread | None = None
        self._paused: list[psutil.Process] = []

    # --- life cycle --------------------------------------------------------------------------

    def start(self) -> float:
        """Launch and wait until ready; returns the start-up seconds (TargetError on failure)."""
        process = self._launch()
        if process is None:
            raise TargetError("target stopped before it started")
        startup_s = self._wait_ready(process)
        process.record_pids()
        return startup_s

    def _launch(self) -> LaunchedProcess | None:
        with self._lock:
            if self._closed.is_set():
                return None
            process = self._make()
            self.process = process
            process.launch()
            register_closer(self, self.close)
            return process

    def watch(self) -> None:
        """Supervise from now until ``unwatch`` (the load's span)."""
        self._watching.set()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._supervise, name="infbench-supervisor", daemon=True
            )
            self._thread.start()

    def unwatch(self) -> None:
        self._watching.clear()

    def close(self) -> None:
        """No launch after this; stops the current process and the supervising thread."""
        with self._lock:
            self._closed.set()
            self._watching.clear()
            process = self.process
        self.resume()  # a stopped (SIGSTOP) tree would ignore SIGTERM until the kill deadline
        if process is not None:
            process.stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        with self._lock:
            if self.process is not None:
                self.process.stop()
        register_closer(self, None)

    # --- supervising -------------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._closed.wait(POLL_S):
            if not self._watching.is_set():
                continue
            with self._lock:
                process = self.process
                code = process.returncode() if process is not None else None
                if process is None or code is None or process.stopped or self._closed.is_set():
                    continue
                record = Restart(time.monotonic_ns(), f"exited with code {code}", exit_code=code)
                self.restarts.append(record)
                process.stop(final=False)  # reap what is left of its tree
            if self.policy == "on-failure" and len(self.restarts) <= MAX_RESTARTS:
                self._relaunch(record)

    def _relaunch(self, record: Restart) -> None:
        try:
            process = self._launch()
            if process is None:
                return
            record.relaunched = True
            self._wait_ready(process)
            process.record_pids()
            record.ready_ns = time.monotonic_ns()
        except TargetError as exc:
            record.error = exc.message.splitlines()[0]
            log.warning("restart failed: %s", record.error)

    # --- faults ------------------------------------------------------------------------------

    def _tree(self) -> list[psutil.Process]:
        with self._lock:
            return self.process.tree() if self.process is not None else []

    def kill_server(self) -> list[int]:
        """SIGKILL the whole tree at once, as the kernel's OOM killer or a node loss would."""
        tree = self._tree()
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        return [proc.pid for proc in tree]

    def kill_worker(self) -> list[int]:
        """SIGKILL one worker: the first (lowest pid) process that ``is_worker`` accepts, else
        the first descendant of the launched process. Empty when there is none."""
        tree = self._tree()[1:]
        chosen = [p for p in tree if self._is_worker(p)] if self._is_worker else []
        candidates = sorted(chosen or tree, key=lambda p: p.pid)
        if not candidates:
            return []
        with contextlib.suppress(psutil.Error):
            candidates[0].kill()
        return [candidates[0].pid]

    def pause(self) -> list[int]:
        """SIGSTOP every process of the tree (a frozen VM, a GC pause, a stuck node)."""
        tree = self._tree()
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                proc.suspend()
        with self._lock:
            self._paused.extend(tree)
        return [proc.pid for proc in tree]

    def resume(self) -> None:
        with self._lock:
            paused, self._paused = self._paused, []
        for proc in paused:
            with contextlib.suppress(psutil.Error):
                proc.resume()

    def restart(self) -> Restart:
        """Stop the server gracefully and launch it again (a rolling deploy of one replica)."""
        record = Restart(time.monotonic_ns(), "fault: restart")
        with self._lock:
            process = self.process
            if process is None or self._closed.is_set():
                record.error = "the server was already stopped"
                return record
            self.restarts.append(record)
            process.stop(final=False)
            record.exit_code = process.returncode()
        self._relaunch(record)
        return record


class SupervisedHandle:
    """What the launching targets (bentoml, command) share: a supervisor, a URL, its probe."""

    spec: BentomlTarget | CommandTarget
    base_url: str
    progress: WaitProgress | None  # heard during every wait, relaunches included
    supervisor: Supervisor
    events: None = None  # a process has no event stream: its restarts say what happened

    def _wait_ready(self, process: LaunchedProcess) -> float:
        ready = self.spec.ready
        return wait_until_ready(
            self.base_url + ready.path, ready, process=process, progress=self.progress
        )

    def process_pids(self) -> list[int]:
        process = self.supervisor.process
        return process.pids() if process else []

    def alive(self) -> bool:
        process = self.supervisor.process
        return process is not None and process.alive()

    def stop(self) -> None:
        self.supervisor.close()
