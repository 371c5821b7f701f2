"""Senders: the HTTP clients the engine drives (DESIGN §6).

``make_sender`` picks one by the scenario's ``client.sender``. Each implementation is imported
only when chosen, so importing this package (or ``senders.base``) never pays for aiohttp or
httpx.
"""

from __future__ import annotations

from collections.abc import Callable

from infbench.errors import UsageError
from infbench.senders.base import Sender, SenderOptions

__all__ = ["SENDERS", "make_sender", "resolve_sender"]


def _aiohttp(options: SenderOptions) -> Sender:
    from infbench.senders.aiohttp_sender import AiohttpSender

    return AiohttpSender(options)


def _httpx(options: SenderOptions) -> Sender:
    from infbench.senders.httpx_sender import HttpxSender

    return HttpxSender(options)


def _fast(options: SenderOptions) -> Sender:
    from infbench.senders.fast_sender import FastSender

    return FastSender(options)


SENDERS: dict[str, Callable[[SenderOptions], Sender]] = {
    "aiohttp": _aiohttp,
    "httpx": _httpx,
    "fast": _fast,
}


def resolve_sender(name: str, base_url: str, http2: bool) -> str:
    """``auto`` made concrete for a target: ``fast`` for plain HTTP/1.1, where it measured ten
    times cheaper per request than aiohttp (DESIGN §6); ``httpx`` for HTTP/2; ``aiohttp``
    for TLS, which fast does not speak. Any other name is returned as it is."""
    if name != "auto":
        return name
    if http2:
        return "httpx"
    return "aiohttp" if base_url.lower().startswith("https://") else "fast"


def make_sender(name: str, options: SenderOptions) -> Sender:
    """The sender called ``name`` (``auto`` resolved for ``options.base_url``); raises
    UsageError naming the choices for anything else."""
    name = resolve_sender(name, options.base_url, options.http2)
    constructor = SENDERS.get(name)
    if constructor is None:
        choices = ", ".join(SENDERS)
        raise UsageError(
            f"client.sender: {name!r} is not a sender; choose one of: {choices}",
            hint=f"set client.sender in the scenario (or with --set) to one of: {choices}",
        )
    return constructor(options)
