"""Trace replay input: timestamps read from a CSV or JSONL column, checked line by line.

Kept apart from ``arrivals.py`` because it is the only part of the arrival processes that
reads files; a bad file is an ``InputError`` naming the file, the line and the fix.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import pathlib
from collections.abc import Iterator
from typing import Literal

import numpy as np
import numpy.typing as npt

from infbench.errors import InputError

__all__ = ["bad_trace", "load_trace", "trace_offsets"]

Offsets = npt.NDArray[np.float64]
_TRACE_DIVISORS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def bad_trace(path: pathlib.Path, line: int | None, what: str, fix: str) -> InputError:
    return InputError(f"{path}:{line}: {what}" if line else f"{path}: {what}", hint=fix)


def _csv_cells(path: pathlib.Path, column: str) -> Iterator[tuple[int, object]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        names = [name.strip() for name in next(reader, [])]
        if names and column not in names:
            what = f"no column {column!r} in the header ({', '.join(names)})"
            raise bad_trace(path, 1, what, "set `arrival.column` to the timestamp column's header")
        for row in reader:
            if any(cell.strip() for cell in row):
                index = names.index(column)
                yield reader.line_num, row[index] if index < len(row) else ""


def _jsonl_cells(path: pathlib.Path, column: str) -> Iterator[tuple[int, object]]:
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
            yield number, record[column]


def _timestamp(path: pathlib.Path, line: int, raw: object) -> float:
    value = None
    if isinstance(raw, int | float | str) and not isinstance(raw, bool):
        with contextlib.suppress(ValueError):
            value = float(raw)
    if value is None:
        fix = "write timestamps as plain numbers (seconds, or set `arrival.unit`)"
        raise bad_trace(path, line, f"timestamp {raw!r} is not a number", fix)
    if not math.isfinite(value):
        raise bad_trace(path, line, f"timestamp {raw!r} is not finite", "remove or fix the row")
    if value < 0:
        fix = "timestamps must be >= 0; shift them all by a constant"
        raise bad_trace(path, line, f"timestamp {raw!r} is negative", fix)
    return value


def load_trace(
    path: pathlib.Path | str, column: str = "timestamp", unit: Literal["s", "ms", "us", "ns"] = "s"
) -> Offsets:
    """Absolute timestamps in seconds from a CSV (header row) or JSONL/NDJSON column.

    Timestamps must be finite, >= 0 and non-decreasing (equal ones are simultaneous requests).
    """
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        fix = "use a .csv file with a header row, or .jsonl/.ndjson with one object a line"
        raise bad_trace(path, None, f"unknown trace format {suffix or '(no suffix)'!r}", fix)
    cells = _csv_cells(path, column) if suffix == ".csv" else _jsonl_cells(path, column)
    values: list[float] = []
    last_line = 0
    try:
        for line, raw in cells:
            value = _timestamp(path, line, raw)
            if values and value < values[-1]:
                what = f"timestamp {raw!r} is earlier than {values[-1]!r} on line {last_line}"
                raise bad_trace(path, line, what, f"sort the file by {column!r}, ascending")
            values.append(value)
            last_line = line
    except (OSError, UnicodeDecodeError) as exc:
        fix = "check `arrival.path`; relative paths start at the scenario file's folder"
        raise bad_trace(path, None, f"cannot read the trace ({exc})", fix) from None
    if not values:
        raise bad_trace(path, None, "no timestamps in the file", "add at least one data row")
    return np.asarray(values, dtype=np.float64) / _TRACE_DIVISORS[unit]


def trace_offsets(times: Offsets, scale: float = 1.0) -> Offsets:
    """Replay: t_k = (T_k - T_0)·scale; scale 2 stretches time to half the rate."""
    if len(times) == 0:
        return np.empty(0, dtype=np.float64)
    return np.asarray((times - times[0]) * scale, dtype=np.float64)
