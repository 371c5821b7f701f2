"""Stop servers left behind by an infbench that was killed (SIGKILL, OOM killer, power cut).

Every launched server keeps ``target.pid`` in its result directory (``targets/pidfile.py``) and
removes it when stopped. A file whose infbench is gone names servers nobody will stop: the
next ``infbench run`` and ``infbench cleanup`` stop them, whole trees, and say so. A file
whose infbench still runs (another run sharing the results root) is left alone, and a pid is
only ever signalled while its create time matches the file's.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from infbench.targets.pidfile import PID_FILE, Leftover, PidFile, read_pid_file
from infbench.targets.proctree import stop_tree

__all__ = ["Leftover", "clean_leftovers", "find_pid_files"]

TERM_WAIT_S = 5.0


def find_pid_files(root: Path) -> list[Path]:
    """``<root>/<run>/target.pid`` and ``<root>/<run>/run-N/target.pid`` (``--repeat``)."""
    if not root.is_dir():
        return []
    found = [*root.glob(f"*/{PID_FILE}"), *root.glob(f"*/*/{PID_FILE}")]
    return sorted(p for p in found if p.is_file())


def _owner_running(pid_file: PidFile) -> bool:
    owner = pid_file.owner
    return owner is not None and owner.process() is not None


def _clean(path: Path) -> Leftover | None:
    pid_file = read_pid_file(path)
    if pid_file is None:
        return Leftover(path, None, skipped="the pid file is unreadable or of another version")
    owner_pid = pid_file.owner.pid if pid_file.owner else None
    if owner_pid == os.getpid() or _owner_running(pid_file):
        return None  # a run in progress (this one, or another infbench): its servers are in use
    live = [proc for proc in (p.process() for p in pid_file.processes) if proc is not None]
    leftover = Leftover(path, owner_pid)
    if live:
        leftover.stopped = stop_tree(live, timeout_s=TERM_WAIT_S, signal_all=True)
    with contextlib.suppress(OSError):
        path.unlink()
    return leftover


def clean_leftovers(root: Path) -> list[Leftover]:
    """Act on every pid file under ``root`` whose infbench is gone; runs in progress are skipped.

    Kubernetes objects a killed infbench created (``target.k8s.json``) are deleted too.
    """
    found = [found for path in find_pid_files(root) if (found := _clean(path)) is not None]
    if (root.is_dir() and any(root.glob("*/target.k8s.json"))) or any(
        root.glob("*/*/target.k8s.json")
    ):
        from infbench.targets.kube.cleanup import clean_kube_leftovers  # lazily: yaml, the client

        found += clean_kube_leftovers(root)
    return found
