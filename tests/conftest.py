"""Shared fixtures. The fake HTTP server lives in tests/fakeserver.py; tests import it as
``from fakeserver import FakeServer`` (the tests folder is put on sys.path here, since tests
folders have no __init__.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakeserver import FakeServer


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    """A started fake server answering 200 "ok" at once; change it with ``.set(...)``."""
    with FakeServer() as server:
        yield server
