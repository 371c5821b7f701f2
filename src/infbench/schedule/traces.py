"""Trace replay input: each row's time and, where the trace has them, its input and output
lengths and prefix block ids (DESIGN §5c), read from a CSV or JSONL file and checked line by line.

Kept apart from ``arrivals.py`` because it is the only part of the arrival processes that
reads files; a bad file is an ``InputError`` naming the file, the line and the fix. The
presets of the public traces (``mooncake``, ``azure``, ``burstgpt``) are in ``trace_formats.py``.

A timestamp is a number in ``unit`` or an ISO-8601 date-time (Azure's ``TIMESTAMP``), taken
as seconds since the epoch, naive ones as UTC. A length cell may be empty (CSV) or absent
(JSONL): the row then has no such length (-1), which is an error only when a request needs
it (``workload/trace_prompts.py`` names the line).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import numpy as np
import numpy.typing as npt

from infbench.errors import InputError
from infbench.schedule.trace_formats import TraceColumns, TraceFormat, resolve_format

__all__ = ["TraceRows", "bad_trace", "load_trace", "load_trace_rows", "trace_offsets"]

Offsets = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Unit = Literal["s", "ms", "us", "ns"]
_TRACE_DIVISORS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_FIELDS = ("time", "input", "output", "hash_ids")
Cells = dict[str, object]


@dataclass(frozen=True, eq=False)
class TraceRows:
    """A trace's rows in file order: times in seconds, file lines, lengths (-1: none given)
    and each row's prefix block ids (empty: none given)."""

    path: pathlib.Path
    times: Offsets
    lines: Ints
    inputs: Ints
    outputs: Ints
    hash_ids: tuple[tuple[int, ...], ...]

    def __len__(self) -> int:
        return len(self.times)

    def take(self, keep: npt.NDArray[np.bool_] | slice) -> TraceRows:
        """The rows ``keep`` selects, in order (a window of the trace)."""
        index = np.arange(len(self))[keep]
        hashes = tuple(self.hash_ids[i] for i in index.tolist())
        return TraceRows(
            self.path, self.times[keep], self.lines[keep], self.inputs[keep],
            self.outputs[keep], hashes,
        )  # fmt: skip


def bad_trace(path: pathlib.Path, line: int | None, what: str, fix: str) -> InputError:
    return InputError(f"{path}:{line}: {what}" if line else f"{path}: {what}", hint=fix)


def _csv_cells(path: pathlib.Path, columns: TraceColumns) -> Iterator[tuple[int, Cells]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        names = [name.strip() for name in next(reader, [])]
        wanted = {field: getattr(columns, field) for field in _FIELDS if getattr(columns, field)}
        for field, column in wanted.items():
            if names and column not in names:
                what = f"no column {column!r} in the header ({', '.join(names)})"
                key = "arrival.column" if field == "time" else f"arrival.columns.{field}"
                raise bad_trace(path, 1, what, f"set `{key}` to the column's header")
        at = {field: names.index(column) for field, column in wanted.items() if names}
        for row in reader:
            if any(cell.strip() for cell in row):
                cells: Cells = {f: row[i].strip() if i < len(row) else "" for f, i in at.items()}
                yield reader.line_num, cells


def _jsonl_cells(path: pathlib.Path, columns: TraceColumns) -> Iterator[tuple[int, Cells]]:
    column = columns.time or "timestamp"
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                fix = f'write one JSON object a line, e.g. {{"{column}": 1.25}}'
                raise bad_trace(path, number, f"not valid JSON ({exc.msg})", fix) from None
            if not isinstance(record, dict) or column not in record:
                fix = f"give every line a {column!r} key, or set `arrival.column`"
                raise bad_trace(path, number, f"no key {column!r} on this line", fix)
            names = {field: getattr(columns, field) for field in _FIELDS}
            names["time"] = column
            yield number, {f: record.get(name, "") for f, name in names.items() if name}


def _date_time(raw: str) -> float | None:
    with contextlib.suppress(ValueError):
        stamp = datetime.fromisoformat(raw.strip())
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()
    return None


def _timestamp(path: pathlib.Path, line: int, raw: object, divisor: float) -> float:
    value = None
    if isinstance(raw, int | float | str) and not isinstance(raw, bool):
        with contextlib.suppress(ValueError):
            value = float(raw) / divisor
        if value is None and isinstance(raw, str):
            value = _date_time(raw)
    if value is None:
        fix = "write timestamps as plain numbers (seconds, or set `arrival.unit`) or ISO dates"
        raise bad_trace(path, line, f"timestamp {raw!r} is not a number", fix)
    if not math.isfinite(value):
        raise bad_trace(path, line, f"timestamp {raw!r} is not finite", "remove or fix the row")
    if value < 0:
        fix = "timestamps must be >= 0; shift them all by a constant"
        raise bad_trace(path, line, f"timestamp {raw!r} is negative", fix)
    return value


def _length(path: pathlib.Path, line: int, raw: object, column: str) -> int:
    """A token count; -1 for an empty cell or an absent key."""
    if raw in ("", None):
        return -1
    value = None
    if isinstance(raw, int | float | str) and not isinstance(raw, bool):
        with contextlib.suppress(ValueError):
            value = float(raw)
    if value is None or not math.isfinite(value) or value < 0 or value != int(value):
        fix = f"write {column!r} as a whole number of tokens >= 0"
        raise bad_trace(path, line, f"{column!r} is {raw!r}, not a token count", fix)
    return int(value)


def _hash_ids(path: pathlib.Path, line: int, raw: object, column: str) -> tuple[int, ...]:
    if raw in ("", None):
        return ()
    if isinstance(raw, str):  # a CSV cell: a JSON list, as converters write it
        with contextlib.suppress(json.JSONDecodeError):
            raw = json.loads(raw)
    if not isinstance(raw, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in raw
    ):
        fix = f"write {column!r} as a list of integers, e.g. [0, 1, 2]"
        raise bad_trace(path, line, f"{column!r} is {raw!r}, not a list of block ids", fix)
    return tuple(raw)


def load_trace_rows(
    path: pathlib.Path | str,
    fmt: TraceFormat = "auto",
    columns: TraceColumns | None = None,
    unit: Unit | None = None,
) -> TraceRows:
    """Every row of a trace; timestamps must be finite, >= 0 and non-decreasing (equal ones
    are simultaneous requests)."""
    path = pathlib.Path(path)
    preset = resolve_format(path, fmt, columns, unit)
    if preset is None:
        fix = "use a .csv file with a header row or .jsonl/.ndjson, or set `arrival.format`"
        raise bad_trace(path, None, f"unknown trace format {path.suffix or '(no suffix)'!r}", fix)
    cols = preset.columns
    cells = _csv_cells(path, cols) if preset.kind == "csv" else _jsonl_cells(path, cols)
    try:
        rows = _parse(path, cells, cols, _TRACE_DIVISORS[preset.unit])
    except (OSError, UnicodeDecodeError) as exc:
        fix = "check `arrival.path`; relative paths start at the scenario file's folder"
        raise bad_trace(path, None, f"cannot read the trace ({exc})", fix) from None
    if not len(rows):
        raise bad_trace(path, None, "no timestamps in the file", "add at least one data row")
    return rows


def _parse(
    path: pathlib.Path, cells: Iterator[tuple[int, Cells]], cols: TraceColumns, divisor: float
) -> TraceRows:
    times: list[float] = []
    lines: list[int] = []
    inputs: list[int] = []
    outputs: list[int] = []
    hashes: list[tuple[int, ...]] = []
    for line, row in cells:
        value = _timestamp(path, line, row["time"], divisor)
        if times and value < times[-1]:
            what = f"timestamp {row['time']!r} is earlier than {times[-1]!r} on line {lines[-1]}"
            raise bad_trace(path, line, what, f"sort the file by {cols.time!r}, ascending")
        times.append(value)
        lines.append(line)
        inputs.append(_length(path, line, row.get("input", ""), cols.input or ""))
        outputs.append(_length(path, line, row.get("output", ""), cols.output or ""))
        hashes.append(_hash_ids(path, line, row.get("hash_ids", ""), cols.hash_ids or ""))
    return TraceRows(
        path,
        np.asarray(times, dtype=np.float64),
        np.asarray(lines, dtype=np.int64),
        np.asarray(inputs, dtype=np.int64),
        np.asarray(outputs, dtype=np.int64),
        tuple(hashes),
    )


def load_trace(path: pathlib.Path | str, column: str = "timestamp", unit: Unit = "s") -> Offsets:
    """Absolute timestamps in seconds from a CSV (header row) or JSONL/NDJSON column."""
    return load_trace_rows(path, "auto", TraceColumns(column), unit).times


def trace_offsets(times: Offsets, scale: float = 1.0, start: float = 0.0) -> Offsets:
    """Replay: t_k = (T_k - T_0 - start)·scale; scale 2 stretches time to half the rate."""
    if len(times) == 0:
        return np.empty(0, dtype=np.float64)
    return np.asarray((times - times[0] - start) * scale, dtype=np.float64)
