"""Reading streamed LLM answers (DESIGN §5b): bytes and a stamp in, per-request figures out.

Pure: no socket and no clock. A sender feeds each body piece as it arrives with the loop's
``monotonic_ns()`` and calls ``end()`` at the end of the body; the figures it then reads are
what the stamp row needs (first/last token, chunks, tokens, error) plus every inter-token gap.

- ``SseReader``: OpenAI-compatible server-sent events (``openai-chat``, ``openai-completions``),
  parsed as the WHATWG event-stream rules say (any of CRLF, LF, CR; ``:`` comments; ``event``,
  ``id``, ``retry``; multi-line ``data``), frames split across reads or several in one.
- ``TextStreamReader``: ``text-stream`` (a BentoML generator answering text/plain pieces).

A *content chunk* carries text: chat ``choices[0].delta.content`` (or the reasoning text of
reasoning models, ``reasoning_content``/``reasoning``, which are generated tokens too),
completions ``choices[0].text``. A role-only delta, an empty delta, a ``finish_reason``-only
chunk, a comment, the usage chunk and ``[DONE]`` carry none. All events of one read share the
read's stamp: the client cannot know more, so their gaps are 0.

ITL: each gap between consecutive content chunks is appended to ``gaps``, an ``array('q')`` of
nanoseconds (raw integers, no object per gap kept).

Errors (first one wins, later events still counted):

- ``protocol``: a data payload that is not JSON or not a JSON object of the expected shape;
  the server broke the streaming format.
- ``stream_error`` (new kind): an error reported inside a 200 stream, ``{"error": {...}}`` as
  vLLM and OpenAI send it (also ``"object": "error"`` and an ``event: error`` field). Neither
  ``http_5xx`` (the status was 200) nor ``protocol`` (the frame was well formed).
- ``reset``: ``end()`` came before the stream's end: the answer was cut short, the same failure
  the user sees when the connection drops mid-body. The end is ``[DONE]``, or a clean end of
  the body after a chunk with a ``finish_reason`` (the OpenAI client and vLLM's benchmark take
  that as complete too). An unterminated last event is discarded, as the event-stream rules and
  the OpenAI client do, so a stream cut inside a frame is ``reset``.
- ``too_large``: one line or event grew past ``EVENT_MAX_BYTES`` (1 MiB) without its end: a
  runaway event. ``cut`` turns True and the sender drops the answer there, long before the
  response cap (``max_response_bytes``, 64 MiB by default) would. An unfinished line is kept as
  a list of its pieces, joined once when its end comes, so a long line costs linear time.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Literal

from infbench.senders.chunk_schema import Usage, decode_chunk
from infbench.wire import ErrorKind

__all__ = [
    "EVENT_MAX_BYTES",
    "SseReader",
    "TextStreamReader",
    "TokensSource",
]

TokensSource = Literal["usage", "tokenizer", "chunks"]
# The longest line or event a stream may send: far above any real chunk (a vLLM chunk with 20
# top logprobs is a few KiB), far below the response cap. Past it the answer is ``too_large``.
EVENT_MAX_BYTES = 1024 * 1024


class _Stream:
    """What both readers track per request."""

    __slots__ = (
        "_count_tokens",
        "_usage_output",
        "chunks",
        "cut",
        "error",
        "first_token_ns",
        "gaps",
        "input_tokens",
        "last_token_ns",
        "token_gaps",
    )

    def __init__(self, count_tokens: Callable[[str], int] | None) -> None:
        self.first_token_ns = 0  # 0: no content arrived (the stamp layout's "did not happen")
        self.last_token_ns = 0
        self.chunks = 0
        self.gaps: array[int] = array("q")
        # each gap ÷ the tokens its later chunk carried, where they are known (itl_token)
        self.token_gaps: array[int] = array("q")
        self.input_tokens = 0  # usage.prompt_tokens; 0 when the server sent none
        self.error: ErrorKind | None = None
        self.cut = False  # a line or event passed EVENT_MAX_BYTES: the sender drops the answer
        self._usage_output = -1  # usage.completion_tokens; -1 until a usage object came
        self._count_tokens = count_tokens

    def _stamp(self, now_ns: int) -> None:
        if self.chunks:
            self.gaps.append(now_ns - self.last_token_ns)
        else:
            self.first_token_ns = now_ns
        self.last_token_ns = now_ns
        self.chunks += 1

    def _fail(self, kind: ErrorKind) -> None:
        if self.error is None:
            self.error = kind

    def _text(self) -> str:
        raise NotImplementedError

    @property
    def tokens_source(self) -> TokensSource:
        if self._usage_output >= 0:
            return "usage"
        return "tokenizer" if self._count_tokens is not None else "chunks"

    @property
    def output_tokens(self) -> int:
        """Usage if the server sent it, else the tokenizer on the whole text (tokenizing per
        chunk would split merges), else one per chunk. Read it once, after ``end()``."""
        if self._usage_output >= 0:
            return self._usage_output
        if self._count_tokens is not None:
            return self._count_tokens(self._text())
        return self.chunks

    @property
    def tokenizer_tokens(self) -> int:
        """The token audit's local count (DESIGN §5b): the tokenizer on the whole text already
        kept for it, where the server's usage gave ``output_tokens``; -1 where the two were not
        both counted. One tokenizer pass per answer, as without usage. Read it once, after
        ``end()``."""
        if self._usage_output >= 0 and self._count_tokens is not None:
            return self._count_tokens(self._text())
        return -1


class SseReader(_Stream):
    """One request's OpenAI-compatible event stream. ``api`` picks where the text lies."""

    __slots__ = (
        "_chat", "_cr", "_data", "_event", "_held", "_more", "_partial", "_texts",
        "done", "finished",
    )  # fmt: skip

    def __init__(
        self,
        api: Literal["openai-chat", "openai-completions"],
        count_tokens: Callable[[str], int] | None = None,
        keep_text: bool = False,
    ) -> None:
        super().__init__(count_tokens)
        self.done = False  # [DONE] seen
        self.finished = False  # a chunk with a finish_reason seen
        self._chat = api == "openai-chat"
        self._partial: list[bytes] = []  # the pieces of an incomplete line, joined at its end
        self._held = 0  # their bytes
        self._cr = False  # the last read ended in CR: a leading LF next is the same line end
        self._data: bytes | None = None  # the current event's first data line
        self._more: list[bytes] | None = None  # its further data lines (rare)
        self._event = b""
        # Kept only for a tokenizer or a conversation's history; else no text outlives its chunk.
        self._texts: list[str] | None = [] if count_tokens is not None or keep_text else None

    def feed(self, data: bytes, now_ns: int) -> None:
        """Take one body piece received at ``now_ns``; complete events are handled at once."""
        if not data or self.cut:
            return
        if self._cr:  # the last read ended in CR: a leading LF is the same line end
            self._cr = False
            if data[0] == 10:
                data = data[1:]
        if 13 in data:  # CR: rare (vLLM and OpenAI send LF); an int test is a memchr, 10x faster
            self._cr = data[-1] == 13
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = len(data) - 2  # one whole one-line event and nothing pending: most reads
        if (
            self._data is None
            and not self._partial
            and data[:6] == b"data: "
            and data.find(b"\n", 6) == end
            and data[end + 1] == 10
        ):
            self._dispatch(data[6:end], now_ns)
            self._event = b""
            return
        if self._partial:
            if 10 not in data:
                self._hold(data)
                return
            self._partial.append(data)
            data = b"".join(self._partial)  # once per line, however many reads it took
            self._partial.clear()
            self._held = 0
        lines = data.split(b"\n")
        rest = lines.pop()
        for line in lines:
            if not line:  # blank line: the event is complete
                if self._data is not None:
                    payload = self._data if self._more is None else self._joined()
                    self._data = None
                    self._dispatch(payload, now_ns)
                self._event = b""
            elif line[:5] == b"data:":
                self._add_data(line[6:] if line[5:6] == b" " else line[5:])
            elif line[0] != 58:  # not a ":" comment (ping)
                self._field(line)
        if rest:
            self._hold(rest)

    def _add_data(self, value: bytes) -> None:
        if self._data is None:
            self._data = value
            if len(value) > EVENT_MAX_BYTES:
                self._overflow()
        else:  # a multi-line event: its lines are kept apart and joined once at its end
            if self._more is None:
                self._more = []
            self._more.append(value)
            if len(self._data) + sum(map(len, self._more)) > EVENT_MAX_BYTES:
                self._overflow()

    def _joined(self) -> bytes:
        assert self._data is not None and self._more is not None
        payload = b"\n".join([self._data, *self._more])
        self._more = None
        return payload

    def _hold(self, piece: bytes) -> None:
        """Keep a piece of a line whose end has not come, up to the bound."""
        self._partial.append(piece)
        self._held += len(piece)
        if self._held > EVENT_MAX_BYTES:
            self._overflow()

    def _overflow(self) -> None:
        self.cut = True
        self._fail("too_large")
        self._partial.clear()
        self._data = self._more = None

    def _field(self, line: bytes) -> None:
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event = value
        elif name == b"data":  # "data" with no colon: an empty data line
            self._add_data(value)
        # id and retry matter to a browser reconnecting, not to a measurement; others are ignored

    def _dispatch(self, payload: bytes, now_ns: int) -> None:
        try:
            chunk = decode_chunk(payload)
        except ValueError:  # [DONE], empty, not JSON, not UTF-8, or not the shape of a chunk
            if payload == b"[DONE]":
                self.done = True
                return
            if self._event == b"error":
                self._fail("stream_error")
            if payload:
                self._fail("protocol")
            return
        if self._event == b"error":
            self._fail("stream_error")
        choices, usage = chunk.choices, chunk.usage
        if choices:
            choice = choices[0]
            if self._chat:
                delta = choice.delta
                text = delta and (delta.content or delta.reasoning_content or delta.reasoning)
            else:
                text = choice.text
            if choice.finish_reason:
                self.finished = True
            if text:
                self._stamp(now_ns)
                if self._texts is not None:
                    self._texts.append(text)
                if self.chunks > 1 and (usage is not None or self._count_tokens):
                    self._token_gap(text, usage)
        # {"error": {...}} as vLLM and OpenAI stream it (a null "error" is none, as in the
        # OpenAI client); {"object": "error", ...} is vLLM's bare error body.
        if chunk.error or (not choices and chunk.object == "error"):
            self._fail("stream_error")
        if usage is not None:  # the last chunk (choices: []), or every chunk with continuous usage
            output, prompt = usage.completion_tokens, usage.prompt_tokens
            if type(output) is int:
                self._usage_output = output
            if type(prompt) is int:
                self.input_tokens = prompt

    def _token_gap(self, text: str, usage: Usage | None) -> None:
        """The gap just stamped ÷ the tokens this chunk carried: from the running usage
        (vLLM's continuous_usage_stats), else the tokenizer on the chunk's text."""
        count = usage.completion_tokens if usage is not None else None
        if type(count) is int:
            carried = count - max(self._usage_output, 0)  # the usage before this chunk's
        elif self._count_tokens is not None:
            carried = self._count_tokens(text)
        else:
            return
        if carried > 0:
            self.token_gaps.append(self.gaps[-1] // carried)

    def end(self) -> ErrorKind | None:
        """The body ended cleanly: the request's error kind, ``reset`` unless ``[DONE]`` came,
        or a ``finish_reason`` with no event left unfinished after it."""
        complete = self.finished and not self._partial and self._data is None
        if not (self.done or complete):
            self._fail("reset")
        return self.error

    def _text(self) -> str:
        return "".join(self._texts or ())

    @property
    def text(self) -> str | None:
        """The answer's text when it was kept (``keep_text`` or a tokenizer), else None."""
        return None if self._texts is None else "".join(self._texts)


class TextStreamReader(_Stream):
    """One request's plain streamed text: every non-empty body piece is a content chunk."""

    __slots__ = ("_pieces",)

    def __init__(
        self, count_tokens: Callable[[str], int] | None = None, keep_text: bool = False
    ) -> None:
        super().__init__(count_tokens)
        self._pieces: list[bytes] | None = [] if count_tokens is not None or keep_text else None

    def feed(self, data: bytes, now_ns: int) -> None:
        if data:
            self._stamp(now_ns)
            if self._pieces is not None:
                self._pieces.append(data)

    def end(self) -> ErrorKind | None:
        """Plain text has no end marker: only the transport knows if the body was complete."""
        return self.error

    def _text(self) -> str:
        # Joined before decoding: a UTF-8 character may be split between pieces.
        return b"".join(self._pieces or ()).decode("utf-8", "replace")

    @property
    def text(self) -> str | None:
        """The answer's text when it was kept (``keep_text`` or a tokenizer), else None."""
        return None if self._pieces is None else self._text()
