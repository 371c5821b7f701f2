"""The suite's results as markdown: tables with ratios, the targets met or not, and the block of
docs/performance.md between the markers, replaced on every run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BEGIN = "<!-- benchmarks:begin (written by benchmarks/run.py; edits inside are overwritten) -->"
END = "<!-- benchmarks:end -->"
STREAMS_BEGIN = (
    "<!-- benchmarks-streams:begin (written by benchmarks/run.py --sections streams; "
    "edits inside are overwritten) -->"
)
STREAMS_END = "<!-- benchmarks-streams:end -->"

TARGETS = {
    "default_vs_bare": 0.6,
    "fast_vs_wrk": 0.3,
    "fast_vs_locust": 5.0,
    "rss_growth_mb": 50.0,
    "compare_s": 5.0,
    "stream_cpu_us_per_chunk": 8.0,
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


def _measured_on(results: dict[str, Any]) -> str:
    machine = results["machine"]
    load = ", ".join(f"{x:g}" for x in machine["load_average_at_start"])
    return (
        f"Measured {machine['date_utc']} on {machine['cpu_model']}, {machine['cores']} cores "
        f"(host `{machine['host']}`, Linux {machine['kernel']}, Python {machine['python']}, "
        f"infbench {machine['infbench_git'] or '?'}); load average at start {load}."
    )


def render(results: dict[str, Any]) -> str:
    settings = results["settings"]
    closed, ratios = _closed_table(results)
    lines = [
        _measured_on(results),
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


def update_doc(path: Path, block: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace what lies between the markers (appending them at the end the first time)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    fresh = f"{begin}\n{block}{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        text = head + fresh + tail
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + fresh + "\n"
    path.write_text(text, encoding="utf-8")


# --- streaming (benchmarks/suite_streams.py) ------------------------------------------------------


def _reader_name(row: dict[str, Any]) -> str:
    if row["generator"] == "bare":
        return "bare aiohttp reader"
    used = row.get("sender")
    via = f" ({used})" if used and used != row["generator"] else ""
    return f"infbench {row['generator']}{via}"


def _stream_cpu_table(streams: dict[str, Any]) -> list[str]:
    rows = streams.get("cpu", [])
    bare: dict[str, Any] = next(
        (r for r in rows if r["generator"] == "bare" and "error" not in r), {}
    )
    lines = [
        "| reader | chunks/s | CPU µs/chunk | ÷ bare | recorder process µs/chunk | ITL p50 ms "
        "| ITL p99 ms | kept up | sink µs/chunk | sink load | sink ticks late |",
        "|---|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|",
    ]
    for row in rows:
        name = _reader_name(row)
        if "error" in row:
            lines.append(f"| {name} | not measured: {_one_line(row['error'])} | | | | | | | | | |")
            continue
        cpu, base = row["cpu_us_per_chunk"], bare.get("cpu_us_per_chunk")
        ratio = cpu / base if cpu and base else None
        recorder = row.get("recorder_us_per_chunk")
        kept = "yes" if row["held"] else "**no**"
        if row["errors"]:
            kept += f" ({row['errors']} failed)"
        lines.append(
            f"| {name} | {_num(row['chunks_per_s'])} | {_num(cpu, 1)} | {_num(ratio, 2)} "
            f"| {_num(recorder, 1) if row['generator'] != 'bare' else 'none'} "
            f"| {_num(row['itl_p50_ms'], 2)} | {_num(row['itl_p99_ms'], 2)} | {kept} "
            f"| {_num(row['sink_cpu_us_per_chunk'], 1)} | {_num(row['sink_load'], 2)} "
            f"| {row['sink_late_ticks']} |"
        )
    return lines


def _stream_levels_text(levels: list[dict[str, Any]]) -> str:
    marks = (
        f"{r['concurrency']}"
        + ("✓" if r["held"] else "✗")
        + ("ˢ" if r.get("sink_bound") else "")
        + ("²" if r.get("attempts", 1) > 1 else "")
        for r in levels
    )
    broken = [r["error"] for r in levels if "error" in r]
    why = f" ({len(broken)} did not run: {_one_line(broken[-1])[:120]})" if broken else ""
    return " ".join(marks) + why


def _stream_ceiling_table(streams: dict[str, Any]) -> list[str]:
    rows = streams.get("ceilings", [])
    bare_row: dict[str, Any] = next((r for r in rows if r["generator"] == "bare"), {})
    bare = bare_row.get("most_streams")
    lines = [
        "| reader | most streams | chunks/s there | ÷ bare | CPU µs/chunk there "
        "| ITL p99 ms there | fewest failed | search | levels (✓ held, ✗ failed, ˢ sink-bound, "
        "² 2nd try) |",
        "|---|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for row in rows:
        most, at = row["most_streams"], row["at_most"]
        ratio = (most or 0) / bare if bare else None
        # a search the sink ended found a lower bound; a ratio to one is an upper bound
        low, low_bare = row["end"] == "sink", bare_row.get("end") == "sink"
        bound = "" if row is bare_row or low == low_bare else ("≥ " if low else "≤ ")
        shown = (("≥ " if low else "") + _num(most)) if most else "none held"
        used = next((r.get("sender") for r in row["levels"] if r.get("sender")), None)
        lines.append(
            f"| {_reader_name({**row, 'sender': used})} | {shown} | {_num(at['chunks_per_s'])} "
            f"| {bound if ratio is not None else ''}{_num(ratio, 2)} "
            f"| {_num(at['cpu_us_per_chunk'], 1)} "
            f"| {_num(at['itl_p99_ms'], 2)} | {_num(row['fewest_failed'])} "
            f"| {row['end']}, {len(row['levels'])} levels, {row['seconds']:.0f} s "
            f"| {_stream_levels_text(row['levels'])} |"
        )
    return lines


def stream_target(streams: dict[str, Any]) -> tuple[str, str, str]:
    """(target, measured, verdict): CPU per received chunk on the default sender (auto)."""
    limit = TARGETS["stream_cpu_us_per_chunk"]
    target = f"streaming: generator CPU per received chunk ≤ {limit:g} µs on the default sender"
    row = next((r for r in streams.get("cpu", []) if r["generator"] == "auto"), None)
    if row is None or "error" in row or row["cpu_us_per_chunk"] is None:
        return target, "not measured", "not measured"
    cpu, recorder = row["cpu_us_per_chunk"], row.get("recorder_us_per_chunk")
    measured = (
        f"{cpu:.1f} µs in the generator process ({row.get('sender', 'auto')}, "
        f"{row['concurrency']} streams)"
    )
    if recorder is not None:
        measured += f"; {recorder:.1f} µs more in the recorder process"
    ceilings = streams.get("ceilings", [])
    ceiling: dict[str, Any] = next((r for r in ceilings if r["generator"] == "auto"), {})
    at_most = (ceiling.get("at_most") or {}).get("cpu_us_per_chunk")
    if at_most is not None:
        measured += f"; {at_most:.1f} µs at its most streams held ({ceiling['most_streams']})"
    return target, measured, _verdict(cpu, limit, higher=False)


def render_streams(results: dict[str, Any]) -> str:
    streams, settings = results["streams"], results["streams"]["settings"]
    concurrency, seconds = settings["concurrency"], settings["seconds"]
    lines = [
        _measured_on(results),
        f"Sink: {streams['sink']}. {results['layout'].capitalize()}.",
        f"Command: `{results['settings']['command']}`.",
        "",
        f"**CPU per received chunk** ({concurrency} concurrent streams, closed loop, "
        f"{seconds:g} s; one token per content chunk; ÷ bare = CPU per chunk ÷ the bare "
        "reader's, lower is better):",
        "",
        *_stream_cpu_table(streams),
        "",
        f"**Most concurrent streams one core holds** (ITL p99 ≤ {settings['itl_bound_ms']:g} ms, "
        f"≥ 90 % of the sink's pace of streams × {1000 / settings['gap_ms']:g} chunks/s, no "
        f"failed stream; levels of {seconds:g} s doubling from {concurrency}, then bisecting to "
        f"within {settings['precision']:.0%}, ≤ {settings['budget_s']:.0f} s per reader; "
        "÷ bare = most streams ÷ the bare reader's):",
        "",
        *_stream_ceiling_table(streams),
        "",
        "| target (docs/design.md §12) | measured | |",
        "|---|---|---|",
        "| {} | {} | {} |".format(*stream_target(streams)),
    ]
    return "\n".join(lines) + "\n"
