"""Request templates + payload datasets (or synthetic prompts) -> concrete requests (DESIGN §3).

Everything costly happens once, in ``RequestFactory.from_scenario``: the dataset is read, every
row is rendered into a ``PreparedRequest`` (placeholders filled, body encoded, headers final),
and ``request(seq)`` is then an index into that list. The engine calls it once per arrival,
tens of thousands of times a second, so it must not parse, format or allocate.

Which row request ``seq`` uses is a pure function of (seed, order, seq): the same scenario
sends the same payloads in the same order, whichever process sends request ``seq``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import numpy as np

from infbench.errors import InputError
from infbench.scenario.request import Dataset, Request
from infbench.wire import PreparedRequest
from infbench.workload.chat_files import (
    Conversation,
    is_sharegpt_row,
    read_conversations,
    to_conversation,
)
from infbench.workload.dataset_pick import pick_rows
from infbench.workload.llm import RowError, openai_body
from infbench.workload.prompts import synthetic_rows
from infbench.workload.tokenizer import load_token_counter

__all__ = ["RequestFactory", "encode_path", "load_rows", "render_row"]

Row = Mapping[str, Any]
Order = Literal["random", "sequential"]

# `{{ field }}`; the name is anything but braces, so CSV headers with spaces work too.
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# Characters that may stand literally in a request target (RFC 3986 reserved + unreserved);
# "%" is kept so a path the user already encoded is not encoded twice.
_PATH_SAFE = "/:@!$&'()*+,;=?#[]%~"
_CHUNK = 8192  # random-order indices drawn per batch: amortises the generator's call cost
_STREAM = 0x1F_DA7A  # mixed into the seed so row sampling never shares a stream with arrivals
_FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "text", ".json": "sharegpt",
}  # fmt: skip
_SYNTHETIC = "request.prompts.synthetic"  # the source of generated rows, in messages
Counter = Callable[[str], int]


class RequestFactory:
    """Hands out the concrete request for each arrival number ``seq``.

    ``random`` order samples rows with replacement from a generator seeded by (seed, chunk),
    so any ``seq`` can be reproduced without replaying the ones before it. ``sequential``
    cycles through the rows in file order.
    """

    def __init__(
        self, rendered: Sequence[PreparedRequest], order: Order = "sequential", seed: int = 0
    ) -> None:
        if not rendered:
            raise ValueError("a RequestFactory needs at least one request")
        self._rendered = list(rendered)
        self._n = len(self._rendered)
        # One distinct request has nothing to shuffle: take the cheap path.
        self._sequential = order == "sequential" or self._n == 1
        self.order: Order = order
        self.seed = seed
        self._chunk: list[PreparedRequest] = []
        self._chunk_start = 0

    @classmethod
    def from_scenario(cls, request: Request, base_dir: Path, seed: int) -> RequestFactory:
        """Read the dataset or generate the prompts (if any); pre-render one request per row."""
        if request.prompts is not None and request.prompts.synthetic is not None:
            synthetic = request.prompts.synthetic
            rows, source, order = synthetic_rows(synthetic, seed), _SYNTHETIC, synthetic.order
        elif request.dataset is not None:
            rows = load_rows(request.dataset, base_dir, _counter(request, base_dir), seed)
            source, order = str(_dataset_path(request.dataset, base_dir)), request.dataset.order
        else:
            return cls([_render(request, {}, None, 0, seed)])
        rendered = [_render(request, row, source, i, seed) for i, row in enumerate(rows)]
        return cls(rendered, order, seed)

    def __len__(self) -> int:
        """Number of distinct pre-rendered requests (dataset rows, or 1)."""
        return self._n

    def request(self, seq: int) -> PreparedRequest:
        if self._sequential:
            return self._rendered[seq % self._n]
        offset = seq - self._chunk_start
        if 0 <= offset < len(self._chunk):
            return self._chunk[offset]
        return self._load_chunk(seq)

    def _load_chunk(self, seq: int) -> PreparedRequest:
        index = seq // _CHUNK
        rng = np.random.default_rng([self.seed, _STREAM, index])
        picks = rng.integers(0, self._n, size=_CHUNK).tolist()
        rendered = self._rendered
        self._chunk = [rendered[i] for i in picks]
        self._chunk_start = index * _CHUNK
        return self._chunk[seq - self._chunk_start]


# --- datasets -----------------------------------------------------------------------------------


def load_rows(
    dataset: Dataset, base_dir: Path, count: Counter | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """The dataset's rows (at most ``limit``) as dicts; CSV values stay strings. ShareGPT
    rows become ``{prompt, text, answer}``; ``lengths`` and ``sample`` then pick among them."""
    path = _dataset_path(dataset, base_dir)
    fmt = dataset.format if dataset.format != "auto" else _detect_format(path)
    if not path.is_file():
        raise InputError(
            f"dataset not found: {path}",
            hint="request.dataset.path is relative to the scenario file's folder",
        )
    if fmt == "sharegpt":
        rows = [_first_turn(c) for c in read_conversations(path)][: dataset.limit]
    else:
        rows = _read_rows(path, fmt, dataset.limit)
    if rows and is_sharegpt_row(rows[0]):  # ShareGPT JSONL (a `messages` row stays a row)
        rows = [_first_turn(to_conversation(path, i + 1, row)) for i, row in enumerate(rows)]
    if not rows:
        raise InputError(f"dataset {path} has no rows", hint="give a file with at least one row")
    return pick_rows(rows, dataset, path, count, seed)


def _read_rows(path: Path, fmt: str, limit: int | None) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as stream:
            readers = {"jsonl": _jsonl_rows, "csv": _csv_rows, "text": _text_rows}
            return list(islice(readers[fmt](stream, path), limit))
    except (UnicodeDecodeError, OSError, csv.Error) as exc:
        raise InputError(f"cannot read dataset {path}: {exc}") from exc


def _first_turn(conversation: Conversation) -> dict[str, Any]:
    first = conversation.turns[0]
    return {"prompt": first.user, "text": first.user, "answer": first.answer or ""}


def _counter(request: Request, base_dir: Path) -> Counter | None:
    lengths = request.dataset.lengths if request.dataset is not None else None
    if lengths is None or lengths.count != "tokenizer" or request.tokenizer is None:
        return None
    return load_token_counter(base_dir / Path(request.tokenizer).expanduser())


def _dataset_path(dataset: Dataset, base_dir: Path) -> Path:
    return base_dir / Path(dataset.path).expanduser()


def _detect_format(path: Path) -> str:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    fmt = _FORMATS.get(Path(name).suffix.lower())
    if fmt is None:
        raise InputError(
            f"cannot tell the format of dataset {path} from its suffix",
            hint="name it .jsonl, .ndjson, .csv, .txt or .json (ShareGPT), or set "
            "request.dataset.format",
        )
    return fmt


def _jsonl_rows(stream: io.TextIOBase, path: Path) -> Iterator[dict[str, Any]]:
    for lineno, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise InputError(
                f"{path}:{lineno}: each line must be a JSON object, got {type(row).__name__}",
                hint='wrap the value, e.g. {"text": ...}, or use a .txt dataset',
            )
        yield row


def _csv_rows(stream: io.TextIOBase, path: Path) -> Iterator[dict[str, Any]]:
    # Extra cells land under the key None; they have no column name to be addressed by.
    for row in csv.DictReader(stream):
        yield {k: v for k, v in row.items() if k is not None}


def _text_rows(stream: io.TextIOBase, path: Path) -> Iterator[dict[str, Any]]:
    for line in stream:
        text = line.rstrip("\r\n")
        if text:
            yield {"text": text}


# --- templates ----------------------------------------------------------------------------------


class _MissingField(Exception):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def _render(
    request: Request, row: Row, source: str | None, index: int, seed: int = 0
) -> PreparedRequest:
    where = "request.path"
    try:
        path = encode_path(_fill_path(request.path, row))
        where = "request.headers"
        headers = [(name, _fill_text(value, row)) for name, value in request.headers.items()]
        if request.api.startswith("openai-"):
            where = _openai_where(request)
            payload = openai_body(request, row, index, seed, lambda v: _fill(v, row))
        else:
            where = "request.body"
            payload = _fill(request.body, row)
        body, content_type = _encode_body(payload)
    except _MissingField as exc:
        raise _missing_field_error(where, exc.field, row, source, index) from None
    except RowError as exc:
        message = f"{exc.key or where}: {_row_name(source, index)} {exc}"
        raise InputError(message, hint=exc.hint) from None
    if content_type and not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", content_type))
    return PreparedRequest(request.method, path, tuple(headers), body)


def render_row(request: Request, row: Row, source: str, index: int, seed: int) -> PreparedRequest:
    """One row rendered into a request; errors name ``source`` (a file) and the row."""
    return _render(request, row, source, index, seed)


def _openai_where(request: Request) -> str:
    if request.messages is not None:
        return "request.messages"
    if request.prompt is not None:
        return "request.prompt"
    return 'request.prompt (unset, so "{{prompt}}")'


def _row_name(source: str | None, index: int) -> str:
    if source == _SYNTHETIC:
        return f"synthetic prompt {index + 1}"
    return f"row {index + 1} of {source}"


def _missing_field_error(
    where: str, field: str, row: Row, source: str | None, index: int
) -> InputError:
    if source is None:
        return InputError(
            f"{where} uses the placeholder {{{{{field}}}}} but the request has no dataset",
            hint="add request.dataset with a file that has this field, or remove the placeholder",
        )
    available = ", ".join(map(str, row)) or "(none)"
    hint = "fix the placeholder's name" + (
        " or add the field to every row" if source != _SYNTHETIC else ""
    )
    if "unset" in where:
        hint = 'set request.prompt (e.g. "{{text}}") or request.messages'
    return InputError(
        f"{where} uses the placeholder {{{{{field}}}}}, but {_row_name(source, index)} "
        f"has no field {field!r}; available fields: {available}",
        hint=hint,
    )


def _fill(value: Any, row: Row) -> Any:
    """Fill placeholders recursively; a string that is exactly one placeholder takes the
    row's value with its JSON type, so ``"{{n}}"`` can become the number 3."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return _lookup(row, whole.group(1))
        return _fill_text(value, row)
    if isinstance(value, dict):
        return {key: _fill(item, row) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, row) for item in value]
    return value


def _fill_text(text: str, row: Row) -> str:
    if "{{" not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: _as_text(_lookup(row, m.group(1))), text)


def _fill_path(text: str, row: Row) -> str:
    # Row values are data, not syntax: encode everything but "/" so a value holding "?" or
    # "&" cannot change the query string. The literal template is left as the user wrote it.
    if "{{" not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: quote(_as_text(_lookup(row, m.group(1))), safe="/"), text)


def _lookup(row: Row, field: str) -> Any:
    try:
        return row[field]
    except KeyError:
        raise _MissingField(field) from None


def _as_text(value: Any) -> str:
    # Non-strings are written as JSON (true, null, 1.5), the notation of the body they sit in.
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _encode_body(body: Any) -> tuple[bytes | None, str | None]:
    if body is None:
        return None, None
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return data.encode(), "application/json"


def encode_path(path: str) -> str:
    """Percent-encode what may not stand literally in a request target (spaces, non-ASCII),
    leaving existing escapes alone: a ``PreparedRequest.path`` is ready for the wire."""
    return quote(path, safe=_PATH_SAFE)
