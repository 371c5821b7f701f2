"""The LLM presets, server quantiles with their buckets, the join, GPU energy and cost, as maths.

The exposition fixtures (tests/fixtures/metrics) are written from each server's own metric
definitions (the file and version named in their first line and in observe/llm_presets.py).
A phase runs from an empty scrape (counters at 0) to the fixture, so every delta is the
fixture's own count.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from infbench.analysis.cost import instances_for, per_million
from infbench.observe.gpu import DcgmSource, GpuProbe, NvmlSource, trapezoid_j
from infbench.observe.join import join_observed, outside_engine
from infbench.observe.llm_metrics import LlmView
from infbench.observe.prometheus import parse_exposition, quantile_bucket
from infbench.report.server_view import bucket_text
from infbench.results.records import Percentiles, PhaseSummary, ServerQuantiles
from infbench.scenario.model import Scenario
from infbench.scenario.observing import parse_selector

FIXTURES = Path(__file__).parent.parent / "fixtures" / "metrics"


def phase_of(preset: str, fixture: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A phase from nothing to the fixture: (its figures, the probe's section)."""
    view = LlmView(preset, {}, "http://127.0.0.1:1/metrics")
    series = parse_exposition((FIXTURES / fixture).read_text())
    view.boundary("start", "p", {})
    view.sample(series)
    view.boundary("end", "p", series)
    section = view.summary()
    return section["phases"]["p"], section


def test_sglang_preset_reads_its_own_series() -> None:
    figures, section = phase_of("auto", "sglang.prom")
    assert section["preset"] == "sglang"
    assert figures["running_max"] == 6 and figures["waiting_max"] == 2
    assert figures["kv_cache_usage_max"] == 0.62 and figures["prefix_cache_hit_rate"] == 0.25
    assert figures["preemptions"] == 3  # retractions
    assert figures["ttft_ms"]["p50"] == 150.0 and figures["ttft_ms"]["p50_bucket_ms"] == [100, 200]
    assert figures["queue_ms"]["p50_bucket_ms"] == [0.0, 100.0]
    assert figures["itl_ms"]["p99_bucket_ms"] == [10.0, 15.0]
    assert section["missing"] == [] and section["warnings"] == []


def test_tgi_preset_has_no_ttft_and_does_not_miss_it() -> None:
    figures, section = phase_of("tgi", "tgi.prom")
    assert figures["running_max"] == 4 and figures["waiting_max"] == 7
    assert figures["ttft_ms"] is None and figures["kv_cache_usage_max"] is None
    low, high = figures["queue_ms"]["p50_bucket_ms"]
    assert (low, high) == (75.938, 113.906)  # TGI's 0.00015 s × 1.5^k buckets
    assert section["warnings"] == []  # TGI never had those series: nothing is missing


def test_triton_trtllm_reads_labelled_gauges_and_a_ms_histogram() -> None:
    figures, section = phase_of("trtllm", "triton_trtllm.prom")
    assert section["series"]["running"] == 'nv_trt_llm_request_metrics{request_type="active"}'
    assert figures["running_max"] == 5 and figures["waiting_max"] == 9
    assert figures["kv_cache_usage_max"] == 0.5
    assert figures["ttft_ms"]["p50"] == 300.0 and figures["ttft_ms"]["p50_bucket_ms"] == [100, 500]
    missing = " ".join(section["missing"])
    assert "queue (trtllm_request_queue_time_seconds)" in missing
    (warning,) = section["warnings"]
    assert "preset trtllm: series not found" in warning and "queue" in warning


def test_custom_series_name_any_other_server() -> None:
    view = LlmView("none", {"waiting": "tgi_queue_size", "e2e": "tgi_request_duration"}, "u")
    series = parse_exposition((FIXTURES / "tgi.prom").read_text())
    view.boundary("start", "p", {})
    view.boundary("end", "p", series)
    figures = view.summary()["phases"]["p"]
    assert figures["waiting_max"] == 7 and figures["e2e_ms"]["p50_bucket_ms"] == [1153.3, 1730.0]
    assert figures["running_max"] is None


def test_selector_parsing_and_errors() -> None:
    assert parse_selector('a:b{x="1", y=2}') == ("a:b", (("x", "1"), ("y", "2")))
    with pytest.raises(ValueError, match="not a series name"):
        parse_selector("9bad")


def test_quantile_bucket_bounds_and_the_top_bucket() -> None:
    buckets = [(0.5, 0.0), (1.0, 10.0), (float("inf"), 10.0)]
    assert quantile_bucket(0.5, buckets) == (0.75, 0.5, 1.0)
    top = [(0.5, 0.0), (float("inf"), 4.0)]
    assert quantile_bucket(0.99, top) == (0.5, 0.5, float("inf"))
    assert quantile_bucket(0.5, []) is None
    assert bucket_text([500.0, 1000.0]) == "0.5–1 s" and bucket_text([500.0, None]) == "> 500 ms"


def test_outside_engine_resolved_only_outside_the_bucket() -> None:
    server = ServerQuantiles(p50=750.0, p99=990.0, p50_bucket_ms=(500.0, 1000.0),
                             p99_bucket_ms=(500.0, 1000.0))  # fmt: skip
    # client p50 923.68 ms lies inside the server's 0.5-1 s bucket: no difference resolved
    inside = outside_engine(Percentiles(p50=923.68, p99=1400.0), server)
    assert inside is not None
    assert inside.p50 == 173.68 and inside.p50_range_ms == (-76.32, 423.68)
    assert inside.p50_resolved is False and inside.p99_resolved is True
    assert outside_engine(None, server) is None


class FakeNvml:
    """pynvml's calls with known readings: power in milliwatts, memory in bytes."""

    def __init__(self, watts: list[float]) -> None:
        self.watts, self.reads = watts, 0
        self.shut = False

    def nvmlInit(self) -> None:  # the NVML names
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return SimpleNamespace(gpu=50 + 10 * handle)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(used=1024 * 1024 * 1000)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        value = self.watts[min(self.reads // 2, len(self.watts) - 1)]
        self.reads += 1
        return round(value * 1000 / 2)  # two GPUs share the total

    def nvmlShutdown(self) -> None:
        self.shut = True


def test_energy_from_the_fake_nvml_to_the_joule() -> None:
    """Readings at 0, 1, 2, 3 and 4 s of 100, 200, 200, 300, 300 W: the trapezoids give
    150 + 200 + 250 + 300 = 900 J; 60 output tokens make 15,000 J per 1k tokens exactly."""
    clock = iter([0.0, 1.0, 2.0, 3.0, 4.0])
    nvml = FakeNvml([100, 200, 200, 300, 300])
    probe = GpuProbe(NvmlSource(nvml=nvml), clock=lambda: next(clock))
    probe.boundary("start", "steady")
    for _ in range(3):
        probe.sample()
    probe.boundary("end", "steady")
    section = probe.summary()
    assert nvml.shut and section["devices"] == 2 and section["source"] == "nvml"
    gpu = section["phases"]["steady"]
    assert gpu == {"util_mean": 55.0, "mem_used_max_mb": 2000.0, "power_mean_w": 225.0,
                   "energy_j": 900.0}  # fmt: skip
    phase = PhaseSummary(name="steady", completed=6, output_tokens=60)
    joined = join_observed([phase], {"gpu": section}, None, 1)
    (out,) = joined.phases
    assert out.energy_j_per_1k_output_tokens == 15000.0 and out.energy_j_per_request == 150.0
    assert json.loads(json.dumps(out.to_json()))["gpu"]["energy_j"] == 900.0


def test_no_gpu_is_absent_and_says_why() -> None:
    class NoDriver(FakeNvml):
        def nvmlInit(self) -> None:
            raise OSError("NVML Shared Library Not Found")

    with pytest.raises(RuntimeError, match="NVML could not be opened"):
        NvmlSource(nvml=NoDriver([0]))
    phase = PhaseSummary(name="p", completed=3, output_tokens=30)
    (out,) = join_observed([phase], {"gpu": {"phases": {}}}, None, 1).phases
    assert out.gpu is None and "gpu" not in out.to_json()  # never 0
    assert trapezoid_j([(0.0, 100.0)]) is None


def test_dcgm_fixture_summed_and_filtered_by_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (FIXTURES / "dcgm.prom").read_text()
    source = DcgmSource("http://127.0.0.1:1/metrics", {})
    monkeypatch.setattr(source._client, "get", lambda url: _Response(text))
    reading = source.read()
    assert reading == (60.0, 71000.0, 441.0, 2)
    pod = DcgmSource("http://127.0.0.1:1/metrics", {"pod": "vllm-0"})
    monkeypatch.setattr(pod._client, "get", lambda url: _Response(text))
    assert pod.read() == (80.0, 70000.0, 350.5, 1)


def test_an_unreachable_dcgm_url_is_a_warning_naming_it() -> None:
    probe = GpuProbe(DcgmSource("http://127.0.0.1:9/metrics", {}, timeout_s=0.2))
    probe.boundary("start", "p")
    probe.boundary("end", "p")
    section = probe.summary()
    (warning,) = section["warnings"]
    assert "http://127.0.0.1:9/metrics" in warning and "no GPU figures" in warning
    assert section["phases"]["p"]["energy_j"] is None


class _Response:
    def __init__(self, text: str) -> None:
        self.text = text

    def raise_for_status(self) -> None:
        pass


def test_cost_formula_and_instances_default() -> None:
    # 2.5 an hour for 2 instances at 4 requests a second: 2.5 * 2 / 3600 / 4 * 1e6
    assert per_million(2.5, 2, 4.0) == round(2.5 * 2 / 3600 / 4 * 1e6, 6) == 347.222222
    assert per_million(2.5, 1, 0.0) is None and per_million(2.5, 1, None) is None
    phases = [{"name": "p", "duration": "1s", "arrival": {"process": "constant", "rate": 1}}]
    scenario = Scenario.model_validate(
        {
            "version": 1,
            "name": "n",
            "workload": {"phases": phases},
            "target": {"kind": "url", "url": "http://x"},
            "cost": {"per_hour": 1},
        }
    )
    assert instances_for(scenario) == 1 and scenario.cost is not None
    assert scenario.cost.currency == "USD"


def test_schema_has_the_new_keys() -> None:
    schema = json.dumps(Scenario.model_json_schema(by_alias=True))
    for key in ('"dcgm_url"', '"per_hour"', '"preset"', '"trtllm"', '"series"', '"nvml"'):
        assert key in schema
