"""HTTP/1.1 requests rendered to the bytes the fast sender writes, once per distinct request.

The engine hands the same ``PreparedRequest`` objects again and again (a dataset's rows are
prepared before the run), so each is rendered once and its bytes kept: sending is then a
dictionary look-up and a socket write. The request line, Host, User-Agent, Accept and the
framing header are ours; the scenario's own framing headers never reach the wire.
"""

from __future__ import annotations

from urllib.parse import quote

from infbench.errors import UsageError
from infbench.senders.base import USER_AGENT, check_base_url
from infbench.wire import PreparedRequest

__all__ = ["Http1Encoder", "parse_base"]

_PATH_SAFE = "/:@!$&'()*+,;=?#[]%~"
_WIRE_CACHE_MAX = 65_536  # distinct requests kept encoded; beyond that, encoded per send
_INLINE_BODY_MAX = 8 * 1024  # bodies up to this size are cached joined to their head
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "CONNECT"})
_FRAMING = frozenset({"content-length", "transfer-encoding"})  # ours, never the request's

# (request, bytes to write, body written separately or None, is HEAD)
_Wire = tuple[PreparedRequest, bytes, bytes | None, bool]


class Http1Encoder:
    """Bytes to write for each request to one base URL (http:// only)."""

    def __init__(self, base_url: str) -> None:
        self.host, self.port, self.host_header, self.base_path = parse_base(base_url)
        self._wire: dict[int, _Wire] = {}

    def encode(self, request: PreparedRequest) -> tuple[bytes, bytes | None, bool]:
        """(bytes to write, a large body written after them or None, is HEAD)."""
        wire = self._wire.get(id(request))
        if wire is None or wire[0] is not request:
            wire = self._render(request)
        return wire[1], wire[2], wire[3]

    def _render(self, request: PreparedRequest) -> _Wire:
        for name, value in request.headers:
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise UsageError(
                    f"request header {name!r} contains a line break",
                    hint="remove CR and LF from request.headers in the scenario",
                )
        target = self.base_path + quote(request.path, safe=_PATH_SAFE)
        if not target.startswith("/"):
            target = "/" + target
        given = {name.lower() for name, _ in request.headers}
        lines = [f"{request.method} {target} HTTP/1.1"]
        if "host" not in given:
            lines.append(f"Host: {self.host_header}")
        if "user-agent" not in given:
            lines.append(f"User-Agent: {USER_AGENT}")
        if "accept" not in given:
            lines.append("Accept: */*")
        lines.extend(f"{n}: {v}" for n, v in request.headers if n.lower() not in _FRAMING)
        body = request.body
        if body is not None or request.method not in _NO_BODY_METHODS:
            lines.append(f"Content-Length: {len(body) if body else 0}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        rest = None
        if body:
            if len(body) <= _INLINE_BODY_MAX:
                data += body
            else:
                rest = body  # not copied into the cache: datasets can hold large bodies
        wire = (request, data, rest, request.method == "HEAD")
        if len(self._wire) < _WIRE_CACHE_MAX:
            self._wire[id(request)] = wire  # holds `request`, so its id cannot be reused
        return wire


def parse_base(base_url: str) -> tuple[str, int, str, str]:
    """(host to connect to, port, Host header, path prefix) of an http:// base URL."""
    parts = check_base_url(base_url)
    if parts.scheme == "https":
        raise UsageError(
            f"target URL {base_url!r} needs TLS, but the fast sender speaks plain HTTP/1.1; "
            "use client.sender: aiohttp for TLS",
            hint="set client.sender: aiohttp (or httpx) for https:// targets",
        )
    host_header = parts.netloc.rpartition("@")[2]
    return parts.hostname or "", parts.port or 80, host_header, parts.path.rstrip("/")
