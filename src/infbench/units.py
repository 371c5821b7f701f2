"""Durations and rates as users write them: ``500ms``, ``30s``, ``2m``; ``50``, ``3000/m``."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

__all__ = ["Duration", "Rate", "format_duration", "parse_duration", "parse_percent", "parse_rate"]

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_RATE_UNITS = {"s": 1.0, "sec": 1.0, "m": 1 / 60, "min": 1 / 60, "h": 1 / 3600}
_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_DURATION_RE = re.compile(rf"^\s*{_NUMBER}\s*(ns|us|µs|ms|s|m|h)\s*$")
_RATE_RE = re.compile(rf"^\s*{_NUMBER}\s*(?:/\s*(s|sec|m|min|h))?\s*$")
_PERCENT_RE = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+)\s*%\s*$")


def _with_unit(
    value: object, pattern: re.Pattern[str], units: dict[str, float], default: str, kind: str
) -> float:
    """A finite number >= 0 from a bare number or ``<number><unit>``, scaled by the unit.
    ``kind`` ends each error message: what a value of this kind looks like."""
    if isinstance(value, bool):
        raise ValueError(f"expected {kind}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and (match := pattern.match(value)):
        number = float(match.group(1)) * units[match.group(2) or default]
    else:
        raise ValueError(f"expected {kind}")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"expected a finite value >= 0: {kind}")
    return number


def parse_duration(value: object) -> float:
    """Seconds from ``500ms``/``30s``/``2m``/``1h``; a bare number means seconds."""
    kind = "a duration such as 500ms, 30s or 2m (units: ns, us, ms, s, m, h)"
    return _with_unit(value, _DURATION_RE, _DURATION_UNITS, "s", kind)


def parse_rate(value: object) -> float:
    """Requests per second from ``50``, ``50/s``, ``3000/m`` or ``100/h``."""
    kind = "a rate in requests per second such as 50, 50/s or 3000/m"
    return _with_unit(value, _RATE_RE, _RATE_UNITS, "s", kind)


def parse_percent(value: object) -> float | None:
    """A fraction from ``5%``, ``+10%`` or ``-0.5%``; None when ``value`` is not a percentage."""
    if isinstance(value, str) and (match := _PERCENT_RE.match(value)):
        return float(match.group(1)) / 100.0
    return None


def format_duration(seconds: float) -> str:
    """Short human form used in previews and tables."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    if seconds >= 1 or seconds == 0:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"


Duration = Annotated[float, BeforeValidator(parse_duration)]
Rate = Annotated[float, BeforeValidator(parse_rate)]
