"""Bodies of OpenAI-compatible requests (DESIGN §3, §5b), built from the scenario's keys.

``model``, the templated ``prompt`` or ``messages``, ``max_tokens`` and ``params`` become one
JSON body per dataset row, always streamed with the usage chunk asked for, so that TTFT, TPOT
and token counts can be measured from the answer. A row's own ``max_tokens`` (a dataset of
prompts with their output lengths) wins over the scenario's; a distribution is drawn once per
row from a generator seeded by (seed, row), so the same scenario sends the same bodies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from infbench.scenario.request import Request, TokenCount

__all__ = ["openai_body"]

_STREAM = 0x70_4B3E  # mixed into the seed so token draws never share a stream with arrivals


def openai_body(
    request: Request, row: Mapping[str, Any], index: int, seed: int, fill: Callable[[Any], Any]
) -> dict[str, Any]:
    """The JSON body for one row; ``fill`` fills a template's placeholders from the row."""
    body: dict[str, Any] = {"model": request.model, **request.params}
    if request.api == "openai-chat":
        if request.messages is not None:
            body["messages"] = fill(request.messages)
        else:
            body["messages"] = [{"role": "user", "content": fill(request.prompt)}]
    else:
        body["prompt"] = fill(request.prompt)
    max_tokens = _max_tokens(request.max_tokens, row, index, seed)
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    return body


def _max_tokens(
    setting: int | TokenCount | None, row: Mapping[str, Any], index: int, seed: int
) -> int | None:
    own = row.get("max_tokens")
    if isinstance(own, int) and not isinstance(own, bool) and own > 0:
        return own
    if setting is None or isinstance(setting, int):
        return setting
    rng = np.random.default_rng([seed, _STREAM, index])
    drawn = round(rng.normal(setting.mean, setting.sd)) if setting.sd else round(setting.mean)
    upper = setting.max if setting.max is not None else drawn
    return int(min(max(drawn, setting.min), max(upper, setting.min)))
