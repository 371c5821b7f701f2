"""Result directory format v1 (DESIGN §8): written as the run goes, finalized atomically.

Format history (readers accept every version listed here and refuse newer ones):
  1 — run.json, summary.csv/.md, latency.hlog, requests.csv.gz, timeseries.csv, server.log.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from infbench import __version__
from infbench.errors import ResultFormatError, UsageError
from infbench.results.measured import MEASURED_COLUMNS, measured_rows
from infbench.results.records import (
    FORMAT_VERSION,
    Environment,
    PhaseSummary,
    RecordError,
    RunRecord,
    ServerPhase,
    ServerSummary,
)

__all__ = [
    "FORMAT_VERSION",
    "SUMMARY_COLUMNS",
    "TIMESERIES_ADDED",
    "TIMESERIES_COLUMNS",
    "ResultDir",
    "RunResult",
    "check_free_space",
    "environment_record",
    "format_cell",
    "free_space_warning",
    "load_run",
    "new_run_dir",
    "summary_rows",
]

MIN_FREE_BYTES = 50 * 2**20  # below this a run could not even finish its files: refused
ROW_BYTES = 40  # requests.csv.gz per request, measured at 25-40 bytes; estimates stay rough
SUPPORTED_VERSIONS = (1,)
TIMESERIES_COLUMNS = (
    "second",
    "phase",
    "offered",
    "sent",
    "completed",
    "errors",
    "in_flight",
    "latency_p50_ms",
    "latency_p99_ms",
    "loop_lag_p99_ms",
    "server_cpu_pct",
    "server_rss_mb",
    "server_in_progress",
    "server_batch_size",
    "generator_cpu_pct",
    "generator_rss_mb",
    # Columns added to format v1 since its first release: a result folder written before them
    # lacks them, and readers take them as not measured (NaN).
    # an LLM server's own gauges (observe/llm_metrics.py) and the GPUs (observe/gpu.py)
    "server_running",
    "server_waiting",
    "server_kv_cache_usage",
    "server_ttft_p99_ms",
    "server_queue_p99_ms",
    "gpu_util_pct",
    "gpu_mem_used_mb",
    "gpu_power_w",
)
TIMESERIES_ADDED = frozenset(
    ("loop_lag_p99_ms", *TIMESERIES_COLUMNS[TIMESERIES_COLUMNS.index("server_running") :])
)
SUMMARY_COLUMNS = (
    "phase",
    "requests",
    "ok",
    "errors",
    "offered_rps",
    "achieved_rps",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "mean_ms",
    "service_p50_ms",
    "service_p99_ms",
    "lag_p99_ms",
)
SERVER_COLUMNS = (
    "server_p50_ms",
    "server_p99_ms",
    "batch_size",
    "server_cpu_pct",
    "server_rss_mb",
)


def new_run_dir(root: Path, name: str, now: datetime | None = None) -> Path:
    """``<root>/<UTC yyyymmddThhmmssZ>-<name>``; never reuses an existing directory."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=root, prefix=".infbench-probe-", delete=True)  # noqa: SIM115
        probe.write(b"x" * 4096)
        probe.flush()
        probe.close()
    except OSError as exc:
        raise UsageError(
            f"cannot write results under {root}: {exc.strerror or exc}",
            hint="choose another location with --out DIR",
        ) from None
    check_free_space(root)
    for attempt in range(1000):
        path = root / (f"{stamp}-{name}" if attempt == 0 else f"{stamp}-{name}-{attempt + 1}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise UsageError(f"too many result directories named {stamp}-{name} in {root}")


def _free_bytes(root: Path) -> int | None:
    try:
        return shutil.disk_usage(root).free
    except OSError:
        return None  # unknown: the write probe already proved the place writable


def check_free_space(root: Path, minimum: int = MIN_FREE_BYTES) -> None:
    """Refuse a results location that is (nearly) full before any load is sent."""
    free = _free_bytes(root)
    if free is not None and free < minimum:
        raise UsageError(
            f"only {free / 2**20:.0f} MB free under {root}; infbench needs at least "
            f"{minimum / 2**20:.0f} MB for a run's results",
            hint="free some space, or choose another location with --out DIR",
        )


def free_space_warning(root: Path, requests: int) -> str | None:
    """A warning when the raw rows of ``requests`` requests may not fit in the free space."""
    free = _free_bytes(root)
    needed = MIN_FREE_BYTES + requests * ROW_BYTES
    if free is None or free >= needed:
        return None
    return (
        f"{free / 2**20:.0f} MB free under {root}, and this run's raw rows may need about "
        f"{needed / 2**20:.0f} MB: the run may fail to write its results"
    )


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_sha(cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=2
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment_record(scenario_dir: Path) -> Environment:
    """What compare checks before trusting a difference: machine, versions, code revision."""
    return Environment(
        host=socket.gethostname(),
        os=platform.platform(),
        cpu_model=_cpu_model(),
        cores=os.cpu_count(),
        python=platform.python_version(),
        infbench=__version__,
        versions={
            name: _version(name)
            for name in ("bentoml", "aiohttp", "httpx", "uvloop", "numpy", "hdrhistogram")
        },
        git_sha=_git_sha(scenario_dir),
    )


def format_cell(value: Any) -> str:
    """A figure as summary.csv writes it: three decimals at most, no trailing zeros."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "nan"
    return str(value)


def summary_rows(phases: Sequence[PhaseSummary], server: ServerSummary | None) -> list[list[str]]:
    """The rows of summary.csv and summary.md: one per phase, server columns when measured."""
    rows = []
    for phase in phases:
        lat, svc = phase.latency_ms, phase.service_ms
        row: list[Any] = [
            phase.name,
            phase.requests,
            phase.ok,
            phase.failed,
            phase.offered_rps,
            phase.achieved_rps,
            *(lat.p50, lat.p90, lat.p95, lat.p99, lat.p999, lat.max, lat.mean),
            svc.p50,
            svc.p99,
            phase.lag_ms.p99,
        ]
        if server is not None and server.phases:
            srv = server.phases.get(phase.name, ServerPhase())
            row += [srv.duration_p50_ms, srv.duration_p99_ms, srv.mean_batch_size]
            row += [srv.cpu_pct_mean, srv.rss_mb_max]
        rows.append([format_cell(v) for v in row])
    return rows


class ResultDir:
    """A result directory being written. ``finalize`` writes run.json last, atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._timeseries: IO[str] | None = None
        self._timeseries_csv: Any = None

    def file(self, name: str) -> Path:
        return self.path / name

    def append_timeseries(self, row: dict[str, Any]) -> None:
        if self._timeseries is None:
            self._timeseries = open(self.file("timeseries.csv"), "w", newline="")  # noqa: SIM115
            self._timeseries_csv = csv.writer(self._timeseries)
            self._timeseries_csv.writerow(TIMESERIES_COLUMNS)
        self._timeseries_csv.writerow(
            [format_cell(row.get(column)) for column in TIMESERIES_COLUMNS]
        )
        self._timeseries.flush()

    def write_json(self, name: str, data: Any) -> None:
        """Write via a temporary file and rename, so a reader never sees half a file."""
        target = self.file(name)
        tmp = target.with_suffix(target.suffix + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=False, allow_nan=False, default=str)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)

    def write_summary(self, phases: Sequence[PhaseSummary], server: ServerSummary | None) -> None:
        rows = summary_rows(phases, server)
        header = list(SUMMARY_COLUMNS) + (
            list(SERVER_COLUMNS) if rows and len(rows[0]) > len(SUMMARY_COLUMNS) else []
        )
        measured = measured_rows(phases)  # an LLM server's own view, GPUs, cost
        if measured is not None:
            header += MEASURED_COLUMNS
            cells = [[format_cell(v) for v in extra[1:]] for extra in measured]
            rows = [row + more for row, more in zip(rows, cells, strict=True)]
        with open(self.file("summary.csv"), "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        self.file("summary.md").write_text("\n".join(lines) + "\n")

    def finalize(self, run: RunRecord, *, with_timeseries: bool = True) -> None:
        """Summary files, then run.json last; an aggregate of repetitions has no time series."""
        if (
            with_timeseries
            and self._timeseries is None
            and not self.file("timeseries.csv").exists()
        ):
            # Header only: the directory's file set stays complete even for a run cut short.
            self.file("timeseries.csv").write_text(",".join(TIMESERIES_COLUMNS) + "\n")
        if self._timeseries is not None:
            self._timeseries.close()
            self._timeseries = None
        self.write_summary(run.phases, run.server)
        self.write_json("run.json", _json_safe(run.to_json()))


def _json_safe(value: Any) -> Any:
    """NaN and infinity are not JSON: store them as null."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class RunResult:
    """A finished (or interrupted) run read back from disk."""

    path: Path
    record: RunRecord

    @property
    def phases(self) -> tuple[PhaseSummary, ...]:
        return self.record.phases

    @property
    def valid(self) -> bool:
        return self.record.valid


def load_run(path: Path) -> RunResult:
    """Read run.json, refusing unknown format versions and naming the file at fault."""
    run_json = path / "run.json"
    if not path.is_dir():
        raise ResultFormatError(f"{path}: not a result directory (it does not exist or is a file)")
    if not run_json.exists():
        raise ResultFormatError(
            f"{run_json}: missing; the run never finished writing "
            "(or this is not a result directory)"
        )
    try:
        data = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultFormatError(f"{run_json}: corrupt or truncated JSON ({exc})") from None
    if not isinstance(data, dict) or "format_version" not in data:
        raise ResultFormatError(f"{run_json}: no format_version; not an infbench run.json")
    version = data["format_version"]
    if version not in SUPPORTED_VERSIONS:
        raise ResultFormatError(
            f"{run_json}: format version {version} is not supported by infbench {__version__} "
            f"(reads versions {', '.join(map(str, SUPPORTED_VERSIONS))}); upgrade infbench"
        )
    if not isinstance(data.get("phases"), list):
        raise ResultFormatError(f"{run_json}: `phases` is missing or not a list")
    for section in ("timings", "environment", "target", "generator"):
        if section in data and data[section] is not None and not isinstance(data[section], dict):
            raise ResultFormatError(f"{run_json}: `{section}` is not an object")
    for index, phase in enumerate(data["phases"]):
        _check_phase(run_json, index, phase)
    try:
        record = RunRecord.from_json(data)
    except RecordError as exc:
        raise ResultFormatError(f"{run_json}: {exc}") from None
    return RunResult(path=path, record=record)


# The phases[] contract (DESIGN §8): what every reader may rely on.
PHASE_NUMBERS = ("scheduled", "sent", "completed", "ok", "dropped")
PHASE_RATES = ("offered_rps", "achieved_rps", "goodput_rps")
PHASE_SECTIONS = ("errors", "latency_ms", "service_ms", "lag_ms", "ttfb_ms")


def _check_phase(run_json: Path, index: int, phase: Any) -> None:
    where = f"{run_json}: phases[{index}]"
    if not isinstance(phase, dict) or not isinstance(phase.get("name"), str):
        raise ResultFormatError(f"{where} is not a phase object with a name")
    for key in PHASE_NUMBERS:
        if not isinstance(phase.get(key), int):
            raise ResultFormatError(f"{where} ({phase['name']}): `{key}` is missing or not a count")
    for key in PHASE_RATES:
        if key not in phase or not isinstance(phase[key], int | float | None):
            raise ResultFormatError(f"{where} ({phase['name']}): `{key}` is missing or not a rate")
    for key in PHASE_SECTIONS:
        if not isinstance(phase.get(key), dict):
            raise ResultFormatError(
                f"{where} ({phase['name']}): `{key}` is missing or not an object"
            )
