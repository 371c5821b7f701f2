"""The report draws run.json's resilience section on its time plots."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from infbench.analysis.resilience import FaultMarks, ResiliencePlot
from infbench.report.fault_marks import FAULT_COLOR, RECOVERED_COLOR, draw_faults

KILL = FaultMarks(
    label="kill_server at 12.0 s",
    time_s=12.0,
    end_s=None,
    error_window=(12.1, 14.5),
    recovered_at_s=16.0,
    baseline_p50_ms=20.0,
    threshold_ms=22.0,
)
PAUSE = FaultMarks("pause at 30.0 s", 30.0, 32.0, None, None, 20.0, 22.0)


def axes() -> Axes:
    ax = Figure().add_subplot()
    ax.set_xlim(0, 40)
    return ax


def spans(ax: Axes) -> list[tuple[float, float]]:
    return sorted((round(p.get_x(), 3), round(p.get_x() + p.get_width(), 3)) for p in ax.patches)


def test_faults_windows_recoveries_and_restarts_are_drawn_where_they_happened() -> None:
    ax = axes()
    plot = ResiliencePlot((KILL, PAUSE), ((12.05, 15.0), (35.0, None)))
    draw_faults(ax, plot, latency_axis=True)
    vertical = [(line.get_xdata()[0], line.get_color()) for line in ax.get_lines()]
    assert (12.0, FAULT_COLOR) in vertical and (30.0, FAULT_COLOR) in vertical
    assert (16.0, RECOVERED_COLOR) in vertical
    # error window, the restart until ready, and the restart never ready (to the plot's end)
    assert spans(ax) == [(12.05, 15.0), (12.1, 14.5), (35.0, 40.0)]
    # the threshold from the fault to its recovery; the pause (no recovery) to its end
    segments = [
        [tuple(point) for point in segment]
        for lines in ax.collections
        for segment in lines.get_segments()  # type: ignore[attr-defined]
    ]
    assert segments == [[(12.0, 22.0), (16.0, 22.0)], [(30.0, 22.0), (32.0, 22.0)]]
    labels = ax.get_legend_handles_labels()[1]
    assert labels.count("fault") == 1  # each kind once in the legend
    assert set(labels) == {
        "fault", "error window", "recovered", "recovery threshold", "server restarting"
    }  # fmt: skip
    texts = [t.get_text().strip() for t in ax.texts]
    assert texts == ["kill_server", "pause"]


def test_threshold_only_on_the_latency_axis_and_nothing_without_faults() -> None:
    ax = axes()
    draw_faults(ax, ResiliencePlot((KILL,), ()))
    assert not ax.collections
    assert len(ax.get_lines()) == 2
    empty = axes()
    draw_faults(empty, None)
    assert not empty.get_lines() and not empty.patches
