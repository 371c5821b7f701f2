"""The Ray actor: one slice of the schedule, run as a local generator process runs it."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infbench.load.engine import EngineHooks
from infbench.load.job import LoadJob
from infbench.load.local import run_local, start_recorder
from infbench.recorder.recorder import IntervalStats
from infbench.scenario.source import LoadedScenario

__all__ = ["Generator"]

_FILES = ("latency.hlog", "requests.csv.gz")


class _Stopper:
    """Stops the actor's engine when the driver asks (Ctrl-C on the driver's side).

    The engine stops on SIGINT while it runs; outside that window SIGINT would raise
    KeyboardInterrupt in the actor, so the signal is sent only once the first phase has
    started (``arm``), and the actor ignores SIGINT around the engine for the edges.
    """

    def __init__(self, control: Any) -> None:
        self._lock = threading.Lock()
        self._armed = self._requested = self._sent = False
        threading.Thread(target=self._wait, args=(control,), daemon=True).start()

    def _wait(self, control: Any) -> None:
        with contextlib.suppress(Exception):  # the queue goes away with the run
            control.get()
            self._set(requested=True)

    def arm(self) -> None:
        self._set(armed=True)

    def disarm(self) -> None:
        with self._lock:
            self._armed = False

    def _set(self, *, armed: bool = False, requested: bool = False) -> None:
        with self._lock:
            self._armed |= armed
            self._requested |= requested
            if self._armed and self._requested and not self._sent:
                self._sent = True
                os.kill(os.getpid(), signal.SIGINT)


def _ignore(signum: int, frame: object) -> None:
    """SIGINT outside the engine's window: the run is starting or ending anyway."""


class Generator:
    """One Ray actor: slice ``stride[0]`` of ``stride[1]`` of the schedule.

    A plain class, wrapped with ``ray.remote`` by the driver, so importing this module never
    imports Ray. The dataset travels as bytes, since the actor's host may not have the file.
    """

    def __init__(
        self, job: LoadJob, seq_bases: list[int], stride: tuple[int, int], dataset: bytes | None
    ) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="infbench-ray-"))
        self.seq_bases, self.stride = seq_bases, stride
        # The recorder process starts now, before the driver picks the common start: spawning
        # it takes a second or more on a busy host, which would make the first arrivals late.
        self._seconds: Callable[[IntervalStats, int, str], None] = lambda *_: None
        hooks = EngineHooks(on_interval=lambda *args: self._seconds(*args))
        loaded = _with_local_dataset(job.loaded, self.tmp, dataset)
        self.job = dataclasses.replace(job, loaded=loaded, out_dir=self.tmp, hooks=hooks)
        self.recorder = start_recorder(self.job, rows_header=False)

    def node(self) -> dict[str, Any]:
        import ray

        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call, unused-ignore]
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
        }

    def clock(self) -> float:
        return time.time()

    def run(self, start_wall: float, feed: Any, control: Any) -> dict[str, Any]:
        """Run from ``start_wall`` (this host's wall clock); return the wire and the files."""
        t0_ns = time.monotonic_ns() + int((start_wall - time.time()) * 1e9)
        late_ms = max(time.monotonic_ns() - t0_ns, 0) / 1e6
        stopper, actor = _Stopper(control), self.stride[0]

        def on_interval(stats: IntervalStats, in_flight: int, phase: str) -> None:
            feed.put((actor, stats, in_flight))

        self._seconds = on_interval

        def on_phase(name: str, edge: str) -> None:
            stopper.arm()

        previous = signal.signal(signal.SIGINT, _ignore)
        # Ray workers block SIGINT (a Ctrl-C meant for the driver); unblocked in this thread
        # only, the signal comes here and the engine stops on it.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        try:
            result = run_local(
                dataclasses.replace(self.job, hooks=EngineHooks(on_phase=on_phase)),
                t0_ns=t0_ns,
                stride=self.stride,
                seq_bases=self.seq_bases,
                recorder=self.recorder,
            )
        finally:
            stopper.disarm()
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            signal.signal(signal.SIGINT, previous)
        files = {name: (self.tmp / name).read_bytes() for name in _FILES}
        shutil.rmtree(self.tmp, ignore_errors=True)
        return {
            "tallies": [tally.to_wire() for tally in result.tallies],
            "report": result.report,
            "generator": dataclasses.replace(
                result.generator, extra={"start_late_ms": round(late_ms, 3)}
            ),
            "files": files,
        }


def _with_local_dataset(loaded: LoadedScenario, tmp: Path, data: bytes | None) -> LoadedScenario:
    dataset = loaded.scenario.request.dataset
    if dataset is None or data is None:
        return loaded
    # Its own folder (a dataset may be called requests.csv.gz); the name keeps the suffix
    # that its format is told from.
    local = tmp / "dataset" / Path(dataset.path).name
    local.parent.mkdir()
    local.write_bytes(data)
    request = loaded.scenario.request.model_copy(
        update={"dataset": dataset.model_copy(update={"path": str(local)})}
    )
    scenario = loaded.scenario.model_copy(update={"request": request})
    return dataclasses.replace(loaded, scenario=scenario)
