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


def parse_duration(value: object) -> float:
    """Seconds from ``500ms``/``30s``/``2m``/``1h``; a bare number means seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 30s or 2m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_RE.match(value)):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise ValueError("expected a duration such as 500ms, 30s or 2m (units: ms, s, m, h)")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("expected a finite duration >= 0")
    return seconds


def parse_rate(value: object) -> float:
    """Requests per second from ``50``, ``50/s``, ``3000/m`` or ``100/h``."""
    if isinstance(value, bool):
        raise ValueError("expected a rate in requests per second such as 50 or 3000/m")
    if isinstance(value, int | float):
        rate = float(value)
    elif isinstance(value, str) and (match := _RATE_RE.match(value)):
        rate = float(match.group(1)) * _RATE_UNITS[match.group(2) or "s"]
    else:
        raise ValueError("expected a rate in requests per second such as 50, 50/s or 3000/m")
    if not math.isfinite(rate) or rate < 0:
        raise ValueError("expected a finite rate >= 0")
    return rate


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
