"""Stopping a process tree: the one way infbench ends a server and everything it started.

Used for the servers infbench launched (``process.py``) and for those a killed infbench left
behind (``cleanup.py``). The steps: snapshot the tree, SIGTERM, wait while watching the tree
(a supervisor may still start or restart workers, which would be orphaned unseen once it is
gone), then SIGKILL every member left. Processes are held as ``psutil.Process`` objects, which
remember their create time: psutil refuses to signal one whose pid now names another process,
so a recycled pid is never touched.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence

import psutil

__all__ = ["running", "snapshot", "stop_tree"]

POLL_S = 0.05
KILL_WAIT_S = 2.0


def running(proc: psutil.Process) -> bool:
    """False once gone or a zombie (``is_running`` also guards against pid reuse)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def snapshot(roots: Iterable[psutil.Process], known: dict[int, psutil.Process]) -> None:
    """Add each root and all its descendants now to ``known`` (pid -> process, first seen)."""
    for root in roots:
        known.setdefault(root.pid, root)
        with contextlib.suppress(psutil.Error):
            for child in root.children(recursive=True):
                known.setdefault(child.pid, child)


def stop_tree(
    roots: Sequence[psutil.Process],
    *,
    timeout_s: float,
    signal_all: bool,
    known: dict[int, psutil.Process] | None = None,
) -> list[int]:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL whatever of the trees is left.

    ``signal_all``: SIGTERM every member (a tree whose infbench is gone: its supervisor may be
    gone too), else the roots only (a live supervisor shuts its own workers down). Whatever is
    SIGTERMed is resumed first: a stopped (``pause`` fault) process would ignore it. ``known``
    holds members seen earlier (a worker the supervisor lost track of) and gains those seen now.
    Returns the pids of the trees (and of ``known``) as they were when the stop began.
    """
    members = {} if known is None else known
    snapshot(roots, members)
    first = sorted(members)
    for proc in list(members.values()) if signal_all else roots:
        with contextlib.suppress(psutil.Error):
            proc.resume()
            proc.terminate()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(running(root) for root in roots):
        snapshot(roots, members)
        time.sleep(POLL_S)
    leftovers = [proc for proc in members.values() if running(proc)]
    _, alive = psutil.wait_procs(leftovers, timeout=max(0.0, deadline - time.monotonic()))
    snapshot(alive, members)  # a survivor may have started workers meanwhile
    alive = [proc for proc in members.values() if running(proc)]
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=KILL_WAIT_S)
    return first
