"""Token counts from a local tokenizer file, for streamed answers that carry no usage.

A Hugging Face ``tokenizer.json`` (the format every model repository ships, read with the
``tokenizers`` package) counts the output text the way the model's own tokenizer would; nothing
is downloaded. Without one, output tokens are the server's usage counts or, failing those, the
number of content chunks (DESIGN §5b).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from infbench.errors import InputError

__all__ = ["load_token_counter"]


def load_token_counter(path: Path) -> Callable[[str], int]:
    """Text -> its number of tokens; an InputError naming the file when it cannot be read."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise InputError(
            "request.tokenizer needs the tokenizers package, which is not installed",
            hint="pip install tokenizers",
        ) from None
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the library raises its own untyped errors
        raise InputError(
            f"request.tokenizer: {path} is not a tokenizer.json ({exc})",
            hint="give the path of a Hugging Face tokenizer.json",
        ) from None

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count
