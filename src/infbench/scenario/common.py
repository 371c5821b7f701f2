"""Scenario file v1: what every part of the model shares (names, durations, local paths)."""

from __future__ import annotations

import posixpath
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from infbench.units import Duration, Rate

__all__ = [
    "MAX_REQUESTS_PER_PHASE",
    "NAME_PATTERN",
    "LocalPath",
    "Model",
    "Name",
    "PositiveDuration",
    "PositiveRate",
]

MAX_REQUESTS_PER_PHASE = 100_000_000  # 800 MB of schedule: beyond it, a typo is likelier
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
PositiveRate = Annotated[Rate, Field(gt=0)]
PositiveDuration = Annotated[Duration, Field(gt=0)]


def _inside_scenario_dir(path: str) -> str:
    """A relative path may not climb out of the scenario's folder: ``../../etc/passwd`` tucked
    into a shared scenario would be sent as request bodies. Reading outside it takes an
    absolute (or ``~``) path, which shows the intent."""
    if "\0" in path:
        raise ValueError("the path contains a NUL byte")
    if not path.startswith(("/", "~")) and posixpath.normpath(path).split("/")[0] == "..":
        raise ValueError(
            "a relative path may not leave the scenario file's folder; "
            "write an absolute path to read a file elsewhere"
        )
    return path


LocalPath = Annotated[str, AfterValidator(_inside_scenario_dir)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
