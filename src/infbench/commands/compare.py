"""``infbench compare``: load two result directories, compare, render, gate.

Reads like the command: parse the rules first (a typo fails before any work), compare, print
the chosen view, write the JUnit and HTML files asked for, then raise GateFailed (exit 1) when
a rule failed.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from infbench.compare.comparison import CompareSettings, Comparison, compare
from infbench.compare.gate import (
    CompareRule,
    CompareRuleResult,
    GateConfig,
    check_comparison,
    parse_gate_file,
    parse_rule,
)
from infbench.errors import GateFailed, UsageError
from infbench.report.compare_views import print_table, to_json, to_junit, to_markdown
from infbench.results.rundir import load_run

__all__ = ["FORMATS", "run_compare"]

FORMATS = ("table", "markdown", "json")


def _gate_config(fail_on: list[str], gate_file: Path | None) -> GateConfig:
    rules = [parse_rule(text) for text in fail_on]
    if gate_file is None:
        return GateConfig(rules=tuple(rules))
    try:
        text = gate_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--gate {gate_file}: cannot read ({exc})") from None
    config = parse_gate_file(text, str(gate_file))
    return GateConfig(
        rules=tuple(rules) + config.rules,
        phases=config.phases,
        noise=config.noise,
        error_rate_noise=config.error_rate_noise,
    )


def _settings(seed: int, config: GateConfig) -> CompareSettings:
    """The gate file's noise thresholds win over the defaults."""
    defaults = CompareSettings()
    return CompareSettings(
        seed=seed,
        noise=defaults.noise if config.noise is None else config.noise,
        error_rate_noise=defaults.error_rate_noise
        if config.error_rate_noise is None
        else config.error_rate_noise,
    )


def _render(
    comparison: Comparison, fmt: str, gate: list[CompareRuleResult] | None, console: Console
) -> None:
    if fmt == "table":
        print_table(comparison, console, gate)
        return
    text = to_markdown(comparison, gate) if fmt == "markdown" else to_json(comparison, gate)
    # Soft wrap and no markup: the text must come out byte for byte, whatever the width.
    console.print(text, end="", markup=False, highlight=False, soft_wrap=True, emoji=False)


def _write(path: Path, text: str, flag: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write ({exc.strerror or exc})") from None


def _failure(failed: list[CompareRuleResult], total: int) -> GateFailed:
    lines = [f"gate failed: {len(failed)} of {total} rule checks"]
    lines += [f"  {result.message}" for result in failed]
    return GateFailed("\n".join(lines))


def run_compare(
    base: Path,
    candidate: Path,
    *,
    fmt: str,
    fail_on: list[str],
    gate_file: Path | None,
    junit: Path | None,
    html: Path | None,
    seed: int,
    console: Console,
) -> Comparison:
    """Compare BASE and CANDIDATE, print the view, raise GateFailed when a rule fails."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if seed < 0:
        raise UsageError(f"--seed {seed}: must be 0 or more")
    config = _gate_config(fail_on, gate_file)
    settings = _settings(seed, config)
    comparison = compare(base, candidate, settings)
    rules: tuple[CompareRule, ...] = config.rules
    gate = check_comparison(rules, comparison, config.phases) if rules else None
    _render(comparison, fmt, gate, console)
    if junit is not None:
        _write(junit, to_junit(comparison, gate or [], rules), "--junit")
    if html is not None:
        from infbench.report.html import write_compare_html  # plots: loaded only when asked

        write_compare_html(comparison, load_run(base), load_run(candidate), html)
    failed = [result for result in gate or [] if not result.passed]
    if failed:
        raise _failure(failed, len(gate or []))
    return comparison
