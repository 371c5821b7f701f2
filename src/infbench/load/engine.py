"""The engine: open-loop dispatch on absolute due times, closed-loop workers (DESIGN §5).

Open loop: every arrival has an intended send time fixed by the schedule before the run. The
dispatcher sleeps until each due time measured from one start instant — never "sleep one
interval", which drifts — and when it wakes late it sends everything overdue at once (catch-up).
Each request then takes a free connection, or queues for one in a plain FIFO (no task per
arrival, one timer for the oldest); one that gets none within the request timeout is counted as
dropped. Latency is measured from the intended time, so a stall of the server or of the
generator shows in it instead of silently thinning the load (coordinated omission).
Time is read and waited for through a ``Clock`` (``clock.py``): real by default, virtual in tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np

from infbench.load.clock import Clock, MonotonicClock
from infbench.load.loop import cancel, quiet_interpreter, restore_signal_handlers, stop_on_signals
from infbench.load.loop_lag import LoopLagProbe
from infbench.load.priority import DispatchPriority, Priority, dispatch_priority
from infbench.load.sessions import SessionRunner
from infbench.load.slots import ArrivalQueue, Slots
from infbench.recorder.recorder import IntervalStats
from infbench.recorder.stamps import ITL_TOKEN, StampBuffer
from infbench.schedule.arrivals import PhasePlan, Schedule, sequence_bases, worker_think_sampler
from infbench.senders.base import ReadNotice, Sender
from infbench.wire import ERROR_CODES, Outcome, PreparedRequest
from infbench.workload.conversations import ConversationSource

__all__ = ["Engine", "EngineHooks", "EngineReport"]

HAND_OVER_NS = 50_000_000  # stamps go to the recorder at least this often (DESIGN §1)
START_LEAD_NS = 100_000_000  # time for several processes to set up before the first arrival
LOCAL_LEAD_NS = 20_000_000  # from an open sender to the first arrival in one process
# Due times become Python ints a chunk at a time: memory stays flat, and converting a chunk
# (~70 µs for 1,024; 2.4 ms for 65,536, a stall every 2.6 s at 25,000/s) delays no arrival much.
CHUNK = 1_024
CATCH_UP_RUN = 8  # overdue arrivals sent before the dispatcher yields to the loop,
CATCH_UP_LATE_NS = 1_000_000  # once it is this late (a burst due at one instant is not)
_NOT_STREAMED = (0, 0, 0, 0, 0, 0, -1)  # a plain answer's stream fields in its stamp


class RequestSource(Protocol):
    def request(self, seq: int) -> PreparedRequest: ...


# FastSender.send_now: write at once on an idle connection, the outcome to a callback.
SendNow = Callable[[PreparedRequest, Callable[[Outcome], None]], bool]


@dataclass
class EngineHooks:
    """What a run tells its caller as it goes; none of it may hold up the event loop.

    ``on_start`` gets the run's start instant (monotonic ns, epoch s) in the loop, before the
    first stamp is handed over (it must be quick: it tells the recorder). ``on_phase`` (a
    phase's name and edge, "start" or "end") runs in the engine's hook thread; ``on_interval``
    (a written second, requests in flight at its end, its phase) in the recorder's reader
    thread.
    """

    on_start: Callable[[int, float], None] = lambda t0_ns, start_epoch_s: None
    on_phase: Callable[[str, str], None] = lambda name, edge: None
    on_interval: Callable[[IntervalStats, int, str], None] = lambda stats, in_flight, phase: None


@dataclass
class EngineReport:
    t0_ns: int
    start_epoch_s: float = 0.0
    end_ns: int = 0
    interrupted: bool = False
    phase_windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    spin_s: float = 0.0
    abandoned: int = 0
    sent_by_phase: list[int] = field(default_factory=list)
    recorder_lost: str | None = None  # why stamps could no longer be handed over
    priority: str = "normal"  # "realtime" when the OS allowed it (load/priority.py)
    realtime_s: float = 0.0  # of the measured window, at real-time priority
    # per phase name, this engine's own loop lag p99 (the recorder merges every process's)
    loop_lag_p99_ms: dict[str, float] = field(default_factory=dict)


class Engine:
    def __init__(
        self,
        schedule: Schedule,
        sender: Sender,
        requests: RequestSource,
        stamps: StampBuffer,
        *,
        connections: int,
        timeout_s: float,
        t0_ns: int | None = None,
        hooks: EngineHooks | None = None,
        clock: Clock | None = None,
        stride: tuple[int, int] = (0, 1),
        seq_bases: list[int] | None = None,
        priority: Priority = "normal",
    ) -> None:
        self.schedule = schedule
        self.sender = sender
        self.requests = requests
        self.stamps = stamps
        self.connections = connections
        self.timeout_ns = int(timeout_s * 1e9)
        self.priority = priority
        self.hooks = hooks or EngineHooks()
        # Real time unless given; its spin_ns is reported as this run's polling time.
        self.clock = clock if clock is not None else MonotonicClock()
        self._now = self.clock.now_ns
        # Without a given start (several processes share one), the run starts once the sender
        # is open: module imports and session set-up must not make the first arrivals late.
        self._given_t0 = t0_ns
        self.report = EngineReport(t0_ns=t0_ns or 0)
        # This engine may run every N-th arrival of a larger schedule (one of N processes):
        # request numbers stay those of the whole schedule, so datasets pick the same rows.
        self._stride = stride
        self._seq_bases = seq_bases if seq_bases is not None else sequence_bases(schedule)
        self._closed_counts = [0] * len(schedule.phases)
        self._in_flight = 0
        self._offered = 0
        self._sent = 0
        self.report.sent_by_phase = [0] * len(schedule.phases)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._slots = Slots(connections)
        # Senders that can write a request at once on an idle connection (the fast sender).
        self._send_now: SendNow | None = getattr(sender, "send_now", None)
        self._direct = 0  # requests written by send_now, not yet answered
        # Senders that tell of their reads (the fast sender): the loop-lag timer slows when idle.
        self._read_notice: ReadNotice | None = getattr(sender, "read_notice", None)
        self._backlog = ArrivalQueue(self.timeout_ns, self._now, self._drop)
        self._abandoning = False
        self._phases_task: asyncio.Task[None] | None = None
        # request.conversations: arrivals of open-loop phases start sessions of turns.
        self._sessions = (
            SessionRunner(requests, self._send_turn, self.clock, self._stop.is_set)
            if isinstance(requests, ConversationSource)
            else None
        )
        self._loop_lag: LoopLagProbe | None = None  # on the real clock only (not in tests)
        # One thread, so hooks (display, observer snapshots) run in the order they were fired.
        self._hook_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="infbench-hooks")

    # --- one request ----------------------------------------------------------------------------

    def _spawn(self, phase: int, seq: int, intended_ns: int) -> None:
        """An arrival is due: sent at once when a connection slot is free, else queued."""
        self._offered += 1
        if self._slots.try_take():
            self._start(phase, seq, intended_ns)
        else:
            self._backlog.add(phase, seq, intended_ns)

    def _start(self, phase: int, seq: int, intended_ns: int) -> None:
        """Send an arrival that holds a slot: written at once on an idle connection when the
        sender can (no task, no future), else from a task."""
        request = self.requests.request(seq)
        if self._send_now is not None:
            sent_ns = self._now()
            done = partial(self._direct_done, phase, seq, intended_ns, sent_ns, request)
            if self._send_now(request, done):
                self._in_flight += 1
                self._direct += 1
                self._count_sent(phase)
                return
        task = asyncio.get_running_loop().create_task(
            self._send_held(phase, seq, intended_ns, request)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _give(self) -> None:
        """A slot came free: to the oldest queued arrival still within its timeout, else back."""
        arrival = None if self._abandoning else self._backlog.pop()
        if arrival is None:
            self._slots.give()
        else:
            self._start(*arrival)

    def _drop(self, phase: int, seq: int, intended_ns: int) -> None:
        dropped = ERROR_CODES["dropped"]
        if self.stamps.add(seq, phase, intended_ns, 0, 0, self._now(), 0, dropped, 0, 0):
            self._hand_over()

    def _direct_done(
        self,
        phase: int,
        seq: int,
        intended_ns: int,
        sent_ns: int,
        request: PreparedRequest,
        outcome: Outcome,
    ) -> None:
        """The outcome of a request written by ``send_now``, from the connection's callback."""
        if self._abandoning:
            return  # given up on at the end of the drain; counted as abandoned
        self._in_flight -= 1
        self._direct -= 1
        self._give()
        self._stamp(phase, seq, intended_ns, sent_ns, request, outcome)

    async def _send(self, phase: int, seq: int, intended_ns: int) -> None:
        """A closed-loop request: waits for a slot, then is sent and answered."""
        if not self._slots.try_take() and not await self._wait_for_slot(phase, seq, intended_ns):
            return
        await self._send_held(phase, seq, intended_ns, self.requests.request(seq))

    async def _send_turn(
        self, phase: int, seq: int, intended_ns: int, request: PreparedRequest
    ) -> Outcome | None:
        """A session's turn (load/sessions.py): its outcome, None when it was dropped."""
        self._offered += 1
        if not self._slots.try_take() and not await self._wait_for_slot(phase, seq, intended_ns):
            return None
        return await self._send_held(phase, seq, intended_ns, request)

    def _start_session(self, end_ns: int, phase: int, seq: int, intended_ns: int) -> None:
        assert self._sessions is not None
        task = asyncio.get_running_loop().create_task(
            self._sessions.run(phase, seq, intended_ns, end_ns)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_held(
        self, phase: int, seq: int, intended_ns: int, request: PreparedRequest
    ) -> Outcome:
        self._in_flight += 1
        try:
            sent_ns = self._now()
            self._count_sent(phase)
            outcome = await self.sender.send(request)
            self._stamp(phase, seq, intended_ns, sent_ns, request, outcome)
            return outcome
        finally:
            self._in_flight -= 1
            self._give()

    def _count_sent(self, phase: int) -> None:
        self._sent += 1
        self.report.sent_by_phase[phase] += 1

    def _stamp(
        self,
        phase: int,
        seq: int,
        intended_ns: int,
        sent_ns: int,
        request: PreparedRequest,
        outcome: Outcome,
    ) -> None:
        body = request.body
        stream = _NOT_STREAMED
        if outcome.chunks or outcome.tokens_source:  # a streamed answer (DESIGN §5b)
            stream = (
                outcome.first_token_ns, outcome.last_token_ns, outcome.chunks,
                outcome.input_tokens, outcome.output_tokens, outcome.tokens_source,
                outcome.tokenizer_tokens,
            )  # fmt: skip
            if outcome.gaps:
                self.stamps.add_gaps(phase, outcome.done_ns, outcome.gaps)
            if outcome.token_gaps:
                self.stamps.add_segment(phase, outcome.done_ns, outcome.token_gaps, ITL_TOKEN)
        full = self.stamps.add(
            seq, phase, intended_ns, sent_ns, outcome.first_byte_ns, outcome.done_ns,
            outcome.status, ERROR_CODES[outcome.error], len(body) if body else 0,
            outcome.bytes_in, stream,
        )  # fmt: skip
        if full:
            self._hand_over()

    async def _wait_for_slot(self, phase: int, seq: int, intended_ns: int) -> bool:
        """Wait for a free connection until the timeout counted from the intended time; an
        arrival that gets none is recorded as dropped."""
        remaining_s = (intended_ns + self.timeout_ns - self._now()) / 1e9
        if await self._slots.take(remaining_s):
            return True
        self._drop(phase, seq, intended_ns)
        return False

    # --- phases -------------------------------------------------------------------------------

    async def _open_phase(self, phase: int, plan: PhasePlan, start_ns: int) -> None:
        offsets = plan.offsets if plan.offsets is not None else np.empty(0)
        first_of_process, processes = self._stride
        arrive = self._spawn
        if self._sessions is not None:  # each arrival starts a session, cut at the phase's end
            arrive = partial(self._start_session, start_ns + int(plan.duration_s * 1e9))
        base = self._seq_bases[phase] + first_of_process
        for first in range(0, len(offsets), CHUNK):
            due_times = (
                np.rint(offsets[first : first + CHUNK] * 1e9).astype(np.int64) + start_ns
            ).tolist()
            behind = 0  # arrivals sent in a row without waiting
            for index, due_ns in enumerate(due_times, first):
                if self._now() < due_ns:
                    await self.clock.sleep_until(due_ns)
                    behind = 0
                elif behind >= CATCH_UP_RUN and self._now() - due_ns > CATCH_UP_LATE_NS:
                    # Fallen behind: let the loop read answers between runs of sends, so
                    # connections come free for direct writes instead of every arrival queueing.
                    # A burst on time is written through, at the pace of the socket.
                    await asyncio.sleep(0)
                    behind = 0
                if self._stop.is_set():
                    return
                arrive(phase, base + index * processes, due_ns)
                behind += 1

    async def _closed_worker(
        self,
        phase: int,
        plan: PhasePlan,
        worker: int,
        window: tuple[int, int],
        budget: list[int],
    ) -> None:
        """Send, wait for the reply, think, send again; intended = free + think (DESIGN §5)."""
        think = worker_think_sampler(plan, self._stride[0], worker)
        start_ns, end_ns = window
        free_at = start_ns
        while not self._stop.is_set():
            intended_ns = free_at + int(think() * 1e9)
            if intended_ns >= end_ns or budget[0] == 0:
                return
            budget[0] -= 1
            await self.clock.sleep_until(intended_ns)
            if self._stop.is_set():
                return
            self._offered += 1
            await self._send(phase, self._next_closed_seq(phase), intended_ns)
            free_at = self._now()

    def _next_closed_seq(self, phase: int) -> int:
        first_of_process, processes = self._stride
        count = self._closed_counts[phase]
        self._closed_counts[phase] += 1
        return self._seq_bases[phase] + first_of_process + count * processes

    async def _closed_phase(self, phase: int, plan: PhasePlan, start_ns: int, end_ns: int) -> None:
        assert plan.closed is not None
        budget = [plan.max_requests if plan.max_requests is not None else -1]
        workers = [
            self._closed_worker(phase, plan, worker, (start_ns, end_ns), budget)
            for worker in range(plan.closed.concurrency)
        ]
        await asyncio.gather(*workers)

    def _hook(self, fn: Callable[..., None], *args: Any) -> None:
        """Fire a hook in a worker thread; never awaited, so dispatch timing is not held up."""
        asyncio.get_running_loop().run_in_executor(self._hook_thread, fn, *args)

    async def _run_phases(self) -> None:
        start_ns = self.report.t0_ns
        for index, plan in enumerate(self.schedule.phases):
            end_ns = start_ns + int(plan.duration_s * 1e9)
            await self.clock.sleep_until(start_ns)
            if self._stop.is_set():
                return
            self._hook(self.hooks.on_phase, plan.name, "start")
            if plan.closed is not None:
                await self._closed_phase(index, plan, start_ns, end_ns)
            else:
                await self._open_phase(index, plan, start_ns)
            await self.clock.sleep_until(end_ns)
            t0 = self.report.t0_ns
            self.report.phase_windows[plan.name] = ((start_ns - t0) / 1e9, (end_ns - t0) / 1e9)
            self._hook(self.hooks.on_phase, plan.name, "end")
            start_ns = end_ns

    async def _drain(self) -> None:
        """Let requests in flight or queued finish (bounded by their timeout), then give up on
        them."""
        grace = 2.0 if self._stop.is_set() else 2 * self.timeout_ns / 1e9 + 1.0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while True:
            if self._tasks:  # tasks started from the backlog meanwhile are awaited next round
                timeout = max(deadline - loop.time(), 0.0)
                if (await asyncio.wait(set(self._tasks), timeout=timeout))[1]:
                    break  # the grace is over
            elif (self._direct or self._backlog) and loop.time() < deadline:
                await asyncio.sleep(0.005)  # answers to direct writes come through callbacks
            else:
                break
        pending = set(self._tasks)
        self.report.abandoned = len(pending) + self._direct + len(self._backlog)
        self._abandoning = True  # before the cancels: a freed slot starts nothing queued
        self._backlog.clear()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _ticker(self, priority: DispatchPriority) -> None:
        """Hand the stamps over every ``HAND_OVER_NS``, on boundaries counted from the start,
        so that one hand-over falls right after each second's end; the dispatcher's priority
        follows its CPU use at the same pace."""
        t0, count = self.report.t0_ns, 1
        while True:
            boundary = t0 + count * HAND_OVER_NS
            # A plain loop timer, not clock.sleep_until: a hand-over is worth no polling.
            await asyncio.sleep(max(boundary - self._now(), 0) / 1e9)
            self._hand_over()
            priority.check(self.clock.spin_ns)
            count = max(count + 1, (self._now() - t0) // HAND_OVER_NS + 1)

    def _hand_over(self) -> None:
        """Stamps to the recorder; if it is gone, the run stops (what it wrote is kept)."""
        if self.report.recorder_lost is not None:
            return
        try:
            if self._loop_lag is not None:
                self._loop_lag.hand_over()
            self.stamps.hand_over(self._now(), self._offered, self._sent, self._in_flight)
        except OSError as exc:
            self.report.recorder_lost = f"the recorder process is gone ({exc})"
            self._halt()  # a failed run, not an interrupted one

    def stop(self) -> None:
        """Stop dispatching (SIGINT/SIGTERM); requests in flight get a short grace."""
        self.report.interrupted = True
        self._halt()

    def _halt(self) -> None:
        self._stop.set()
        if self._phases_task is not None:
            self._phases_task.cancel()  # wakes it from any sleep, however long

    async def run(self) -> EngineReport:
        loop = asyncio.get_running_loop()
        previous_handlers = stop_on_signals(loop, self.stop)
        await self.sender.open()
        ticker: asyncio.Task[None] | None = None
        try:
            # Quiet first: its full collection takes ~0.1 s, which must not make the first
            # arrivals late, so the start instant is fixed after it.
            with quiet_interpreter(), dispatch_priority(self.priority) as priority:
                self._fix_start()
                if isinstance(self.clock, MonotonicClock):  # loop lag in real time only
                    t0 = self.report.t0_ns
                    self._loop_lag = LoopLagProbe.started(
                        loop, self.stamps, self.schedule, t0, self._read_notice
                    )
                ticker = loop.create_task(self._ticker(priority))
                await self._dispatch()
            self.report.priority = priority.applied
            self.report.realtime_s = priority.realtime_ns / 1e9
        finally:
            if ticker is not None:
                await cancel(ticker)
            self.report.end_ns = self._now()
            if self._loop_lag is not None:
                self._loop_lag.stop()
                names = [plan.name for plan in self.schedule.phases]
                figures = self._loop_lag.p99_ms().items()
                self.report.loop_lag_p99_ms = {names[phase]: p99 for phase, p99 in figures}
            self._hand_over()
            self.report.spin_s = self.clock.spin_ns / 1e9
            await self.sender.close()
            self.clock.close()
            self._hook_thread.shutdown(wait=True)
            restore_signal_handlers(loop, previous_handlers)
        return self.report

    def _fix_start(self) -> None:
        """The run's start instant: the given one, or a little after now (the sender is open)."""
        now = self._now()
        t0 = self._given_t0 if self._given_t0 is not None else now + LOCAL_LEAD_NS
        self.report.t0_ns = t0
        self.report.start_epoch_s = time.time() + (t0 - now) / 1e9
        self.hooks.on_start(t0, self.report.start_epoch_s)

    async def _dispatch(self) -> None:
        """All phases, then the requests still in flight; a stop ends the phases early."""
        self._phases_task = asyncio.get_running_loop().create_task(self._run_phases())
        try:
            await self._phases_task
        except asyncio.CancelledError:
            if not (self.report.interrupted or self.report.recorder_lost):
                raise
        await self._drain()
