"""The ``bentoml`` target: run ``bentoml serve MODULE:Class`` on a free local port (DESIGN §9).

What BentoML 1.4 does, and why this module launches it the way it does:

- ``--api-workers`` and ``--timeout`` on the command line are ignored for new-style
  ``@bentoml.service`` classes; their settings come from ``services.<ServiceName>`` in the YAML
  file named by ``BENTOML_CONFIG``, deep-merged over the decorator's own config. So infbench
  writes that file, keyed by the class name (a service's name unless ``name=`` is given).
- Servers that share a ``BENTOML_HOME`` share its Prometheus multiprocess directory and wipe
  each other's metrics, so each launch gets a fresh temporary home, deleted on stop.
- The default request-duration buckets (5 ms, 10 ms, 25 ms, ...) are too coarse for
  millisecond models, so unless the scenario sets ``config.metrics``, infbench asks for
  exponential buckets from 0.5 ms by factors of 1.5: server quantiles are then interpolated
  inside a bucket 1.5 times wide rather than 2 to 2.5 times.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil
import yaml

from infbench.errors import InputError, ScenarioError, TargetError
from infbench.scenario.model import BentomlTarget
from infbench.targets.base import TargetInfo
from infbench.targets.process import LaunchedProcess, free_port
from infbench.targets.ready import WaitProgress
from infbench.targets.supervise import SupervisedHandle, Supervisor

__all__ = ["BentomlHandle", "ServiceRef", "bentoml_config", "resolve_service"]

HOST = "127.0.0.1"
FINE_DURATION_BUCKETS = {"min": 0.0005, "max": 120.0, "factor": 1.5}
# Keys BENTOML_CONFIG accepts but new-style services never read from it (verified on 1.4.40):
# a benchmark that silently ran without them would measure something else, so they are refused.
DECORATOR_ONLY = {
    "threads": "@bentoml.service(threads=N)",
    "batching": "@bentoml.api(batchable=True, max_batch_size=..., max_latency_ms=...)",
}


class ServiceRef:
    """Where ``bentoml serve`` must run (``cwd``) and what it imports (``import_str``)."""

    def __init__(self, cwd: Path, module: str, class_name: str) -> None:
        self.cwd, self.module, self.class_name = cwd, module, class_name

    @property
    def import_str(self) -> str:
        return f"{self.module}:{self.class_name}"


def resolve_service(service: str, base_dir: Path) -> ServiceRef:
    """Resolve ``target.service`` against the scenario's directory.

    The part before ``:`` may be a directory holding ``service.py`` (``services/sentiment``), a
    file with or without ``.py`` (``services/sentiment/service``), or a dotted module path
    importable from the scenario's directory (``services.sentiment.service``).
    """
    location, _, class_name = service.rpartition(":")
    if not location or not class_name.isidentifier():
        raise InputError(
            f"target.service: expected MODULE:Class such as services/sentiment:Sentiment, "
            f"got {service!r}"
        )
    path = (base_dir / location).resolve()
    if path.is_dir() and (path / "service.py").is_file():
        return ServiceRef(path, "service", class_name)
    for file in (path, path.with_name(path.name + ".py")):
        if file.is_file() and file.suffix == ".py":
            return ServiceRef(file.parent, file.stem, class_name)
    dotted = base_dir / location.replace(".", "/")
    if dotted.with_suffix(".py").is_file() or (dotted / "__init__.py").is_file():
        return ServiceRef(base_dir.resolve(), location, class_name)
    raise InputError(
        f"target.service: {service!r} not found: no {path}/service.py, {path}.py "
        f"or module {location!r} under {base_dir}",
        hint="paths in target.service are relative to the scenario file's directory",
    )


def bentoml_config(spec: BentomlTarget, class_name: str) -> dict[str, Any]:
    """The BENTOML_CONFIG document: the scenario's ``config`` plus ``workers``, under the class."""
    service: dict[str, Any] = dict(spec.config)
    # An explicit `workers:` wins; `config.workers` is honoured when `workers` was left default.
    if "workers" in spec.model_fields_set or "workers" not in service:
        service["workers"] = spec.workers
    if "metrics" not in service:
        service["metrics"] = {"enabled": True, "namespace": "bentoml_service"}
        service["metrics"]["duration"] = dict(FINE_DURATION_BUCKETS)
    for key, where in DECORATOR_ONLY.items():
        if key in service:
            raise ScenarioError(
                f"target.config.{key}: BentoML reads this only from the service code, "
                f"not from BENTOML_CONFIG",
                hint=f"set it in the service with {where}, or drop it from target.config",
            )
    # No `version: 2` key: BentoML first loads this file with its v1 schema, which rejects it.
    return {"services": {class_name: service}}


class BentomlHandle(SupervisedHandle):
    """A ``bentoml serve`` process tree launched for one run."""

    def __init__(
        self,
        spec: BentomlTarget,
        base_dir: Path,
        log_path: Path,
        pid_file: Path | None = None,
        *,
        progress: WaitProgress | None = None,
    ) -> None:
        self.spec: BentomlTarget = spec
        self.log_path, self.pid_file, self.progress = log_path, pid_file, progress
        self.service = resolve_service(spec.service, base_dir)
        self.config = bentoml_config(spec, self.service.class_name)
        self.port = free_port(HOST)
        self.base_url = f"http://{HOST}:{self.port}"
        self._home: Path | None = None
        self._env: dict[str, str] = {}
        self.supervisor = Supervisor(
            self._make, self._wait_ready, spec.restart, is_worker=self._is_worker
        )

    @property
    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "bentoml", "serve", self.service.import_str,
            "--host", HOST, "--port", str(self.port),
        ]  # fmt: skip

    def start(self) -> TargetInfo:
        self._home = Path(tempfile.mkdtemp(prefix="infbench-bentoml-"))
        config_file = self._home / "bentoml_config.yaml"
        config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self._env = {
            **os.environ,
            **self.spec.env,
            "BENTOML_HOME": str(self._home / "home"),
            "BENTOML_CONFIG": str(config_file),
            "BENTOML_DO_NOT_TRACK": "True",
            "PYTHONUNBUFFERED": "1",  # log lines reach server.log as they happen
        }
        startup_s = self.supervisor.start()
        self._check_workers()
        return TargetInfo(
            kind="bentoml",
            base_url=self.base_url,
            command=self.argv,
            pids=self.process_pids(),
            startup_s=startup_s,
            metrics_url=self.base_url + self.spec.metrics_path,
            config={"bentoml_config": self.config, "cwd": str(self.service.cwd)},
        )

    def _check_workers(self) -> None:
        """Fail when the workers asked for are not the workers running.

        BentoML silently ignores a config keyed by the wrong name, which would benchmark one
        worker while the scenario says four.
        """
        names = [_service_name(pid) for pid in self.process_pids()]
        counts = {name: names.count(name) for name in names if name is not None}
        wanted, name = self.spec.workers, self.service.class_name
        got = counts.get(name, 0)
        if not counts or (got and wanted in ("cpu_count", got)):
            return  # no recognisable worker command lines (another BentoML layout): trust it
        self.stop()
        found = ", ".join(f"{n}: {c}" for n, c in sorted(counts.items()))
        raise TargetError(
            f"target failed to start as configured: asked for {wanted} worker(s) of "
            f"service {name!r}, BentoML started {found}",
            hint="the config is keyed by the class name; if the service sets "
            "@bentoml.service(name=...), make it match the class name",
        )

    def _make(self) -> LaunchedProcess:
        # A relaunch reuses the home: BentoML empties its metrics directory at start.
        return LaunchedProcess(
            self.argv,
            log_path=self.log_path,
            env=self._env,
            cwd=self.service.cwd,
            port=self.port,
            on_stopped=self._remove_home,
            pid_file=self.pid_file,
        )

    def _is_worker(self, proc: psutil.Process) -> bool:
        return _service_name(proc.pid) is not None

    def _remove_home(self) -> None:
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def stop(self) -> None:
        super().stop()
        self._remove_home()


def _service_name(pid: int) -> str | None:
    """The ``--service-name`` of a BentoML worker process, None for other processes."""
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:
        return None
    if "--service-name" in cmdline[:-1]:
        return cmdline[cmdline.index("--service-name") + 1]
    return None
