"""Tables that fit the terminal without ever cutting a figure (STYLE lesson 16).

A view builds a ``Grid``: a title, its columns and rows of cells already written whole (by
``figure_format``). ``fit`` lays it out no wider than the console, the way hyperfine and
benchstat keep every figure whole: one table when it fits; else the columns folded into a few
tables that each repeat the key columns (the phase); else stacked, one key/value table per row.
Rich never gets to shrink a column, so no cell ends in ``…``; ``to_markdown`` writes the same
grid for ``--format md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rich import box
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["Cell", "Column", "Grid", "fit", "new_grid", "to_markdown"]

Cell = str | Text
MAX_FOLDS = 4  # beyond four folded tables a row is easier to read stacked


@dataclass(frozen=True)
class Column:
    header: str
    justify: Literal["left", "right"] = "right"
    min_width: int | None = None  # the same width in every table of a view keeps them aligned


@dataclass
class Grid:
    """A table before layout. The first ``keys`` columns name the row (phase, metric)."""

    title: Cell | None
    columns: tuple[Column, ...]
    rows: list[tuple[Cell, ...]] = field(default_factory=list)
    keys: int = 1
    show_header: bool = True

    def add_row(self, *cells: Cell) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(cells)


def new_grid(
    title: Cell | None, headers: Sequence[str], keys: int = 1, left: int | None = None
) -> Grid:
    """The usual grid: the first ``left`` columns (default: the keys) are words, aligned left;
    the figures after them right-aligned."""
    words = keys if left is None else left
    columns = tuple(Column(h, "left" if i < words else "right") for i, h in enumerate(headers))
    return Grid(title, columns, keys=keys)


def fit(console: Console, grid: Grid, width: int | None = None) -> list[RenderableType]:
    """The grid as rich renderables no wider than ``width`` (default: the console's)."""
    width = width or console.width
    every = list(range(len(grid.columns)))
    groups: list[list[int]] | None = [every]
    if _width(console, _table(grid, every, with_title=False)) > width:
        groups = _fold(console, grid, width)
    if groups is None:
        return _stack(grid)
    tables: list[Table] = [_table(grid, g, with_title=i == 0) for i, g in enumerate(groups)]
    if grid.title is not None and _as_text(grid.title).cell_len > _width(console, tables[0]):
        tables[0].title = None  # a table wraps its title to its own width: give it the terminal's
        return [_as_text(grid.title), *tables]
    return [*tables]


def _table(grid: Grid, indexes: Sequence[int], *, with_title: bool) -> Table:
    headed = grid.show_header  # a headless grid is a plain list: no rule, no edges
    table = Table(
        title=grid.title if with_title else None,
        title_justify="left",
        box=box.SIMPLE_HEAD if headed else None,
        pad_edge=not headed,
        collapse_padding=headed,
        show_header=headed,
    )
    for index in indexes:
        column = grid.columns[index]
        # fold, not ellipsis: should a terminal be narrower than any layout, a cell wraps whole
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=True,
            overflow="fold",
            min_width=column.min_width,
        )
    for row in grid.rows:
        table.add_row(*(row[i] for i in indexes))
    return table


def _width(console: Console, table: Table) -> int:
    """The table's natural width: what it takes when no column is shrunk."""
    return Measurement.get(console, console.options.update_width(10_000), table).maximum


def _fold(console: Console, grid: Grid, width: int) -> list[list[int]] | None:
    """Figure columns in as few groups as fit ``width`` beside the key columns, evenly sized
    (four and four rather than seven and one); None when even one figure does not fit."""
    keys = list(range(grid.keys))
    figures = list(range(grid.keys, len(grid.columns)))

    def fits(group: list[int]) -> bool:
        return _width(console, _table(grid, keys + group, with_title=False)) <= width

    if not all(fits([index]) for index in figures):
        return None
    for count in range(2, MAX_FOLDS + 1):
        size, extra = divmod(len(figures), count)
        bounds = [i * size + min(i, extra) for i in range(count + 1)]
        groups = [figures[bounds[i] : bounds[i + 1]] for i in range(count)]
        if all(fits(group) for group in groups):
            return [keys + group for group in groups]
    groups = [[]]  # uneven widths: fill each group as far as it goes
    for index in figures:
        if groups[-1] and not fits([*groups[-1], index]):
            groups.append([])
        groups[-1].append(index)
    return [keys + group for group in groups] if len(groups) <= MAX_FOLDS else None


def _stack(grid: Grid) -> list[RenderableType]:
    """One two-column table per row: its key over ``header  figure`` lines."""
    parts: list[RenderableType] = [] if grid.title is None else [_as_text(grid.title)]
    for row in grid.rows:
        key = Text(" · ").join(_as_text(cell) for cell in row[: grid.keys])
        key.stylize("bold")
        table = Table(box=None, show_header=False)  # a title would wrap at the table's width
        table.add_column(no_wrap=True, overflow="fold", style="dim")
        table.add_column(justify="right", no_wrap=True, overflow="fold")
        for column, cell in zip(grid.columns[grid.keys :], row[grid.keys :], strict=True):
            table.add_row(column.header, cell)
        parts += [key, table]
    return parts


def _as_text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def _md_cell(cell: Cell) -> str:
    return _as_text(cell).plain.replace("|", "\\|")


def to_markdown(grid: Grid) -> str:
    """A GitHub-flavoured markdown table (headers always shown), titled in bold."""
    lines = [] if grid.title is None else [f"**{_md_cell(grid.title)}**", ""]
    lines.append("| " + " | ".join(_md_cell(c.header) for c in grid.columns) + " |")
    lines.append("|" + "".join("---|" if c.justify == "left" else "--:|" for c in grid.columns))
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in grid.rows]
    return "\n".join(lines) + "\n"
