"""Scenario file v1: what infbench reads beside the load (DESIGN §9): the server's own metrics
(``target.metrics``), its GPUs (``target.gpu``) and what it costs (``cost``).

Kept apart from ``model.py``: every target kind takes the same two keys, and the scenario one.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from infbench.scenario.common import Model

__all__ = ["PRESET_NAMES", "SERIES_ROLES", "Cost", "GpuSpec", "MetricsSpec", "parse_selector"]

PRESET_NAMES = ("auto", "bentoml", "vllm", "sglang", "tgi", "trtllm", "none")
# What a preset (or ``series:``) names, by what infbench does with it: gauges are sampled each
# second, counters and histograms are read as deltas between a phase's boundary scrapes.
SERIES_ROLES = {
    "running": "gauge",
    "waiting": "gauge",
    "kv_cache_usage": "gauge",
    "prefix_cache_hit_rate": "gauge",
    "preemptions": "counter",
    "prefix_cache_hits": "counter",
    "prefix_cache_queries": "counter",
    "ttft": "histogram",
    "itl": "histogram",
    "queue": "histogram",
    "e2e": "histogram",
}
_SELECTOR = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?$")
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"?([^",]*)"?\s*')


def parse_selector(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``name`` or ``name{label="value",…}`` (PromQL's exact-match selector) → name, labels."""
    match = _SELECTOR.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a series name, e.g. vllm:num_requests_running")
    name, inside = match.group(1), match.group(2)
    labels = []
    for part in filter(str.strip, (inside or "").split(",")):
        label = _LABEL.fullmatch(part)
        if label is None:
            raise ValueError(f'{text!r}: write labels as name{{label="value"}}')
        labels.append((label.group(1), label.group(2)))
    return name, tuple(labels)


class MetricsSpec(Model):
    """``target.metrics``: where the server's Prometheus metrics are and how to read them.

    ``url`` defaults to the target's own metrics path; ``preset: auto`` picks the server by
    the names of its series; ``series`` names (or renames) any role for another server.
    """

    url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    preset: Literal["auto", "bentoml", "vllm", "sglang", "tgi", "trtllm", "none"] = "auto"
    series: dict[str, str] = Field(default_factory=dict)

    @field_validator("series")
    @classmethod
    def _known_roles(cls, series: dict[str, str]) -> dict[str, str]:
        for role, selector in series.items():
            if role not in SERIES_ROLES:
                choices = ", ".join(SERIES_ROLES)
                raise ValueError(f"unknown series role {role!r}; choose from {choices}")
            parse_selector(selector)
        return series


class GpuSpec(Model):
    """``target.gpu``: NVML on this machine (``nvml``), a DCGM exporter (``dcgm_url``), or off
    (``nvml: off`` without a ``dcgm_url``). ``nvml: auto`` tries NVML where the target runs here.

    ``labels`` keeps only the DCGM series carrying them (a pod's GPUs on a shared node).
    """

    nvml: Literal["auto"] | bool = "auto"  # YAML reads on/off as true/false
    devices: list[Annotated[int, Field(ge=0)]] | None = None  # NVML indexes; default: all
    dcgm_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class Cost(Model):
    """``cost``: the price of the serving instances; figures per 1M requests and output tokens."""

    per_hour: float = Field(description="price of one instance for one hour, in `currency`")
    currency: Annotated[str, Field(min_length=1, max_length=8)] = "USD"
    instances: Annotated[int, Field(ge=1)] | None = None  # default: kubernetes replicas, else 1

    @field_validator("per_hour")
    @classmethod
    def _a_price(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError("must be a price of 0 or more per instance-hour, e.g. 2.5")
        return value
