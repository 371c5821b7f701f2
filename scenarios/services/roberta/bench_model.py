"""Per-text latency of the two runtimes alone, without BentoML or HTTP, interleaved.

    python scenarios/services/roberta/bench_model.py --size base --rounds 5

Each round times every runtime on the same texts (from scenarios/study/texts.jsonl), one after
the other, so a neighbour's load on a shared machine slows all of them alike; the median over
rounds is printed. This is what the services add their serving overhead to.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEXTS = HERE.parents[1] / "study" / "texts.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="base", choices=("tiny", "small", "base"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--texts", type=int, default=24)
    parser.add_argument("--batch", type=int, default=4, help="batch size of the batched rows")
    args = parser.parse_args()
    os.environ["ROBERTA_SIZE"] = args.size
    sys.path.insert(0, str(HERE))
    from roberta_model import Settings, TorchClassifier
    from roberta_onnx import OnnxClassifier

    settings = Settings.from_env()
    texts = [json.loads(line)["text"] for line in TEXTS.read_text().splitlines()][: args.texts]
    runtimes: dict[str, Callable[[list[str]], object]] = {
        "pytorch fp32 (Baseline)": TorchClassifier(settings),
        "onnx runtime (Optimized)": OnnxClassifier(settings),
    }
    cases = [(name, size) for name in runtimes for size in (1, args.batch)]
    times: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    for runtime in runtimes.values():
        runtime(texts[:2])  # first calls allocate
    for _ in range(args.rounds):
        for name, size in cases:
            started = time.perf_counter()
            for i in range(0, len(texts), size):
                runtimes[name](texts[i : i + size])
            times[(name, size)].append((time.perf_counter() - started) / len(texts) * 1000)
    print(f"ROBERTA_SIZE={args.size}, {len(texts)} texts, median of {args.rounds} rounds")
    for (name, size), values in times.items():
        print(f"  {name:26s} batch {size}: {statistics.median(values):8.1f} ms per text")
    return 0


if __name__ == "__main__":
    sys.exit(main())
