"""``requests.csv.gz``, the raw rows (DESIGN §7): their columns, the one reader, the merge.

One row per request, streamed by the recorder as the run goes. Times are nanoseconds from the
run's start; an empty ``sent_ns`` or ``first_byte_ns`` means the request never got that far, an
empty ``error`` that it succeeded. Several generator processes each write their rows without a
header, and :func:`merge_row_files` joins them as gzip members after one header member.
Readers take the columns they need in chunks (:func:`read_row_chunks`), so memory stays flat
however long the run.
"""

from __future__ import annotations

import csv
import gzip
import io
import shutil
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infbench.errors import ResultFormatError
from infbench.wire import ERROR_KINDS, STAMP_FIELDS, TOKEN_SOURCES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ROW_COLUMNS", "STREAM_COLUMNS", "format_rows", "merge_row_files", "read_row_chunks"]

ROW_COLUMNS = STAMP_FIELDS[:10]  # the loop's stamp, field by field, in its order
# added for streamed answers (DESIGN §7), with where the count came from and the token audit's
# local count: a request whose usage and tokenizer disagree can be found by its row
STREAM_COLUMNS = STAMP_FIELDS[10:17]
_ERROR_NAMES = ("", *ERROR_KINDS)  # by the stamp's error code
CHUNK_ROWS = 500_000


def _csv_field(text: str) -> str:
    """A value as the csv module writes it (quoted only when it must be)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([text])
    return out.getvalue()


def format_rows(stamps: Any, phase_names: Sequence[str], t0_ns: int, streamed: bool = False) -> str:
    """CSV text of a batch of stamps (a numpy record array of ``wire.STAMP_FIELDS``), times
    made relative to the run's start; "" where a time was never reached, and where an answer's
    tokens were not counted by the tokenizer beside the server's usage (``tokenizer_tokens``)."""

    def relative(column: str) -> list[int | str]:
        return ["" if v == 0 else v - t0_ns for v in stamps[column].tolist()]

    names = [_csv_field(name) for name in phase_names]
    columns: tuple[list[Any], ...] = (
        stamps["seq"].tolist(),
        [names[i] for i in stamps["phase"].tolist()],
        (stamps["intended_ns"] - t0_ns).tolist(),
        relative("sent_ns"),
        relative("first_byte_ns"),
        (stamps["done_ns"] - t0_ns).tolist(),
        stamps["status"].tolist(),
        [_ERROR_NAMES[code] for code in stamps["error"].tolist()],
        stamps["bytes_out"].tolist(),
        stamps["bytes_in"].tolist(),
    )
    if streamed:
        columns += (
            relative("first_token_ns"),
            relative("last_token_ns"),
            stamps["chunks"].tolist(),
            stamps["input_tokens"].tolist(),
            stamps["output_tokens"].tolist(),
            [TOKEN_SOURCES[code] for code in stamps["tokens_source"].tolist()],
            ["" if count < 0 else count for count in stamps["tokenizer_tokens"].tolist()],
        )
    line = ",".join(["%s"] * len(columns)) + "\r\n"
    return "".join(line % row for row in zip(*columns, strict=True))


def read_row_chunks(path: Path, columns: Mapping[str, str]) -> Iterator[pd.DataFrame]:
    """The ``columns`` (name -> pandas dtype) of requests.csv.gz, ``CHUNK_ROWS`` rows at a time.

    Empty cells stay empty strings (``keep_default_na=False``). A file that is not gzip, is
    truncated, lacks a column or holds a value of the wrong type raises ResultFormatError
    naming it.
    """
    import pandas as pd

    try:
        with (
            gzip.open(path, "rb") as handle,
            pd.read_csv(
                handle,
                encoding="utf-8",
                usecols=list(columns),
                dtype=dict(columns),
                keep_default_na=False,
                chunksize=CHUNK_ROWS,
            ) as chunks,
        ):
            yield from chunks
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError) as exc:
        # ValueError includes pandas' ParserError (corrupt rows) and wrong dtypes or columns.
        raise ResultFormatError(f"{path}: corrupt or truncated ({exc})") from None


def merge_row_files(out: Path, parts: Iterable[Path], *, streamed: bool = False) -> None:
    """One file at ``out`` from the ``parts`` (one per generator process, written without a
    header): a gzip file may hold several members, so the header becomes a member of its own
    and each part is appended as it is. A part that does not exist is skipped."""
    columns = ROW_COLUMNS + (STREAM_COLUMNS if streamed else ())
    with open(out, "wb") as merged:
        merged.write(gzip.compress((",".join(columns) + "\r\n").encode()))
        for part in parts:
            if part.exists():
                with open(part, "rb") as piece:
                    shutil.copyfileobj(piece, merged)
