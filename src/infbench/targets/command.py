"""The ``command`` target: any server command line, a URL and a readiness probe.

For servers that are not BentoML (a FastAPI app under uvicorn, Triton, vLLM) or BentoML started
in a way infbench does not generate. ``{port}`` in the command, the URL or an env value is
replaced by one free local port, so two runs never collide on a fixed port.
"""

from __future__ import annotations

import os
from pathlib import Path

from infbench.errors import InputError
from infbench.scenario.model import CommandTarget
from infbench.targets.base import TargetInfo
from infbench.targets.process import LaunchedProcess, free_port
from infbench.targets.ready import WaitProgress
from infbench.targets.supervise import SupervisedHandle, Supervisor

__all__ = ["CommandHandle"]

PLACEHOLDER = "{port}"


class CommandHandle(SupervisedHandle):
    """A server command launched for one run and stopped with its whole process tree."""

    def __init__(
        self,
        spec: CommandTarget,
        base_dir: Path,
        log_path: Path,
        pid_file: Path | None = None,
        *,
        progress: WaitProgress | None = None,
    ) -> None:
        self.spec: CommandTarget = spec
        self.log_path, self.pid_file, self.progress = log_path, pid_file, progress
        texts = [*spec.command, spec.url, *spec.env.values()]
        self.port = free_port() if any(PLACEHOLDER in text for text in texts) else None
        self.argv = [self._fill(arg) for arg in spec.command]
        self.base_url = self._fill(spec.url).rstrip("/")
        self.env = {key: self._fill(value) for key, value in spec.env.items()}
        self.cwd = (base_dir / spec.cwd).resolve() if spec.cwd else base_dir.resolve()
        if not self.cwd.is_dir():
            raise InputError(f"target.cwd: directory {self.cwd} does not exist")
        self.supervisor = Supervisor(self._make, self._wait_ready, spec.restart)

    def _fill(self, text: str) -> str:
        return text.replace(PLACEHOLDER, str(self.port)) if self.port is not None else text

    def _make(self) -> LaunchedProcess:
        return LaunchedProcess(
            self.argv,
            log_path=self.log_path,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            port=self.port,  # only a port we chose is checked free after stop
            pid_file=self.pid_file,
        )

    def start(self) -> TargetInfo:
        startup_s = self.supervisor.start()
        metrics = self.spec.metrics_path
        return TargetInfo(
            kind="command",
            base_url=self.base_url,
            command=self.argv,
            pids=self.process_pids(),
            startup_s=startup_s,
            metrics_url=self.base_url + metrics if metrics else None,
            # env names only: their values may be secrets
            config={"cwd": str(self.cwd), "env": sorted(self.env)},
        )
