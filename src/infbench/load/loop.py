"""The event loop a generator runs in, and what keeps it quiet while it measures.

uvloop where available (measured faster for every sender); the garbage collector off and a
short thread switch interval during the measured window; SIGINT and SIGTERM turned into a
stop request instead of an exception in the middle of a send.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

__all__ = ["cancel", "quiet_interpreter", "restore_signal_handlers", "run_async", "stop_on_signals"]

SWITCH_INTERVAL_S = 0.0005
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run on uvloop where available (measured faster for every sender)."""
    loop = _new_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@contextlib.contextmanager
def quiet_interpreter() -> Iterator[None]:
    """Keep the interpreter from pausing the event loop while it measures."""
    # Background threads (row writer, observer, display) hold the GIL for up to the switch
    # interval, 5 ms by default, whenever the loop wants it back: that was send lag.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()
    gc.disable()  # a collection pause inside a measured phase would show up as latency
    try:
        yield
    finally:
        gc.enable()
        sys.setswitchinterval(switch_interval)


async def cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def stop_on_signals(
    loop: asyncio.AbstractEventLoop, stop: Callable[[], None]
) -> dict[signal.Signals, Any]:
    """Install ``stop`` for SIGINT and SIGTERM; return the handlers it replaces."""
    previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
    for sig in previous:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop)
    return previous


def restore_signal_handlers(
    loop: asyncio.AbstractEventLoop, previous: dict[signal.Signals, Any]
) -> None:
    for sig, handler in previous.items():
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)  # the CLI's handlers guard the target's stop
