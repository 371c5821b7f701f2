"""``infbench report``: render a run's report.html again, and open it in a browser if asked."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from infbench.report.html import write_run_html

__all__ = ["render_report"]


def render_report(run_dir: Path, console: Console, *, open_browser: bool = False) -> Path:
    """Write ``run_dir/report.html`` from the result files; ResultFormatError when damaged."""
    path = write_run_html(run_dir)
    console.print(f"report: {path}", markup=False, highlight=False)
    if open_browser:
        import webbrowser  # only when asked: it probes for browsers at import

        webbrowser.open(path.resolve().as_uri())
    return path
