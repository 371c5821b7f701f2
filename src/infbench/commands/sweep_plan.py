"""The pure plan of ``infbench sweep``: the rate list, the SLO given on the command line, and
the grid of settings. Strings in, values out; a mistake is a UsageError naming the flag."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from infbench.analysis.metrics import HIGHER_IS_BETTER, METRIC_PATHS
from infbench.analysis.slo import Rule, parse_slo
from infbench.errors import InfbenchError, UsageError
from infbench.units import parse_rate

__all__ = ["MAX_LEVELS", "GridPoint", "expand_grid", "parse_rates", "parse_slo_text"]

MAX_LEVELS = 100
_SLO_ITEM = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>|=|:)\s*(.+?)\s*$")
_SLO_SYNTAX = (
    "--slo takes METRIC<=VALUE items separated by commas, e.g. 'p99<=200ms,error_rate<=1%'"
)


# --- rates ------------------------------------------------------------------------------------


def _rate(text: str, where: str) -> float:
    try:
        rate = parse_rate(text.strip())
    except ValueError as exc:
        raise UsageError(f"--rates {where}: {exc}, got {text.strip()!r}") from None
    if rate <= 0:
        raise UsageError(f"--rates {where}: a rate must be above 0, got {text.strip()!r}")
    return rate


def parse_rates(text: str) -> list[float]:
    """``5,10,20`` (a list) or ``5..80x2`` (geometric: 5, 10, 20, 40, 80; the end is kept only
    when the series reaches it). Units as in scenarios: ``3000/m`` is 50 per second."""
    if ".." in text:
        start_text, _, rest = text.partition("..")
        end_text, sep, factor_text = rest.rpartition("x")
        if not sep:
            raise UsageError(f"--rates {text!r}: a range needs a factor, e.g. 5..80x2")
        start, end = _rate(start_text, text), _rate(end_text, text)
        try:
            factor = float(factor_text)
        except ValueError:
            raise UsageError(f"--rates {text!r}: the factor must be a number, e.g. x2") from None
        if not factor > 1 or not math.isfinite(factor):
            raise UsageError(f"--rates {text!r}: the factor must be above 1, got {factor_text!r}")
        if end < start:
            raise UsageError(f"--rates {text!r}: the range must rise (start ≤ end)")
        count = math.floor(math.log(end / start) / math.log(factor) + 1e-9) + 1
        if count > MAX_LEVELS:
            raise UsageError(f"--rates {text!r}: {count} levels; at most {MAX_LEVELS}")
        return [start * factor**k for k in range(count)]
    rates = [_rate(part, repr(text)) for part in text.split(",") if part.strip()]
    if not rates:
        raise UsageError("--rates: give rates such as 5,10,20 or a range such as 5..80x2")
    if len(rates) > MAX_LEVELS:
        raise UsageError(f"--rates: {len(rates)} levels; at most {MAX_LEVELS}")
    return rates


# --- SLO strings ------------------------------------------------------------------------------


def parse_slo_text(text: str) -> list[Rule]:
    """``p99<=200ms,error_rate<=1%`` -> rules, with the thresholds of a scenario's ``slo:``.

    The operator must agree with the metric's direction (latencies and error rates are bounded
    above, rates below), so a slip such as ``p99>=200ms`` is refused rather than misread.
    """
    rules: list[Rule] = []
    for item in (part for part in text.split(",") if part.strip()):
        match = _SLO_ITEM.match(item)
        if match is None:
            raise UsageError(f"--slo {item.strip()!r}: expected METRIC<=VALUE", hint=_SLO_SYNTAX)
        metric, op, value = match.groups()
        if metric not in METRIC_PATHS:
            choices = ", ".join(METRIC_PATHS)
            raise UsageError(f"--slo {item.strip()!r}: unknown metric {metric!r}; choose {choices}")
        wanted = ">=" if metric in HIGHER_IS_BETTER else "<="
        if op not in (wanted, wanted[0], "=", ":"):
            raise UsageError(
                f"--slo {item.strip()!r}: {metric} is bounded "
                f"{'below' if wanted == '>=' else 'above'}; write {metric}{wanted}{value}"
            )
        try:
            rules += parse_slo({metric: value})
        except InfbenchError as exc:
            raise UsageError(f"--slo {item.strip()!r}: {exc.message.split(': ', 1)[-1]}") from None
    if not rules:
        raise UsageError("--slo: no rule given", hint=_SLO_SYNTAX)
    return rules


# --- grids ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridPoint:
    """One combination of settings: ``(key, value)`` pairs in the order the --grid flags came."""

    settings: tuple[tuple[str, str], ...]

    @property
    def overrides(self) -> list[str]:
        return [f"{key}={value}" for key, value in self.settings]

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or "(scenario as is)"


def _split_values(text: str) -> list[str]:
    """Split on commas outside brackets and quotes, so ``[1,2],[3]`` is two YAML values."""
    values, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(current.strip())
            current = ""
            continue
        current += char
    values.append(current.strip())
    return values


def expand_grid(specs: Sequence[str]) -> list[GridPoint]:
    """``['target.workers=1,2', 'x=a,b']`` -> the cartesian product, first key slowest."""
    axes: list[list[tuple[str, str]]] = []
    seen: set[str] = set()
    for spec in specs:
        key, sep, values_text = spec.partition("=")
        key = key.strip()
        values = _split_values(values_text) if sep else []
        if not key or not values or any(not v for v in values):
            raise UsageError(
                f"--grid {spec!r}: expected KEY=V1,V2,..., e.g. --grid 'target.workers=1,2'"
            )
        if key in seen:
            raise UsageError(f"--grid {spec!r}: {key} is already a grid axis; list its values once")
        seen.add(key)
        axes.append([(key, value) for value in values])
    points = [GridPoint(tuple(combo)) for combo in itertools.product(*axes)]
    if len(points) > MAX_LEVELS:
        raise UsageError(f"--grid: {len(points)} points; at most {MAX_LEVELS}")
    return points
