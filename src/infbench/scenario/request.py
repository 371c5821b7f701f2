"""Scenario file v1: the ``request`` section (what each arrival sends) and the ``client``."""

from __future__ import annotations

import importlib.util
import json
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from infbench.scenario.common import LocalPath, Model, PositiveDuration
from infbench.units import Duration

__all__ = [
    "OPENAI_PATHS",
    "Api",
    "Client",
    "Conversations",
    "Dataset",
    "FromTrace",
    "LengthFilter",
    "Prompts",
    "RaySettings",
    "Request",
    "SharedPrefix",
    "SyntheticPrompts",
    "ThinkTime",
    "TokenCount",
]


# --- request and client --------------------------------------------------------------------------


class LengthFilter(Model):
    """Keep rows whose prompt is ``min``..``max`` long, counted in words (about tokens) or by
    ``request.tokenizer``."""

    min: Annotated[int, Field(ge=0)] = 0
    max: Annotated[int, Field(ge=1)] | None = None
    count: Literal["words", "tokenizer"] = "words"


class Dataset(Model):
    """Rows that fill ``{{field}}`` placeholders: JSONL objects, CSV rows, lines of text, or
    ShareGPT conversations (``.json`` lists or JSONL; the first user turn is ``prompt``)."""

    path: LocalPath
    order: Literal["random", "sequential"] = "random"
    format: Literal["auto", "jsonl", "csv", "text", "sharegpt"] = "auto"
    limit: Annotated[int, Field(ge=1)] | None = None
    lengths: LengthFilter | None = None
    sample: Annotated[int, Field(ge=1)] | None = None  # rows drawn (seeded) after the filter


class TokenCount(Model):
    """A number of tokens drawn per row (output tokens, or a synthetic prompt's length) from a
    normal distribution, rounded and clipped to [min, max]."""

    mean: Annotated[float, Field(gt=0)]
    sd: Annotated[float, Field(ge=0)] = 0.0
    min: Annotated[int, Field(ge=1)] = 1
    max: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TokenCount:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self


# Synthetic prompts: at most this many words in all, so a slip of units cannot fill the memory
# (every prompt is rendered into its request body before the run).
MAX_SYNTHETIC_WORDS = 20_000_000


class SharedPrefix(Model):
    """Prompts in ``groups`` groups; every prompt of a group opens with the group's own
    ``prefix_tokens`` words, so a server's prefix cache can reuse them."""

    groups: Annotated[int, Field(ge=1, le=100_000)]
    prefix_tokens: Annotated[int, Field(ge=1, le=1_000_000)]


class SyntheticPrompts(Model):
    """``count`` prompts of random words from a fixed vocabulary (a word is about one token),
    their lengths drawn from ``input_tokens``, seeded by ``workload.seed``."""

    count: Annotated[int, Field(ge=1, le=100_000)] = 100
    input_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | TokenCount
    shared_prefix: SharedPrefix | None = None
    order: Literal["random", "sequential"] = "random"

    @model_validator(mode="after")
    def _sized(self) -> SyntheticPrompts:
        prefix = self.shared_prefix.prefix_tokens if self.shared_prefix else 0
        if self.shared_prefix and self.shared_prefix.groups > self.count:
            raise ValueError(
                f"shared_prefix.groups ({self.shared_prefix.groups}) must be at most count "
                f"({self.count}): every group needs a prompt"
            )
        own = self.input_tokens
        longest = own if isinstance(own, int) else own.max or own.mean + 4 * own.sd
        words = self.count * (prefix + longest)
        if words > MAX_SYNTHETIC_WORDS:
            raise ValueError(
                f"count × (prefix_tokens + input_tokens) is up to {words:,.0f} words; at most "
                f"{MAX_SYNTHETIC_WORDS:,} (lower count or input_tokens)"
            )
        return self


class FromTrace(Model):
    """Each arrival of a trace phase sends a prompt of its row's input length, built from
    seeded blocks of ``block_tokens`` words, one per hash id of the row (equal ids, equal
    words), and asks for its output length (DESIGN §5c)."""

    block_tokens: Annotated[int, Field(ge=1, le=1_000_000)] = 512


class Prompts(Model):
    """Where the prompts come from when no dataset gives them: generated, or sized by a trace."""

    synthetic: SyntheticPrompts | None = None
    from_trace: FromTrace | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Prompts:
        if (self.synthetic is None) == (self.from_trace is None):
            raise ValueError("give one of `synthetic` or `from_trace`")
        return self


class ThinkTime(Model):
    """A user's time between reading an answer and sending the next turn: mean ``mean``,
    coefficient of variation ``cv`` (0 fixed, 1 exponential, else gamma)."""

    mean: Annotated[Duration, Field(ge=0)]
    cv: Annotated[float, Field(ge=0)] = 1.0


class Conversations(Model):
    """Sessions of turns (DESIGN §5c): each arrival starts a session; turn k is sent the
    think time after turn k-1's answer ended, with the whole history."""

    path: LocalPath
    history: Literal["generated", "recorded"] = "generated"
    think: Annotated[Duration, Field(ge=0)] | ThinkTime = 0.0
    max_turns: Annotated[int, Field(ge=1, le=1000)] | None = None
    max_context_tokens: Annotated[int, Field(ge=1)] | None = None
    session_header: str | None = None
    order: Literal["random", "sequential"] = "random"

    @property
    def think_mean_cv(self) -> tuple[float, float]:
        think = self.think
        return (think.mean, think.cv) if isinstance(think, ThinkTime) else (float(think), 0.0)


# What the request speaks (DESIGN §5b): plain HTTP, or a streaming LLM endpoint whose body
# infbench builds and whose answer it reads chunk by chunk.
Api = Literal["http", "openai-chat", "openai-completions", "text-stream"]
OPENAI_PATHS = {"openai-chat": "/v1/chat/completions", "openai-completions": "/v1/completions"}


# `messages: "{{messages}}"`: the row's own list of chat messages, with its JSON type.
_WHOLE_PLACEHOLDER = re.compile(r"\{\{\s*[^{}]*?\s*\}\}")


class Request(Model):
    api: Api = "http"
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "POST"
    path: str = "/"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    dataset: Dataset | None = None
    prompts: Prompts | None = None  # generated rows, instead of a dataset's
    conversations: Conversations | None = None  # sessions of turns, instead of single prompts
    timeout: PositiveDuration = 30.0
    max_response_bytes: Annotated[int, Field(ge=1)] = 64 * 1024 * 1024
    # openai-*: the body is built from these (DESIGN §3); `prompt` and `messages` are templates.
    model: str | None = None
    prompt: str | None = None
    messages: list[dict[str, Any]] | str | None = None
    max_tokens: Annotated[int, Field(ge=1)] | TokenCount | None = None
    fixed_output: bool = False  # every answer exactly max_tokens long (min_tokens, ignore_eos)
    params: dict[str, Any] = Field(default_factory=dict)
    # A streamed answer's output tokens when the server sends no usage: a Hugging Face
    # tokenizer.json counts its text (needs the `tokenizers` package); else its chunks count.
    tokenizer: LocalPath | None = None

    @field_validator("messages", mode="before")
    @classmethod
    def _messages_placeholder(cls, value: Any) -> Any:
        if isinstance(value, str) and not _WHOLE_PLACEHOLDER.fullmatch(value):
            raise ValueError(
                'as a string, `messages` is one placeholder, e.g. "{{messages}}": a row\'s '
                "list of {role, content} objects"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _openai_path(cls, data: Any) -> Any:
        """An OpenAI API's path when none is given: the one every compatible server serves."""
        if isinstance(data, dict) and data.get("api") in OPENAI_PATHS and "path" not in data:
            return {**data, "path": OPENAI_PATHS[data["api"]]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Request:
        if not self.path.startswith("/"):
            raise ValueError("`path` must start with / (the target's URL gives scheme and host)")
        if self.dataset is not None and self.prompts is not None:
            raise ValueError("rows come from `dataset` or from `prompts`: give one of them")
        if self.conversations is not None:
            self._check_conversations()
        if self.tokenizer is not None:
            self._check_tokenizer()
        lengths = self.dataset.lengths if self.dataset is not None else None
        if lengths is not None and lengths.count == "tokenizer" and self.tokenizer is None:
            raise ValueError("`dataset.lengths.count: tokenizer` needs `request.tokenizer`")
        if self.api.startswith("openai-"):
            self._check_openai()
        elif self.model or self.prompt or self.messages or self.max_tokens or self.params:
            raise ValueError(
                "model, prompt, messages, max_tokens and params build an OpenAI body: "
                "set `api: openai-chat` or `api: openai-completions` (or write `body`)"
            )
        elif self.fixed_output:
            raise ValueError("`fixed_output` asks an OpenAI-compatible server: set `api: openai-*`")
        elif self.prompts is not None and "{{" not in json.dumps(self.body):
            raise ValueError(
                "`prompts` fill placeholders of `body`: write one, e.g. "
                'body: {prompt: "{{prompt}}"} (or set `api: openai-*`)'
            )
        return self

    def _check_conversations(self) -> None:
        if self.dataset is not None or self.prompts is not None:
            raise ValueError("`conversations` give the prompts: remove `dataset` / `prompts`")
        if self.api not in OPENAI_PATHS:
            raise ValueError(
                "`conversations` send chat history: set `api: openai-chat` (or openai-completions)"
            )
        if self.prompt is not None or self.messages is not None:
            raise ValueError("`conversations` give the messages: remove `prompt` / `messages`")

    def _check_tokenizer(self) -> None:
        if self.api == "http":
            raise ValueError("`tokenizer` counts a streamed answer's tokens: set `api` too")
        if importlib.util.find_spec("tokenizers") is None:
            raise ValueError(
                "`tokenizer` needs the tokenizers package, which is not installed: "
                "pip install tokenizers"
            )

    def _check_openai(self) -> None:
        if self.body is not None:
            raise ValueError(f"`api: {self.api}` builds the body itself: remove `body`")
        if not self.model:
            raise ValueError(f"`api: {self.api}` needs `model` (the name the server serves)")
        if self.api == "openai-completions" and self.messages is not None:
            raise ValueError("`api: openai-completions` takes `prompt`, not `messages`")
        if self.prompt is not None and self.messages is not None:
            raise ValueError(f"`api: {self.api}` takes `prompt` or `messages`, not both")
        if self.prompt_template is None and self.messages is None and not self.conversations:
            raise ValueError(
                f"`api: {self.api}` needs `prompt` (or `messages`), or rows that carry a "
                "`prompt` field: `dataset` or `prompts`"
            )
        if self.fixed_output:
            self._check_fixed_output()

    def _check_fixed_output(self) -> None:
        from_trace = self.prompts is not None and self.prompts.from_trace is not None
        if self.max_tokens is None and self.dataset is None and not from_trace:
            raise ValueError(
                "`fixed_output` needs `max_tokens` (or dataset rows or a trace that carry their "
                "own)"
            )
        clash = sorted({"min_tokens", "ignore_eos"} & set(self.params))
        if clash:
            raise ValueError(
                f"`fixed_output` sets {' and '.join(clash)} itself: remove "
                f"{', '.join(f'params.{key}' for key in clash)}"
            )

    @property
    def prompt_template(self) -> str | None:
        """``prompt``, else a row's own ``prompt`` field when rows exist (dataset or prompts)."""
        if self.prompt is not None or self.messages is not None:
            return self.prompt
        return "{{prompt}}" if self.dataset is not None or self.prompts is not None else None

    @property
    def streams(self) -> bool:
        """The answer is read chunk by chunk (TTFT, TPOT, ITL and tokens are measured)."""
        return self.api != "http"


class RaySettings(Model):
    """Where the Ray generators run: an existing cluster (``auto``, ``ray://host:10001``) or,
    without an address, a Ray instance started on this machine for the run."""

    address: str | None = None
    actors: Annotated[int, Field(ge=1, le=4096)] | None = None  # default: one per node
    num_cpus: Annotated[float, Field(gt=0)] = 1.0  # reserved per actor


class Client(Model):
    # auto: fast where it can go (plain HTTP/1.1), aiohttp otherwise (senders.resolve_sender)
    sender: Literal["auto", "aiohttp", "httpx", "fast"] = "auto"
    connections: Annotated[int, Field(ge=1, le=100_000)] = 64
    http2: bool = False
    processes: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 1
    insecure: bool = False  # skip TLS certificate verification (recorded as a warning)
    engine: Literal["local", "ray"] = "local"
    ray: RaySettings = RaySettings()
    # The dispatching thread's scheduling (load/priority.py): auto = real-time where allowed.
    priority: Literal["auto", "normal", "realtime"] = "auto"

    @model_validator(mode="after")
    def _ray_installed(self) -> Client:
        if self.engine == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError(
                "`engine: ray` needs Ray, which is not installed: pip install 'infbench[ray]'"
            )
        return self
