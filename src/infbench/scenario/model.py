"""Scenario file v1: the validated description of one benchmark (DESIGN §3).

The models are strict (unknown keys are errors, so a typo never silently falls back to a
default). Loading — YAML with line numbers, ``${ENV}`` substitution and ``--set`` overrides —
lives in ``scenario_source.py``; this module holds only the shape of a scenario.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from infbench.scenario.common import (
    MAX_REQUESTS_PER_PHASE,
    LocalPath,
    Model,
    Name,
    PositiveDuration,
    PositiveRate,
)
from infbench.scenario.faults import Fault, RestartPolicy
from infbench.scenario.kubernetes import KubernetesTarget
from infbench.scenario.observing import Cost, GpuSpec, MetricsSpec
from infbench.scenario.request import Client, Request
from infbench.units import Duration, Rate

__all__ = [
    "Arrival",
    "BentomlTarget",
    "ClosedArrival",
    "CommandTarget",
    "ConstantArrival",
    "GammaArrival",
    "KubernetesTarget",
    "OnOffArrival",
    "Phase",
    "PoissonArrival",
    "RampArrival",
    "Readiness",
    "Scenario",
    "StepsArrival",
    "Target",
    "TraceArrival",
    "TraceColumnNames",
    "UrlTarget",
    "Warmup",
    "Workload",
]

# --- arrival processes (DESIGN §4) -----------------------------------------------------------


class ConstantArrival(Model):
    """Evenly spaced arrivals: offsets k/rate."""

    process: Literal["constant"]
    rate: PositiveRate

    def mean_rate(self, duration_s: float) -> float:
        return self.rate


class PoissonArrival(Model):
    """Exponential gaps with mean 1/rate (steady traffic from many independent users)."""

    process: Literal["poisson"]
    rate: PositiveRate

    def mean_rate(self, duration_s: float) -> float:
        return self.rate


class GammaArrival(Model):
    """Gamma gaps: same mean rate, burstiness set by the gaps' coefficient of variation.

    ``cv`` > 1 is burstier than Poisson, < 1 smoother. ``shape`` k is the alternative
    spelling used in papers: cv = 1/sqrt(k).
    """

    process: Literal["gamma"]
    rate: PositiveRate
    cv: Annotated[float, Field(gt=0)] | None = None
    shape: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _one_of_cv_or_shape(self) -> GammaArrival:
        if (self.cv is None) == (self.shape is None):
            raise ValueError("give exactly one of `cv` or `shape` (cv = 1/sqrt(shape))")
        return self

    @property
    def gap_cv(self) -> float:
        return self.cv if self.cv is not None else float(self.shape or 1.0) ** -0.5

    def mean_rate(self, duration_s: float) -> float:
        return self.rate


class OnOffArrival(Model):
    """Two-state modulated Poisson (MMPP-2): bursts at ``rate_on`` for ``on``, then ``rate_off``."""

    process: Literal["onoff"]
    rate_on: PositiveRate
    rate_off: Rate = 0.0
    on: PositiveDuration
    off: PositiveDuration
    spells: Literal["fixed", "exponential"] = "fixed"

    def mean_rate(self, duration_s: float) -> float:
        return (self.rate_on * self.on + self.rate_off * self.off) / (self.on + self.off)


class RampArrival(Model):
    """Rate rising (or falling) linearly from ``from`` to ``to`` over the phase."""

    process: Literal["ramp"]
    from_: Annotated[Rate, Field(alias="from")]
    to: Rate
    shape: Literal["constant", "poisson"] = "poisson"

    @model_validator(mode="after")
    def _not_all_zero(self) -> RampArrival:
        if self.from_ == 0 and self.to == 0:
            raise ValueError("`from` and `to` cannot both be 0")
        return self

    def mean_rate(self, duration_s: float) -> float:
        return (self.from_ + self.to) / 2


class StepsArrival(Model):
    """Piecewise-constant rate: ``rates[i]`` for ``step`` seconds each; the last one holds."""

    process: Literal["steps"]
    rates: Annotated[list[Rate], Field(min_length=1)]
    step: PositiveDuration
    shape: Literal["constant", "poisson"] = "poisson"

    @model_validator(mode="after")
    def _some_traffic(self) -> StepsArrival:
        if not any(self.rates):
            raise ValueError("every rate in `rates` is 0: the phase would send nothing")
        return self

    def mean_rate(self, duration_s: float) -> float:
        total, t = 0.0, 0.0
        for rate in self.rates:
            span = min(self.step, max(duration_s - t, 0.0))
            total, t = total + rate * span, t + self.step
        if duration_s > t:
            total += self.rates[-1] * (duration_s - t)
        return total / duration_s if duration_s > 0 else 0.0


class TraceColumnNames(Model):
    """Which CSV header or JSONL key holds each figure (DESIGN §5c); unset: the format's own."""

    time: str | None = None
    input: str | None = None
    output: str | None = None
    hash_ids: str | None = None


class TraceArrival(Model):
    """Replay a trace's timestamps (and lengths, for ``request.prompts.from_trace``) from a
    CSV or JSONL file; ``scale`` 2 stretches time to half the rate; ``start`` and ``window``
    cut a slice (seconds of the trace, from its first timestamp)."""

    process: Literal["trace"]
    path: LocalPath
    format: Literal["auto", "csv", "jsonl", "mooncake", "azure", "burstgpt"] = "auto"
    column: str | None = None  # shorthand for columns.time
    columns: TraceColumnNames | None = None
    unit: Literal["s", "ms", "us", "ns"] | None = None  # default: the format's (s; mooncake ms)
    scale: Annotated[float, Field(gt=0)] = 1.0
    start: Annotated[Duration, Field(ge=0)] = 0.0
    window: PositiveDuration | None = None

    @model_validator(mode="after")
    def _one_time_column(self) -> TraceArrival:
        if self.column and self.columns and self.columns.time:
            raise ValueError("give the time column once: `column` or `columns.time`")
        return self

    def mean_rate(self, duration_s: float) -> float:
        return float("nan")  # known only once the file is read (see arrivals.trace_offsets)


class ClosedArrival(Model):
    """Closed loop: ``concurrency`` workers, each sending after the previous reply plus think time.

    ``think_cv`` 0 means a fixed think time, 1 an exponential one, other values gamma.
    """

    process: Literal["closed"]
    concurrency: Annotated[int, Field(ge=1, le=100_000)]
    think: Duration = 0.0
    think_cv: Annotated[float, Field(ge=0)] = 0.0

    def mean_rate(self, duration_s: float) -> float:
        return float("nan")  # depends on the server's latency


Arrival = Annotated[
    ConstantArrival
    | PoissonArrival
    | GammaArrival
    | OnOffArrival
    | RampArrival
    | StepsArrival
    | TraceArrival
    | ClosedArrival,
    Field(discriminator="process"),
]


class Phase(Model):
    name: Name
    duration: PositiveDuration | None = None
    arrival: Arrival
    max_requests: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _duration_known(self) -> Phase:
        if self.duration is None and not isinstance(self.arrival, StepsArrival | TraceArrival):
            raise ValueError("`duration` is required (e.g. duration: 30s)")
        duration = self.duration_s or 0.0
        expected = self.arrival.mean_rate(duration) * duration
        if expected > MAX_REQUESTS_PER_PHASE:  # NaN (closed loop, trace) compares False
            raise ValueError(
                f"this phase schedules about {expected:,.0f} requests; the limit is "
                f"{MAX_REQUESTS_PER_PHASE:,} per phase (check the rate and duration units)"
            )
        return self

    @property
    def duration_s(self) -> float | None:
        """Declared duration; steps default to len(rates)*step, traces to their own span."""
        if self.duration is not None:
            return self.duration
        if isinstance(self.arrival, StepsArrival):
            return len(self.arrival.rates) * self.arrival.step
        return None


class Warmup(Model):
    """Traffic sent before the measured phases, recorded apart and excluded from the summary.

    Without ``arrival`` the warm-up repeats the first phase's process at its mean rate.
    """

    duration: PositiveDuration
    arrival: Arrival | None = None


class Workload(Model):
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 42
    warmup: Warmup | None = None
    phases: Annotated[list[Phase], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _warmup_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("warmup"), str | int | float):
            if data["warmup"] in (0, "0", "0s"):
                return {**data, "warmup": None}
            return {**data, "warmup": {"duration": data["warmup"]}}
        return data

    @model_validator(mode="after")
    def _unique_names(self) -> Workload:
        names = [phase.name for phase in self.phases]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"phase names must be unique; repeated: {', '.join(duplicates)}")
        if "warmup" in names:
            raise ValueError("`warmup` is reserved for the warm-up phase; rename the phase")
        return self


# --- target ------------------------------------------------------------------------------------


class Readiness(Model):
    path: str = "/readyz"
    timeout: PositiveDuration = 120.0
    interval: PositiveDuration = 0.05
    probe_timeout: PositiveDuration = 0.5
    status: Annotated[int, Field(ge=100, le=599)] = 200


class BentomlTarget(Model):
    kind: Literal["bentoml"]
    service: str = Field(
        description="MODULE:Class as `bentoml serve` takes it, relative to the file"
    )
    workers: Annotated[int, Field(ge=1)] | Literal["cpu_count"] = 1
    config: dict[str, Any] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    ready: Readiness = Readiness()
    metrics_path: str = "/metrics"
    metrics: MetricsSpec | None = None
    gpu: GpuSpec | None = None
    restart: RestartPolicy = "never"


class UrlTarget(Model):
    kind: Literal["url"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    ready: Readiness | None = None
    metrics_path: str | None = None
    metrics: MetricsSpec | None = None
    gpu: GpuSpec | None = None


class CommandTarget(Model):
    kind: Literal["command"]
    command: Annotated[list[str], Field(min_length=1)]
    url: Annotated[str, Field(pattern=r"^https?://")]
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    ready: Readiness = Readiness(path="/")
    metrics_path: str | None = None
    metrics: MetricsSpec | None = None
    gpu: GpuSpec | None = None
    restart: RestartPolicy = "never"


Target = Annotated[
    BentomlTarget | UrlTarget | CommandTarget | KubernetesTarget, Field(discriminator="kind")
]


# --- the scenario -------------------------------------------------------------------------------


class Scenario(Model):
    version: Literal[1]
    name: Name
    description: str | None = None
    target: Target
    request: Request = Request()
    client: Client = Client()
    workload: Workload
    slo: dict[str, str | float | int] = Field(default_factory=dict)
    faults: list[Fault] = Field(default_factory=list)
    cost: Cost | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if self.client.http2 and self.client.sender not in ("httpx", "auto"):
            raise ValueError("client.http2 needs `client.sender: httpx`")
        url = getattr(self.target, "url", "") or ""
        if self.client.sender == "fast" and url.startswith("https://"):
            raise ValueError(
                "client.sender: fast speaks plain HTTP/1.1 and target.url is https; "
                "use client.sender: aiohttp for TLS"
            )
        if self.faults and isinstance(self.target, UrlTarget):
            raise ValueError(
                "faults need a server infbench launches (target.kind bentoml or command); "
                "a server attached by URL is never signalled"
            )
        for index, fault in enumerate(self.faults):
            _check_fault_target(index, fault, self.target)
        measured = self.measured_duration_s
        for index, fault in enumerate(self.faults):
            if measured is not None and fault.end_s >= measured:
                raise ValueError(
                    f"faults[{index}] ends at {fault.end_s:g}s, past the measured phases' "
                    f"{measured:g}s (`at` counts from the start of the first measured phase)"
                )
        return self

    @property
    def measured_duration_s(self) -> float | None:
        """Sum of the measured phases' durations; None while a trace phase's length is unknown."""
        durations = [phase.duration_s for phase in self.workload.phases]
        return None if None in durations else sum(d or 0.0 for d in durations)


def _check_fault_target(index: int, fault: Fault, target: Target) -> None:
    """Process faults act on a launched process tree, cluster faults through the API server."""
    kube = isinstance(target, KubernetesTarget)
    if fault.on_cluster and not kube:
        raise ValueError(
            f"faults[{index}]: {fault.action} needs `target.kind: kubernetes` (it is done "
            "through the Kubernetes API)"
        )
    if kube and not fault.on_cluster:
        raise ValueError(
            f"faults[{index}]: {fault.action} signals a process infbench launched; on a "
            "kubernetes target use delete_pod or scale"
        )
    if kube and getattr(target, "port_forward", False):
        raise ValueError(
            f"faults[{index}]: {fault.action} with `port_forward: true`: a port-forward "
            "tunnels to one pod through the API server, so deleting or scaling pods breaks "
            "the tunnel itself and measures kubectl, not the Service; give `url` (a NodePort, "
            "LoadBalancer or ingress) instead"
        )
