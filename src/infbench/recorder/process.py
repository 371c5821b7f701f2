"""The recorder in a process of its own, fed with stamp batches through pipes (DESIGN §1, §7).

Histograms, the interval log, raw rows and compression cost CPU and, in Python, the interpreter
lock: done in the generator's process they would hold up its event loop at every batch. Here
the generators only write bytes to a pipe. One recorder takes the stamps of every generator
process of a run, so a multi-process run records its raw stamps once: nothing is merged after.

The parent talks to it through a control pipe: ``start`` (the run's start instant), ``finish``
(every generator has handed over its last batch), and back come ``ready`` once it reads the
stamp pipes, one ``interval`` message per second written and a final ``done`` with the phase
tallies, or ``failed`` with the error. A run starts only once the recorder is ready: a new
interpreter takes ~0.4 s to import what it needs, and meanwhile the pipe (1 MiB, ~8,000 stamps)
filled and the generator blocked on it (measured at 38,000/s: hand-overs held up 3-43 ms).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from infbench.recorder.recorder import Goodput, IntervalStats, Recorder, SourceMark
from infbench.recorder.stamps import read_batch, read_gaps
from infbench.recorder.tally import PhaseTally

__all__ = ["RecorderLost", "RecorderProcess", "RecorderSettings"]

_FINISH_TIMEOUT_S = 120.0  # the last batches, the last seconds and the files' close
_READY_TIMEOUT_S = 60.0  # a new interpreter's imports and the result files opened
# Below the generator's priority: it catches up in the pauses, and its batches wait in the pipe.
_NICENESS = 10


class RecorderLost(RuntimeError):
    """The recorder process died or stopped answering; what it wrote so far is kept."""


@dataclass(frozen=True)
class RecorderSettings:
    phases: list[str]
    highest_us: int
    out_dir: Path
    sources: int = 1
    goodput: Goodput = field(default_factory=Goodput)
    rows_header: bool = True  # False for a part that is joined to others after one header
    streamed: bool = False  # answers read chunk by chunk: TTFT, TPOT, ITL, tokens


class RecorderProcess:
    """Parent's handle: ``inputs[k]`` is generator k's write end; intervals reach
    ``on_interval`` from a thread of the parent as each second is written."""

    def __init__(
        self, settings: RecorderSettings, on_interval: Callable[[IntervalStats], None]
    ) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that runs threads
        pipes = [ctx.Pipe(duplex=False) for _ in range(settings.sources)]
        self.inputs: list[Connection] = [write for _, write in pipes]
        self._control, child_control = ctx.Pipe(duplex=True)
        self._process = ctx.Process(
            target=_main,
            args=(settings, child_control, [read for read, _ in pipes]),
            name="infbench-recorder",
            daemon=True,
        )
        self._process.start()
        child_control.close()
        for read, _ in pipes:
            read.close()
        self._on_interval = on_interval
        self._outcome: tuple[str, Any] | None = None
        self._arrived = threading.Event()
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="infbench-intervals", daemon=True)
        self._reader.start()

    def wait_ready(self, timeout_s: float = _READY_TIMEOUT_S) -> bool:
        """Wait until the recorder reads its pipes; False if it ended or did not get there in
        time (the run then finds it gone at its first hand-over and fails, saying why)."""
        return self._ready.wait(timeout_s) and not self._arrived.is_set()

    def start(self, t0_ns: int, start_epoch_s: float) -> None:
        self._send(("start", t0_ns, start_epoch_s))

    def finish(self, end_ns: int, sent_by_phase: list[int]) -> list[PhaseTally]:
        """Every generator is done: write what is left and return the phase tallies."""
        self._send(("finish", end_ns, sent_by_phase))
        if not self._arrived.wait(_FINISH_TIMEOUT_S):
            raise RecorderLost(f"the recorder did not finish within {_FINISH_TIMEOUT_S:g} s")
        assert self._outcome is not None
        kind, payload = self._outcome
        if kind != "done":
            raise RecorderLost(payload)
        return [PhaseTally.from_wire(wire) for wire in payload]

    def close(self) -> None:
        """Stop the process (it has finished, or the run is being abandoned)."""
        for connection in (*self.inputs, self._control):
            connection.close()
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._reader.join(5)

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self._control.send(message)
        except OSError as exc:
            raise RecorderLost(f"the recorder process is gone ({exc})") from None

    def _read(self) -> None:
        try:
            while True:
                message = self._control.recv()
                if message[0] == "interval":
                    self._on_interval(message[1])
                elif message[0] == "ready":
                    self._ready.set()
                else:
                    self._outcome = message
                    break
        except (EOFError, OSError):
            code = self._process.exitcode
            self._outcome = ("failed", f"the recorder process died (exit code {code})")
        self._arrived.set()
        self._ready.set()  # ended: a wait for it to be ready ends too (and says it is not)


def _step_aside() -> None:
    """Off the generator's cores, and below everything else in priority.

    A generator pinned to some cores (taskset, a benchmark's layout) keeps them: woken by its
    pipe writes, the recorder would otherwise be placed on the writer's core, and behind a
    dispatcher at real-time priority it waits there until the kernel's reserve for ordinary
    tasks lets it run for milliseconds at once, stalling the dispatcher that long (measured:
    4 ms stalls every 50-100 ms at 20,000 requests/s). So it runs on the other cores when there
    are any, on all of them when the generator may use every core. It is niced, and yields its
    core between pieces of work (``_yield_core``); not SCHED_IDLE, which measured no better
    with the yields and would starve it on a machine whose server keeps every core busy (a
    thousandth of a core records a few hundred requests a second).
    """
    with contextlib.suppress(AttributeError, OSError, ValueError):
        every = set(range(os.cpu_count() or 1))
        others = every - os.sched_getaffinity(os.getppid())
        os.sched_setaffinity(0, others or every)
    with contextlib.suppress(OSError):
        os.nice(_NICENESS)


def _yield_core() -> None:
    """Let a waiting task have the core (it may be the server's). Woken by a hand-over, the
    recorder otherwise worked ~4 ms in one go, and nginx next to it answered that late every
    100 ms, time in which 64 connections ran out (measured at 25,000 requests/s: send lag p99
    1.8-2.9 ms; yielding between ~0.3 ms pieces, 0.1-1.3 ms, mostly under 0.2)."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_yield()


def _main(settings: RecorderSettings, control: Connection, inputs: list[Connection]) -> None:
    # Ctrl-C in a terminal signals the whole process group: the parent decides when the run
    # ends and then sends ``finish``; dying here would lose the last seconds.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _step_aside()
    recorder = Recorder(
        settings.phases,
        settings.highest_us,
        settings.out_dir,
        sources=settings.sources,
        goodput=settings.goodput,
        rows_header=settings.rows_header,
        streamed=settings.streamed,
        pause=_yield_core,
    )
    try:
        control.send(("ready",))
        tallies = _serve(recorder, control, inputs)
        control.send(("done", [tally.to_wire() for tally in tallies]))
    except Exception:
        with contextlib.suppress(OSError):
            control.send(("failed", "the recorder failed:\n" + traceback.format_exc(limit=5)))
    finally:
        recorder.close()


def _serve(recorder: Recorder, control: Connection, inputs: list[Connection]) -> list[PhaseTally]:
    """Batches until ``finish``; the control pipe is read first, so ``start`` always
    precedes the stamps it applies to."""
    sources = {connection: k for k, connection in enumerate(inputs)}
    open_inputs = list(inputs)
    while True:
        ready = wait([control, *open_inputs])
        if control in ready:
            message = control.recv()
            if message[0] == "start":
                recorder.start(message[1], message[2])
            elif message[0] == "finish":
                for connection in open_inputs:
                    while _take(recorder, connection, sources[connection]):
                        pass
                for stats in recorder.finish(message[1]):
                    control.send(("interval", stats))
                for tally, sent in zip(recorder.tallies, message[2], strict=True):
                    tally.sent = sent
                return recorder.tallies
        for connection in open_inputs[:]:
            if connection in ready and not _take(recorder, connection, sources[connection], True):
                open_inputs.remove(connection)
        for stats in recorder.ready_seconds():
            control.send(("interval", stats))


def _take(recorder: Recorder, connection: Connection, source: int, block: bool = False) -> bool:
    """Apply one waiting batch; False when there was none (or the writer has gone)."""
    try:
        if not block and not connection.poll():
            return False
        data = connection.recv_bytes()
    except (EOFError, OSError):
        return False
    header, stamps = read_batch(data)
    gaps = read_gaps(connection.recv_bytes()) if header[4] else []
    recorder.add(stamps, gaps)
    recorder.mark(source, SourceMark(*header[:4]))
    return True
