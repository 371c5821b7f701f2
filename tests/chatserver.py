"""A fake OpenAI chat server that records what each request carried and what it answered.

Every POST is answered with server-sent events after ``ttft_s``: a content chunk per word of
an answer unique to the request (``"answer <n> to <last user words>"``, n counting requests),
the usage chunk (prompt tokens = words of every message) and ``[DONE]``. ``exchanges`` keeps,
in arrival order, each request's parsed body, its headers and the answer streamed back, so a
test can check that a conversation's turn k carried exactly the answers of turns 1..k-1.

    with ChatServer(ttft_s=0.02) as server:
        ... server.url ... server.exchanges ...
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from streamserver import LoopServer

__all__ = ["ChatServer", "Exchange"]


@dataclass
class Exchange:
    body: dict[str, Any]
    headers: dict[str, str]
    answer: str


def _event(payload: Any) -> bytes:
    data = b"data: " + json.dumps(payload).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


class ChatServer(LoopServer):
    def __init__(self, ttft_s: float = 0.02, itl_s: float = 0.002) -> None:
        super().__init__()
        self.ttft_s, self.itl_s = ttft_s, itl_s
        self.exchanges: list[Exchange] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")[1:]
                headers = {
                    k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines) if k
                }
                body = json.loads(await reader.readexactly(int(headers["content-length"])))
                await self._answer(writer, body, headers)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer(
        self, writer: asyncio.StreamWriter, body: Any, headers: dict[str, str]
    ) -> None:
        messages = body.get("messages") or [{"content": body.get("prompt", "")}]
        last = " ".join(str(messages[-1]["content"]).split()[:2])
        answer = f"answer {len(self.exchanges)} to {last}"
        self.exchanges.append(Exchange(body, headers, answer))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        await asyncio.sleep(self.ttft_s)
        for index, word in enumerate(answer.split(" ")):
            delta = {"content": word if index == 0 else " " + word}
            writer.write(_event({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}))
            await writer.drain()
            await asyncio.sleep(self.itl_s)
        prompt = sum(len(str(m["content"]).split()) for m in messages)
        usage = {"prompt_tokens": prompt, "completion_tokens": len(answer.split())}
        done = b"data: [DONE]\n\n"
        writer.write(_event({"choices": [], "usage": usage}))
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
        await writer.drain()
