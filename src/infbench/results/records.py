"""run.json (format v1, DESIGN §8) as frozen records: the one place that knows its keys.

Each record is a frozen dataclass whose field names are the JSON keys, in the order a run writes
them. ``to_json`` gives the object to store; ``from_json`` reads one back. Reading is lenient
(an old or hand-made run.json may lack keys, and a section of the wrong type reads as absent),
because ``results.rundir.load_run`` has already checked what readers rely on: the format
version and the ``phases[]`` contract. Keys this version does not know are kept in ``extra``
and written back after the known ones, so re-writing a run loses nothing a later version added.

The stored scenario and the resilience section are open-ended: they stay mappings, behind a
record with typed accessors for what code reads of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import PurePath
from typing import Any, TypeGuard, TypeVar

__all__ = [
    "FORMAT_VERSION",
    "CostFigures",
    "Environment",
    "GeneratorSummary",
    "GpuFigures",
    "LagPercentiles",
    "OutsideEngine",
    "Percentiles",
    "PhaseSummary",
    "RecordError",
    "Resilience",
    "RunRecord",
    "ServerLlm",
    "ServerPhase",
    "ServerQuantiles",
    "ServerSummary",
    "SessionCounts",
    "SloResult",
    "StoredScenario",
    "TargetSummary",
    "Timings",
    "TtfbPercentiles",
    "TurnFigures",
]

FORMAT_VERSION = 1

_R = TypeVar("_R", bound="_Record")
_O = TypeVar("_O", bound="_Open")


class RecordError(ValueError):
    """A run.json value that readers cannot use; load_run names the file."""


# Field metadata: ``parse`` turns the stored value into the field's type (a field whose default
# is a record reads its nested object without one); ``omit_none`` leaves the key out of the JSON
# when the value is None, for keys that only some runs write.
_OMIT_NONE: Mapping[str, Any] = {"omit_none": True}


def _reads(parse: Callable[[Any], Any], *, omit_none: bool = False) -> dict[str, Any]:
    return {"parse": parse, "omit_none": omit_none}


def _optional(cls: Any, *, omit_none: bool = False) -> dict[str, Any]:
    """A nested record that a run may lack (None, also when stored as something else)."""
    return _reads(
        lambda v: cls.from_json(v) if isinstance(v, Mapping) else None, omit_none=omit_none
    )


def _dump(value: Any) -> Any:
    if isinstance(value, _Record | _Open):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [_dump(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _dump(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class _Record:
    """A JSON object read into a frozen dataclass; unknown keys are kept in ``extra``."""

    extra: Mapping[str, Any] = field(default_factory=dict, kw_only=True, repr=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (value is None and f.metadata.get("omit_none")):
                continue
            out[f.name] = _dump(value)
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls: type[_R], data: Mapping[str, Any]) -> _R:
        known: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in data and f.name != "extra":
                parse = f.metadata.get("parse") or _nested(f.default_factory)
                known[f.name] = parse(data[f.name]) if parse else data[f.name]
        extra = {k: v for k, v in data.items() if k not in known and k != "extra"}
        return cls(**known, extra=extra)


@dataclass(frozen=True)
class _Open:
    """A section whose keys are open-ended: kept as read, with accessors for what code reads."""

    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)

    @classmethod
    def from_json(cls: type[_O], data: Mapping[str, Any]) -> _O:
        return cls(dict(data))


# --- parsers: a stored value of the wrong type reads as absent ---------------------------------


def _nested(factory: object) -> Callable[[Any], Any] | None:
    """A record field with a record as its default reads a nested object (else the default)."""
    if not (isinstance(factory, type) and issubclass(factory, _Record | _Open)):
        return None
    return lambda value: factory.from_json(value) if isinstance(value, Mapping) else factory()


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


def _texts_or_none(value: Any) -> tuple[str, ...] | None:
    return _texts(value) if isinstance(value, list | tuple) else None


def _items(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, list | tuple) else ()


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- the phases[] contract -------------------------------------------------------------------


@dataclass(frozen=True)
class Percentiles(_Record):
    """``latency_ms`` and ``service_ms``: milliseconds, None where nothing was recorded."""

    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None
    mean: float | None = None


@dataclass(frozen=True)
class LagPercentiles(_Record):
    """``lag_ms`` and ``failed_ms``: milliseconds."""

    p50: float | None = None
    p99: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class TtfbPercentiles(_Record):
    """``ttfb_ms``: milliseconds."""

    p50: float | None = None
    p99: float | None = None


_STREAMED = _optional(Percentiles, omit_none=True)  # a streamed phase's figure, else absent


# --- the LLM server's own view, GPUs and cost (DESIGN §8, §9): absent when not measured ---------


def _bounds(value: Any) -> tuple[float | None, float | None] | None:
    ok = isinstance(value, list | tuple) and len(value) == 2
    return (value[0], value[1]) if ok and all(v is None or _is_number(v) for v in value) else None


_BOUNDS = _reads(_bounds, omit_none=True)


@dataclass(frozen=True)
class ServerQuantiles(_Record):
    """A server histogram's p50 and p99 (ms), each with the bounds of the bucket it lies in:
    the value is an interpolation inside that bucket, which is all the server resolved."""

    p50: float | None = None
    p99: float | None = None
    p50_bucket_ms: tuple[float | None, float | None] | None = field(default=None, metadata=_BOUNDS)
    p99_bucket_ms: tuple[float | None, float | None] | None = field(default=None, metadata=_BOUNDS)
    count: int | None = field(default=None, metadata=_OMIT_NONE)


_SERVER_HISTOGRAM = _optional(ServerQuantiles)


@dataclass(frozen=True)
class ServerLlm(_Record):
    """``server_llm``: an LLM server's queue, batch, KV cache and its own latency histograms."""

    queue_ms: ServerQuantiles | None = field(default=None, metadata=_SERVER_HISTOGRAM)
    ttft_ms: ServerQuantiles | None = field(default=None, metadata=_SERVER_HISTOGRAM)
    itl_ms: ServerQuantiles | None = field(default=None, metadata=_SERVER_HISTOGRAM)
    e2e_ms: ServerQuantiles | None = field(default=None, metadata=_SERVER_HISTOGRAM)
    running_mean: float | None = None
    running_max: float | None = None
    waiting_mean: float | None = None
    waiting_max: float | None = None
    kv_cache_usage_mean: float | None = None
    kv_cache_usage_max: float | None = None
    preemptions: int | None = None
    prefix_cache_hit_rate: float | None = None
    preset: str | None = None


@dataclass(frozen=True)
class OutsideEngine(_Record):
    """``outside_engine_ms``: client TTFT (from intended) − the server's TTFT, quantile by
    quantile; ``*_range_ms`` spans the server bucket, ``*_resolved`` says whether the client
    figure lies outside it (otherwise the bucket cannot tell the two apart)."""

    p50: float | None = None
    p99: float | None = None
    p50_range_ms: tuple[float | None, float | None] | None = field(default=None, metadata=_BOUNDS)
    p99_range_ms: tuple[float | None, float | None] | None = field(default=None, metadata=_BOUNDS)
    p50_resolved: bool | None = None
    p99_resolved: bool | None = None


@dataclass(frozen=True)
class GpuFigures(_Record):
    """``gpu``: utilization (mean %), memory (max MiB), power (mean W), energy (J, integrated)."""

    util_mean: float | None = None
    mem_used_max_mb: float | None = None
    power_mean_w: float | None = None
    energy_j: float | None = None


@dataclass(frozen=True)
class CostFigures(_Record):
    """``cost``: the instances' price at the phase's achieved throughput."""

    currency: str | None = None
    per_1m_requests: float | None = None
    per_1m_output_tokens: float | None = None
    per_hour: float | None = None
    instances: int | None = None


@dataclass(frozen=True)
class SessionCounts(_Record):
    """``sessions`` of a conversation phase (DESIGN §5c): sessions started, completed (every
    turn answered), cut (a turn not sent because the phase ended), failed (a turn failed or
    was dropped, which ends its session), and the turns sent in all."""

    started: int = 0
    completed: int = 0
    cut: int = 0
    failed: int = 0
    turns: int = 0


@dataclass(frozen=True)
class TurnFigures(_Record):
    """One entry of ``turns``: the requests of turn index ``turn`` (1 = a session's first),
    their TTFT from intended and their mean input tokens (the growing context)."""

    turn: int = 0
    requests: int = 0
    ok: int = 0
    ttft_ms: Percentiles | None = field(default=None, metadata=_optional(Percentiles))
    input_tokens: float | None = None


def _turns(value: Any) -> tuple[TurnFigures, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(TurnFigures.from_json(v) for v in value if isinstance(v, Mapping))


@dataclass(frozen=True)
class PhaseSummary(_Record):
    """One entry of ``phases[]`` (and ``warmup``): the stable machine contract of DESIGN §8.

    A streamed phase (DESIGN §5b) adds ttft_ms (and ttft_sent_ms, from the send), tpot_ms,
    itl_ms, the token sums, output_tps, its peak over seconds, mean_concurrency and
    tokens_source; other phases leave them out.
    """

    name: str = ""
    process: str = ""
    duration_s: float = 0.0
    scheduled: int = 0
    sent: int = 0
    completed: int = 0
    ok: int = 0
    dropped: int = 0
    errors: Mapping[str, int] = field(default_factory=dict, metadata=_reads(_mapping))
    error_rate: float | None = field(default=None, metadata=_OMIT_NONE)
    status_codes: Mapping[str, int] = field(default_factory=dict, metadata=_reads(_mapping))
    offered_rps: float | None = None
    achieved_rps: float | None = None
    goodput_rps: float | None = None
    latency_ms: Percentiles = field(default_factory=Percentiles)
    service_ms: Percentiles = field(default_factory=Percentiles)
    lag_ms: LagPercentiles = field(default_factory=LagPercentiles)
    ttfb_ms: TtfbPercentiles = field(default_factory=TtfbPercentiles)
    failed_ms: LagPercentiles | None = field(
        default=None, metadata=_optional(LagPercentiles, omit_none=True)
    )
    bytes_in: int = 0
    bytes_out: int = 0
    out_of_range: int = 0
    # the lateness of the generators' 1 ms timer (DESIGN §5); absent in runs from before it
    loop_lag_ms: LagPercentiles | None = field(
        default=None, metadata=_optional(LagPercentiles, omit_none=True)
    )
    ttft_ms: Percentiles | None = field(default=None, metadata=_STREAMED)
    ttft_sent_ms: Percentiles | None = field(default=None, metadata=_STREAMED)
    tpot_ms: Percentiles | None = field(default=None, metadata=_STREAMED)
    itl_ms: Percentiles | None = field(default=None, metadata=_STREAMED)
    # itl_ms ÷ the tokens each later chunk carried, where known (per-chunk usage or a tokenizer)
    itl_token_ms: Percentiles | None = field(default=None, metadata=_STREAMED)
    input_tokens: int | None = field(default=None, metadata=_OMIT_NONE)
    output_tokens: int | None = field(default=None, metadata=_OMIT_NONE)
    output_tps: float | None = field(default=None, metadata=_OMIT_NONE)
    peak_output_tps: float | None = field(default=None, metadata=_OMIT_NONE)
    mean_concurrency: float | None = field(default=None, metadata=_OMIT_NONE)
    tokens_source: str | None = field(default=None, metadata=_OMIT_NONE)
    # the token audit: 100 × Σ|usage − tokenizer| / Σ usage where both counted (DESIGN §5b)
    token_mismatch_pct: float | None = field(default=None, metadata=_OMIT_NONE)
    server_llm: ServerLlm | None = field(
        default=None, metadata=_optional(ServerLlm, omit_none=True)
    )
    outside_engine_ms: OutsideEngine | None = field(
        default=None, metadata=_optional(OutsideEngine, omit_none=True)
    )
    gpu: GpuFigures | None = field(default=None, metadata=_optional(GpuFigures, omit_none=True))
    energy_j_per_request: float | None = field(default=None, metadata=_OMIT_NONE)
    energy_j_per_1k_output_tokens: float | None = field(default=None, metadata=_OMIT_NONE)
    cost: CostFigures | None = field(default=None, metadata=_optional(CostFigures, omit_none=True))
    sessions: SessionCounts | None = field(
        default=None, metadata=_optional(SessionCounts, omit_none=True)
    )
    turns: tuple[TurnFigures, ...] | None = field(
        default=None, metadata=_reads(_turns, omit_none=True)
    )

    @property
    def requests(self) -> int:
        """Arrivals that were due: completed or dropped."""
        return self.completed + self.dropped

    @property
    def failed(self) -> int:
        """Failed requests of every kind, dropped arrivals included."""
        return sum(self.errors.values()) + self.dropped


# --- the other sections ----------------------------------------------------------------------


@dataclass(frozen=True)
class Environment(_Record):
    """What compare checks before trusting a difference: machine, versions, code revision."""

    host: str | None = None
    os: str | None = None
    cpu_model: str | None = None
    cores: int | None = None
    python: str | None = None
    infbench: str | None = None
    versions: Mapping[str, str | None] = field(default_factory=dict, metadata=_reads(_mapping))
    git_sha: str | None = None


@dataclass(frozen=True)
class TargetSummary(_Record):
    """``target``: the server under test as it was started (command and URL redacted)."""

    kind: str | None = None
    base_url: str | None = None
    command: tuple[str, ...] | None = field(default=None, metadata=_reads(_texts_or_none))
    pids: tuple[int, ...] = field(default=(), metadata=_reads(_items))
    startup_s: float | None = None
    metrics_url: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict, metadata=_reads(_mapping))


def _per_phase_ms(value: Any) -> dict[str, float] | None:
    """A mapping of phase names to milliseconds; None where it is something else."""
    if not isinstance(value, Mapping):
        return None
    return {str(name): float(ms) for name, ms in value.items() if _is_number(ms)}


def _windows(value: Any) -> dict[str, tuple[float, float]] | None:
    if not isinstance(value, Mapping):
        return None
    windows = {}
    for name, span in value.items():
        if not (isinstance(span, list) and len(span) == 2 and all(map(_is_number, span))):
            raise RecordError(f"timings.phase_windows_s.{name} is not [start, end]")
        windows[str(name)] = (span[0], span[1])
    return windows


@dataclass(frozen=True)
class Timings(_Record):
    """``timings``; an aggregate of repetitions has no phase windows."""

    started_utc: str | None = None
    start_epoch_s: float | None = None
    duration_s: float | None = None
    phase_windows_s: Mapping[str, tuple[float, float]] | None = field(
        default=None, metadata=_reads(_windows, omit_none=True)
    )


@dataclass(frozen=True)
class GeneratorSummary(_Record):
    """``generator``: the load generator's own CPU and memory (DESIGN §5 validity).

    ``per_process`` (several processes or Ray actors) holds open-ended entries.
    ``loop_lag_p99_ms``: per phase, the loop lag p99 of the generator process that lagged
    most (each process's own, to 10 µs): one late process among many can hide in the merged
    histogram of ``phases[].loop_lag_ms``, not here.
    """

    cpu_pct: float | None = None
    busy_cpu_pct: float | None = None
    spin_s: float | None = field(default=None, metadata=_OMIT_NONE)
    rss_mb: float | None = None
    processes: int | None = None
    per_process: tuple[Mapping[str, Any], ...] | None = field(
        default=None, metadata=_reads(_items, omit_none=True)
    )
    engine: str | None = field(default=None, metadata=_OMIT_NONE)
    nodes: int | None = field(default=None, metadata=_OMIT_NONE)
    sender: str | None = field(default=None, metadata=_OMIT_NONE)  # the one used (auto resolved)
    priority: str | None = field(default=None, metadata=_OMIT_NONE)  # dispatcher: realtime|normal
    realtime_s: float | None = field(default=None, metadata=_OMIT_NONE)  # time it held real-time
    loop_lag_p99_ms: Mapping[str, float] | None = field(
        default=None, metadata=_reads(_per_phase_ms, omit_none=True)
    )


@dataclass(frozen=True)
class ServerPhase(_Record):
    """One phase of ``server.phases``: the server as it measured itself, and its process tree."""

    requests_by_status: Mapping[str, Any] | None = None
    duration_p50_ms: float | None = None
    duration_p99_ms: float | None = None
    duration_p50_bucket_ms: tuple[float | None, float | None] | None = field(
        default=None, metadata=_BOUNDS
    )
    duration_p99_bucket_ms: tuple[float | None, float | None] | None = field(
        default=None, metadata=_BOUNDS
    )
    mean_batch_size: float | None = None
    in_progress_max: float | None = None
    cpu_pct_mean: float | None = None
    cpu_pct_max: float | None = None
    rss_mb_max: float | None = None
    generator_cpu_pct_mean: float | None = None
    generator_cpu_pct_max: float | None = None


def _server_phases(value: Any) -> dict[str, ServerPhase]:
    items = value.items() if isinstance(value, Mapping) else ()
    return {str(k): ServerPhase.from_json(v) for k, v in items if isinstance(v, Mapping)}


@dataclass(frozen=True)
class ServerSummary(_Record):
    """``server``: /metrics scrapes and process samples, per phase."""

    metrics_url: str | None = None
    interval_s: float | None = None
    scrapes: Mapping[str, Any] = field(default_factory=dict, metadata=_reads(_mapping))
    phases: Mapping[str, ServerPhase] = field(default_factory=dict, metadata=_reads(_server_phases))
    generator: Mapping[str, float | None] = field(default_factory=dict, metadata=_reads(_mapping))


@dataclass(frozen=True)
class SloResult(_Record):
    """One entry of ``slo``: a scenario SLO rule checked on one phase."""

    metric: str | None = None
    threshold: str | None = None
    phase: str | None = None
    value: float | None = None
    passed: bool = False


def _slo(value: Any) -> tuple[SloResult, ...]:
    return tuple(SloResult.from_json(r) for r in _items(value) if isinstance(r, Mapping))


@dataclass(frozen=True)
class StoredScenario(_Open):
    """``scenario``: the resolved scenario as stored (secrets redacted); open-ended."""

    @property
    def name(self) -> str | None:
        name = self.data.get("name")
        return name if isinstance(name, str) else None

    @property
    def slo(self) -> Mapping[str, Any] | None:
        slo = self.data.get("slo")
        return slo if isinstance(slo, Mapping) else None

    @property
    def request_timeout_s(self) -> float | None:
        request = self.data.get("request")
        timeout = request.get("timeout") if isinstance(request, Mapping) else None
        return float(timeout) if _is_number(timeout) else None


@dataclass(frozen=True)
class Resilience(_Open):
    """``resilience``: the injected faults with their figures, and the server's restarts."""

    @property
    def faults(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(f for f in _items(self.data.get("faults")) if isinstance(f, Mapping))

    @property
    def restarts(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(r for r in _items(self.data.get("restarts")) if isinstance(r, Mapping))


def _repetitions(value: Any) -> tuple[str, ...]:
    if not (
        isinstance(value, list)
        and value
        and all(isinstance(n, str) and n and PurePath(n).name == n for n in value)
    ):
        raise RecordError("`repetitions` must be a non-empty list of sub-directory names")
    return tuple(value)


def _phases(value: Any) -> tuple[PhaseSummary, ...]:
    return tuple(PhaseSummary.from_json(p) for p in _items(value) if isinstance(p, Mapping))


@dataclass(frozen=True)
class RunRecord(_Record):
    """run.json. ``repetitions`` (the run directories of ``run --repeat``) marks an aggregate."""

    format_version: int = FORMAT_VERSION
    status: str | None = None  # complete | interrupted
    valid: bool = field(default=False, metadata=_reads(bool))
    invalid_reasons: tuple[str, ...] = field(default=(), metadata=_reads(_texts))
    infbench_version: str | None = None
    command: tuple[str, ...] | None = field(default=None, metadata=_reads(_texts_or_none))
    scenario: StoredScenario = field(default_factory=StoredScenario)
    scenario_path: str | None = None
    scenario_sha256: str | None = None
    schedule_sha256: str | None = None
    seed: int | None = None
    environment: Environment | None = field(default=None, metadata=_optional(Environment))
    target: TargetSummary | None = field(default=None, metadata=_optional(TargetSummary))
    timings: Timings = field(default_factory=Timings)
    phases: tuple[PhaseSummary, ...] = field(default=(), metadata=_reads(_phases))
    warmup: PhaseSummary | None = field(default=None, metadata=_optional(PhaseSummary))
    errors_by_kind: Mapping[str, int] = field(default_factory=dict, metadata=_reads(_mapping))
    server: ServerSummary | None = field(default=None, metadata=_optional(ServerSummary))
    generator: GeneratorSummary | None = field(default=None, metadata=_optional(GeneratorSummary))
    slo: tuple[SloResult, ...] = field(default=(), metadata=_reads(_slo))
    warnings: tuple[str, ...] = field(default=(), metadata=_reads(_texts))
    resilience: Resilience | None = field(default=None, metadata=_optional(Resilience))
    result_dir: str | None = None
    pid: int | None = None
    repetitions: tuple[str, ...] | None = field(
        default=None, metadata=_reads(_repetitions, omit_none=True)
    )

    @property
    def interrupted(self) -> bool:
        """Stopped early (Ctrl-C, SIGTERM): what was recorded until then is kept."""
        return self.status == "interrupted"

    def phase(self, name: str) -> PhaseSummary | None:
        return next((p for p in self.phases if p.name == name), None)

    def server_phase(self, name: str) -> ServerPhase | None:
        """The server's own figures for one phase; None when it measured nothing."""
        return self.server.phases.get(name) if self.server is not None else None
