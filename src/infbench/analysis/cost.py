"""What serving costs, per request and per output token, at the throughput a phase achieved.

    cost per 1M requests      = per_hour × instances / 3600 / achieved_rps × 1e6
    cost per 1M output tokens = per_hour × instances / 3600 / output_tps   × 1e6

``per_hour`` is the price of one instance (a GPU node, a pod's share) for an hour; the
instances are paid the whole phase whether busy or not, so a phase that achieved little
throughput is an expensive one. A phase with no throughput has no cost figure (not infinity,
not 0). ``sweep --find-max`` reads the figure of the level at the SLO capacity.
"""

from __future__ import annotations

from infbench.results.records import CostFigures, PhaseSummary
from infbench.scenario.model import Scenario
from infbench.scenario.observing import Cost

__all__ = ["SECONDS_PER_HOUR", "instances_for", "per_million", "phase_cost"]

SECONDS_PER_HOUR = 3600.0


def per_million(per_hour: float, instances: int, per_second: float | None) -> float | None:
    """The price of a million units served at ``per_second`` units a second."""
    if per_second is None or per_second <= 0:
        return None
    return round(per_hour * instances / SECONDS_PER_HOUR / per_second * 1e6, 6)


def phase_cost(phase: PhaseSummary, cost: Cost, instances: int) -> CostFigures:
    return CostFigures(
        currency=cost.currency,
        per_1m_requests=per_million(cost.per_hour, instances, phase.achieved_rps),
        per_1m_output_tokens=per_million(cost.per_hour, instances, phase.output_tps),
        per_hour=cost.per_hour,
        instances=instances,
    )


def instances_for(scenario: Scenario) -> int:
    """``cost.instances``, else a kubernetes target's replicas, else 1."""
    if scenario.cost is not None and scenario.cost.instances is not None:
        return scenario.cost.instances
    replicas = getattr(scenario.target, "replicas", None)
    return replicas if isinstance(replicas, int) and replicas > 0 else 1
