"""A BentoML-shaped Prometheus exposition page, written by hand for the observer's tests."""

from __future__ import annotations

L = 'runner_name="S",service_name="S",service_version="not available"'
R, G = "bentoml_service_request_total", "bentoml_service_request_in_progress"
D, B = "bentoml_service_request_duration_seconds", "bentoml_service_adaptive_batch_size"


def exposition(
    classify_200: float = 0,
    classify_503: float = 0,
    readyz: float = 0,
    buckets: tuple[float, float, float] = (0, 0, 0),
    batch: tuple[float, float] = (0, 0),
    busy: float = 0,
) -> str:
    """A BentoML-shaped /metrics page: le 0.005, 0.01, +Inf buckets for /classify 200s."""
    b1, b2, total = buckets
    return f"""\
# HELP bentoml_service_request_total Total number of runner RPC
# TYPE bentoml_service_request_total counter
{R}{{endpoint="/classify",code_="200",{L}}} {classify_200}
{R}{{endpoint="/classify",code_="503",{L}}} {classify_503}
{R}{{endpoint="/readyz",code_="200",{L}}} {readyz}
# HELP bentoml_service_request_duration_seconds Request duration
# TYPE bentoml_service_request_duration_seconds histogram
{D}_bucket{{endpoint="/classify",code_="200",le="0.005",{L}}} {b1}
{D}_bucket{{endpoint="/classify",code_="200",le="0.01",{L}}} {b2}
{D}_bucket{{endpoint="/classify",code_="200",le="+Inf",{L}}} {total}
{D}_count{{endpoint="/classify",code_="200",{L}}} {total}
{D}_sum{{endpoint="/classify",code_="200",{L}}} 1.0
{D}_bucket{{endpoint="/readyz",code_="200",le="0.005",{L}}} {readyz}
{D}_bucket{{endpoint="/readyz",code_="200",le="0.01",{L}}} {readyz}
{D}_bucket{{endpoint="/readyz",code_="200",le="+Inf",{L}}} {readyz}
# HELP bentoml_service_adaptive_batch_size Service adaptive batch size
# TYPE bentoml_service_adaptive_batch_size histogram
{B}_sum{{method_name="b",worker_index="1",{L}}} {batch[0]}
{B}_count{{method_name="b",worker_index="1",{L}}} {batch[1]}
{B}_sum{{method_name="b",worker_index="2",{L}}} {batch[0]}
{B}_count{{method_name="b",worker_index="2",{L}}} {batch[1]}
# HELP bentoml_service_request_in_progress Requests in progress
# TYPE bentoml_service_request_in_progress gauge
{G}{{endpoint="/classify",{L}}} {busy}
{G}{{endpoint="/readyz",{L}}} 1.0
""".replace("code_=", "http_response_code=")
