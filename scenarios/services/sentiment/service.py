"""A small but real sentiment classifier served by BentoML, for benchmarks that need actual work.

The model is a logistic regression over hashed word unigrams and bigrams, trained with plain
gradient descent on ``reviews.jsonl`` (shipped beside this file) when the service starts: nothing
is downloaded, training is deterministic and takes well under a second, and one prediction costs
tens of microseconds of numpy, so the server's own overhead stays visible in the measurements.

Endpoints:
  POST /classify        {"text": "..."}            -> {"label": "positive", "score": 0.93}
  POST /classify_batch  {"texts": ["...", "..."]}  -> [{"label": ..., "score": ...}, ...]
``/classify_batch`` uses BentoML's adaptive batching: concurrent requests are merged into one
call of up to ``SENTIMENT_MAX_BATCH_SIZE`` texts, waiting at most ``SENTIMENT_MAX_LATENCY_MS``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import zlib
from pathlib import Path
from typing import Any

import bentoml
import numpy as np

DATA = Path(__file__).with_name("reviews.jsonl")
DIMENSIONS = 1 << 12
TOKEN = re.compile(r"[a-z']+")
LABELS = ("negative", "positive")

# Decorator arguments are read at import time, so the batching knobs come from the environment
# (a scenario's `target.env`) rather than from BENTOML_CONFIG, which new-style services ignore
# for batching.
MAX_BATCH_SIZE = int(os.environ.get("SENTIMENT_MAX_BATCH_SIZE", "64"))
MAX_LATENCY_MS = int(os.environ.get("SENTIMENT_MAX_LATENCY_MS", "1000"))


def feature_indices(text: str) -> np.ndarray:
    """Hashed unigram and bigram buckets; crc32 because Python's str hash is salted per process."""
    words = TOKEN.findall(text.lower())
    grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    return np.array([zlib.crc32(g.encode()) % DIMENSIONS for g in grams], dtype=np.int64)


def featurize(texts: list[str]) -> np.ndarray:
    matrix = np.zeros((len(texts), DIMENSIONS), dtype=np.float64)
    for row, text in enumerate(texts):
        np.add.at(matrix[row], feature_indices(text), 1.0)
    return matrix


def train(texts: list[str], labels: np.ndarray, epochs: int = 400, rate: float = 0.5) -> np.ndarray:
    """Full-batch gradient descent on the L2-regularised logistic loss; weights[-1] is the bias."""
    x = np.hstack([featurize(texts), np.ones((len(texts), 1))])
    weights = np.zeros(x.shape[1])
    for _ in range(epochs):
        predicted = 1.0 / (1.0 + np.exp(-(x @ weights)))
        gradient = x.T @ (predicted - labels) / len(texts) + 1e-3 * weights
        weights -= rate * gradient
    return weights


@bentoml.service
class Sentiment:
    def __init__(self) -> None:
        rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
        labels = np.array([LABELS.index(row["label"]) for row in rows], dtype=np.float64)
        self.weights = train([row["text"] for row in rows], labels)

    def _predict(self, text: str) -> dict[str, Any]:
        logit = self.weights[feature_indices(text)].sum() + self.weights[-1]
        positive = float(1.0 / (1.0 + np.exp(-logit)))
        label = "positive" if positive >= 0.5 else "negative"
        return {"label": label, "score": round(max(positive, 1.0 - positive), 4)}

    @bentoml.api
    def classify(self, text: str) -> dict[str, Any]:
        return self._predict(text)

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def classify_batch(self, texts: list[str]) -> list[dict[str, Any]]:
        return [self._predict(text) for text in texts]
