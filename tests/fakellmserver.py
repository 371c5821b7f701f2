"""A fake LLM server's ``/metrics``: vLLM's own series, moving with known values as it streams.

The series are vLLM v0.10's (vllm/v1/metrics/loggers.py: names, ``model_name``/``engine``
labels, bucket bounds), made with prometheus_client as vLLM makes them, so the text is what a
vLLM server writes. They are served on their own port (``target.metrics.url``) and follow a
StreamServer's request count: for every answer the fake has streamed, the histograms observe
``ttft_s``, ``queue_s``, ``tpot_s`` and ``e2e_s``, the prefix cache is queried 10 tokens and
hit 4 (a hit rate of 0.4), and every third answer is a preemption. The gauges read 2 requests
running and 3 waiting once the first answer is streamed, and KV-cache use of 0.05 per answer
(capped at 1). ``renamed`` serves the names vLLM used before 0.9 (gpu_cache_usage_perc,
gpu_prefix_cache_*).

    with StreamServer(...) as stream, VllmMetrics(stream) as metrics:
        ... metrics.url ...
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["VLLM_BUCKETS", "VllmMetrics"]

# vLLM v0.10 vllm/v1/metrics/loggers.py
VLLM_BUCKETS = {
    "ttft": [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
             7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0],
    "tpot": [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
             10.0, 20.0, 40.0, 80.0],
    "request": [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0],
}  # fmt: skip
LABELS = ("model_name", "engine")


class VllmMetrics:
    def __init__(
        self,
        stream: Any,
        *,
        ttft_s: float = 0.015,
        queue_s: float = 0.004,
        tpot_s: float = 0.02,
        e2e_s: float = 0.15,
        renamed: bool = False,
    ) -> None:
        self.stream, self.renamed = stream, renamed
        self.values = {"ttft": ttft_s, "queue": queue_s, "tpot": tpot_s, "e2e": e2e_s}
        self.seen = 0
        self.scrapes = 0
        self._lock = threading.Lock()
        self._build()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/metrics"

    def __enter__(self) -> VllmMetrics:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _build(self) -> None:
        reg = self.registry = CollectorRegistry()
        old = self.renamed
        kv = "vllm:gpu_cache_usage_perc" if old else "vllm:kv_cache_usage_perc"
        prefix = "vllm:gpu_prefix_cache_" if old else "vllm:prefix_cache_"
        labels = {"model_name": "m", "engine": "0"}

        def gauge(name: str) -> Any:
            return Gauge(name, name, LABELS, registry=reg).labels(**labels)

        def counter(name: str) -> Any:
            return Counter(name, name, LABELS, registry=reg).labels(**labels)

        self.histograms_by_name: dict[str, Histogram] = {}  # to unregister one (a test)

        def histogram(name: str, buckets: list[float]) -> Any:
            family = Histogram(name, name, LABELS, buckets=buckets, registry=reg)
            self.histograms_by_name[name] = family
            return family.labels(**labels)

        self.running, self.waiting, self.kv = (
            gauge("vllm:num_requests_running"),
            gauge("vllm:num_requests_waiting"),
            gauge(kv),
        )
        self.preemptions = counter("vllm:num_preemptions")
        self.queries, self.hits = counter(prefix + "queries"), counter(prefix + "hits")
        self.histograms = {
            "ttft": histogram("vllm:time_to_first_token_seconds", VLLM_BUCKETS["ttft"]),
            "tpot": histogram("vllm:time_per_output_token_seconds", VLLM_BUCKETS["tpot"]),
            "queue": histogram("vllm:request_queue_time_seconds", VLLM_BUCKETS["request"]),
            "e2e": histogram("vllm:e2e_request_latency_seconds", VLLM_BUCKETS["request"]),
        }

    def _catch_up(self) -> None:
        """Observe every answer streamed since the last scrape."""
        with self._lock:
            served = self.stream.requests
            for number in range(self.seen + 1, served + 1):
                for key, histogram in self.histograms.items():
                    histogram.observe(self.values[key])
                self.queries.inc(10)
                self.hits.inc(4)
                if number % 3 == 0:
                    self.preemptions.inc()
            self.seen = served
            self.running.set(2 if served else 0)
            self.waiting.set(3 if served else 0)
            self.kv.set(min(1.0, 0.05 * served))
            self.scrapes += 1

    def text(self) -> bytes:
        self._catch_up()
        return generate_latest(self.registry)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server calls
                body = fake.text()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
