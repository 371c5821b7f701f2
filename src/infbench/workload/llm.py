"""Bodies of OpenAI-compatible requests (DESIGN §3, §5b), built from the scenario's keys.

``model``, the templated ``prompt`` or ``messages``, ``max_tokens`` and ``params`` become one
JSON body per row (of a dataset, or of synthetic prompts), always streamed with the usage
chunk asked for, so that TTFT, TPOT and token counts can be measured from the answer. A row's
own ``max_tokens`` (a dataset of prompts with their output lengths) wins over the scenario's;
a distribution is drawn once per row from a generator seeded by (seed, row), so the same
scenario sends the same bodies.

``fixed_output`` asks for exactly ``max_tokens`` tokens the way vLLM and SGLang take it:
``min_tokens`` equal to the row's ``max_tokens`` (no end-of-sequence or stop token before it)
and ``ignore_eos``; OpenAI's own API refuses both fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from infbench.scenario.request import Request, TokenCount
from infbench.workload.prompts import draw_tokens

__all__ = ["RowError", "openai_body"]

_STREAM = 0x70_4B3E  # mixed into the seed so token draws never share a stream with arrivals


class RowError(ValueError):
    """A row cannot make a body (the caller names the row and its file); ``key`` is the
    scenario key concerned when it is not the template being filled."""

    def __init__(self, message: str, hint: str, key: str | None = None) -> None:
        super().__init__(message)
        self.hint, self.key = hint, key


def openai_body(
    request: Request, row: Mapping[str, Any], index: int, seed: int, fill: Callable[[Any], Any]
) -> dict[str, Any]:
    """The JSON body for one row; ``fill`` fills a template's placeholders from the row."""
    body: dict[str, Any] = {"model": request.model, **request.params}
    if request.api == "openai-chat":
        if request.messages is not None:
            body["messages"] = _messages(fill(request.messages))
        else:
            body["messages"] = [{"role": "user", "content": fill(request.prompt_template)}]
    else:
        body["prompt"] = fill(request.prompt_template)
    max_tokens = _max_tokens(request.max_tokens, row, index, seed)
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if request.fixed_output:
        if max_tokens is None:
            raise RowError(
                "has no max_tokens to fix the output at",
                "set request.max_tokens, or give every row its own",
                "request.fixed_output",
            )
        body.update(min_tokens=max_tokens, ignore_eos=True)
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    return body


def _messages(value: Any) -> list[Any]:
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        shown = type(value).__name__
        raise RowError(
            f"gives messages as {shown}", "chat messages are a list of {role, content} objects"
        )
    return value


def _max_tokens(
    setting: int | TokenCount | None, row: Mapping[str, Any], index: int, seed: int
) -> int | None:
    own = row.get("max_tokens")
    if isinstance(own, int) and not isinstance(own, bool) and own > 0:
        return own
    if setting is None or isinstance(setting, int):
        return setting
    return int(draw_tokens(setting, np.random.default_rng([seed, _STREAM, index]), 1)[0])
