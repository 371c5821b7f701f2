"""Building blocks of the HTML pages: the page shell, tables, facts, figures.

Pages are self-contained: styles inline, images as data URIs, no script. The Content Security
Policy forbids every other source, so a page that tried to fetch anything would show it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path

from infbench.errors import UsageError
from infbench.report.figures import Plot

__all__ = ["absent", "facts", "figure", "page", "table", "write_atomically"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1d2329; margin: 0; background: #fafbfc; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 10px; border-bottom: 1px solid #d8dee4; padding-bottom: 4px; }
.sub { color: #57606a; margin: 0 0 16px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 13px;
         font-weight: 600; vertical-align: middle; margin-left: 6px; }
.ok { color: #116329; } .bad { color: #b42318; } .warn { color: #9a6700; }
.badge.ok { background: #dafbe1; } .badge.bad { background: #ffebe9; }
.badge.warn { background: #fff8c5; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 12px; }
.card { background: #fff; border: 1px solid #d8dee4; border-radius: 6px; padding: 10px 14px; }
.card h3 { margin: 0 0 6px; font-size: 14px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
dt { color: #57606a; } dd { margin: 0; overflow-wrap: anywhere; }
#validity { grid-column: 1 / -1; }
#validity.bad { border-color: #b42318; background: #fff5f5; }
#validity.bad h3, #validity.bad li { color: #b42318; }
table { border-collapse: collapse; font-size: 13px; background: #fff;
        font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d8dee4; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f0f3f6; font-weight: 600; }
td:first-child, th:first-child { text-align: left; }
.scroll { overflow-x: auto; }
td.better { color: #116329; font-weight: 600; } td.worse { color: #b42318; font-weight: 600; }
figure { margin: 18px 0 26px; background: #fff; border: 1px solid #d8dee4; border-radius: 6px;
         padding: 8px; }
figure img { display: block; width: 100%; height: auto; }
figcaption { color: #57606a; margin: 6px 4px 2px; }
p.absent { color: #57606a; font-style: italic; }
ul { margin: 4px 0; padding-left: 20px; }
"""


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="infbench">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    table_id: str,
    titles: Sequence[str] | None = None,
    classes: Iterable[Sequence[str]] | None = None,
) -> str:
    """A table of already-formatted cells (escaped here); ``titles`` label the columns."""
    head = "".join(
        f'<th title="{escape(titles[i])}">{escape(h)}</th>' if titles else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    class_rows = iter(classes) if classes is not None else None
    body = []
    for row in rows:
        css = next(class_rows) if class_rows is not None else [""] * len(row)
        cells = "".join(
            f'<td class="{c}">{escape(v)}</td>' if c else f"<td>{escape(v)}</td>"
            for v, c in zip(row, css, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def facts(title: str, items: Iterable[tuple[str, object]], card_id: str = "") -> str:
    """A card of name/value pairs; values that are None are left out."""
    pairs = "".join(
        f"<dt>{escape(name)}</dt><dd>{escape(str(value))}</dd>"
        for name, value in items
        if value is not None and value != ""
    )
    ident = f' id="{card_id}"' if card_id else ""
    return f'<section class="card"{ident}><h3>{escape(title)}</h3><dl>{pairs}</dl></section>'


def figure(plot: Plot) -> str:
    return (
        f'<figure id="{plot.key}"><img src="{plot.data_uri}" alt="{escape(plot.alt)}" '
        f'title="{escape(plot.title)}"><figcaption><strong>{escape(plot.title)}.</strong> '
        f"{escape(plot.caption)}</figcaption></figure>"
    )


def absent(title: str, note: str) -> str:
    return f'<p class="absent">{escape(title)}: {escape(note)}.</p>'


def write_atomically(out: Path, text: str) -> Path:
    """Write via a temporary file and rename, so a reader never sees half a report."""
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        raise UsageError(
            f"cannot write {out}: {exc.strerror or exc}", hint="choose another path for the report"
        ) from None
    return out
