"""Running sessions of turns in the engine (``request.conversations``, DESIGN §5c).

An arrival of an open-loop phase starts a session; the session then behaves like one user,
closed loop: turn k is intended at the end of turn k-1's answer plus the think time, waits
for a connection like any request, and its latency and TTFT count from that intended time.
A turn intended at or after its phase's end is not sent: the session is cut there (the
figures count it, ``analysis/turns.py``). A failed, dropped or stopped turn ends its
session, since the next turn would send a history with no answer in it.

What each turn sends comes from ``workload/conversations.py``; this module only keeps the
time and the answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from infbench.load.clock import Clock
from infbench.wire import Outcome, PreparedRequest
from infbench.workload.conversations import ConversationSource, History, turn_seq

__all__ = ["SendTurn", "SessionRunner"]

# The engine's send: (phase, seq, intended_ns, request) -> the outcome, None if never sent.
SendTurn = Callable[[int, int, int, PreparedRequest], Awaitable[Outcome | None]]


class SessionRunner:
    def __init__(
        self,
        source: ConversationSource,
        send: SendTurn,
        clock: Clock,
        stopped: Callable[[], bool],
    ) -> None:
        self.source = source
        self._send = send
        self._clock = clock
        self._stopped = stopped

    async def run(self, phase: int, session: int, intended_ns: int, end_ns: int) -> None:
        """All turns of ``session`` from its arrival at ``intended_ns`` until the phase ends
        at ``end_ns``."""
        source = self.source
        history: History = []
        for turn in range(source.turns(session)):
            if turn:
                intended_ns += int(source.think_s(session, turn) * 1e9)
                if intended_ns >= end_ns:
                    return  # cut by the phase's end
                await self._clock.sleep_until(intended_ns)
            if self._stopped():
                return
            request = source.turn_request(session, turn, history)
            outcome = await self._send(phase, turn_seq(session, turn), intended_ns, request)
            if outcome is None or not outcome.ok:
                return
            asked = source.conversation(session).turns[turn].user
            history.append((asked, self._answer(outcome, session, turn)))
            intended_ns = outcome.done_ns

    def _answer(self, outcome: Outcome, session: int, turn: int) -> str:
        if self.source.keeps_text:
            return outcome.text or ""
        return self.source.recorded(session, turn)
