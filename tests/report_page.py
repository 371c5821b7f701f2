"""Reading a report page back in tests: its figures, tables and links (test_report.py,
test_token_report.py)."""

from __future__ import annotations

import base64
import struct
from html.parser import HTMLParser
from typing import Any

__all__ = ["Page", "png_size"]


class Page(HTMLParser):
    """Figures (id -> img attributes, caption), tables (id -> header titles, headers, rows),
    and every src/href attribute of the page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.figures: dict[str, dict[str, Any]] = {}
        self.tables: dict[str, dict[str, list[Any]]] = {}
        self.links: list[str] = []
        self.tags: list[str] = []
        self._figure: str | None = None
        self._table: str | None = None
        self._text: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        self.links += [a[k] for k in ("src", "href") if k in a]
        if tag == "figure":
            self._figure = a["id"]
            self.figures[a["id"]] = {"caption": ""}
        elif tag == "img" and self._figure:
            self.figures[self._figure]["img"] = a
        elif tag == "table":
            self._table = a["id"]
            self.tables[a["id"]] = {"titles": [], "headers": [], "rows": []}
        elif tag == "tr" and self._table:
            self.tables[self._table]["rows"].append([])
        elif tag in ("th", "td", "figcaption"):
            self._text = []
            if tag == "th" and self._table:
                self.tables[self._table]["titles"].append(a.get("title", ""))

    def handle_endtag(self, tag: str) -> None:
        text = "".join(self._text or [])
        if tag == "figure":
            self._figure = None
        elif tag == "table":
            self._table = None
        elif tag == "figcaption" and self._figure:
            self.figures[self._figure]["caption"] = text
        elif tag == "th" and self._table:
            self.tables[self._table]["headers"].append(text)
        elif tag == "td" and self._table:
            self.tables[self._table]["rows"][-1].append(text)
        if tag in ("th", "td", "figcaption"):
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def body_rows(self, table: str) -> list[list[str]]:
        return [row for row in self.tables[table]["rows"] if row]


def png_size(data_uri: str) -> tuple[int, int]:
    prefix = "data:image/png;base64,"
    assert data_uri.startswith(prefix)
    png = base64.b64decode(data_uri[len(prefix) :])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return width, height
