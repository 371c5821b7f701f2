"""The framing of an answer read back from its raw head (senders/http1.py ``framing``)."""

from __future__ import annotations

import pytest

from infbench.senders.http1 import framing


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello", (12, False)),
        (b"HTTP/1.1 200 OK\r\ncontent-length:3\r\n\r\n", (3, False)),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n5\r\n", (-1, True)),
        (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello", (-1, False)),
        # informational answers first: the final one's head counts
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            (2, False),
        ),
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.0 200 OK\r\n\r\nx", (-1, False)),
        # bare LF line ends, which llhttp accepts too
        (b"HTTP/1.1 200 OK\nContent-Length: 7\n\nbody", (7, False)),
        # a body that looks like a header does not count
        (b"HTTP/1.0 200 OK\r\n\r\nContent-Length: 9\r\n\r\n", (-1, False)),
        # the head not all there yet
        (b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n", None),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", None),
        (b"", None),
    ],
)
def test_framing_of_the_final_answer(raw: bytes, expected: tuple[int, bool] | None) -> None:
    assert framing(raw) == expected
