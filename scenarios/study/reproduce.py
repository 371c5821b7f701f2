"""Run the whole study with one command and print its table (markdown).

    python scenarios/study/reproduce.py                 # compressed: about 70 minutes
    python scenarios/study/reproduce.py --full          # the study's own rates: about 11 h
    python scenarios/study/reproduce.py --quick --size tiny   # a check of the set-up: ~8 min

Steps, each an ordinary infbench command (printed as it starts, so any one can be rerun alone):

1. for the open-loop and the closed-loop (Locust-like) scenario, serve the baseline and then
   the optimized RoBERTa service and run the three workloads against each;
2. ``infbench compare`` baseline against optimized for each;
3. ``infbench sweep --find-max`` for both variants on the steady workload under the SLO;
4. the table: per workload and variant p50, p95, p99, throughput, errors and the compare
   verdicts, then the capacity interval of each variant. Written to OUT/table.md too.

Needs the ``study`` extra: ``pip install -e '.[study]'``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VARIANTS = ("Baseline", "Optimized")


def infbench(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "infbench", *args]
    print("$ infbench " + " ".join(args), file=sys.stderr, flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if check and result.returncode not in (0, 1):  # 1: an SLO failed, which the table shows
        sys.exit(f"infbench {args[0]} failed with exit code {result.returncode}")
    return result


def variant_sets(variant: str, size: str) -> list[str]:
    return ["--set", f"target.service=../services/roberta:{variant}",
            "--set", f"target.env.ROBERTA_SIZE={size}"]  # fmt: skip


QUICK = ["--set", "workload.warmup=5s"] + [
    arg for i in range(3) for arg in ("--set", f"workload.phases[{i}].duration=20s")
]  # --quick: 20 s workloads, to check a set-up end to end (not for figures)


def run_variant(scenario: Path, out: Path, variant: str, args: argparse.Namespace) -> Path:
    quick = QUICK if args.quick else []
    infbench(
        "run", str(scenario), "--out", str(out), "-q", *variant_sets(variant, args.size), *quick
    )
    return max(out.iterdir())  # the newest result directory


def fmt(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def verdicts(base: Path, cand: Path) -> dict[tuple[str, str], str]:
    result = infbench("compare", str(base), str(cand), "--format", "json")
    rows = json.loads(result.stdout)["rows"]
    return {
        (row["phase"], row["metric"]): f"{row['change'] * 100:+.1f}% {row['verdict']}"
        for row in rows
        if row.get("change") is not None
    }


def workload_table(title: str, dirs: dict[str, Path]) -> list[str]:
    runs = {v: json.loads((d / "run.json").read_text()) for v, d in dirs.items()}
    compared = verdicts(dirs["Baseline"], dirs["Optimized"])
    lines = [f"### {title}", "",
             "| workload | variant | p50 ms | p95 ms | p99 ms | throughput req/s | errors "
             "| optimized vs baseline (p50; p99) |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for phase in runs["Baseline"]["phases"]:
        name = phase["name"]
        for variant in VARIANTS:
            p = next(x for x in runs[variant]["phases"] if x["name"] == name)
            lat = p["latency_ms"]
            versus = ""
            if variant == "Optimized":
                versus = f"{compared.get((name, 'p50'), '–')}; {compared.get((name, 'p99'), '–')}"
            errors = f"{p['error_rate'] * 100:.2f}%"
            lines.append(
                f"| {name} | {variant.lower()} | {fmt(lat['p50'])} | {fmt(lat['p95'])} "
                f"| {fmt(lat['p99'])} | {fmt(p['achieved_rps'], 3)} | {errors} | {versus} |"
            )
    return [*lines, ""]


def find_max(scenario: Path, out: Path, variant: str, args: argparse.Namespace) -> dict[str, Any]:
    infbench(
        "sweep", str(scenario), "--find-max", "--phase", "steady", "--slo", args.slo,
        "--duration", args.level, "--max-runs", str(args.max_runs), "--out", str(out),
        *variant_sets(variant, args.size), check=False,
    )  # fmt: skip
    doc: dict[str, Any] = json.loads((max(out.iterdir()) / "sweep.json").read_text())
    return doc


def capacity_table(docs: dict[str, dict[str, Any]], slo: str) -> list[str]:
    lines = [f"### Highest steady rate meeting `{slo}`", "",
             "| variant | highest passing req/s | first failing req/s | runs | confident |",
             "|---|---|---|---|---|"]  # fmt: skip
    for variant, doc in docs.items():
        result = doc.get("result", {})
        lines.append(
            f"| {variant.lower()} | {fmt(result.get('max_rate'), 2)} "
            f"| {fmt(result.get('first_failing_rate'), 2)} | {doc.get('runs')} "
            f"| {'yes' if result.get('confident') else 'no'} |"
        )
    return [*lines, ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/study"))
    parser.add_argument("--full", action="store_true", help="the study's rates (open.yaml...)")
    parser.add_argument("--size", default="base", choices=("tiny", "small", "base"))
    # p90 and 5 %: what 60 s levels at a few requests per second can confirm with 95 %
    # confidence (a p99 needs 1,000 requests, an error rate under 1 % about 370 error-free).
    parser.add_argument("--slo", default="p90<=1s,error_rate<=5%")
    parser.add_argument("--level", default="60s", help="length of each find-max level")
    parser.add_argument("--max-runs", type=int, default=7, help="find-max runs per variant")
    parser.add_argument("--quick", action="store_true", help="20 s workloads, 3 find-max runs")
    parser.add_argument("--skip-closed", action="store_true")
    parser.add_argument("--skip-find-max", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.level, args.max_runs = "10s", min(args.max_runs, 3)
    started = time.monotonic()
    open_loop = HERE / ("open.yaml" if args.full else "compressed.yaml")
    closed_loop = HERE / ("closed.yaml" if args.full else "compressed-closed.yaml")
    scenarios = [("open loop", open_loop)]
    if not args.skip_closed:
        scenarios.append(("closed loop", closed_loop))
    lines = [f"## {'Study' if args.full else 'Compressed study'}: RoBERTa-{args.size}", ""]
    for title, scenario in scenarios:
        dirs = {v: run_variant(scenario, args.out / scenario.stem / v.lower(), v, args)
                for v in VARIANTS}  # fmt: skip
        lines += workload_table(f"{title} ({scenario.name})", dirs)
    if not args.skip_find_max:
        out = args.out / "find-max"
        docs = {v: find_max(open_loop, out / v.lower(), v, args) for v in VARIANTS}
        lines += capacity_table(docs, args.slo)
    lines.append(f"Measured in {(time.monotonic() - started) / 60:.0f} minutes.")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
