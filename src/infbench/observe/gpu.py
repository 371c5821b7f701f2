"""GPU telemetry: utilization, memory and power each second; energy per phase.

Two sources. NVML (``nvidia-ml-py``, the optional extra ``gpu``) reads the GPUs of this machine,
so it suits a target infbench launches or one on 127.0.0.1. A DCGM exporter's ``/metrics``
(dcgm-exporter's default counters, etc/default-counters.csv: ``DCGM_FI_DEV_GPU_UTIL`` %,
``DCGM_FI_DEV_FB_USED`` MiB, ``DCGM_FI_DEV_POWER_USAGE`` W; labels gpu, UUID, device,
modelName, Hostname, and pod/namespace where it maps GPUs to pods) reads the GPUs of remote
and Kubernetes targets.

Across GPUs, power and memory are summed and utilization averaged. A phase's energy is its
power integrated over time by the trapezoid rule, from the sample at its start boundary to
the one at its end. Nothing here is ever 0 for "not measured": a source that cannot read
gives None and says why once.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import httpx

from infbench.observe.prometheus import parse_exposition, selected_sum

__all__ = [
    "GPU_COLUMNS",
    "GPU_EXTRA",
    "DcgmSource",
    "GpuProbe",
    "GpuReading",
    "GpuSource",
    "NvmlSource",
    "trapezoid_j",
]

log = logging.getLogger(__name__)

GPU_COLUMNS = ("gpu_util_pct", "gpu_mem_used_mb", "gpu_power_w")
GPU_EXTRA = "pip install 'infbench[gpu]'"
MIB = 1024 * 1024
DCGM_UTIL, DCGM_FB_USED, DCGM_POWER = (
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_POWER_USAGE",
)


class GpuReading(NamedTuple):
    util_pct: float | None
    mem_used_mb: float | None
    power_w: float | None
    devices: int


class GpuSource(Protocol):
    name: str

    def read(self) -> GpuReading | None: ...
    def close(self) -> None: ...


class NvmlSource:
    """The GPUs of this machine through NVML. ``nvml`` replaces the ``pynvml`` module (tests).

    Raises RuntimeError with the reason when NVML cannot be used (not installed, no driver,
    no GPU): the caller turns it into the run's warning.
    """

    name = "nvml"

    def __init__(self, devices: list[int] | None = None, nvml: Any = None) -> None:
        if nvml is None:
            try:
                nvml = importlib.import_module("pynvml")
            except ImportError:
                raise RuntimeError(f"nvidia-ml-py is not installed ({GPU_EXTRA})") from None
        self._nvml = nvml
        try:
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
            indexes = devices if devices is not None else list(range(count))
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in indexes]
        except Exception as exc:  # NVMLError: no driver, no device, a bad index
            raise RuntimeError(f"NVML could not be opened ({exc})") from None
        if not self._handles:
            nvml.nvmlShutdown()
            raise RuntimeError("NVML found no GPU on this machine")

    def read(self) -> GpuReading | None:
        nvml = self._nvml
        util, mem, power = [], 0.0, 0.0
        for handle in self._handles:
            util.append(float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
            mem += nvml.nvmlDeviceGetMemoryInfo(handle).used / MIB
            power += nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0  # milliwatts
        return GpuReading(sum(util) / len(util), mem, power, len(self._handles))

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # closing must never fail a run
            log.debug("nvmlShutdown failed", exc_info=True)


class DcgmSource:
    """A DCGM exporter's ``/metrics``; ``labels`` keeps only the series carrying them."""

    name = "dcgm"

    def __init__(self, url: str, labels: Mapping[str, str], timeout_s: float = 1.0) -> None:
        self.url, self.labels = url, tuple(labels.items())
        self._client = httpx.Client(timeout=timeout_s, trust_env=False)
        self.error: str | None = None  # the first failure, for the run's warning
        self.ok = 0

    def read(self) -> GpuReading | None:
        try:
            response = self._client.get(self.url)
            response.raise_for_status()
            series = parse_exposition(response.text)
        except Exception as exc:  # unreachable, non-200, not Prometheus text
            self.error = self.error or f"{type(exc).__name__}: {exc}"
            return None
        self.ok += 1
        power = selected_sum(series, DCGM_POWER, self.labels)
        devices = sum(1 for (n, key) in series if n == DCGM_POWER and _has(key, self.labels))
        util = selected_sum(series, DCGM_UTIL, self.labels)
        util_devices = sum(1 for (n, key) in series if n == DCGM_UTIL and _has(key, self.labels))
        mean_util = util / util_devices if util is not None and util_devices else None
        memory = selected_sum(series, DCGM_FB_USED, self.labels)
        return GpuReading(mean_util, memory, power, devices)

    def close(self) -> None:
        self._client.close()


def _has(key: frozenset[tuple[str, str]], labels: tuple[tuple[str, str], ...]) -> bool:
    return all(label in key for label in labels)


def trapezoid_j(samples: list[tuple[float, float]]) -> float | None:
    """∫ power dt over (seconds, watts) samples, by the trapezoid rule; None under two samples."""
    if len(samples) < 2:
        return None
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in itertools.pairwise(samples))


@dataclass
class _Phase:
    open: bool = True
    power: list[tuple[float, float]] = field(default_factory=list)
    util: list[float] = field(default_factory=list)
    mem: list[float] = field(default_factory=list)


class GpuProbe:
    """The Observer's GPU probe: one reading per tick and at each phase boundary."""

    key: str = "gpu"
    columns: tuple[str, ...] = GPU_COLUMNS

    def __init__(self, source: GpuSource, clock: Callable[[], float] = time.monotonic) -> None:
        self.source, self.clock = source, clock
        self._phases: dict[str, _Phase] = {}
        self._devices = 0

    def sample(self, series: Any = None) -> dict[str, float | None]:
        reading, now = self._read(), self.clock()
        for phase in (p for p in self._phases.values() if p.open):
            _add(phase, now, reading)
        if reading is None:
            return dict.fromkeys(GPU_COLUMNS)
        return dict(zip(GPU_COLUMNS, (_round(v) for v in reading[:3]), strict=True))

    def boundary(self, kind: str, name: str, series: Any = None) -> None:
        reading, now = self._read(), self.clock()
        if kind == "start":
            self._phases[name] = _Phase()
        elif name not in self._phases:
            return
        _add(self._phases[name], now, reading)
        if kind == "end":
            self._phases[name].open = False

    def _read(self) -> GpuReading | None:
        try:
            reading = self.source.read()
        except Exception:  # a GPU that fell off the bus must not stop the run
            log.debug("GPU read failed", exc_info=True)
            return None
        if reading is not None:
            self._devices = max(self._devices, reading.devices)
        return reading

    def summary(self) -> dict[str, Any]:
        self.source.close()
        error = getattr(self.source, "error", None)
        warnings: list[str] = []
        if error is not None and not getattr(self.source, "ok", 0):
            url = getattr(self.source, "url", "")
            warnings.append(
                f"target.gpu.dcgm_url {url} could not be read ({error}): no GPU figures"
            )
        return {
            "source": self.source.name,
            "url": getattr(self.source, "url", None),
            "devices": self._devices or None,
            "warnings": warnings,
            "phases": {name: _figures(phase) for name, phase in self._phases.items()},
        }


def _add(phase: _Phase, now: float, reading: GpuReading | None) -> None:
    if reading is None:
        return
    if reading.power_w is not None:
        phase.power.append((now, reading.power_w))
    if reading.util_pct is not None:
        phase.util.append(reading.util_pct)
    if reading.mem_used_mb is not None:
        phase.mem.append(reading.mem_used_mb)


def _figures(phase: _Phase) -> dict[str, float | None]:
    """The phase's figures; mean power is energy over time (samples are not evenly spaced)."""
    energy = trapezoid_j(phase.power)
    span = phase.power[-1][0] - phase.power[0][0] if phase.power else 0.0
    return {
        "util_mean": _round(sum(phase.util) / len(phase.util)) if phase.util else None,
        "mem_used_max_mb": _round(max(phase.mem, default=None)),
        "power_mean_w": _round(energy / span) if energy is not None and span > 0 else None,
        "energy_j": _round(energy),
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
