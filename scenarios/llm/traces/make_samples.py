"""Writes the sample traces of this folder: one set of 40 arrivals in every trace format.

    python scenarios/llm/traces/make_samples.py      # rewrites the files beside this script

The arrivals are seeded (the same files every time): Poisson times at 2 per second, in whole
milliseconds so every format holds them exactly; prompts that open with one of three shared
two-block prefixes (Mooncake's ``hash_ids``, 512 tokens a block) and go on with blocks of
their own; output lengths from 16 to 128 tokens. Each file is laid out as its public trace
is (docs/llm.md, "Traces with lengths"):

- sample.mooncake.jsonl  Mooncake FAST'25: timestamp (ms), input_length, output_length, hash_ids
- sample.azure.csv       Azure LLM inference 2023/2024: TIMESTAMP (date-time), ContextTokens,
                         GeneratedTokens
- sample.burstgpt.csv    BurstGPT: Timestamp (s), Model, Request tokens, Response tokens,
                         Total tokens, Log Type
- sample.csv / sample.jsonl  any other trace, its columns named by ``arrival.columns``:
                         time_s, prompt_tokens, output_tokens, blocks (a JSON list)
"""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
BLOCK = 512
ROWS = 40
AZURE_START = datetime(2023, 11, 16, 18, 15, 46)


def arrivals() -> list[dict[str, object]]:
    rng = random.Random(23)
    prefixes = [[0, 1], [2, 3], [4, 5]]
    next_id, t_ms, out = 6, 0, []
    for _ in range(ROWS):
        own = rng.randint(1, 3)
        ids = prefixes[rng.randrange(3)] + list(range(next_id, next_id + own))
        next_id += own
        length = (len(ids) - 1) * BLOCK + rng.randint(1, BLOCK)
        out.append({"t_ms": t_ms, "input": length, "output": rng.randint(16, 128), "ids": ids})
        t_ms += round(rng.expovariate(2.0) * 1000)
    return out


def write_all(rows: list[dict[str, object]], folder: Path = HERE) -> None:
    with (folder / "sample.mooncake.jsonl").open("w") as out:
        for r in rows:
            record = {"timestamp": r["t_ms"], "input_length": r["input"],
                      "output_length": r["output"], "hash_ids": r["ids"]}  # fmt: skip
            out.write(json.dumps(record) + "\n")
    _csv(folder / "sample.azure.csv", ["TIMESTAMP", "ContextTokens", "GeneratedTokens"],
         ([_azure_time(int(r["t_ms"])), r["input"], r["output"]] for r in rows))  # fmt: skip
    header = ["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type"]
    _csv(folder / "sample.burstgpt.csv", header, (
        [f"{int(r['t_ms']) / 1000:.3f}", "ChatGPT", r["input"], r["output"],
         int(r["input"]) + int(r["output"]), "Conversation log"] for r in rows
    ))  # fmt: skip
    _csv(folder / "sample.csv", ["time_s", "prompt_tokens", "output_tokens", "blocks"],
         ([f"{int(r['t_ms']) / 1000:.3f}", r["input"], r["output"], json.dumps(r["ids"])]
          for r in rows))  # fmt: skip
    with (folder / "sample.jsonl").open("w") as out:
        for r in rows:
            record = {"time_s": int(r["t_ms"]) / 1000, "prompt_tokens": r["input"],
                      "output_tokens": r["output"], "blocks": r["ids"]}  # fmt: skip
            out.write(json.dumps(record) + "\n")


def _azure_time(t_ms: int) -> str:
    """Azure writes 7 fractional digits: 2023-11-16 18:15:46.6805900."""
    stamp = AZURE_START + timedelta(milliseconds=t_ms)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.") + f"{stamp.microsecond:06d}0"


def _csv(path: Path, header: list[str], rows: object) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)  # type: ignore[arg-type]


if __name__ == "__main__":
    write_all(arrivals())
