"""Which series each LLM server exposes for the roles of ``scenario.observing.SERIES_ROLES``.

Every name comes from the server's own source, named beside it. A role lists candidates,
newest name first: the first one a scrape holds is read, so a series renamed across versions
(vLLM's ``gpu_cache_usage_perc`` → ``kv_cache_usage_perc``) is found under either name.
Counters are written as exposed (prometheus_client adds ``_total``); histograms by their base
name, with the unit their name ends in (``_seconds``, ``_ms``, ``_us``; TGI's ``_duration``
series are seconds). A role a server does not have is simply not listed (TGI has no TTFT
histogram), so a missing series is news, said as a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["AUTO_ORDER", "PRESETS", "Preset", "detect_preset"]


@dataclass(frozen=True)
class Preset:
    name: str
    source: str  # the server version and file the names were taken from
    prefixes: tuple[str, ...]  # series name prefixes that identify the server (``auto``)
    series: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


# vLLM v0.10 vllm/v1/metrics/loggers.py (PrometheusStatLogger; labels model_name, engine):
# gauges num_requests_running / num_requests_waiting, kv_cache_usage_perc (0.9 deprecated
# gpu_cache_usage_perc), counters num_preemptions, prefix_cache_queries / prefix_cache_hits
# (were gpu_prefix_cache_*), histograms time_to_first_token_seconds (buckets 0.001 … 2560 s),
# time_per_output_token_seconds (0.01 … 80 s; inter_token_latency_seconds from v0.11),
# request_queue_time_seconds and e2e_request_latency_seconds (0.3, 0.5, 0.8, 1 … 7680 s).
# The v0 engine (vllm/engine/metrics.py) had the gauge gpu_prefix_cache_hit_rate instead.
VLLM = Preset(
    "vllm",
    "vLLM v0.10 vllm/v1/metrics/loggers.py (v0: vllm/engine/metrics.py)",
    ("vllm:",),
    {
        "running": ("vllm:num_requests_running",),
        "waiting": ("vllm:num_requests_waiting",),
        "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        "preemptions": ("vllm:num_preemptions_total",),
        "prefix_cache_hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
        "prefix_cache_queries": (
            "vllm:prefix_cache_queries_total",
            "vllm:gpu_prefix_cache_queries_total",
        ),
        "prefix_cache_hit_rate": ("vllm:gpu_prefix_cache_hit_rate",),
        "ttft": ("vllm:time_to_first_token_seconds",),
        "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
        "queue": ("vllm:request_queue_time_seconds",),
        "e2e": ("vllm:e2e_request_latency_seconds",),
    },
)

# SGLang python/sglang/srt/metrics/collector.py (SchedulerMetricsCollector and
# TokenizerMetricsCollector; label model_name and others): gauges num_running_reqs,
# num_queue_reqs, token_usage (KV-pool fraction), cache_hit_rate; counter
# num_retracted_requests_total (a retraction is SGLang's preemption; older: the gauge
# num_retracted_reqs, not a count); histograms time_to_first_token_seconds (0.1 … 400 s),
# inter_token_latency_seconds (0.002 … 8 s; older time_per_output_token_seconds),
# queue_time_seconds (0, 0.1, 0.2, 0.5, 1 … 3000 s), e2e_request_latency_seconds.
SGLANG = Preset(
    "sglang",
    "SGLang python/sglang/srt/metrics/collector.py (v0.5)",
    ("sglang:",),
    {
        "running": ("sglang:num_running_reqs",),
        "waiting": ("sglang:num_queue_reqs",),
        "kv_cache_usage": ("sglang:token_usage",),
        "preemptions": ("sglang:num_retracted_requests_total",),
        "prefix_cache_hit_rate": ("sglang:cache_hit_rate",),
        "ttft": ("sglang:time_to_first_token_seconds",),
        "itl": ("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"),
        "queue": ("sglang:queue_time_seconds",),
        "e2e": ("sglang:e2e_request_latency_seconds",),
    },
)

# Text Generation Inference v2/v3 router (router/src/server.rs, router/src/queue.rs; the
# `metrics` crate's Prometheus exporter, duration buckets 0.00015 s × 1.5^k, 35 of them):
# gauges tgi_batch_current_size (requests in the running batch) and tgi_queue_size,
# histograms tgi_request_queue_duration, tgi_request_mean_time_per_token_duration and
# tgi_request_duration (seconds). TGI exposes no TTFT, KV-cache or prefix-cache series.
TGI = Preset(
    "tgi",
    "text-generation-inference v3 router/src/server.rs, router/src/queue.rs",
    ("tgi_",),
    {
        "running": ("tgi_batch_current_size",),
        "waiting": ("tgi_queue_size",),
        "itl": ("tgi_request_mean_time_per_token_duration",),
        "queue": ("tgi_request_queue_duration",),
        "e2e": ("tgi_request_duration",),
    },
)

# TensorRT-LLM: trtllm-serve, TensorRT-LLM 1.x tensorrt_llm/metrics/collector.py (prefix
# trtllm_, histograms with vLLM's buckets), and Triton's tensorrtllm_backend
# (inflight_batcher_llm; gauges nv_trt_llm_request_metrics{request_type=…} and
# nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=…}, Triton ≥ 25.03 has the
# `fraction` type) with Triton's first-response histogram (--metrics-config
# histogram_latencies=true, milliseconds).
TRTLLM = Preset(
    "trtllm",
    "TensorRT-LLM 1.x tensorrt_llm/metrics/collector.py; Triton tensorrtllm_backend metrics",
    ("trtllm_", "nv_trt_llm_"),
    {
        "running": (
            "trtllm_num_requests_running",
            'nv_trt_llm_request_metrics{request_type="active"}',
        ),
        "waiting": (
            "trtllm_num_requests_waiting",
            'nv_trt_llm_request_metrics{request_type="waiting"}',
        ),
        "kv_cache_usage": (
            "trtllm_kv_cache_utilization",
            'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}',
        ),
        "prefix_cache_hit_rate": ("trtllm_kv_cache_hit_rate",),
        "ttft": ("trtllm_time_to_first_token_seconds", "nv_inference_first_response_histogram_ms"),
        "itl": ("trtllm_time_per_output_token_seconds",),
        "queue": ("trtllm_request_queue_time_seconds",),
        "e2e": ("trtllm_e2e_request_latency_seconds",),
    },
)

# BentoML 1.4 (bentoml/_internal/server/metrics, verified against `bentoml serve` 1.4.40):
# the gauge bentoml_service_request_in_progress and the histogram
# bentoml_service_request_duration_seconds; a BentoML service in front of an engine running
# in its process (vLLM's AsyncLLMEngine) also exposes the engine's series, and ``auto``
# prefers those.
BENTOML = Preset(
    "bentoml",
    "BentoML 1.4 bentoml_service_* series",
    ("bentoml_",),
    {
        "running": ("bentoml_service_request_in_progress",),
        "e2e": ("bentoml_service_request_duration_seconds",),
    },
)

PRESETS: dict[str, Preset] = {p.name: p for p in (VLLM, SGLANG, TGI, TRTLLM, BENTOML)}
# ``auto``: the engines first, so BentoML in front of an in-process engine reads the engine.
# BentoML alone is left to the server section it always had (DESIGN §9).
AUTO_ORDER = ("vllm", "sglang", "trtllm", "tgi")


def detect_preset(names: set[str]) -> Preset | None:
    """The first engine whose series prefix appears among the sample names of a scrape."""
    for name in AUTO_ORDER:
        preset = PRESETS[name]
        if any(sample.startswith(preset.prefixes) for sample in names):
            return preset
    return None
