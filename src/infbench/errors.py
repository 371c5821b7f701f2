"""The InfbenchError tree.

Every error a user can cause or meet carries the exit code of DESIGN §11 and a message that
names the key or flag at fault and the fix. The CLI prints the message (a traceback only with
``--debug``) and exits with ``exit_code``.
"""

from __future__ import annotations

__all__ = [
    "GateFailed",
    "InfbenchError",
    "InputError",
    "Interrupted",
    "InvalidRun",
    "ResultFormatError",
    "ScenarioError",
    "TargetError",
    "UsageError",
]


class InfbenchError(Exception):
    """Base class: a failure with a message meant for the user and an exit code."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(InfbenchError):
    """A bad flag or argument on the command line."""


class ScenarioError(InfbenchError):
    """The scenario file is invalid; the message names the key path and the file line."""


class InputError(InfbenchError):
    """A file the scenario points at (dataset, trace) is missing or malformed."""


class ResultFormatError(InfbenchError):
    """A result directory is corrupt, truncated or of an unknown format version."""


class TargetError(InfbenchError):
    """The server under test failed to start, became unreachable, or died."""

    exit_code = 3


class GateFailed(InfbenchError):
    """An SLO or a regression rule failed."""

    exit_code = 1


class InvalidRun(InfbenchError):
    """The generator could not keep up (only an error with ``--strict``)."""

    exit_code = 4


class Interrupted(InfbenchError):
    """The run was stopped by SIGINT or SIGTERM; partial results were kept."""

    exit_code = 130
