"""Arrival processes: when each request is due (DESIGN §4).

Each process is a pure function: numbers and a seeded ``numpy.random.Generator`` in, intended
send offsets out (seconds from the phase start, float64, sorted, all in ``[0, duration)``). No
clock and no I/O, except reading trace files. ``build_schedule`` turns a ``Workload`` into a
``Schedule`` whose SHA-256 names it byte for byte.

Random streams start at the first gap, not at 0: a renewal stream started at 0 would put one
extra request at the phase start (for Poisson, the first arrival of a stationary stream is one
exponential gap in). Constant streams start at 0. Gaps are drawn in vectorised chunks of about
1.1·(expected count) + 100, cumulated, extended while short and cut at the duration, so a million
arrivals take milliseconds.

Every phase has its own stream: ``SeedSequence(entropy=seed, spawn_key=(i,))`` with i = 0 for the
warm-up and phase index + 1 for measured phases, so adding a warm-up or a phase leaves the
others' offsets unchanged.
"""

from __future__ import annotations

import hashlib
import json
import math
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from infbench.errors import ScenarioError
from infbench.scenario.model import (
    Arrival,
    ClosedArrival,
    ConstantArrival,
    GammaArrival,
    OnOffArrival,
    PoissonArrival,
    RampArrival,
    StepsArrival,
    TraceArrival,
    Workload,
)
from infbench.schedule.trace_formats import TraceColumns
from infbench.schedule.traces import (
    TraceRows,
    bad_trace,
    load_trace,
    load_trace_rows,
    trace_offsets,
)

__all__ = [
    "CLOSED_LOOP_BLOCK",
    "PhasePlan",
    "Schedule",
    "build_schedule",
    "constant_offsets",
    "gamma_offsets",
    "load_trace",
    "onoff_offsets",
    "phase_at",
    "poisson_offsets",
    "ramp_offsets",
    "sequence_bases",
    "steps_offsets",
    "think_sampler",
    "trace_offsets",
    "worker_think_sampler",
]

Offsets = npt.NDArray[np.float64]
Shape = Literal["constant", "poisson"]

_SCHEDULE_FORMAT = b"infbench-schedule-v1\n"


def _empty() -> Offsets:
    return np.empty(0, dtype=np.float64)


def _renewal(draw: Callable[[int], Offsets], mean_gap: float, horizon: float) -> Offsets:
    """Partial sums of the gaps ``draw(n)`` returns, those below ``horizon``."""
    if horizon <= 0:
        return _empty()
    chunks: list[Offsets] = []
    last = 0.0
    while last < horizon:
        times = last + np.cumsum(draw(int((horizon - last) / mean_gap * 1.1) + 100))
        chunks.append(times)
        last = float(times[-1])
    out = np.concatenate(chunks)
    return out[out < horizon]


# --- the processes -----------------------------------------------------------------------------


def constant_offsets(rate: float, duration: float) -> Offsets:
    """Evenly spaced: t_k = k / rate for k = 0, 1, ... while t_k < duration."""
    if rate <= 0 or duration <= 0:
        return _empty()
    times = np.arange(math.ceil(rate * duration) + 1, dtype=np.float64) / rate
    return times[times < duration]


def poisson_offsets(rate: float, duration: float, rng: np.random.Generator) -> Offsets:
    """Poisson: t_k = g_1 + ... + g_k with gaps g ~ Exponential(mean 1/rate); t_1 = g_1 > 0."""
    if rate <= 0:
        return _empty()
    return _renewal(lambda n: rng.exponential(1.0 / rate, n), 1.0 / rate, duration)


def gamma_offsets(rate: float, cv: float, duration: float, rng: np.random.Generator) -> Offsets:
    """Gamma renewal: gaps ~ Gamma(shape k = 1/cv², scale θ = cv²/rate), mean 1/rate, CV ``cv``."""
    if rate <= 0:
        return _empty()
    shape, scale = cv**-2, cv**2 / rate
    return _renewal(lambda n: rng.gamma(shape, scale, n), 1.0 / rate, duration)


def _unit_stream(shape: Shape, horizon: float, rng: np.random.Generator) -> Offsets:
    """Unit-rate stream u below ``horizon``: u_k = k (constant) or a rate-1 Poisson stream."""
    if shape == "constant":
        return constant_offsets(1.0, horizon)
    return poisson_offsets(1.0, horizon, rng)


def _piecewise_offsets(
    starts: Offsets, rates: Offsets, duration: float, shape: Shape, rng: np.random.Generator
) -> Offsets:
    """Rate ``rates[i]`` from ``starts[i]`` (starts[0] = 0) on, the last for ever: t = Λ⁻¹(u).

    Λ is piecewise linear; Λ⁻¹(u) = starts[i] + (u - Λ(starts[i])) / rates[i] for the last i with
    Λ(starts[i]) <= u (the right-continuous inverse), so a span with rate 0 gets no arrivals and
    an arrival on a boundary belongs to the span that follows.
    """
    if duration <= 0:
        return _empty()
    cum = np.concatenate(([0.0], np.cumsum(rates[:-1] * np.diff(starts))))
    j = int(np.searchsorted(starts, duration, side="right")) - 1
    units = _unit_stream(shape, float(cum[j] + rates[j] * (duration - starts[j])), rng)
    i = np.searchsorted(cum, units, side="right") - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        times = np.where(rates[i] > 0, starts[i] + (units - cum[i]) / rates[i], np.inf)
    times = np.sort(times)  # guards against a one-ulp inversion at a boundary
    return times[times < duration]


def _fixed_spells(on_s: float, off_s: float, duration: float) -> Offsets:
    base = np.arange(math.ceil(duration / (on_s + off_s)) + 1, dtype=np.float64) * (on_s + off_s)
    starts = np.column_stack((base, base + on_s)).ravel()
    return starts[starts < duration]


def _exponential_spells(
    on_s: float, off_s: float, duration: float, rng: np.random.Generator
) -> Offsets:
    def pairs(n: int) -> Offsets:
        m = (n + 1) // 2  # even count per chunk keeps on/off alternating across chunks
        return np.column_stack((rng.exponential(on_s, m), rng.exponential(off_s, m))).ravel()

    ends = _renewal(pairs, (on_s + off_s) / 2, duration)
    return np.concatenate(([0.0], ends))


def onoff_offsets(
    rate_on: float,
    rate_off: float,
    on_s: float,
    off_s: float,
    spells: Literal["fixed", "exponential"],
    duration: float,
    rng: np.random.Generator,
) -> Offsets:
    """MMPP-2: Poisson at ``rate_on`` during on spells and ``rate_off`` during off spells.

    Starts in the on state. Spells last exactly ``on_s``/``off_s`` ("fixed") or are exponential
    with those means ("exponential"). Long-run mean rate: (rate_on·on + rate_off·off)/(on + off).
    Given the spells, arrivals are Λ⁻¹ of a unit Poisson stream, Λ the integrated rate.
    """
    if duration <= 0:
        return _empty()
    if spells == "fixed":
        starts = _fixed_spells(on_s, off_s, duration)
    else:
        starts = _exponential_spells(on_s, off_s, duration, rng)
    rates = np.where(np.arange(len(starts)) % 2 == 0, rate_on, rate_off).astype(np.float64)
    return _piecewise_offsets(starts, rates, duration, "poisson", rng)


def ramp_offsets(
    rate_from: float, rate_to: float, duration: float, shape: Shape, rng: np.random.Generator
) -> Offsets:
    """Linear rate r(t) = a + b·t, a = from, b = (to - from)/D: t_k = Λ⁻¹(u_k).

    Λ(t) = a·t + b·t²/2, so Λ⁻¹(u) = 2u / (a + sqrt(a² + 2bu)) (the cancellation-free root;
    u/a when from = to, sqrt(2u/b) when from = 0). u_k = k (constant, so t_0 = 0) or a unit
    Poisson stream, kept while u < Λ(D) = (from + to)·D/2.
    """
    if duration <= 0:
        return _empty()
    a, b = rate_from, (rate_to - rate_from) / duration
    units = _unit_stream(shape, (rate_from + rate_to) * duration / 2, rng)
    if b == 0:
        times = units / a
    elif a == 0:
        times = np.sqrt(2 * units / b)
    else:
        times = 2 * units / (a + np.sqrt(np.maximum(a * a + 2 * b * units, 0.0)))
    times = np.sort(times)
    return times[times < duration]


def steps_offsets(
    rates: list[float], step_s: float, duration: float, shape: Shape, rng: np.random.Generator
) -> Offsets:
    """Piecewise-constant rate: rates[i] on [i·step, (i+1)·step), the last rate after that.

    t_k = Λ⁻¹(u_k) of a unit constant or Poisson stream, Λ the integrated rate; a step with rate
    0 gets no arrivals. With the constant shape, each step is evenly spaced at its own rate.
    """
    starts = np.arange(len(rates), dtype=np.float64) * step_s
    return _piecewise_offsets(starts, np.asarray(rates, dtype=np.float64), duration, shape, rng)


# --- the schedule ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PhasePlan:
    """One phase, ready to run: open-loop offsets (read-only) or closed-loop parameters.

    ``eq=False``: plans compare by identity (numpy arrays have no truth value); compare
    schedules by ``Schedule.sha256``.
    """

    name: str
    index: int
    warmup: bool
    process: str
    duration_s: float
    offsets: Offsets | None
    closed: ClosedArrival | None
    seed_seq: np.random.SeedSequence
    max_requests: int | None
    declared_rate: float
    # A trace phase's rows, one per offset (lengths and block ids for from_trace prompts).
    trace: TraceRows | None = None

    @property
    def scheduled(self) -> int:
        return 0 if self.offsets is None else len(self.offsets)

    @property
    def mean_rate(self) -> float:
        return math.nan if self.offsets is None else self.scheduled / self.duration_s


@dataclass(frozen=True)
class Schedule:
    phases: tuple[PhasePlan, ...]
    sha256: str

    @property
    def total_duration_s(self) -> float:
        return sum(plan.duration_s for plan in self.phases)

    @property
    def measured(self) -> tuple[PhasePlan, ...]:
        return tuple(plan for plan in self.phases if not plan.warmup)


def _open_offsets(arrival: Arrival, duration: float, rng: np.random.Generator) -> Offsets:
    match arrival:
        case ConstantArrival():
            return constant_offsets(arrival.rate, duration)
        case PoissonArrival():
            return poisson_offsets(arrival.rate, duration, rng)
        case GammaArrival():
            return gamma_offsets(arrival.rate, arrival.gap_cv, duration, rng)
        case OnOffArrival():
            a = arrival
            return onoff_offsets(a.rate_on, a.rate_off, a.on, a.off, a.spells, duration, rng)
        case RampArrival():
            return ramp_offsets(arrival.from_, arrival.to, duration, arrival.shape, rng)
        case StepsArrival():
            return steps_offsets(arrival.rates, arrival.step, duration, arrival.shape, rng)
    raise TypeError(f"no open-loop offsets for {arrival.process!r}")


def _trace_phase(
    arrival: TraceArrival, duration: float | None, base_dir: pathlib.Path
) -> tuple[Offsets, float, TraceRows]:
    """Offsets, duration and the rows kept. Rows at ``start`` + [0, window) seconds of the
    trace (from its first timestamp) are kept, shifted to start at 0 and times ``scale``.
    Without a duration: window·scale, else span·n/(n-1) (the span plus one mean gap)."""
    path = base_dir / pathlib.Path(arrival.path).expanduser()
    names = arrival.columns
    columns = TraceColumns(
        arrival.column or (names.time if names else None),
        names.input if names else None,
        names.output if names else None,
        names.hash_ids if names else None,
    )
    rows = load_trace_rows(path, arrival.format, columns, arrival.unit)
    relative = rows.times - rows.times[0]
    end = arrival.start + arrival.window if arrival.window is not None else math.inf
    window = (relative >= arrival.start) & (relative < end)
    if not window.any():
        what = f"no rows in the slice from start {arrival.start:g}s (window {arrival.window}s)"
        raise bad_trace(path, None, what, "lower `arrival.start` or widen `arrival.window`")
    rows = rows.take(window)
    offsets = (relative[window] - arrival.start) * arrival.scale
    if duration is None and arrival.window is not None:
        duration = arrival.window * arrival.scale
    if duration is None:
        if offsets[-1] <= 0:
            what = "all timestamps are equal, so the trace has no length"
            raise bad_trace(path, None, what, "set `duration` on the phase")
        duration = float(offsets[-1]) * len(offsets) / (len(offsets) - 1)
    keep = offsets < duration
    return offsets[keep], duration, rows.take(keep)


def _plan(
    name: str,
    index: int,
    arrival: Arrival,
    duration: float | None,
    seed_seq: np.random.SeedSequence,
    base_dir: pathlib.Path,
    max_requests: int | None = None,
) -> PhasePlan:
    closed = arrival if isinstance(arrival, ClosedArrival) else None
    offsets: Offsets | None = None
    trace: TraceRows | None = None
    if isinstance(arrival, TraceArrival):
        offsets, duration, trace = _trace_phase(arrival, duration, base_dir)
        declared = len(offsets) / duration
    elif duration is None:
        raise ScenarioError(f"phase {name!r}: `duration` is required (e.g. duration: 30s)")
    else:
        declared = arrival.mean_rate(duration)
        if closed is None:
            offsets = _open_offsets(arrival, duration, np.random.default_rng(seed_seq))
    if offsets is not None:
        if max_requests is not None:
            offsets = offsets[:max_requests]
            trace = trace.take(slice(0, max_requests)) if trace is not None else None
        offsets.flags.writeable = False
    warmup = name == "warmup"
    process = arrival.process
    return PhasePlan(
        name, index, warmup, process, duration, offsets, closed, seed_seq, max_requests, declared,
        trace,
    )  # fmt: skip


def _warmup_arrival(workload: Workload, first: PhasePlan) -> Arrival:
    """The first phase's process at its mean rate, unless the warm-up names one."""
    assert workload.warmup is not None
    if workload.warmup.arrival is not None:
        return workload.warmup.arrival
    arrival = workload.phases[0].arrival
    if isinstance(arrival, RampArrival):
        rate = arrival.from_ or first.declared_rate
    elif isinstance(arrival, StepsArrival):
        rate = arrival.rates[0] or first.declared_rate
    elif isinstance(arrival, TraceArrival):
        rate = first.declared_rate
    else:
        return arrival
    # model_construct: a steps phase of all-zero rates gives rate 0, i.e. an idle warm-up
    return PoissonArrival.model_construct(process="poisson", rate=rate)


def _digest(plans: tuple[PhasePlan, ...]) -> str:
    """SHA-256 of a canonical encoding: a JSON header a plan, then its offsets as <f8 bytes."""
    digest = hashlib.sha256(_SCHEDULE_FORMAT)
    for plan in plans:
        keys = ("name", "index", "process", "duration_s", "max_requests", "scheduled")
        head: dict[str, object] = {key: getattr(plan, key) for key in keys}
        if plan.closed is not None:
            head["closed"] = plan.closed.model_dump(mode="json")
            head["seed"] = [plan.seed_seq.entropy, list(plan.seed_seq.spawn_key)]
        digest.update(json.dumps(head, sort_keys=True).encode() + b"\n")
        if plan.offsets is not None:
            digest.update(np.ascontiguousarray(plan.offsets, dtype="<f8").tobytes())
    return digest.hexdigest()


def _seed_seq(seed: int, stream: int) -> np.random.SeedSequence:
    """Stream 0 is the warm-up, stream i + 1 the measured phase i."""
    return np.random.SeedSequence(entropy=seed, spawn_key=(stream,))


def build_schedule(workload: Workload, base_dir: pathlib.Path) -> Schedule:
    """Plans for the warm-up (first, when present) and each phase; trace paths from ``base_dir``."""
    shift = 1 if workload.warmup is not None else 0
    plans = []
    for i, p in enumerate(workload.phases):
        seed_seq = _seed_seq(workload.seed, i + 1)
        args = (p.arrival, p.duration_s, seed_seq, base_dir, p.max_requests)
        plans.append(_plan(p.name, i + shift, *args))
    if workload.warmup is not None:
        arrival = _warmup_arrival(workload, plans[0])
        seed_seq = _seed_seq(workload.seed, 0)
        plans.insert(0, _plan("warmup", 0, arrival, workload.warmup.duration, seed_seq, base_dir))
    phases = tuple(plans)
    return Schedule(phases=phases, sha256=_digest(phases))


def think_sampler(closed: ClosedArrival, rng: np.random.Generator) -> Callable[[], float]:
    """Think times with mean ``think``: fixed when ``think_cv`` is 0 (or think is 0), else
    Gamma(shape 1/cv², scale think·cv²), so cv 1 is exponential. Drawn 1024 at a time."""
    mean, cv = float(closed.think), float(closed.think_cv)
    if mean <= 0 or cv == 0:
        return lambda: mean
    shape, scale = cv**-2, mean * cv**2
    buffer: list[float] = []

    def sample() -> float:
        if not buffer:
            buffer.extend(reversed(rng.gamma(shape, scale, 1024).tolist()))
        return buffer.pop()

    return sample


def worker_think_sampler(plan: PhasePlan, process: int, worker: int) -> Callable[[], float]:
    """One closed-loop worker's think times: a random stream of its own, keyed by generator
    process and worker, so runs with the same seed think alike."""
    assert plan.closed is not None
    parent = plan.seed_seq
    stream = np.random.SeedSequence(parent.entropy, spawn_key=(*parent.spawn_key, process, worker))
    return think_sampler(plan.closed, np.random.default_rng(stream))


CLOSED_LOOP_BLOCK = 1 << 40  # request numbers reserved per closed-loop phase


def phase_at(schedule: Schedule, offset_s: float) -> str:
    """The phase whose window holds this offset from the start (the last one past the end)."""
    end = 0.0
    for plan in schedule.phases:
        end += plan.duration_s
        if offset_s < end:
            return plan.name
    return schedule.phases[-1].name


def sequence_bases(schedule: Schedule) -> list[int]:
    """First request number of each phase; closed-loop phases reserve a large block."""
    bases, next_base = [], 0
    for plan in schedule.phases:
        bases.append(next_base)
        next_base += plan.scheduled if plan.closed is None else CLOSED_LOOP_BLOCK
    return bases
