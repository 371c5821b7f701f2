"""How fast a burst of arrivals due at one instant leaves the generator (DESIGN §12, issue 14).

Replays a trace of bursts — ``--size`` arrivals with the same timestamp, every ``--every``
seconds — through ``infbench run`` against the suite's target (nginx, else infbench's loopback
sink), then reads the raw rows: per burst, the spread of its send stamps (last sent − first
sent), and every request's lag. Reports the spread's p50/p99/max per sender.

    .venv/bin/python benchmarks/burst.py                        # fast and aiohttp, 20 per burst
    .venv/bin/python benchmarks/burst.py --senders fast --size 20 --bursts 100
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from suite_env import Target, cpu_layout, find_tools

ROOT = Path(__file__).resolve().parent.parent


def scenario(folder: Path, url: str, sender: str, size: int, bursts: int, every: float) -> Path:
    trace = folder / "bursts.csv"
    lines = ["timestamp"] + [f"{b * every:.6f}" for b in range(bursts) for _ in range(size)]
    trace.write_text("\n".join(lines) + "\n")
    path = folder / f"burst-{sender}.yaml"
    path.write_text(
        f"""version: 1
name: burst-{sender}
target: {{kind: url, url: "{url}"}}
request: {{method: GET, path: /, timeout: 5s}}
client: {{sender: {sender}, connections: {max(64, 2 * size)}}}
workload:
  seed: 1
  warmup: {{duration: 1s, arrival: {{process: constant, rate: 200}}}}
  phases:
    - name: bursts
      duration: {bursts * every + 1:.3f}s
      arrival: {{process: trace, path: {trace.name}}}
"""
    )
    return path


def spreads(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per burst (arrivals sharing an intended time) the send spread, and every lag (ms)."""
    sent_by_due: dict[int, list[int]] = defaultdict(list)
    lags = []
    with gzip.open(run_dir / "requests.csv.gz", "rt") as rows:
        header = rows.readline().strip().split(",")
        phase, due, sent = (header.index(c) for c in ("phase", "intended_ns", "sent_ns"))
        for line in rows:
            cells = line.rstrip("\r\n").split(",")
            if cells[phase] != "bursts" or not cells[sent]:
                continue
            sent_by_due[int(cells[due])].append(int(cells[sent]))
            lags.append(int(cells[sent]) - int(cells[due]))
    spread = [max(s) - min(s) for s in sent_by_due.values() if len(s) > 1]
    return np.asarray(spread) / 1e6, np.asarray(lags) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", default="fast,aiohttp")
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--bursts", type=int, default=50)
    parser.add_argument("--every", type=float, default=0.1)
    args = parser.parse_args()
    tools = find_tools()
    layout = cpu_layout(tools)
    rows = []
    kind = "nginx" if tools.nginx else "sink"  # Target takes a resolved kind, never "auto"
    with Target(kind, tools, layout) as target, tempfile.TemporaryDirectory() as tmp:
        url = target.url  # started by the with statement; a second start() would orphan it
        for sender in args.senders.split(","):
            folder = Path(tmp) / sender
            folder.mkdir()
            path = scenario(folder, url, sender, args.size, args.bursts, args.every)
            command = [sys.executable, "-m", "infbench", "run", str(path), "--out", str(folder)]
            subprocess.run(
                [*layout.prefix(layout.generator(1)), *command, "-q"], check=False, cwd=ROOT
            )
            (run_dir,) = [p for p in folder.iterdir() if p.is_dir()]
            spread, lag = spreads(run_dir)
            run = json.loads((run_dir / "run.json").read_text())
            rows.append((sender, run["generator"].get("sender"), spread, lag))
        what = f"{args.bursts} bursts of {args.size} every {args.every}s"
        print(f"target: {target.describe()}; {what}\n")
    print("| sender | ran as | bursts | spread p50 ms | spread p99 ms | spread max ms | lag p99 |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for sender, ran, spread, lag in rows:
        p50, p99, top = np.percentile(spread, [50, 99, 100]) if spread.size else (np.nan,) * 3
        print(
            f"| {sender} | {ran} | {spread.size} | {p50:.3f} | {p99:.3f} | {top:.3f} "
            f"| {np.percentile(lag, 99):.3f} |"
        )


if __name__ == "__main__":
    main()
