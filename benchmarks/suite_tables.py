"""The suite's results as markdown: tables with ratios, the targets met or not, and the block of
docs/performance.md between the markers, replaced on every run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BEGIN = "<!-- benchmarks:begin (written by benchmarks/run.py; edits inside are overwritten) -->"
END = "<!-- benchmarks:end -->"

TARGETS = {
    "default_vs_bare": 0.6,
    "fast_vs_wrk": 0.3,
    "fast_vs_locust": 5.0,
    "rss_growth_mb": 50.0,
    "compare_s": 5.0,
}


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _per_core(row: dict[str, Any]) -> float | None:
    return row["rps"] / row["cores"] if "rps" in row else None


def _closed_table(results: dict[str, Any]) -> tuple[list[str], dict[str, float | None]]:
    rows: list[dict[str, Any]] = results.get("closed", [])
    by_tool = {row["tool"]: row for row in rows}
    wrk = _per_core(by_tool["wrk"]) if "wrk" in by_tool else None
    locust = _per_core(by_tool["locust"]) if "locust" in by_tool else None
    lines = [
        "| generator | processes | cores | req/s | req/s per core | CPU µs/req "
        "| ÷ wrk | ÷ Locust |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    ratios: dict[str, float | None] = {}
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['tool']} | | | not measured: {_one_line(row['error'])} | | | | |")
            continue
        per_core = _per_core(row)
        vs_wrk = per_core / wrk if per_core and wrk else None
        vs_locust = per_core / locust if per_core and locust else None
        ratios[row["tool"]] = vs_wrk
        ratios[row["tool"] + " ÷ locust"] = vs_locust
        note = f" ({row['errors']})" if row.get("errors") else ""
        lines.append(
            f"| {row['tool']}{note} | {row['processes']} | {row['cores']} | {_num(row['rps'])} | "
            f"{_num(per_core)} | {_num(row['cpu_us_per_request'], 1)} | {_num(vs_wrk, 2)} | "
            f"{_num(vs_locust, 2)} |"
        )
    return lines, ratios


def _one_line(text: str) -> str:
    return " ".join(text.split())[:160].replace("|", "/")


def _ceilings(results: dict[str, Any]) -> list[dict[str, Any]]:
    open_loop = results.get("open")
    return list(open_loop.get("ceilings", [])) if isinstance(open_loop, dict) else []


def _ceiling(results: dict[str, Any], generator: str, processes: int) -> float | None:
    rows = _ceilings(results)
    found = (r for r in rows if r["generator"] == generator and r["processes"] == processes)
    return next((r["ceiling"] for r in found), None)


def _vs_bare(results: dict[str, Any], generator: str, processes: int) -> float | None:
    """A generator's ceiling ÷ the bare generator's, same process count (0 when none held)."""
    bare, own = _ceiling(results, "bare", processes), _ceiling(results, generator, processes)
    searched = any(r["generator"] == generator for r in _ceilings(results))
    if not bare or not searched:
        return None
    return (own or 0.0) / bare


def _short_rate(rate: float) -> str:
    return f"{rate / 1000:.3g}k" if rate >= 1000 else f"{rate:.0f}"


def _levels_text(levels: list[dict[str, Any]]) -> str:
    marks = (
        _short_rate(r["rate"]) + ("✓" if r["held"] else "✗") + ("²" if r["attempts"] > 1 else "")
        for r in levels
    )
    broken = [r["error"] for r in levels if "error" in r]
    why = f" ({len(broken)} did not run: {_one_line(broken[-1])[:120]})" if broken else ""
    return " ".join(marks) + why


def _open_table(results: dict[str, Any]) -> list[str]:
    if isinstance(results.get("open"), list):
        return ["Measured at fixed rates by an older suite; rerun for the open-loop ceilings."]
    lines = [
        "| generator | processes | cores | ceiling req/s | per core | ÷ bare | lag p99 ms "
        "| lowest failed | search | levels (✓ held, ✗ failed, ² 2nd try) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for row in _ceilings(results):
        name = "bare generator" if row["generator"] == "bare" else f"infbench {row['generator']}"
        ceiling, cores = row["ceiling"], row["cores"]
        ratio = _vs_bare(results, row["generator"], row["processes"])
        held = _num(ceiling) if ceiling else "none held"
        lines.append(
            f"| {name} | {row['processes']} | {cores} | {held} "
            f"| {_num(ceiling / cores if ceiling else None)} | {_num(ratio, 2)} "
            f"| {_num(row['lag_p99_ms'], 3)} | {_num(row['lowest_failed'])} "
            f"| {row['end']}, {len(row['levels'])} levels, {row['seconds']:.0f} s "
            f"| {_levels_text(row['levels'])} |"
        )
    return lines


def _memory_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| run | requests | req/s | RSS at end of load MB | peak RSS MB | wall s |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for row in results.get("memory", []):
        label = f"fast ×1, closed loop, {row['requests']:,} requests"
        if "error" in row:
            lines.append(f"| {label} | not measured: {_one_line(row['error'])} | | | | |")
            continue
        lines.append(
            f"| {label} | {row['completed']:,} | {_num(row['rps'])} | {_num(row['rss_end_mb'], 1)} "
            f"| {_num(row['rss_peak_mb'], 1)} | {_num(row['wall_s'], 1)} |"
        )
    return lines


def _analysis_table(results: dict[str, Any]) -> list[str]:
    analysis = results.get("analysis") or {}
    size = f"{analysis['requests']:,}" if analysis.get("requests") else "?"
    lines = ["| task | wall seconds |", "|---|--:|"]
    labels = {
        "startup": "`infbench --version` (Python start-up and imports, included below)",
        "summarize": f"`infbench report` of one {size}-request run (HTML report)",
        "compare": f"`infbench compare --format json` of two {size}-request runs",
    }
    for key, label in labels.items():
        entry = analysis.get(key)
        if entry is None:
            lines.append(f"| {label} | not measured |")
        elif entry["error"]:
            lines.append(f"| {label} | not measured: {_one_line(entry['error'])} |")
        else:
            lines.append(f"| {label} | {entry['seconds']:.2f} |")
    return lines


def _default_sender(results: dict[str, Any]) -> tuple[str, str]:
    """(measured, verdict) of the default sender (auto) against the bare generator, ×1."""
    open_loop = results.get("open")
    if not isinstance(open_loop, dict):
        return "no open-loop ceilings in these results", "not measured"
    bare = _ceiling(results, "bare", 1)
    if "auto" not in open_loop.get("senders", []):
        others = ", ".join(
            f"{s} {_num(_vs_bare(results, s, 1), 2)} ×" for s in open_loop.get("senders", [])
        )
        return f"`client.sender: auto` not accepted by this infbench yet ({others})", "not measured"
    ratio = _vs_bare(results, "auto", 1)
    if ratio is None:
        return "the bare generator held no level", "not measured"
    measured = f"{_num(_ceiling(results, 'auto', 1))} ÷ {_num(bare)} req/s = {ratio:.2f} ×"
    ends = {r["end"] for r in _ceilings(results) if r["generator"] in ("bare", "auto")}
    if ends - {"precision"}:
        measured += f" (a search ended by {'/'.join(sorted(ends - {'precision'}))})"
    return measured, _verdict(ratio, TARGETS["default_vs_bare"])


def _rss_growth(results: dict[str, Any]) -> tuple[str, float | None]:
    memory = {row["requests"]: row for row in results.get("memory", []) if "error" not in row}
    if 1_000_000 not in memory or 10_000_000 not in memory:
        return "needs the 1M and 10M runs (full run with --ten-million)", None
    one, ten = memory[1_000_000]["rss_end_mb"], memory[10_000_000]["rss_end_mb"]
    return f"{ten - one:,.1f} MB (1M: {one:,.1f} MB, 10M: {ten:,.1f} MB)", ten - one


def _verdict(value: float | None, target: float, higher: bool = True) -> str:
    if value is None:
        return "not measured"
    return "**met**" if (value >= target if higher else value < target) else "**not met**"


def targets(results: dict[str, Any], ratios: dict[str, float | None]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for each target of design.md §12."""
    t = TARGETS
    vs_wrk, vs_locust = ratios.get("infbench fast ×1"), ratios.get("infbench fast ×1 ÷ locust")
    growth_text, growth = _rss_growth(results)
    compare = ((results.get("analysis") or {}).get("compare") or {}).get("seconds")
    one_m = (results.get("analysis") or {}).get("requests") == 1_000_000
    rows = [
        ("default sender (auto) ≥ 0.6 × bare generator's open-loop ceiling, 1 process",
         *_default_sender(results)),
        ("fast ≥ 0.3 × wrk closed loop per core", f"{_num(vs_wrk, 2)} ×",
         _verdict(vs_wrk, t["fast_vs_wrk"])),
        ("fast ≥ 5 × Locust per core", f"{_num(vs_locust, 2)} ×",
         _verdict(vs_locust, t["fast_vs_locust"])),
        ("RSS grows < 50 MB from 1M to 10M requests", growth_text,
         _verdict(growth, t["rss_growth_mb"], higher=False)),
        ("compare two 1M-request runs < 5 s", f"{_num(compare, 2)} s",
         _verdict(compare if one_m else None, t["compare_s"], higher=False)),
    ]  # fmt: skip
    return rows


def _search(results: dict[str, Any]) -> dict[str, Any]:
    open_loop = results.get("open")
    return dict(open_loop.get("search", {})) if isinstance(open_loop, dict) else {}


def _open_caption(search: dict[str, Any]) -> str:
    if not search:
        return "**Open-loop ceiling**:"
    return (
        "**Open-loop ceiling** (the highest constant rate held: lag p99 < 1 ms, every arrival "
        f"completed, no error; levels of {search['level_s']:g} s after a 1 s warm-up, doubling "
        f"from {search['start']:,.0f}/s, then bisecting to within {search['precision']:.0%}, "
        f"≤ {search['budget_s']:.0f} s per generator; ÷ bare = ceiling ÷ the bare generator's "
        "at the same process count):"
    )


def _or_not_run(lines: list[str], results: dict[str, Any], section: str) -> list[str]:
    if section in results:
        return lines
    return [f"Not run this time (`--sections` left out {section})."]


def render(results: dict[str, Any]) -> str:
    machine, settings = results["machine"], results["settings"]
    closed, ratios = _closed_table(results)
    load = ", ".join(f"{x:g}" for x in machine["load_average_at_start"])
    lines = [
        f"Measured {machine['date_utc']} on {machine['cpu_model']}, {machine['cores']} cores "
        f"(host `{machine['host']}`, Linux {machine['kernel']}, Python {machine['python']}, "
        f"infbench {machine['infbench_git'] or '?'}); load average at start {load}.",
        f"Target: {results['target']}. {results['layout'].capitalize()}.",
        f"Command: `{settings['command']}`.",
        "",
        f"**Closed loop** ({settings['connections']} connections or users, "
        f"{settings['closed_s']:g} s each; per core = req/s ÷ cores given to the generator):",
        "",
        *_or_not_run(closed, results, "closed"),
        "",
        _open_caption(_search(results)),
        "",
        *_or_not_run(_open_table(results), results, "open"),
        "",
        "**Memory** (generator RSS; closed loop, 64 connections):",
        "",
        *_or_not_run(_memory_table(results), results, "memory"),
        "",
        "**Analysis** (wall time as a user waits for it):",
        "",
        *_analysis_table(results),
        "",
        "**Targets** (docs/design.md §12):",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in targets(results, ratios)),
    ]
    if results.get("missing"):
        lines += ["", "Not installed, so not measured: " + ", ".join(results["missing"]) + "."]
    return "\n".join(lines) + "\n"


def update_doc(path: Path, block: str) -> None:
    """Replace what lies between the markers (appending them at the end the first time)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    fresh = f"{BEGIN}\n{block}{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + fresh + tail
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + fresh + "\n"
    path.write_text(text, encoding="utf-8")
