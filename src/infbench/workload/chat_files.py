"""Chat files: conversations read from ShareGPT, OpenAI ``messages`` or ``{turns: [...]}`` rows.

One reader for the single-prompt datasets (``request.dataset`` with ShareGPT rows: the first
user turn is the prompt) and for sessions (``request.conversations``). A file is a JSON list
(ShareGPT's own ``.json``) or JSONL, one conversation a line; every conversation keeps the
line it starts on, so an error names ``file:line``. Accepted shapes, per conversation:

- ShareGPT: ``{"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", ...}]}``
  (``from``: human/user, gpt/chatgpt/assistant/bard/bing/model, system), as vLLM's and
  SGLang's ShareGPT readers take ShareGPT_V3_unfiltered_cleaned_split.json;
- OpenAI: ``{"messages": [{"role": "user", "content": "..."}, ...]}`` (vLLM's multi-turn
  benchmark converts ShareGPT to this);
- turns: ``{"turns": ["first question", {"user": "...", "assistant": "..."}]}``.

A user message opens a turn; the assistant message that follows is its recorded answer
(None when a user message follows instead). Assistant messages before the first user one
are skipped, a system message becomes the conversation's ``system`` prompt.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infbench.errors import InputError

__all__ = ["Conversation", "Turn", "is_sharegpt_row", "read_conversations", "to_conversation"]

_USER = {"human", "user"}
_ASSISTANT = {"gpt", "chatgpt", "assistant", "bard", "bing", "model"}
_SHAPES = "`conversations` (ShareGPT), `messages` (OpenAI) or `turns`"


@dataclass(frozen=True)
class Turn:
    user: str
    answer: str | None  # the file's own answer (history: recorded)


@dataclass(frozen=True)
class Conversation:
    line: int
    turns: tuple[Turn, ...]
    system: str | None = None


def is_sharegpt_row(row: Any) -> bool:
    """A JSONL dataset row that is a ShareGPT conversation rather than placeholder fields (a
    row's own ``messages`` stay a field: ``messages: "{{messages}}"`` sends them whole)."""
    return isinstance(row, dict) and isinstance(row.get("conversations"), list)


def read_conversations(path: Path) -> list[Conversation]:
    """Every conversation of a ``.json`` list or a JSONL file, in file order."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(
            f"conversations file not found: {path}",
            hint="the path is relative to the scenario file's folder",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    records = _json_list(path, text) if text.lstrip().startswith("[") else _jsonl(path, text)
    conversations = [to_conversation(path, line, record) for line, record in records]
    if not conversations:
        raise InputError(f"{path} holds no conversations", hint="give at least one")
    return conversations


def _jsonl(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not valid JSON ({exc.msg})") from None


def _json_list(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    """The items of a JSON list with the line each starts on (json.load keeps no lines)."""
    decoder = json.JSONDecoder()
    at = text.index("[") + 1
    while True:
        at = _skip(text, at)
        if at < len(text) and text[at] == "]":
            return
        try:
            item, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        yield text.count("\n", 0, at) + 1, item
        at = _skip(text, end)
        if at < len(text) and text[at] == ",":
            at += 1
        elif at >= len(text) or text[at] != "]":
            line = text.count("\n", 0, at) + 1
            raise InputError(f"{path}:{line}: not valid JSON (expected , or ] after an item)")


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def to_conversation(path: Path, line: int, record: Any) -> Conversation:
    """One record as a conversation; an error naming ``path:line`` when it has no user turn."""
    where = f"{path}:{line}"
    if not isinstance(record, dict):
        raise InputError(f"{where}: a conversation is a JSON object", hint=f"give it {_SHAPES}")
    if isinstance(record.get("conversations"), list):
        messages = [_sharegpt(where, m) for m in record["conversations"]]
    elif isinstance(record.get("messages"), list):
        messages = [_openai(where, m) for m in record["messages"]]
    elif isinstance(record.get("turns"), list):
        messages = [m for turn in record["turns"] for m in _turn(where, turn)]
    else:
        raise InputError(f"{where}: no conversation in this row", hint=f"give it {_SHAPES}")
    turns, system = _pair(messages)
    if not turns:
        raise InputError(
            f"{where}: this conversation has no user turn",
            hint="give it a message from human/user, or remove it from the file",
        )
    return Conversation(line, tuple(turns), system)


def _text(where: str, value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where}: {key} is {type(value).__name__}, not text")
    return value


def _sharegpt(where: str, message: Any) -> tuple[str, str]:
    if not isinstance(message, dict):
        raise InputError(f"{where}: a ShareGPT message is an object {{from, value}}")
    return _role(where, message.get("from")), _text(where, message.get("value"), "value")


def _openai(where: str, message: Any) -> tuple[str, str]:
    if not isinstance(message, dict):
        raise InputError(f"{where}: an OpenAI message is an object {{role, content}}")
    return _role(where, message.get("role")), _text(where, message.get("content"), "content")


def _turn(where: str, turn: Any) -> list[tuple[str, str]]:
    if isinstance(turn, str):
        return [("user", turn)]
    if isinstance(turn, dict) and "user" in turn:
        answer = turn.get("assistant")
        tail = [("assistant", _text(where, answer, "assistant"))] if answer is not None else []
        return [("user", _text(where, turn["user"], "user")), *tail]
    raise InputError(f"{where}: a turn is a string or {{user, assistant}}")


def _role(where: str, role: Any) -> str:
    if role in _USER:
        return "user"
    if role in _ASSISTANT:
        return "assistant"
    if role == "system":
        return "system"
    raise InputError(
        f"{where}: unknown speaker {role!r}",
        hint="ShareGPT `from` is human or gpt; OpenAI `role` is user, assistant or system",
    )


def _pair(messages: list[tuple[str, str]]) -> tuple[list[Turn], str | None]:
    turns: list[Turn] = []
    system = None
    pending: str | None = None
    for role, text in messages:
        if role == "system":
            system = text if system is None else system
        elif role == "user":
            if pending is not None:
                turns.append(Turn(pending, None))
            pending = text
        elif pending is not None:  # an answer to the pending user turn
            turns.append(Turn(pending, text))
            pending = None
    if pending is not None:
        turns.append(Turn(pending, None))
    return turns, system
