"""RoBERTa sentiment classification served by BentoML: the study's baseline and optimized variants.

Both answer ``POST /classify {"text": "..."} -> {"label": "positive", "score": 0.51}``, so one
scenario drives either (``target.service: services/roberta:Baseline`` or ``:Optimized``).

- ``Baseline``: PyTorch FP32, one request per model call, BentoML's and PyTorch's default
  thread settings (one request at a time per worker, intra-op threads = cores).
- ``Optimized``: the same network exported to ONNX and run by ONNX Runtime with graph
  optimisation level ALL (plus onnxruntime's transformer fusions), behind BentoML adaptive
  batching. BentoML batches only requests that reach a ``batchable`` API over HTTP, and such an
  API takes and returns lists; so ``Optimized`` is the single-text front (async, cheap) and
  ``OptimizedModel`` the batchable back end it calls, BentoML's documented pattern.

The model is described in ``roberta_model.py``: seeded random weights of roberta-base's shape
(``ROBERTA_SIZE=tiny|small|base``) or a local checkpoint (``MODEL_PATH``); byte-level tokens.

Knobs, read at import time because decorator arguments are fixed then (BentoML reads threads
and batching only from the decorators, never from BENTOML_CONFIG):

    ROBERTA_MAX_BATCH_SIZE   most requests merged into one call (default 4, batching being
                             the study's configuration; on a 2-core CPU every size measured
                             cost more per text than single texts, padding each batch to its
                             longest text: docs/reproduction.md); 1 turns adaptive batching
                             off (BentoML refuses a batchable API of size 1)
    ROBERTA_MAX_LATENCY_MS   the batcher's latency budget; beyond it BentoML answers 503
                             (default 10000: a CPU model must not shed load in a benchmark
                             that measures queueing)
    ROBERTA_MODEL_WORKERS    processes of OptimizedModel (default 1: one process with every
                             core beats two sharing them, for a model that already uses all)
    ROBERTA_INTRA_THREADS    ONNX Runtime threads per call (default: all cores)
    ROBERTA_FUSION           0 disables the transformer fusions (default 1)
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import bentoml
from roberta_model import Settings, TorchClassifier

MAX_BATCH_SIZE = int(os.environ.get("ROBERTA_MAX_BATCH_SIZE", "4"))
MAX_LATENCY_MS = int(os.environ.get("ROBERTA_MAX_LATENCY_MS", "10000"))
MODEL_WORKERS = int(os.environ.get("ROBERTA_MODEL_WORKERS", "1"))
BATCHING: dict[str, Any] = (
    {"batchable": True, "max_batch_size": MAX_BATCH_SIZE, "max_latency_ms": MAX_LATENCY_MS}
    if MAX_BATCH_SIZE > 1
    else {}  # one list of one text per call, so both settings run the same code
)
RESENDS = 2  # of a request whose connection to the back end was closed under it
# What a keep-alive connection closed by the back end looks like when the front reuses it:
# the read finds it closed, or the write of the body fails (ClientOSError wraps the reset).
STALE_CONNECTION = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


@bentoml.service
class Baseline:
    """PyTorch FP32, one request per call: what a first deployment of the model looks like."""

    def __init__(self) -> None:
        self.classifier = TorchClassifier(Settings.from_env())
        self.classifier(["warm up"])  # the first call allocates; keep it out of the measurement

    @bentoml.api
    def classify(self, text: str) -> dict[str, Any]:
        return self.classifier([text])[0]


@bentoml.service(workers=MODEL_WORKERS, threads=1)
class OptimizedModel:
    """ONNX Runtime over adaptive batches; threads=1 because one batch already uses every core."""

    def __init__(self) -> None:
        from roberta_onnx import OnnxClassifier

        self.classifier = OnnxClassifier(Settings.from_env())
        self.classifier(["warm up", "a second, longer text to warm up the padded path"])

    @bentoml.api(**BATCHING)
    def classify_batch(self, texts: list[str]) -> list[dict[str, Any]]:
        return self.classifier(texts)


@bentoml.service
class Optimized:
    """The single-text API of the optimized variant: forwards each text into the batcher."""

    model = bentoml.depends(OptimizedModel)

    @bentoml.api
    async def classify(self, text: str) -> dict[str, Any]:
        for _ in range(RESENDS):
            try:
                return await self._forward(text)
            except STALE_CONNECTION:
                # The back end closes a keep-alive connection idle for 5 s just as the client
                # reuses it (measured: up to 1 % of requests under bursty traffic). BentoML's
                # client does not resend; classifying is idempotent, so this front does. A
                # timeout is not caught: resending it would only add load to a slow back end.
                continue
        return await self._forward(text)

    async def _forward(self, text: str) -> dict[str, Any]:
        results = await self.model.to_async.classify_batch([text])
        return dict(results[0])
