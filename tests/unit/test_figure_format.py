"""The one number formatter of every view: units and precision adapt, nothing is rounded away
that a reader needs (the integer part of a rate, an exact count), nothing is cut."""

from __future__ import annotations

import math

import pytest

from infbench.figure_format import MISSING, format_figure, significant


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (1032.4, "1.03 s"),  # the headline figure, once shown as 1,032…
        (0.923, "923 µs"),
        (12.43, "12.4 ms"),
        (0.06, "60.0 µs"),
        (999.7, "1.00 s"),  # rounds into the next unit, not to "1,000 ms"
        (0.9996, "1.00 ms"),
        (123_456.0, "123 s"),
        (4_000_000.0, "4,000 s"),
        (0.0, "0 ms"),
    ],
)
def test_durations_take_the_unit_that_keeps_them_short(ms: float, shown: str) -> None:
    assert format_figure(ms, "ms") == shown


def test_four_digits_where_a_comparison_needs_them() -> None:
    assert format_figure(1032.4, "ms", 4) == "1.032 s"
    assert format_figure(19.98, "ms", 4) == "19.98 ms"
    assert format_figure(143.75, "/s", 4) == "143.8/s"


def test_rates_counts_and_shares() -> None:
    assert format_figure(38_050.4) == "38,050"  # the integer part is never rounded away
    assert format_figure(9.996) == "10.0"  # not 10.00: three digits stay three
    assert format_figure(12_345_678, "count") == "12,345,678"  # counts are exact
    assert format_figure(0.0123, "fraction") == "1.23%"
    assert format_figure(45.26, "%") == "45.3%"
    assert format_figure(1234.5, "MB") == "1,234 MB"


@pytest.mark.parametrize("missing", [None, math.nan, math.inf])
def test_an_unmeasured_figure_is_a_dash(missing: float | None) -> None:
    assert format_figure(missing, "ms") == MISSING


@pytest.mark.parametrize("value", [1e-9, 0.000123, 0.5, 1.0, 9.999, 99.95, 999.5, 1e6, -12.34])
def test_significant_keeps_the_value(value: float) -> None:
    text = significant(value, 3)
    assert math.isclose(float(text.replace(",", "")), value, rel_tol=0.01)
    assert len(text.lstrip("-0.").replace(".", "").replace(",", "")) >= 3 or abs(value) >= 100
