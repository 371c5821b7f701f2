"""``target.pid``: the servers a run launched, so a later infbench can stop them.

When infbench itself is SIGKILLed nothing of it runs again: no signal handler, no ``atexit``.
Its servers live on (they run in sessions of their own). Each launched server therefore writes
this file into its result directory — the processes of its tree, each with its create time,
and infbench's own pid and create time — and removes it once its tree is stopped. A file that
outlives its infbench names exactly the processes to stop: a pid is trusted only together with
its create time, so a pid the kernel has since given to another process is never signalled.

Format (JSON, version 1)::

    {"version": 1, "owner": {"pid": 41, "create_time": 1700000000.12},
     "argv0": "python", "port": 3000,
     "processes": [{"pid": 42, "create_time": 1700000001.5}, ...]}
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "PID_FILE",
    "Leftover",
    "PidFile",
    "ProcessId",
    "process_id",
    "read_pid_file",
    "read_record",
    "write_pid_file",
]

PID_FILE = "target.pid"
VERSION = 1
# Create times are floats derived from boot time and clock ticks: equal for the same process
# read twice, while a recycled pid would have to be reused within this window to be confused.
CREATE_TIME_SLACK_S = 0.05


@dataclass(frozen=True)
class ProcessId:
    """A process identified for good: pid plus create time."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, proc: psutil.Process) -> ProcessId | None:
        try:
            return cls(proc.pid, proc.create_time())
        except psutil.Error:
            return None

    def process(self) -> psutil.Process | None:
        """The live process this names, or None when gone, a zombie, or the pid was reused."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > CREATE_TIME_SLACK_S:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return proc

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "create_time": self.create_time}


@dataclass(frozen=True)
class PidFile:
    path: Path
    owner: ProcessId | None
    processes: tuple[ProcessId, ...]
    argv0: str = ""
    port: int | None = None


def _me() -> ProcessId | None:
    return ProcessId.of(psutil.Process(os.getpid()))


def write_pid_file(
    path: Path, processes: list[psutil.Process], argv0: str, port: int | None
) -> None:
    """Replace ``path`` atomically (a reader never sees half a file)."""
    ids = [pid for pid in (ProcessId.of(p) for p in processes) if pid is not None]
    owner = _me()
    data = {
        "version": VERSION,
        "owner": owner.to_json() if owner else None,
        "argv0": argv0,
        "port": port,
        "processes": [pid.to_json() for pid in ids],
    }
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(OSError):  # a full disk must not stop the server from running
        tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def read_record(path: Path, version: int) -> dict[str, Any] | None:
    """A JSON record file's object, or None when it is unreadable or of another version: a
    record that cannot be trusted is left alone, never acted on."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("version") == version else None


def process_id(value: Any) -> ProcessId | None:
    """A record's ``{pid, create_time}``, or None when it is not one."""
    if not isinstance(value, dict):
        return None
    pid, created = value.get("pid"), value.get("create_time")
    if isinstance(pid, int) and pid > 0 and isinstance(created, int | float):
        return ProcessId(pid, float(created))
    return None


def read_pid_file(path: Path) -> PidFile | None:
    """The file's content, or None when it is unreadable or not a version-1 pid file."""
    data = read_record(path, VERSION)
    if data is None:
        return None
    raw = data.get("processes")
    processes = tuple(p for p in map(process_id, raw if isinstance(raw, list) else []) if p)
    port = data.get("port")
    return PidFile(
        path=path,
        owner=process_id(data.get("owner")),
        processes=processes,
        argv0=str(data.get("argv0") or ""),
        port=port if isinstance(port, int) else None,
    )


@dataclass
class Leftover:
    """One pid file found, and what was done about it."""

    pid_file: Path
    owner_pid: int | None
    stopped: list[int] = field(default_factory=list)
    skipped: str | None = None  # why nothing was done

    @property
    def run_dir(self) -> Path:
        return self.pid_file.parent

    def describe(self) -> str:
        if self.skipped:
            return f"{self.run_dir}: left alone, {self.skipped}"
        if not self.stopped:
            return f"{self.run_dir}: removed a stale pid file (its servers had already exited)"
        pids = ", ".join(map(str, self.stopped))
        return (
            f"{self.run_dir}: stopped {len(self.stopped)} server process(es) left running by "
            f"infbench pid {self.owner_pid} that was killed: {pids}"
        )
