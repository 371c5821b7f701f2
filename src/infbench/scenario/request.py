"""Scenario file v1: the ``request`` section (what each arrival sends) and the ``client``."""

from __future__ import annotations

import importlib.util
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from infbench.scenario.common import LocalPath, Model, PositiveDuration

__all__ = ["OPENAI_PATHS", "Api", "Client", "Dataset", "RaySettings", "Request", "TokenCount"]


# --- request and client --------------------------------------------------------------------------


class Dataset(Model):
    """Rows that fill ``{{field}}`` placeholders: JSONL objects, CSV rows, or lines of text."""

    path: LocalPath
    order: Literal["random", "sequential"] = "random"
    format: Literal["auto", "jsonl", "csv", "text"] = "auto"
    limit: Annotated[int, Field(ge=1)] | None = None


class TokenCount(Model):
    """Output tokens drawn per dataset row from a normal distribution, rounded and clipped."""

    mean: Annotated[float, Field(gt=0)]
    sd: Annotated[float, Field(ge=0)] = 0.0
    min: Annotated[int, Field(ge=1)] = 1
    max: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TokenCount:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self


# What the request speaks (DESIGN §5b): plain HTTP, or a streaming LLM endpoint whose body
# infbench builds and whose answer it reads chunk by chunk.
Api = Literal["http", "openai-chat", "openai-completions", "text-stream"]
OPENAI_PATHS = {"openai-chat": "/v1/chat/completions", "openai-completions": "/v1/completions"}


class Request(Model):
    api: Api = "http"
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "POST"
    path: str = "/"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    dataset: Dataset | None = None
    timeout: PositiveDuration = 30.0
    max_response_bytes: Annotated[int, Field(ge=1)] = 64 * 1024 * 1024
    # openai-*: the body is built from these (DESIGN §3); `prompt` and `messages` are templates.
    model: str | None = None
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | TokenCount | None = None
    params: dict[str, Any] = Field(default_factory=dict)

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
        if self.api.startswith("openai-"):
            self._check_openai()
        elif self.model or self.prompt or self.messages or self.max_tokens or self.params:
            raise ValueError(
                "model, prompt, messages, max_tokens and params build an OpenAI body: "
                "set `api: openai-chat` or `api: openai-completions` (or write `body`)"
            )
        return self

    def _check_openai(self) -> None:
        if self.body is not None:
            raise ValueError(f"`api: {self.api}` builds the body itself: remove `body`")
        if not self.model:
            raise ValueError(f"`api: {self.api}` needs `model` (the name the server serves)")
        if self.api == "openai-completions" and (self.prompt is None or self.messages):
            raise ValueError("`api: openai-completions` needs `prompt` (not `messages`)")
        if self.api == "openai-chat" and (self.prompt is None) == (self.messages is None):
            raise ValueError("`api: openai-chat` needs `prompt` or `messages` (one of them)")

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

    @model_validator(mode="after")
    def _ray_installed(self) -> Client:
        if self.engine == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError(
                "`engine: ray` needs Ray, which is not installed: pip install 'infbench[ray]'"
            )
        return self
