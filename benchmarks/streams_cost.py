"""CPU per received chunk, side by side (DESIGN §12 "streaming": ≤ 8 µs on the default sender).

    .venv/bin/python benchmarks/streams_cost.py --levels 128,400 --rounds 3
    .venv/bin/python benchmarks/streams_cost.py --baseline /tmp/old   # another checkout beside

One SSE sink (benchmarks/sse_sink.py, 100 one-token chunks per answer, one every 10 ms) on core
1 for the whole run; on core 0, for each level of C concurrent closed-loop streams, round after
round in turn: ``infbench run`` with the default sender, the floor (``sse_reader.py --floor``:
read and count, nothing decoded), the bare aiohttp SSE reader (``sse_reader.py``) and, with
``--baseline``, infbench from another checkout's ``src``. Each figure is CPU time in a steady
window (after the streams started, before the run ends) ÷ the content chunks received in it,
as benchmarks/suite_streams.py measures it. Printed: each try, then per level and reader the
median over the rounds and its range, ÷ the floor and ÷ the bare reader of the same rounds.
A shared machine moves single figures by ±20 %: the rounds interleave the readers so that a
quiet or a busy minute falls on all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from suite_env import Layout
from suite_streams import StreamSettings, StreamSink, measure_bare, measure_infbench

LAYOUT = Layout(True, (0, 1), (1,))  # the generator on core 0, the sink on core 1


def with_source(source: Path | None, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run`` with infbench imported from ``source`` (another checkout's src), if given."""
    before = os.environ.get("PYTHONPATH")
    if source is not None:
        os.environ["PYTHONPATH"] = str(source)
    try:
        return run()
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("--levels", default="128,400", help="concurrent streams, comma-separated")
    cli.add_argument("--rounds", type=int, default=3)
    cli.add_argument("--seconds", type=float, default=6.0, help="each run's phase")
    cli.add_argument("--baseline", type=Path, help="another checkout, run beside as 'baseline'")
    args = cli.parse_args()
    settings = StreamSettings(seconds=args.seconds)
    levels = [int(level) for level in args.levels.split(",")]
    readers: dict[str, Callable[[StreamSink, int], dict[str, Any]]] = {
        "infbench": lambda sink, c: measure_infbench(LAYOUT, sink, settings, "auto", c),
        "floor": lambda sink, c: measure_bare(LAYOUT, sink, settings, c, ["--floor"]),
        "bare": lambda sink, c: measure_bare(LAYOUT, sink, settings, c),
    }
    if args.baseline is not None:
        source = args.baseline / "src"
        readers["baseline"] = lambda sink, c: with_source(
            source, lambda: measure_infbench(LAYOUT, sink, settings, "auto", c)
        )
    figures: dict[tuple[int, str], list[float]] = {}
    lifetime = (len(readers) * (args.seconds + 30) * args.rounds + 60) * len(levels)
    with StreamSink(LAYOUT, settings, lifetime) as sink:
        for round_ in range(args.rounds):
            for level in levels:
                for name, measure in readers.items():
                    row = measure(sink, level)
                    print(json.dumps({"round": round_, "level": level, "reader": name, **row}))
                    if row.get("cpu_us_per_chunk") is not None and not row.get("errors"):
                        figures.setdefault((level, name), []).append(row["cpu_us_per_chunk"])
    print("\n| streams | reader | CPU µs per chunk (median) | range | ÷ floor | ÷ bare |")
    print("|---|---|---|---|---|---|")
    for level in levels:
        floor = statistics.median(figures.get((level, "floor"), [float("nan")]))
        bare = statistics.median(figures.get((level, "bare"), [float("nan")]))
        for name in readers:
            values = figures.get((level, name))
            if not values:
                print(f"| {level} | {name} | – | – | – | – |")
                continue
            median = statistics.median(values)
            print(
                f"| {level} | {name} | {median:.2f} | {min(values):.2f}–{max(values):.2f} "
                f"| {median / floor:.2f} | {median / bare:.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
