"""Secrets out of what infbench stores and prints: the one home of redaction.

What looks secret is decided here alone (one list of header names, one pattern of key names),
for the stored scenario (literal header values, env values, a command target's argv and URL),
the command lines run.json records (infbench's own argv, where ``--set`` may carry a token),
credentials in URLs (``https://user:pass@host``) and validation messages, which never echo a
secret-looking value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "SECRET_HEADERS",
    "looks_secret",
    "redact_argv",
    "redact_scenario",
    "redact_url",
]

REDACTED = "<redacted>"
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
     "x-auth-token", "x-access-token", "x-amz-security-token"}
)  # fmt: skip
# Key names that hold secrets (env names, flags, the last part of a --set key path).
# "token" but not "tokens": max_tokens and output_tokens are counts, shown in every message.
_SECRET_WORD = re.compile(r"token(?!s)|secret|passw|api[_-]?key|credential|auth|cookie", re.I)
_ENV_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}")
_SET_FLAGS = ("--set",)
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def looks_secret(key: str) -> bool:
    """``request.headers.Authorization``, ``target.env.HF_TOKEN``, ``--api-key``: True."""
    last = re.split(r"[.\[\]]", key.strip().lstrip("-"))
    name = next((part for part in reversed(last) if part), "")
    return name.lower() in SECRET_HEADERS or bool(_SECRET_WORD.search(name))


def redact_url(text: str) -> str:
    """Hide the password of ``scheme://user:password@host``; other text is returned as is."""
    if "@" not in text or "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if parts.password is None:
        return text
    netloc = f"{parts.username}:{REDACTED}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def _redact_set(text: str) -> str:
    key, sep, value = text.partition("=")
    if not sep:
        return text
    return f"{key}={REDACTED}" if looks_secret(key) else f"{key}={redact_url(value)}"


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A copy of ``argv`` safe to store: secret ``--set`` values, the value after (or in)
    ``--token``-like flags, ``NAME_TOKEN=…`` assignments and URL passwords replaced by
    ``<redacted>``."""
    out: list[str] = []
    hide_next: str | None = None
    for arg in argv:
        if hide_next is not None:
            out.append(_redact_set(arg) if hide_next in _SET_FLAGS else REDACTED)
            hide_next = None
            continue
        flag, sep, value = arg.partition("=")
        if arg.startswith("-") and sep:
            if flag in _SET_FLAGS:
                out.append(f"{flag}={_redact_set(value)}")
            else:
                out.append(f"{flag}={REDACTED}" if looks_secret(flag) else redact_url(arg))
            continue
        if arg in _SET_FLAGS or (arg.startswith("-") and looks_secret(arg)):
            hide_next = arg
        elif sep and _ENV_ASSIGNMENT.match(flag) and looks_secret(flag):
            arg = f"{flag}={REDACTED}"  # `env HF_TOKEN=…`, `docker run -e HF_TOKEN=…`
        out.append(redact_url(arg))
    return out


def redact_scenario(stored: dict[str, Any]) -> dict[str, Any]:
    """Hide literal secrets in the stored copy of a scenario, in place: secret headers,
    secret-looking env names, a command target's secret flags and URL passwords. A value
    written as ``${VAR}`` is already only a name and is kept."""

    def hide(value: Any, secret: bool) -> Any:
        if not secret or not isinstance(value, str) or _ENV_REFERENCE.search(value):
            return value
        return REDACTED

    headers = stored.get("request", {}).get("headers") or {}
    for name, value in list(headers.items()):
        headers[name] = hide(value, looks_secret(name))
    target = stored.get("target") or {}
    env = target.get("env") or {}
    for name, value in list(env.items()):
        env[name] = hide(value, looks_secret(name))
    if isinstance(target.get("command"), list):
        target["command"] = redact_argv(target["command"])
    if isinstance(target.get("url"), str):
        target["url"] = redact_url(target["url"])
    return stored
