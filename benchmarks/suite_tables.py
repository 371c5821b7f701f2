"""The suite's results as markdown: tables with ratios, the targets met or not, and the block of
docs/performance.md between the markers, replaced on every run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BEGIN = "<!-- benchmarks:begin (written by benchmarks/run.py; edits inside are overwritten) -->"
END = "<!-- benchmarks:end -->"

TARGETS = {
    "aiohttp_open": 8_000.0,
    "fast_open": 40_000.0,
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


def _open_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| sender | processes | cores | rate/s | achieved/s | lag p50 ms | lag p99 ms "
        "| latency p99 ms | CPU % | kept up |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in results.get("open", []):
        head = f"| {row['sender']} | {row['processes']} | {row['cores']} | {_num(row['rate'])} |"
        if "error" in row or row.get("skipped"):
            why = row.get("skipped") or f"not measured: {_one_line(row['error'])}"
            lines.append(f"{head} {why} | | | | | |")
            continue
        lines.append(
            f"{head} {_num(row['achieved_rps'])} | {_num(row['lag_p50_ms'], 3)} | "
            f"{_num(row['lag_p99_ms'], 3)} | {_num(row['latency_p99_ms'], 3)} | "
            f"{_num(row.get('generator_cpu_pct'))} | {_kept(row)} |"
        )
    return lines


def _kept(row: dict[str, Any]) -> str:
    verdict = "yes" if row["kept_up"] else "**no**"
    return verdict + (" (2nd try)" if row.get("attempts", 1) > 1 else "")


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
    size = analysis.get("requests")
    lines = ["| task | wall seconds |", "|---|--:|"]
    labels = {
        "startup": "`infbench --version` (Python start-up and imports, included below)",
        "summarize": f"`infbench report` of one {size or '?':,}-request run (HTML report)",
        "compare": f"`infbench compare --format json` of two {size or '?':,}-request runs",
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


def _best_open(results: dict[str, Any], sender: str) -> float | None:
    kept = [
        r["rate"] / r["cores"]
        for r in results.get("open", [])
        if r["sender"] == sender and r["processes"] == 1 and r.get("kept_up")
    ]
    return max(kept) if kept else None


def _kept_text(results: dict[str, Any], best: float | None) -> str:
    if "open" not in results:
        return "open loop not run"
    if best is None:
        return "no rate tried was kept up"
    return f"{best:,.0f} req/s (highest rate tried that was kept up)"


def _open_verdict(results: dict[str, Any], best: float | None, target: float) -> str:
    if "open" not in results:
        return "not measured"
    return "**not met**" if best is None else _verdict(best, target)


def _verdict(value: float | None, target: float, higher: bool = True) -> str:
    if value is None:
        return "not measured"
    return "**met**" if (value >= target if higher else value < target) else "**not met**"


def targets(results: dict[str, Any], ratios: dict[str, float | None]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for each target of the issue."""
    t = TARGETS
    aiohttp, fast = _best_open(results, "aiohttp"), _best_open(results, "fast")
    vs_wrk, vs_locust = ratios.get("infbench fast ×1"), ratios.get("infbench fast ×1 ÷ locust")
    memory = {row["requests"]: row for row in results.get("memory", []) if "error" not in row}
    growth = None
    if 1_000_000 in memory and 10_000_000 in memory:
        growth = memory[10_000_000]["rss_end_mb"] - memory[1_000_000]["rss_end_mb"]
    compare = ((results.get("analysis") or {}).get("compare") or {}).get("seconds")
    one_m = (results.get("analysis") or {}).get("requests") == 1_000_000
    rows = [
        ("aiohttp ≥ 8k req/s per core open loop, lag p99 < 1 ms", _kept_text(results, aiohttp),
         _open_verdict(results, aiohttp, t["aiohttp_open"])),
        ("fast ≥ 40k req/s per core open loop, lag p99 < 1 ms", _kept_text(results, fast),
         _open_verdict(results, fast, t["fast_open"])),
        ("fast ≥ 0.3 × wrk closed loop per core", f"{_num(vs_wrk, 2)} ×",
         _verdict(vs_wrk, t["fast_vs_wrk"])),
        ("fast ≥ 5 × Locust per core", f"{_num(vs_locust, 2)} ×",
         _verdict(vs_locust, t["fast_vs_locust"])),
        ("RSS growth < 50 MB from 1M to 10M requests",
         f"{_num(growth, 1)} MB" if growth is not None else "10M run not done (--ten-million)",
         _verdict(growth, t["rss_growth_mb"], higher=False)),
        ("compare two 1M-request runs < 5 s", f"{_num(compare, 2)} s",
         _verdict(compare if one_m else None, t["compare_s"], higher=False)),
    ]  # fmt: skip
    return rows


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
        f"**Open loop** (constant rate, {settings['open_s']:g} s after a 1 s warm-up; kept up = "
        "lag p99 < 1 ms, every arrival completed, no error):",
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
