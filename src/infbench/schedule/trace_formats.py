"""The public LLM traces infbench reads by name (``arrival.format``), and their columns.

Each preset names the file kind and the columns of one published trace, as their owners
publish them and as the peers' readers take them:

- ``mooncake``: the Mooncake FAST'25 trace (github.com/kvcache-ai/Mooncake, ``mooncake_trace.jsonl``
  and the conversation/tool-agent traces beside it): JSONL, ``timestamp`` in milliseconds from
  the first request, ``input_length``, ``output_length``, ``hash_ids`` (one id per 512-token
  block of the prompt; equal ids are equal blocks). Checked against AIPerf's ``mooncake_trace``
  docs (docs/benchmark_modes/trace_replay.md) and NVIDIA Dynamo's benchmarks/data_generator
  README, which both state the keys, the unit and the block size.
- ``azure``: the Azure LLM inference traces 2023 (Splitwise,
  ``AzureLLMInferenceTrace_{code,conv}.csv``)
  and 2024 (DynamoLLM, ``AzureLLMInferenceTrace_{code,conv}_1week.csv``) of
  github.com/Azure/AzurePublicDataset: CSV ``TIMESTAMP,ContextTokens,GeneratedTokens``, the
  timestamp a wall-clock date-time with 7 fractional digits (``2023-11-16 18:15:46.6805900``).
- ``burstgpt``: BurstGPT (github.com/HPMLL/BurstGPT, ``data/BurstGPT_*.csv``): CSV
  ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type``, ``Timestamp`` in
  seconds from the start of the collection. ``BurstGPT_1.csv`` logs failed requests with 0
  response tokens (its README says so); the ``_without_fails_`` files leave them out.

``csv`` and ``jsonl`` are any other file, with ``columns`` naming what is where.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Literal

__all__ = ["FORMATS", "TraceColumns", "TraceFormat", "resolve_format"]

TraceFormat = Literal["auto", "csv", "jsonl", "mooncake", "azure", "burstgpt"]
Unit = Literal["s", "ms", "us", "ns"]


@dataclass(frozen=True)
class TraceColumns:
    """Where each figure lies in a row: a CSV header or a JSONL key; None: not in the file
    (or, given in a scenario, the preset's own)."""

    time: str | None = None
    input: str | None = None
    output: str | None = None
    hash_ids: str | None = None


@dataclass(frozen=True)
class Preset:
    kind: Literal["csv", "jsonl"]
    columns: TraceColumns
    unit: Unit


FORMATS: dict[str, Preset] = {
    "mooncake": Preset(
        "jsonl", TraceColumns("timestamp", "input_length", "output_length", "hash_ids"), "ms"
    ),
    "azure": Preset("csv", TraceColumns("TIMESTAMP", "ContextTokens", "GeneratedTokens"), "s"),
    "burstgpt": Preset("csv", TraceColumns("Timestamp", "Request tokens", "Response tokens"), "s"),
}
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def resolve_format(
    path: pathlib.Path,
    fmt: TraceFormat,
    columns: TraceColumns | None,
    unit: Unit | None,
) -> Preset | None:
    """The file kind, columns and unit to read ``path`` with; None: the suffix tells nothing.

    A preset's columns and unit are its defaults; ``columns`` and ``unit`` given in the
    scenario override them one by one (a converted Mooncake file with a renamed column).
    """
    if fmt in FORMATS:
        preset = FORMATS[fmt]
    else:
        kind = fmt if fmt in ("csv", "jsonl") else _SUFFIXES.get(path.suffix.lower())
        if kind is None:
            return None
        preset = Preset(kind, TraceColumns("timestamp"), "s")  # type: ignore[arg-type]
    if columns is not None:
        base = preset.columns
        preset = Preset(
            preset.kind,
            TraceColumns(
                columns.time or base.time,
                columns.input or base.input,
                columns.output or base.output,
                columns.hash_ids or base.hash_ids,
            ),
            preset.unit,
        )
    return Preset(preset.kind, preset.columns, unit or preset.unit)
