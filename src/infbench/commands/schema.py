"""``infbench schema``: the scenario file's JSON schema, for editors and CI linting."""

from __future__ import annotations

from typing import Any

from infbench.scenario.model import Scenario

__all__ = ["scenario_schema"]


def scenario_schema() -> dict[str, Any]:
    """The pydantic model's schema by the keys users write, named and versioned."""
    document: dict[str, Any] = Scenario.model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "infbench scenario v1"
    return document
