"""The seam between the Observer's sampling thread and what it samples beside the process tree.

A probe is fed on the observer thread only: each tick (``sample``, with the scrape of the
server's ``/metrics`` when there is one) and at each phase boundary (``boundary``). What it
returns from ``sample`` goes into timeseries.csv under its ``columns``; ``summary`` (called
once, after the thread has stopped) is its section of run.json's ``server``, with the phases'
figures under ``phases`` and anything the reader must know under ``warnings``.
"""

from __future__ import annotations

from typing import Any, Protocol

from infbench.observe.prometheus import Series

__all__ = ["Probe"]


class Probe(Protocol):
    key: str
    columns: tuple[str, ...]

    def sample(self, series: Series | None) -> dict[str, float | None]: ...
    def boundary(self, kind: str, name: str, series: Series | None) -> None: ...
    def summary(self) -> dict[str, Any]: ...
