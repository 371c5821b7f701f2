"""The conversation figures of a run's phases (``sessions``, ``turns``), once its raw rows
are written: the rows say which session and turn each request was, the scenario's
conversations file how many turns each session has."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from infbench.analysis.turns import conversation_figures
from infbench.results.records import PhaseSummary
from infbench.scenario.source import LoadedScenario
from infbench.workload.conversations import ConversationSource

__all__ = ["with_turns"]


def with_turns(
    phases: list[PhaseSummary], loaded: LoadedScenario, rows: Path
) -> list[PhaseSummary]:
    """``phases`` with ``sessions`` and ``turns`` added where sessions ran; as given for
    scenarios without conversations, or when the rows are missing (a lost recorder)."""
    request = loaded.scenario.request
    if request.conversations is None or not rows.exists():
        return phases
    seed = loaded.scenario.workload.seed
    source = ConversationSource.from_scenario(request, loaded.base_dir, seed)
    figures = conversation_figures(rows, source.turns)
    return [
        dataclasses.replace(p, sessions=figures[p.name][0], turns=figures[p.name][1])
        if p.name in figures
        else p
        for p in phases
    ]
