"""timeseries.csv is read by column name: folders written before a column was added still read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from infbench.errors import ResultFormatError
from infbench.results.rundata import read_timeseries
from infbench.results.rundir import TIMESERIES_ADDED, TIMESERIES_COLUMNS

FIRST_V1 = [c for c in TIMESERIES_COLUMNS if c not in TIMESERIES_ADDED]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def _row(header: list[str], second: int) -> list[str]:
    return [("steady" if c == "phase" else str(second)) for c in header]


def test_a_folder_from_before_the_added_columns_reads_them_as_not_measured(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", FIRST_V1, [_row(FIRST_V1, 0), _row(FIRST_V1, 1)])
    table = read_timeseries(path)
    assert table["latency_p99_ms"].tolist() == [0.0, 1.0]
    assert set(TIMESERIES_ADDED) <= set(table)
    assert all(np.isnan(table[c]).all() and len(table[c]) == 2 for c in TIMESERIES_ADDED)


def test_columns_are_taken_by_name_and_unknown_ones_passed_over(tmp_path: Path) -> None:
    header = ["a_later_column", *reversed(TIMESERIES_COLUMNS)]
    row = ["7", *("steady" if c == "phase" else "3" for c in reversed(TIMESERIES_COLUMNS))]
    table = read_timeseries(_write(tmp_path / "t.csv", header, [row]))
    assert "a_later_column" not in table
    assert table["second"].tolist() == [3.0] and table["gpu_power_w"].tolist() == [3.0]


def test_a_header_without_a_first_v1_column_is_a_format_error(tmp_path: Path) -> None:
    header = [c for c in FIRST_V1 if c != "completed"]
    path = _write(tmp_path / "t.csv", header, [_row(header, 0)])
    with pytest.raises(ResultFormatError, match="lacks the v1 columns completed"):
        read_timeseries(path)
