"""Secrets out of what infbench stores and prints: command lines and URLs.

The stored scenario is redacted where it is loaded (``scenario_source._redact``); this module
covers the command lines run.json records — infbench's own argv, where ``--set`` may carry a
token, and a command target's argv, where ``--api-key sk-…`` is common — and credentials in
URLs (``https://user:pass@host``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from infbench.scenario.source import REDACTED, SECRET_HEADERS

__all__ = ["REDACTED", "looks_secret", "redact_argv", "redact_url"]

# Key names that hold secrets: the same words the stored scenario's env redaction uses, plus
# the secret header names (as the last part of a --set key path).
_SECRET_WORD = re.compile(r"token|secret|passw|api[_-]?key|credential|auth|cookie", re.I)
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
