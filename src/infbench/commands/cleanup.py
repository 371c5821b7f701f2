"""``infbench cleanup``: stop the servers an infbench that was killed left running."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from infbench.targets.cleanup import Leftover, clean_leftovers

__all__ = ["run_cleanup"]


def run_cleanup(root: Path, console: Console) -> list[Leftover]:
    """Act on every stale pid file under ``root`` and say what was done, or that none was."""
    found = clean_leftovers(root)
    for leftover in found:
        console.print(leftover.describe(), markup=False, highlight=False)
    if not found:
        console.print(f"nothing to clean up under {root}", markup=False, highlight=False)
    return found
