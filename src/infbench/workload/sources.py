"""Which request source a scenario needs: pre-rendered rows, trace-sized prompts, or sessions.

``request_source`` is what a load generator asks for; each source answers ``request(seq)``
for the engine. It reads every file the scenario's requests name, so calling it once before
the target starts (``check_requests``) turns a bad file into an error before any load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infbench.scenario.request import Request
from infbench.schedule.arrivals import Schedule, sequence_bases
from infbench.wire import PreparedRequest
from infbench.workload.conversations import ConversationSource
from infbench.workload.requests import RequestFactory, render_row
from infbench.workload.trace_prompts import TraceRequests

__all__ = ["RequestSource", "check_requests", "request_source"]

RequestSource = RequestFactory | TraceRequests | ConversationSource


def request_source(
    request: Request,
    base_dir: Path,
    seed: int,
    schedule: Schedule,
    seq_bases: list[int] | None = None,
) -> RequestSource:
    """The requests of a run of ``schedule`` (request numbers from ``seq_bases``, default
    those of the whole schedule)."""
    bases = seq_bases if seq_bases is not None else sequence_bases(schedule)
    if request.conversations is not None:
        return ConversationSource.from_scenario(request, base_dir, seed)
    if request.prompts is not None and request.prompts.from_trace is not None:
        source = "the trace"

        def render(row: dict[str, Any], index: int) -> PreparedRequest:
            return render_row(request, row, source, index, seed)

        return TraceRequests.build(schedule, bases, request, seed, render)
    return RequestFactory.from_scenario(request, base_dir, seed)


def check_requests(request: Request, base_dir: Path, seed: int, schedule: Schedule) -> None:
    """Build the requests once, so a bad dataset, trace row or conversation fails now."""
    request_source(request, base_dir, seed, schedule)
