"""The driver's side of a Ray run: actors placed, clocks measured, one start, merge."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from infbench.errors import InfbenchError
from infbench.load.engine import EngineHooks
from infbench.load.job import LoadJob, LoadResult, merge_generators
from infbench.load.processes import fire_phase_marks, share_of, slice_schedule
from infbench.load.ray.actor import Generator
from infbench.load.ray.merge import hand_on_second, merge_results
from infbench.recorder.recorder import IntervalStats
from infbench.recorder.tally import PhaseTally
from infbench.results.percentile import value_at_percentile
from infbench.results.records import GeneratorSummary
from infbench.scenario.request import RaySettings
from infbench.scenario.source import LoadedScenario
from infbench.schedule.arrivals import Schedule, sequence_bases

__all__ = ["run_ray"]

READY_TIMEOUT_S = 120.0
CLOCK_ROUNDS = 7
START_LEAD_S = 1.0  # covers sending the start to every actor and their set-up before it
POLL_S = 0.25
UNCERTAIN_CLOCK_S = 0.005  # half a round trip beyond this is worth a warning


@dataclasses.dataclass(frozen=True)
class _Clock:
    offset_s: float  # actor's wall clock minus the driver's
    rtt_s: float


class _Seconds:
    """Per-second figures from the actors, handed on in order once every live actor has
    reported that second (an actor that died or finished is no longer waited for)."""

    def __init__(self, schedule: Schedule, hooks: EngineHooks, actors: int) -> None:
        self.schedule, self.hooks = schedule, hooks
        self.live = set(range(actors))
        self.pending: dict[float, dict[int, tuple[IntervalStats, int]]] = {}

    def add(self, actor: int, stats: IntervalStats, in_flight: int) -> None:
        self.pending.setdefault(stats.start_s, {})[actor] = (stats, in_flight)
        self._hand_on(complete_only=True)

    def lose(self, actor: int) -> None:
        self.live.discard(actor)
        self._hand_on(complete_only=True)

    def _hand_on(self, complete_only: bool) -> None:
        for start in sorted(self.pending):
            if complete_only and not self.live <= self.pending[start].keys():
                return
            hand_on_second(list(self.pending.pop(start).values()), self.schedule, self.hooks)

    def flush(self) -> None:
        self._hand_on(complete_only=False)


def _connect(ray: Any, address: str | None) -> bool:
    """Connect (or start a local instance); True when this call did, so we disconnect."""
    if ray.is_initialized():
        return False  # the caller's own session (tests, notebooks): use it, leave it up
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address in (None, "local"):
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
    else:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InfbenchError(
                f"client.ray.address: cannot connect to Ray at {address} ({_first_line(exc)}); "
                "start the cluster, or use --ray local for a Ray instance on this machine"
            ) from None
    return True


def _default_actors(ray: Any, num_cpus: float) -> int:
    """One per node that can hold one (a KubeRay head often has no CPUs for tasks)."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    fit = [n for n in nodes if n.get("Resources", {}).get("CPU", 0) >= num_cpus]
    return max(len(fit), 1)


def _measure_clock(ray: Any, actor: Any) -> _Clock:
    best: _Clock | None = None
    for _ in range(CLOCK_ROUNDS):
        before = time.time()
        actor_wall = ray.get(actor.clock.remote())
        after = time.time()
        sample = _Clock(actor_wall - (before + after) / 2, after - before)
        if best is None or sample.rtt_s < best.rtt_s:
            best = sample
    assert best is not None
    return best


def _lag_p99_ms(schedule: Schedule, wire: dict[str, Any]) -> float | None:
    """The actor's own send lag over the measured phases: is this node keeping up?"""
    measured = [
        PhaseTally.from_wire(tally)
        for plan, tally in zip(schedule.phases, wire["tallies"], strict=True)
        if not plan.warmup
    ]
    if not measured:
        return None
    lag = PhaseTally.merged(measured).histograms["lag"]
    if lag.get_total_count() == 0:
        return None
    return round(value_at_percentile(lag, 99.0) / 1000.0, 4)


def _dataset_bytes(loaded: LoadedScenario) -> bytes | None:
    dataset = loaded.scenario.request.dataset
    if dataset is None:
        return None
    return (loaded.base_dir / Path(dataset.path).expanduser()).read_bytes()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}".rstrip(": ")


class _RayRun:
    """One run's actors and queues, as the driver sees them."""

    def __init__(self, ray: Any, job: LoadJob, settings: RaySettings) -> None:
        from ray.util.queue import Queue

        self.ray, self.job, self.settings = ray, job, settings
        schedule = job.schedule
        self.n = settings.actors or _default_actors(ray, settings.num_cpus)
        # Queues are small actors of their own; 0 CPUs so they never wait for the generators'.
        self.feed = Queue(actor_options={"num_cpus": 0})
        self.control = Queue(actor_options={"num_cpus": 0})
        data = _dataset_bytes(job.loaded)
        dataset = ray.put(data) if data is not None else None
        generator = ray.remote(Generator)
        self.actors = [
            generator.options(
                name=f"infbench-{job.out_dir.name}-{k}",  # so `ray list actors` tells them apart
                num_cpus=settings.num_cpus,
                scheduling_strategy="SPREAD",
                max_restarts=0,
            ).remote(share_of(job, k, self.n), sequence_bases(schedule), (k, self.n), dataset)
            for k in range(self.n)
        ]
        self.nodes: list[dict[str, Any]] = []
        self.clocks: list[_Clock] = []
        self.wires: dict[int, dict[str, Any]] = {}
        self.died: dict[int, str] = {}
        self.stopping = False
        # Set by the SIGINT/SIGTERM handler that run_on_ray installs around collect(): Ray's
        # blocking calls run Python's signal handlers themselves and may swallow the
        # KeyboardInterrupt that the default handler raises, so a flag is what collect() reads.
        self.stop_requested = threading.Event()

    def ready(self) -> None:
        errors = self.ray.exceptions
        try:
            self.nodes = self.ray.get(
                [actor.node.remote() for actor in self.actors], timeout=READY_TIMEOUT_S
            )
        except errors.GetTimeoutError:
            raise InfbenchError(
                f"{self.n} Ray generators of {self.settings.num_cpus:g} CPU each could not be "
                f"placed within {READY_TIMEOUT_S:.0f} s: lower client.ray.actors or "
                "client.ray.num_cpus, or add nodes"
            ) from None
        except errors.RayError as exc:
            raise InfbenchError(
                f"a Ray generator failed to start ({_first_line(exc)}); every node needs "
                "infbench installed (docs/distributed.md)"
            ) from None
        self.clocks = [_measure_clock(self.ray, actor) for actor in self.actors]

    def start(self) -> tuple[int, float]:
        """Send every actor the common start; return it on the driver's clocks."""
        lead = START_LEAD_S + 2 * max(clock.rtt_s for clock in self.clocks)
        wall, mono = time.time(), time.monotonic_ns()
        self.refs = {
            actor.run.remote(wall + lead + clock.offset_s, self.feed, self.control): k
            for k, (actor, clock) in enumerate(zip(self.actors, self.clocks, strict=True))
        }
        return mono + int(lead * 1e9), wall + lead

    def collect(self) -> None:
        timeout = self.job.loaded.scenario.request.timeout
        deadline = time.monotonic() + self.job.schedule.total_duration_s + 2 * timeout + 60
        seconds, pending = _Seconds(self.job.schedule, self.job.hooks, self.n), list(self.refs)
        while pending:
            if self.stop_requested.is_set():
                self.interrupt()
            try:
                done, pending = self.ray.wait(pending, num_returns=len(pending), timeout=0)
                for ref in done:
                    self._settle(self.refs[ref], ref, seconds)
                self._drain(seconds, POLL_S)
                if pending and time.monotonic() > deadline:
                    for ref in pending:
                        self._lost(self.refs[ref], "did not report before the deadline", seconds)
                    pending = []
            except KeyboardInterrupt:
                self.interrupt()  # each actor finalizes its share, as Ctrl-C does locally
        self._drain(seconds, 0)
        seconds.flush()

    def _settle(self, k: int, ref: Any, seconds: _Seconds) -> None:
        try:
            self.wires[k] = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as exc:
            self._lost(k, _first_line(exc), seconds)
            return
        except self.ray.exceptions.RayTaskError as exc:
            self.interrupt()
            raise InfbenchError(f"Ray generator {k} failed: {_first_line(exc)}") from None
        seconds.lose(k)  # finished: later seconds need not wait for it

    def _lost(self, k: int, reason: str, seconds: _Seconds) -> None:
        self.died[k] = reason
        with contextlib.suppress(Exception):
            self.ray.kill(self.actors[k])
        seconds.lose(k)

    def _drain(self, seconds: _Seconds, wait_s: float) -> None:
        from ray.util.queue import Empty

        with contextlib.suppress(Empty):
            item = self.feed.get(timeout=wait_s) if wait_s else self.feed.get_nowait()
            while True:
                seconds.add(*item)
                item = self.feed.get_nowait()

    def interrupt(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.control.put_nowait_batch([None] * self.n)

    def close(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor)
        for queue in (self.feed, self.control):
            with contextlib.suppress(Exception):
                queue.shutdown(force=True)

    # --- merging --------------------------------------------------------------------------------

    def merged(self, t0_ns: int, start_wall: float) -> LoadResult:
        if not self.wires:
            raise InfbenchError("every Ray generator died: " + "; ".join(self.died.values()))
        parts, wires = [], [self.wires[k] for k in sorted(self.wires)]
        for k, wire in sorted(self.wires.items()):
            parts.append(self.job.out_dir / f"generator-{k}")
            parts[-1].mkdir()
            for name, data in wire.pop("files").items():
                (parts[-1] / name).write_bytes(data)
            report = wire["report"]  # the actor's monotonic clock, rebased onto the driver's
            report.end_ns = t0_ns + report.end_ns - report.t0_ns
            own = wire["generator"]
            figures = self._actor_figures(k) | {"lag_p99_ms": _lag_p99_ms(self.job.schedule, wire)}
            wire["generator"] = dataclasses.replace(own, extra={**own.extra, **figures})
        tallies, merged = merge_results(self.job.out_dir, parts, wires, (t0_ns, start_wall))
        for k in self.died:
            # Its share is known exactly; what it sent before dying died with it.
            share = slice_schedule(self.job.schedule, k, self.n)
            for tally, plan in zip(tallies, share.phases, strict=True):
                tally.dropped += plan.scheduled
        # Ctrl-C on the driver is an interrupted run even when the actors had already sent
        # their last arrivals by the time the request to stop reached them.
        merged.interrupted |= self.stopping
        return LoadResult(tallies, merged, self._generator(wires), tuple(self._warnings()))

    def _actor_figures(self, k: int) -> dict[str, Any]:
        clock = self.clocks[k]
        return {
            "actor": k,
            **self.nodes[k],
            "clock_offset_ms": round(clock.offset_s * 1e3, 3),
            "rtt_ms": round(clock.rtt_s * 1e3, 3),
        }

    def _generator(self, wires: list[dict[str, Any]]) -> GeneratorSummary:
        summary = merge_generators([wire["generator"] for wire in wires])
        died = [{**self._actor_figures(k), "died": why} for k, why in self.died.items()]
        per_process = sorted([*(summary.per_process or ()), *died], key=lambda p: p["actor"])
        return dataclasses.replace(
            summary,
            per_process=tuple(per_process),
            processes=self.n,
            engine="ray",
            nodes=len({node["node_id"] for node in self.nodes}),
        )

    def _warnings(self) -> list[str]:
        warnings = []
        for k, reason in sorted(self.died.items()):
            share = slice_schedule(self.job.schedule, k, self.n)
            warnings.append(
                f"Ray generator {k} on {self.nodes[k]['node_ip']} died mid-run ({reason}): its "
                f"{sum(p.scheduled for p in share.phases)} scheduled arrivals are counted as "
                "dropped, and what it had recorded was lost with it"
            )
        worst = max(range(self.n), key=lambda k: self.clocks[k].rtt_s)
        if self.clocks[worst].rtt_s / 2 > UNCERTAIN_CLOCK_S:
            warnings.append(
                f"the clock offset of Ray generator {worst} is known only within "
                f"±{self.clocks[worst].rtt_s * 500:.1f} ms: seconds and rows of different "
                "nodes may be misaligned by that much (latencies are not affected)"
            )
        if urlsplit(self.job.base_url).hostname in ("127.0.0.1", "localhost", "::1"):
            here = _driver_ip(self.ray)
            if any(node["node_ip"] != here for node in self.nodes):
                warnings.append(
                    f"the target URL {self.job.base_url} is a loopback address but Ray generators "
                    "run on other nodes: give the target an address they can reach"
                )
        return warnings


def _driver_ip(ray: Any) -> str | None:
    with contextlib.suppress(Exception):
        return str(ray.util.get_node_ip_address())
    return None


def run_ray(job: LoadJob, settings: RaySettings) -> LoadResult:
    """The schedule run by Ray actors from one common start, results merged into the job's
    result folder."""
    import ray

    connected = _connect(ray, settings.address)
    marks_stop, run = threading.Event(), None
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if main else None
    try:
        run = _RayRun(ray, job, settings)
        run.ready()
        t0_ns, start_wall = run.start()
        threading.Thread(
            target=fire_phase_marks, args=(job.schedule, t0_ns, job.hooks, marks_stop), daemon=True
        ).start()
        with _stop_on_signals(run.stop_requested, main):
            run.collect()
        return run.merged(t0_ns, start_wall)
    finally:
        marks_stop.set()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if run is not None:
            run.close()
        if connected:
            ray.shutdown()


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, main: bool) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` while the actors run (main thread only, as signals)."""
    if not main:
        yield
        return

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
