"""One number formatter for every view: a figure written whole, with its unit and precision
adapted to its size, as hyperfine and benchstat write theirs (1.03 s, 923 µs, 12.4 ms; never
``1,032…``).

Views (console tables, compare and sweep tables, gate messages, the live line) call
``format_figure``; a column then never needs more than about eight characters for a figure, so
tables fit an 80-column terminal. Machine-readable files (summary.csv, run.json) keep full
precision instead (``results.rundir.format_cell``).
"""

from __future__ import annotations

import math
from typing import Literal

__all__ = ["MISSING", "Unit", "format_count", "format_figure", "format_time_ms", "significant"]

MISSING = "–"  # a figure that was not measured (None, NaN or infinite)

# ms: a duration given in milliseconds, shown in µs, ms or s; fraction: a share (error rate),
# shown in percent; plain: a number whose unit the column header names
Unit = Literal["ms", "/s", "%", "MB", "fraction", "count", "plain"]
_SUFFIX = {"/s": "/s", "%": "%", "MB": " MB", "plain": ""}


def significant(value: float, digits: int = 3) -> str:
    """``digits`` significant digits with thousands separators; the integer part is never
    rounded away (38,050 stays 38,050; 1.2345 becomes 1.23; 0.012345 becomes 0.0123)."""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= digits - 1:
        return f"{value:,.0f}"
    decimals = digits - 1 - magnitude
    text = f"{value:,.{decimals}f}"
    if abs(float(text.replace(",", ""))) >= 10 ** (magnitude + 1) and decimals > 0:
        text = f"{value:,.{decimals - 1}f}"  # 9.996 rounds up to 10.0, not 10.00
    return text


def format_time_ms(value_ms: float, digits: int = 3) -> str:
    """A duration in milliseconds in the unit that keeps it short: 923 µs, 12.4 ms, 1.03 s."""
    if value_ms == 0:
        return "0 ms"
    rounded = float(f"{abs(value_ms):.{digits}g}")  # 999.7 ms rounds to 1.00 s, not 1,000 ms
    unit, factor = ("s", 1e-3) if rounded >= 1e3 else ("ms", 1.0) if rounded >= 1 else ("µs", 1e3)
    return f"{significant(value_ms * factor, digits)} {unit}"


def format_count(value: int | float) -> str:
    """An exact count (requests, tokens): every digit, with thousands separators."""
    return f"{value:,}" if isinstance(value, int) else significant(value)


def format_figure(value: int | float | None, unit: Unit = "plain", digits: int = 3) -> str:
    """A figure as every view shows it; ``MISSING`` when it was not measured."""
    if value is None or isinstance(value, bool) or not math.isfinite(value):
        return MISSING
    if unit == "ms":
        return format_time_ms(value, digits)
    if unit == "count":
        return format_count(value)
    if unit == "fraction":
        return f"{value * 100:.2f}%"
    return significant(value, digits) + _SUFFIX[unit]
