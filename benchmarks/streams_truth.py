"""Streams read true: does infbench report what the SSE sink sent, or say it could not?

    .venv/bin/python benchmarks/streams_truth.py --levels 100,200,400 --chunks 64 --seconds 8

The set-up of DESIGN §12 "streaming": benchmarks/sse_sink.py on core 1 sends every stream its
first content chunk at the next tick of one shared ``--gap-ms`` clock and one chunk per tick
after it, so what the server sent is known: a TTFT under one gap (plus the sink's own tick
lag) and chunk gaps of one gap. For each level (C concurrent closed-loop streams) it runs
``infbench run`` (default sender) pinned to core 0 and, beside it in the same sink's lifetime,
the bare aiohttp SSE reader (benchmarks/sse_reader.py). A level **reads true** when infbench's
TTFT p99 and chunk-gap (ITL) p99 are within ``--tolerance-ms`` (2 ms) of the sink's clock:
each ≤ gap + tolerance + the sink's worst tick lag + its longest tick in that level (a tick
starts up to its lag late and writes its last chunk up to its longest tick after its start;
a new stream's first content chunk, and a chunk of a stream whose place in the tick moved, is
written that much later than one gap).
What the DESIGN promises is that a level either reads true or the run says invalid, naming
the read side (loop lag); a level that does neither is a **broken promise** and is printed so.
Each reader's CPU per chunk is measured as benchmarks/suite_streams.py measures it: CPU time in
a steady window (the streams running, none opening or ending the run) ÷ the content chunks
received in it.

Prints one JSON line per level and generator (load average beside it) and, at the end, a
Markdown table (``--markdown`` writes it to a file too). Runs are short and bounded; the sink
is stopped at the end. 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from suite_env import Layout
from suite_streams import StreamSettings, StreamSink, measure_bare, measure_infbench

LAYOUT = Layout(True, (0, 1), (1,))  # the generator on core 0, the sink on core 1


def level(sink: StreamSink, concurrency: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    settings = StreamSettings(chunks=args.chunks, gap_ms=args.gap_ms, seconds=args.seconds)
    rows = []
    for generator in ("infbench", "bare"):
        before = sink.stats()
        load = os.getloadavg()[0]
        if generator == "bare":
            figures = measure_bare(LAYOUT, sink, settings, concurrency)
        else:
            figures = measure_infbench(LAYOUT, sink, settings, "auto", concurrency)
        after = sink.stats()
        # What the sink sent, by its own clock: a tick starts up to its worst lag late, and
        # a chunk is written up to its longest tick after the tick's start.
        sink_lag, sink_tick = after["worst_tick_lag_ms"], after["longest_tick_ms"]
        bound = args.gap_ms + args.tolerance_ms + sink_lag + sink_tick
        row = {"generator": generator, "concurrency": concurrency, "load_1m": load, **figures}
        row["sink_late_ticks"] = after["late_ticks"] - before["late_ticks"]
        row["sink_worst_tick_lag_ms"] = sink_lag
        row["sink_longest_tick_ms"] = sink_tick
        row["bound_ms"] = round(bound, 3)
        if "error" not in figures:
            ttft = figures.get("ttft_p99_ms")  # the bare reader keeps no TTFT
            true = figures["itl_p99_ms"] <= bound and (ttft is None or ttft <= bound)
            row["reads_true"] = true
            if generator == "infbench":
                row["promise"] = "kept" if true or not figures["valid"] else "broken"
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| streams | reader | TTFT p99 ms | ITL p99 ms | loop lag p99 ms | µs/chunk | bound ms "
        "| reads true | valid | load |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            r["concurrency"], r["generator"], r.get("ttft_p99_ms", "–"), r.get("itl_p99_ms"),
            r.get("loop_lag_p99_ms", "–"), r.get("cpu_us_per_chunk"), r["bound_ms"],
            r.get("reads_true"), r.get("valid", "–"), f"{r['load_1m']:.2f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="100,200,400")
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--tolerance-ms", type=float, default=2.0)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    settings = StreamSettings(chunks=args.chunks, gap_ms=args.gap_ms, seconds=args.seconds)
    rows = []
    with StreamSink(LAYOUT, settings, 1800) as sink:
        for concurrency in (int(c) for c in args.levels.split(",")):
            rows += level(sink, concurrency, args)
    table = markdown(rows)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
