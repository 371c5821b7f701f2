"""The report's views of streamed phases (DESIGN §5b): the tokens table, TTFT and ITL by
percentile, output tokens per second, and TTFT base vs candidate (TTFT against offered load is
the sweep figure's, report/sweep_plot.py).

Each view draws figures that run.json, latency.hlog and requests.csv.gz already hold (read by
rundata.py and token_data.py); none computes a statistic. A run without a streamed phase gets
none of them, so its pages stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from infbench.analysis.resilience import resilience_plot_data
from infbench.report import figures
from infbench.report.compare_plots import (
    PercentileFigure,
    compare_by_percentile,
)
from infbench.report.fault_marks import draw_faults
from infbench.report.figures import Plot
from infbench.report.page import table
from infbench.results.records import PhaseSummary, RunRecord
from infbench.results.rundata import RunData
from infbench.results.rundir import format_cell

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "compare_token_plots",
    "token_plots",
    "tokens_section",
]

_WARMUP_COLOR = "#9a9a9a"


# --- the tokens table ----------------------------------------------------------------------------


# header shown -> the phase entry's run.json key (shown on hover, and read with it)
_COLUMNS = (
    ("phase", "name"),
    *((f"TTFT {q}", f"ttft_ms.{q}") for q in ("p50", "p90", "p99")),
    ("sent p99", "ttft_sent_ms.p99"),
    *((f"TPOT {q}", f"tpot_ms.{q}") for q in ("p50", "p99")),
    *((f"ITL {q}", f"itl_ms.{q}") for q in ("p50", "p99")),
    ("in tokens", "input_tokens"),
    ("out tokens", "output_tokens"),
    ("tok/s", "output_tps"),
    ("peak tok/s", "peak_output_tps"),
    ("in flight", "mean_concurrency"),
    ("source", "tokens_source"),
)


def _value(phase: PhaseSummary, key: str) -> object:
    """``ttft_ms.p50`` -> phase.ttft_ms.p50 (None where the section is absent)."""
    section, _, figure = key.partition(".")
    value = getattr(phase, section)
    return getattr(value, figure) if figure and value is not None else value


def tokens_section(run: RunRecord) -> str:
    """The streamed phases' figures of run.json as they stand; "" when no phase streamed."""
    streamed = [p for p in run.phases if p.ttft_ms is not None]
    if not streamed:
        return ""
    intro = (
        "<p>Streamed phases, warm-up excluded. Milliseconds; TTFT from the intended send time, "
        "sent = TTFT from the actual send; TPOT = (last − first token) / (tokens − 1) per "
        "answer; ITL = every gap between content chunks; tok/s = output tokens per second of "
        "the phase, peak in its busiest second; in flight = mean concurrency; source = where "
        "most answers' token counts came from. The figures of run.json (hover a header for "
        "its key).</p>"
    )
    rows = [[format_cell(_value(p, key)) for _, key in _COLUMNS] for p in streamed]
    headers, keys = [c[0] for c in _COLUMNS], [c[1] for c in _COLUMNS]
    return "<h3>Tokens</h3>" + intro + table(headers, rows, table_id="tokens", titles=keys)


# --- the run page's plots ------------------------------------------------------------------------


def _streamed(data: RunData) -> bool:
    return any(p.ttft_ms is not None for p in data.run.phases)


def ttft_distribution(data: RunData) -> Plot | None:
    with figures.style():
        fig = figures.percentile_figure(
            data,
            ("ttft", "ttft_sent"),
            ("TTFT", "TTFT from send"),
            "time to first token (ms)",
            "Time to first token by percentile, per phase (HDR)",
        )
        if fig is None:
            return None
        return Plot(
            "ttft-percentiles",
            "TTFT distribution per phase",
            "Line chart: time to first token in milliseconds against percentile from 0% to "
            "99.99% on a log scale of 1/(1-p), one line per phase, TTFT from the actual send "
            "dashed",
            "TTFT counts from the intended send time, so time an answer waited in the client is "
            "in it; the dashed curve counts from the actual send (other tools' TTFT). A gap "
            "between them is the generator's own delay.",
            figures.encode(fig),
        )


def itl_distribution(data: RunData) -> Plot | None:
    with figures.style():
        fig = figures.percentile_figure(
            data,
            ("itl", "tpot"),
            ("ITL", "TPOT"),
            "time between tokens (ms)",
            "Inter-token latency (every chunk gap) and TPOT (per answer) by percentile (HDR)",
        )
        if fig is None:
            return None
        return Plot(
            "itl-percentiles",
            "ITL and TPOT distribution per phase",
            "Line chart: inter-token latency (every gap between content chunks) and time per "
            "output token (dashed, one value per answer) in milliseconds against percentile on "
            "a log scale of 1/(1-p), one colour per phase",
            "ITL holds every gap between two content chunks of every answer, so its tail shows "
            "stalls inside answers; TPOT averages each answer's gaps per token, so jitter "
            "cancels in it. An ITL median well above TPOT's means chunks carry several tokens.",
            figures.encode(fig),
        )


def _phase_means(ax: Axes, data: RunData) -> None:
    """Each phase's output_tps of run.json as a dashed line across its window."""
    windows = {w.name: w for w in data.windows}
    label = "phase mean (output_tps)"
    for phase in data.run.phases:
        window = windows.get(phase.name)
        if window is None or phase.output_tps is None:
            continue
        ax.hlines(phase.output_tps, window.start_s, window.end_s, colors="#333333",
                  linestyles="--", lw=1.2, label=label, zorder=3)  # fmt: skip
        label = "_nolegend_"  # one legend entry for all phases


def output_tokens_over_time(data: RunData) -> Plot | None:
    tokens = data.output_tokens
    if tokens is None or not len(tokens.seconds):
        return None
    x = tokens.seconds + 0.5
    names = [n for n in ["warmup", *data.phase_names] if n in tokens.by_phase]
    with figures.style():
        fig, (ax,) = figures.new_figure(4.0)
        bottom = np.zeros(len(x))
        for name in names:
            index = data.phase_names.index(name) if name in data.phase_names else -1
            color = figures.phase_color(index) if index >= 0 else _WARMUP_COLOR
            counts = tokens.by_phase[name]
            label = "warm-up" if index < 0 else name
            ax.bar(x, counts, width=0.9, bottom=bottom, color=color, label=label, zorder=2)
            bottom = bottom + counts
        _phase_means(ax, data)
        figures.shade_phases(ax, data.windows)
        ax.set_xlabel("time since the run started (s)")
        ax.set_ylabel("output tokens per second")
        figures.headroom(ax)
        if data.windows:
            ax.set_xlim(0, max(w.end_s for w in data.windows) + 1)  # as the other time plots
        draw_faults(ax, resilience_plot_data(data.run.record.resilience), False)
        ax.set_title("Output tokens per second (by completion time)")
        figures.legend_below(ax, len(names) + 1)
        return Plot(
            "output-tokens-over-time",
            "Output tokens over time",
            "Stacked bar chart: output tokens per second of completion, coloured by phase, with "
            "each phase's mean output tokens per second as a dashed line",
            "Each answer's output tokens (from requests.csv.gz) in the second it ended, failed "
            "answers included, as the phase's output_tps counts them; the phase's highest bar is "
            "its peak_output_tps. Bursts of completions show as tall bars.",
            figures.encode(fig),
        )


def token_plots(
    data: RunData, why: Callable[[str, str], str]
) -> list[tuple[str, Plot | None, str]]:
    """The run page's plots of a streamed run, in page order; none for a run that did not
    stream. ``why(file, otherwise)`` words the note shown for an absent plot."""
    if not _streamed(data):
        return []
    hlog, rows = "latency.hlog", "requests.csv.gz"
    return [
        ("TTFT distribution", ttft_distribution(data), why(hlog, "no answer with a token")),
        ("ITL distribution", itl_distribution(data), why(hlog, "no answer with two chunks")),
        ("Output tokens over time", output_tokens_over_time(data), why(rows, "no answers")),
    ]


# --- the comparison page -------------------------------------------------------------------------


TTFT_BY_PERCENTILE = PercentileFigure(
    "ttft",
    "ttft_sent",
    "TTFT",
    "TTFT from send",
    "time to first token (ms)",
    "lower right",  # the curves start high: room below
    "compare-ttft-percentiles",
    "Time to first token by percentile per phase: base vs candidate",
    "TTFT distributions, base vs candidate",
    "Line charts, one per streamed phase: time to first token in milliseconds against "
    "percentile on a log scale of 1/(1-p), base in blue and candidate in orange, TTFT "
    "from the actual send dashed",
    "A candidate curve below the base reaches its first token sooner at that "
    "percentile. The ttft rows of the verdict table say which differences are beyond "
    "noise.",
)


def compare_token_plots(
    base: RunData, cand: RunData, phases: Sequence[str]
) -> list[tuple[str, Plot | None]]:
    """TTFT base vs candidate when either run streamed (absent, with a note, unless both did);
    nothing for two runs that did not stream."""
    if not base.distributions["ttft"] and not cand.distributions["ttft"]:
        return []
    return [("TTFT distributions", compare_by_percentile(base, cand, phases, TTFT_BY_PERCENTILE))]
