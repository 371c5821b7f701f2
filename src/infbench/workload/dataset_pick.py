"""Which dataset rows a run uses: ``dataset.lengths`` (a prompt-length filter) and
``dataset.sample`` (rows drawn without replacement, seeded by ``workload.seed``).

vLLM and SGLang filter ShareGPT by prompt and answer length and sample a fixed number of
prompts; here the filter counts the prompt in words (about tokens with the vocabularies of
today's tokenizers) or with ``request.tokenizer``, and the draw is a numpy permutation
seeded by (seed, stream), so the same file and seed give the same rows in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from infbench.errors import InputError
from infbench.scenario.request import Dataset

__all__ = ["pick_rows"]

_SAMPLE = 0x5A_3B1E  # mixed into the seed so the draw shares no stream with arrivals


def pick_rows(
    rows: list[dict[str, Any]],
    dataset: Dataset,
    path: Path,
    count: Callable[[str], int] | None,
    seed: int,
) -> list[dict[str, Any]]:
    if dataset.lengths is not None:
        rows = _filtered(rows, dataset, path, count or (lambda text: len(text.split())))
    if dataset.sample is not None and dataset.sample < len(rows):
        rng = np.random.default_rng([seed, _SAMPLE])
        rows = [rows[i] for i in rng.permutation(len(rows))[: dataset.sample].tolist()]
    return rows


def _filtered(
    rows: list[dict[str, Any]], dataset: Dataset, path: Path, count: Callable[[str], int]
) -> list[dict[str, Any]]:
    assert dataset.lengths is not None
    low, high = dataset.lengths.min, dataset.lengths.max
    kept = []
    for index, row in enumerate(rows):
        text = row.get("prompt", row.get("text"))
        if not isinstance(text, str):
            raise InputError(
                f"row {index + 1} of {path} has no text `prompt` or `text` to measure",
                hint="remove request.dataset.lengths, or give every row a prompt",
            )
        if low <= count(text) and (high is None or count(text) <= high):
            kept.append(row)
    if not kept:
        raise InputError(
            f"no row of {path} has a prompt of {low}..{high or 'any'} "
            f"{dataset.lengths.count.replace('tokenizer', 'tokens')}",
            hint="widen request.dataset.lengths",
        )
    return kept
