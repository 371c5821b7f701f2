"""The visual report: ``report.html`` of a run, and the HTML page of a comparison.

One self-contained file each (plots as inline PNGs, no script, no network). The run page shows
the header (scenario, status, target, environment, validity, SLOs, warnings), the per-phase
table with exactly the figures of summary.csv, and the plots of plots.py / health_plots.py.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from infbench.analysis.metrics import LATENCY_METRICS
from infbench.report.compare_html import write_compare_html
from infbench.report.page import absent, facts, figure, page, table, write_atomically
from infbench.report.server_plots import server_view_over_time
from infbench.report.server_view import measured_html
from infbench.report.token_plots import tokens_section
from infbench.report.turns_view import traffic_html
from infbench.results.records import Environment, GeneratorSummary, RunRecord, TargetSummary
from infbench.results.rundata import load_run_data
from infbench.results.rundir import (
    SERVER_COLUMNS,
    SUMMARY_COLUMNS,
    RunResult,
    load_run,
    summary_rows,
)

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["REPORT_NAME", "write_compare_html", "write_run_html", "write_run_html_quietly"]

REPORT_NAME = "report.html"

# summary.csv column -> header shown; the cells are summary.csv's own strings.
COLUMN_LABELS = {
    "phase": "phase",
    "requests": "requests",
    "ok": "ok",
    "errors": "errors",
    "offered_rps": "offered/s",
    "achieved_rps": "achieved/s",
    "p50_ms": "p50",
    "p90_ms": "p90",
    "p95_ms": "p95",
    "p99_ms": "p99",
    "p999_ms": "p99.9",
    "max_ms": "max",
    "mean_ms": "mean",
    "service_p50_ms": "svc p50",
    "service_p99_ms": "svc p99",
    "lag_p99_ms": "lag p99",
    "server_p50_ms": "srv p50",
    "server_p99_ms": "srv p99",
    "batch_size": "batch",
    "server_cpu_pct": "srv CPU %",
    "server_rss_mb": "srv RSS MB",
}


def write_run_html(run_dir: Path, out: Path | None = None) -> Path:
    """Render ``report.html`` (by default into ``run_dir``) and return its path.

    Raises ResultFormatError (exit 2) naming the file when the result directory is damaged.
    """
    from infbench.report.plots import run_plots

    run = load_run(run_dir)
    data = load_run_data(run)
    tables = _phase_section(run.record) + tokens_section(run.record)  # tokens: streamed only
    tables += measured_html(run.record)  # an LLM server's own view, GPUs, cost: when measured
    tables += traffic_html(run.record)  # sessions, TTFT by turn, a trace's lengths
    parts = [_header(run), tables, "<h2>Plots</h2>"]
    parts += [f'<p class="absent">{escape(note)}</p>' for note in data.notes]
    for title, plot, note in run_plots(data):
        parts.append(figure(plot) if plot is not None else absent(title, note))
    parts += [figure(p) for p in (server_view_over_time(data),) if p is not None]  # LLM servers
    name = run.record.scenario.name or run_dir.name
    return write_atomically(
        out or run_dir / REPORT_NAME, page(f"infbench: {name}", "\n".join(parts))
    )


def write_run_html_quietly(run_dir: Path, console: Console) -> Path | None:
    """What ``infbench run`` calls last: a report that fails to render never costs the run."""
    try:
        path = write_run_html(run_dir)
    except Exception as exc:  # plotting can fail in many ways; the results are already safe
        console.print(
            f"warning: report.html was not written ({type(exc).__name__}: {exc}); the results "
            f"are complete: render it again with `infbench report {run_dir}`",
            style="yellow",
            markup=False,
            highlight=False,
        )
        return None
    console.print(f"report: {path}", style="dim", markup=False, highlight=False)
    return path


# --- header ----------------------------------------------------------------------------------


def _status_badge(run: RunRecord) -> str:
    status = "unknown" if run.status is None else str(run.status)
    css = "ok" if status == "complete" else "warn"
    validity = (
        '<span class="badge ok">valid</span>'
        if run.valid
        else ('<span class="badge bad">INVALID</span>')
    )
    return f'<span class="badge {css}">{escape(status)}</span>{validity}'


def _header(result: RunResult) -> str:
    run, path = result.record, result.path
    timings = run.timings
    started = timings.started_utc
    when = _when(started) if isinstance(started, str) else None
    name = run.scenario.name or path.name
    title = f"<h1>{escape(name)} {_status_badge(run)}</h1>"
    duration = "?" if timings.duration_s is None else timings.duration_s
    sub = (
        f'<p class="sub">infbench run report · {escape(when or "start unknown")} · '
        f"{escape(str(duration))} s · {escape(str(path))}</p>"
    )
    cards = [_validity(run), _target_card(run), _environment_card(run), _run_card(run)]
    return (
        title + sub + '<div class="grid">' + "".join(cards) + "</div>" + _slo(run) + _warnings(run)
    )


def _when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return iso


def _validity(run: RunRecord) -> str:
    if run.valid:
        return (
            '<section class="card" id="validity"><h3 class="ok">Valid run</h3>'
            "<p>The generator kept up with its schedule: send lag within bounds, nothing "
            "dropped, generator CPU below its limit.</p></section>"
        )
    reasons = run.invalid_reasons or ("no reason recorded",)
    items = "".join(f"<li>{escape(reason)}</li>" for reason in reasons)
    return (
        '<section class="card bad" id="validity"><h3>INVALID run</h3>'
        "<p>The generator could not keep up, so its own delays are in the latencies:</p>"
        f"<ul>{items}</ul></section>"
    )


def _target_card(run: RunRecord) -> str:
    target = run.target or TargetSummary()
    startup = target.startup_s
    return facts(
        "Target",
        [
            ("kind", target.kind),
            ("url", target.base_url),
            ("command", " ".join(target.command) if target.command is not None else None),
            ("started in", f"{startup:.2f} s" if _is_number(startup) and startup else None),
            ("processes", len(target.pids) or None),
            ("metrics", target.metrics_url),
        ],
        "target",
    )


def _environment_card(run: RunRecord) -> str:
    env = run.environment or Environment()
    shown = ", ".join(f"{k} {v}" for k, v in env.versions.items() if v)
    return facts(
        "Environment",
        [
            ("host", env.host),
            ("CPU", f"{env.cpu_model} × {env.cores} cores"),
            ("OS", env.os),
            ("Python", env.python),
            ("infbench", env.infbench),
            ("versions", shown),
            ("git", env.git_sha),
        ],
        "environment",
    )


def _run_card(run: RunRecord) -> str:
    generator = run.generator or GeneratorSummary()
    return facts(
        "Run",
        [
            ("scenario file", run.scenario_path),
            ("scenario sha256", str(run.scenario_sha256 or "")[:16] or None),
            ("schedule sha256", str(run.schedule_sha256 or "")[:16] or None),
            ("seed", run.seed),
            ("generator CPU", _pct(generator.cpu_pct)),
            ("generator RSS", f"{generator.rss_mb} MB" if generator.rss_mb else None),
            ("repetitions", ", ".join(run.repetitions or ()) or None),
        ],
        "run",
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float)


def _pct(value: object) -> str | None:
    return f"{value}%" if _is_number(value) else None


def _slo_value(metric: str, value: object) -> str:
    if not isinstance(value, int | float):
        return "no data"
    if metric == "error_rate":
        return f"{value * 100:.2f}%"
    return f"{value:g} ms" if metric in LATENCY_METRICS else f"{value:g}"


def _slo(run: RunRecord) -> str:
    results = run.slo
    if not results:
        return ""
    rows, classes = [], []
    for r in results:
        metric = str(r.metric)
        rows.append(
            [
                str(r.phase),
                f"{metric} ≤ {r.threshold}",
                _slo_value(metric, r.value),
                "ok" if r.passed else "FAILED",
            ]
        )
        classes.append(["", "", "", "better" if r.passed else "worse"])
    failed = sum(1 for r in results if not r.passed)
    verdict = (
        '<span class="ok">every rule holds</span>'
        if not failed
        else f'<span class="bad">{failed} of {len(results)} checks failed</span>'
    )
    return f"<h2>SLO</h2><p>{verdict}</p>" + table(
        ["phase", "rule", "value", "result"], rows, table_id="slo", classes=classes
    )


def _warnings(run: RunRecord) -> str:
    warnings = list(run.warnings)
    if run.errors_by_kind:
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in run.errors_by_kind.items())
        warnings.insert(0, f"failed requests: {kinds}")
    if not warnings:
        return ""
    items = "".join(f'<li class="warn">{escape(w)}</li>' for w in warnings)
    return f'<h2>Warnings</h2><ul id="warnings">{items}</ul>'


# --- the per-phase table -----------------------------------------------------------------------


def _phase_section(run: RunRecord) -> str:
    """summary.csv's rows: traffic and latency in one table, the server's columns in another."""
    rows = summary_rows(run.phases, run.server)
    width = len(SUMMARY_COLUMNS)
    main = list(SUMMARY_COLUMNS)
    intro = (
        "<p>Warm-up excluded. Latencies in milliseconds from the intended send time; "
        "svc = service time (from the actual send). The same figures as summary.csv "
        "(hover a header for its column).</p>"
    )
    parts = ["<h2>Phases</h2>", intro, _table(main, [r[:width] for r in rows], "phases")]
    if any(any(cell for cell in r[width:]) for r in rows):
        server = ["phase", *SERVER_COLUMNS]
        parts.append("<h3>Server, as it measured itself (/metrics, process tree)</h3>")
        parts.append(_table(server, [[r[0], *r[width:]] for r in rows], "server-phases"))
    return "".join(parts)


def _table(columns: list[str], rows: list[list[str]], table_id: str) -> str:
    headers = [COLUMN_LABELS.get(c, c) for c in columns]
    return table(headers, rows, table_id=table_id, titles=columns)
