"""infbench's own benchmark suite: the generator next to wrk, Locust, bare generator and reader.

    .venv/bin/python benchmarks/run.py                 # ~25-30 minutes; updates docs/performance.md
    .venv/bin/python benchmarks/run.py --ten-million   # adds the 10M-request memory run (~15 min)
    .venv/bin/python benchmarks/run.py --quick --no-write   # a ~8-minute smoke run, doc untouched
    .venv/bin/python benchmarks/run.py --sections streams   # streaming only (~7 minutes)

See benchmarks/README.md for what is measured and how; docs/performance.md for the results.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import signal
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from suite_ceiling import Search, open_ceilings
from suite_env import (
    INSTALL_HINTS,
    ROOT,
    Layout,
    Target,
    Tools,
    cpu_layout,
    find_tools,
    machine_info,
)
from suite_runs import (
    run_infbench_closed,
    run_locust,
    run_long,
    run_wrk,
    time_analysis,
)
from suite_streams import StreamSettings, streams_section
from suite_tables import BEGIN, END, STREAMS_BEGIN, STREAMS_END, render, render_streams, update_doc

SENDERS = ("aiohttp", "httpx", "fast")
TARGET_SECTIONS = ("closed", "open", "memory")  # these measure against nginx (or the sink)
SECTIONS = (*TARGET_SECTIONS, "streams")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs and 100k-request memory runs"
    )
    parser.add_argument(
        "--ten-million", action="store_true", help="also the 10M-request memory run"
    )
    parser.add_argument("--target", choices=("auto", "nginx", "sink"), default="auto")
    parser.add_argument(
        "--closed-seconds", type=float, help="per closed-loop run (default 10; quick 3)"
    )
    parser.add_argument(
        "--open-seconds", type=float, help="per open-loop level, after 1 s warm-up (3; quick 1)"
    )
    parser.add_argument(
        "--open-budget",
        type=float,
        help="seconds of search per open-loop generator (150; quick 20)",
    )
    parser.add_argument("--start-rate", type=float, default=1000.0, help="first open-loop level")
    parser.add_argument(
        "--precision", type=float, default=0.10, help="bisect until within this fraction"
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--sections", default=",".join(SECTIONS), help="closed,open,memory,streams")
    parser.add_argument(
        "--stream-chunks", type=int, default=100, help="content chunks per streamed answer"
    )
    parser.add_argument(
        "--stream-gap-ms", type=float, default=10.0, help="between content chunks (the sink's tick)"
    )
    parser.add_argument(
        "--stream-concurrency",
        type=int,
        default=128,
        help="streams for the CPU-per-chunk figures, and the search's first level",
    )
    parser.add_argument(
        "--stream-seconds", type=float, help="per streaming level (default 5; quick 2)"
    )
    parser.add_argument(
        "--stream-budget", type=float, help="seconds of search per streaming reader (90; quick 20)"
    )
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the doc alone")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="measure nothing: rewrite the doc from saved figures",
    )
    return parser.parse_args(argv)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _closed(
    tools: Tools, layout: Layout, url: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    seconds, connections = args.closed_seconds, args.connections
    rows: list[dict[str, Any]] = []
    if tools.wrk:
        _say("closed loop: wrk")
        rows.append(run_wrk(tools, layout, url, seconds, connections))
    if tools.locust:
        _say("closed loop: Locust FastHttpUser")
        rows.append(run_locust(tools, layout, url, seconds, connections))
    for sender in SENDERS:
        for processes in (1, 2):
            _say(f"closed loop: infbench {sender} ×{processes}")
            rows.append(run_infbench_closed(layout, url, sender, processes, seconds, connections))
    return rows


def _open(layout: Layout, url: str, args: argparse.Namespace) -> dict[str, Any]:
    search = Search(
        start=args.start_rate,
        level_s=args.open_seconds,
        budget_s=args.open_budget,
        precision=args.precision,
        connections=args.connections,
    )
    rows, senders = open_ceilings(layout, url, search, _say)
    return {"search": search.describe(), "senders": senders, "ceilings": rows}


def _memory(
    layout: Layout, url: str, args: argparse.Namespace, keep: Path, closed: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    size = 100_000 if args.quick else 1_000_000
    fast = next((r for r in closed if r.get("tool") == "infbench fast ×1" and "rps" in r), None)
    if fast is None:
        _say("memory: measuring the fast sender's closed-loop rate to size the long runs")
        fast = run_infbench_closed(layout, url, "fast", 1, 3.0, args.connections)
    hint = float(fast.get("rps") or 1000.0)
    rows: list[dict[str, Any]] = []
    _say(f"memory: {size:,} requests, twice (the second is the other side of the compare)")
    first = run_long(layout, url, size, args.connections, keep / "first", hint)
    second = run_long(layout, url, size, args.connections, keep / "second", hint)
    rows.append(first)
    if args.ten_million:
        _say("memory: 10,000,000 requests")
        rows.append(run_long(layout, url, 10_000_000, args.connections, keep / "ten", hint))
    analysis: dict[str, Any] = {"requests": size}
    if "result_dir" in first and "result_dir" in second:
        _say("analysis: summarize and compare")
        analysis.update(time_analysis(Path(first["result_dir"]), Path(second["result_dir"])))
    return rows, analysis


def _target_kind(choice: str, tools: Tools) -> str:
    if choice == "nginx" and tools.nginx is None:
        sys.exit("nginx is not installed: " + INSTALL_HINTS["nginx"])
    return "nginx" if choice == "nginx" or (choice == "auto" and tools.nginx) else "sink"


def _streams(layout: Layout, args: argparse.Namespace) -> dict[str, Any]:
    settings = StreamSettings(
        chunks=args.stream_chunks,
        gap_ms=args.stream_gap_ms,
        seconds=args.stream_seconds,
        concurrency=args.stream_concurrency,
        budget_s=args.stream_budget,
        precision=args.precision,
    )
    return streams_section(layout, settings, _say)


def _publish(results: dict[str, Any], args: argparse.Namespace) -> None:
    """The main block when a section against the target ran, the streaming block when it ran;
    each replaces only its own markers' block."""
    blocks = []
    if "target" in results:
        blocks.append((render(results), (BEGIN, END)))
    if "streams" in results:
        blocks.append((render_streams(results), (STREAMS_BEGIN, STREAMS_END)))
    for block, (begin, end) in blocks:
        print(block)
        if not args.no_write:
            update_doc(args.doc, block, begin, end)
    if blocks and not args.no_write:
        _say(f"updated {args.doc}")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)  # unwinds like Ctrl-C: the target and every child are stopped


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if args.render is not None:
        _publish(json.loads(args.render.read_text()), args)
        return 0
    args.closed_seconds = args.closed_seconds or (3.0 if args.quick else 10.0)
    args.open_seconds = args.open_seconds or (1.0 if args.quick else 3.0)
    args.open_budget = args.open_budget or (20.0 if args.quick else 150.0)
    args.stream_seconds = args.stream_seconds or (2.0 if args.quick else 5.0)
    args.stream_budget = args.stream_budget or (20.0 if args.quick else 90.0)
    sections = set(args.sections.split(","))
    if unknown := sections - set(SECTIONS):
        sys.exit(f"unknown --sections {','.join(sorted(unknown))}; known: {','.join(SECTIONS)}")
    tools = find_tools()
    for name in tools.missing():
        _say(f"missing: {name} (not measured); install: {INSTALL_HINTS[name]}")
    layout = cpu_layout(tools)
    kind = _target_kind(args.target, tools) if sections & set(TARGET_SECTIONS) else None
    command = (
        "python benchmarks/run.py"
        + (" " + shlex.join(argv if argv is not None else sys.argv[1:])).rstrip()
    )
    results: dict[str, Any] = {
        "machine": machine_info(tools),
        "settings": {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                     "closed_s": args.closed_seconds, "open_s": args.open_seconds,
                     "open_budget_s": args.open_budget, "stream_s": args.stream_seconds,
                     "stream_budget_s": args.stream_budget,
                     "command": command},
        "layout": layout.describe(),
        "missing": tools.missing(),
    }  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="infbench-bench-keep-") as keep,
        Target(kind, tools, layout) if kind else contextlib.nullcontext() as target,
    ):
        url = ""  # no section against the target: none was started
        if target is not None:
            url = target.url
            results["target"] = target.describe() + f" on {url}"
            _say(f"target: {results['target']}; {layout.describe()}")
        if "closed" in sections:
            results["closed"] = _closed(tools, layout, url, args)
        if "open" in sections:
            results["open"] = _open(layout, url, args)
        if "memory" in sections:
            closed = results.get("closed", [])
            memory = _memory(layout, url, args, Path(keep), closed)
            results["memory"], results["analysis"] = memory
        if "streams" in sections:
            results["streams"] = _streams(layout, args)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    raw = ROOT / "benchmarks" / "results" / f"{stamp}.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(results, indent=2) + "\n")
    _say(f"raw figures: {raw}")
    _publish(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
