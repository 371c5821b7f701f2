"""Sessions of turns (``request.conversations``, DESIGN §5c): the pure parts.

A phase's arrival number ``seq`` starts session ``seq``. Which conversation it replays, its
think times and each turn's body are functions of (seed, seq, turn) and what was answered,
so the same file and seed send the same sessions whichever process runs them:

- conversation: ``seq mod n`` (``order: sequential``) or drawn uniformly from a generator
  seeded by (seed, seq);
- turns: the conversation's user turns, at most ``max_turns``;
- think time before turn k ≥ 1: fixed, or Gamma(shape 1/cv², scale mean·cv²) (cv 1 is
  exponential), seeded by (seed, seq, k);
- history of turn k: the user turns 1..k-1, each with its answer as streamed back
  (``history: generated``) or the file's own (``recorded``), then user turn k. With
  ``max_context_tokens`` the oldest (user, answer) pairs are dropped until the words of the
  history (a word is about a token) fit; the current user turn is always sent.

A turn's request number puts the turn above the session's: ``seq + turn·2⁴⁸``
(``turn_seq``), so raw rows name both (``requests.csv.gz``: turn = seq >> 48) and the
figures per turn index are read from them after the run (``analysis/turns.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from infbench.scenario.request import Conversations, Request
from infbench.wire import PreparedRequest
from infbench.workload.chat_files import Conversation, read_conversations
from infbench.workload.prompts import draw_tokens
from infbench.workload.requests import encode_path

__all__ = ["TURN_SHIFT", "ConversationSource", "session_of", "turn_of", "turn_seq"]

TURN_SHIFT = 48  # request numbers of a session's turns: seq + turn << 48 (2^15 turns at most)
_SESSION_MASK = (1 << TURN_SHIFT) - 1
_PICK, _THINK = 0xC0_4E75, 0x7B_1AC3  # mixed into the seed: no stream shared with arrivals
History = list[tuple[str, str]]  # (user turn, answer) pairs before the current turn


def turn_seq(session: int, turn: int) -> int:
    return session + (turn << TURN_SHIFT)


def turn_of(seq: int) -> int:
    return seq >> TURN_SHIFT


def session_of(seq: int) -> int:
    return seq & _SESSION_MASK


class ConversationSource:
    """The sessions of a run: which conversation, when, and what each turn sends."""

    def __init__(
        self,
        request: Request,
        conversations: list[Conversation],
        seed: int,
        count_tokens: Callable[[str], int] | None = None,
    ) -> None:
        assert request.conversations is not None
        self.spec: Conversations = request.conversations
        self.template = request
        self.conversations = conversations
        self.seed = seed
        self._count = count_tokens or (lambda text: len(text.split()))
        self._path = encode_path(request.path)
        self._headers = tuple(request.headers.items())

    @classmethod
    def from_scenario(cls, request: Request, base_dir: Path, seed: int) -> ConversationSource:
        assert request.conversations is not None
        path = base_dir / Path(request.conversations.path).expanduser()
        return cls(request, read_conversations(path), seed)

    @property
    def keeps_text(self) -> bool:
        """The sender must keep each answer's text: the next turn sends it back."""
        return self.spec.history == "generated"

    def conversation(self, session: int) -> Conversation:
        n = len(self.conversations)
        if self.spec.order == "sequential":
            return self.conversations[session % n]
        pick = np.random.default_rng([self.seed, _PICK, session]).integers(0, n)
        return self.conversations[int(pick)]

    def turns(self, session: int) -> int:
        """How many turns session ``session`` sends when nothing cuts it short."""
        total = len(self.conversation(session).turns)
        return min(total, self.spec.max_turns) if self.spec.max_turns else total

    def think_s(self, session: int, turn: int) -> float:
        mean, cv = self.spec.think_mean_cv
        if mean <= 0 or turn == 0:
            return 0.0
        if cv == 0:
            return mean
        rng = np.random.default_rng([self.seed, _THINK, session, turn])
        return float(rng.gamma(cv**-2, mean * cv**2))

    def recorded(self, session: int, turn: int) -> str:
        return self.conversation(session).turns[turn].answer or ""

    def request(self, seq: int) -> PreparedRequest:
        """Turn 0 of session ``seq``: what a phase that starts no sessions (closed loop)
        sends, one first turn per request."""
        return self.turn_request(session_of(seq), 0, [])

    def turn_request(self, session: int, turn: int, history: History) -> PreparedRequest:
        """Turn ``turn`` of the session, after ``history`` (earlier turns with answers)."""
        conversation = self.conversation(session)
        user = conversation.turns[turn].user
        kept = self._fit(history, user)
        body = self._body(conversation.system, kept, user, (session, turn))
        headers = self._headers
        if self.spec.session_header:
            headers = (*headers, (self.spec.session_header, f"session-{session}"))
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return PreparedRequest(
            self.template.method, self._path, (*headers, ("Content-Type", "application/json")), data
        )

    def _fit(self, history: History, user: str) -> History:
        """The newest pairs of ``history`` whose words, with the current turn's, fit."""
        limit = self.spec.max_context_tokens
        if limit is None:
            return history
        used = self._count(user)
        kept: History = []
        for pair in reversed(history):
            used += self._count(pair[0]) + self._count(pair[1])
            if used > limit:
                break
            kept.append(pair)
        return kept[::-1]

    def _body(self, system: str | None, history: History, user: str, key: tuple[int, int]) -> Any:
        request = self.template
        body: dict[str, Any] = {"model": request.model, **request.params}
        messages = [{"role": "system", "content": system}] if system else []
        for asked, answer in history:
            messages += [
                {"role": "user", "content": asked},
                {"role": "assistant", "content": answer},
            ]
        messages.append({"role": "user", "content": user})
        if request.api == "openai-chat":
            body["messages"] = messages
        else:
            body["prompt"] = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
        max_tokens = request.max_tokens
        if isinstance(max_tokens, int):
            body["max_tokens"] = max_tokens
        elif max_tokens is not None:
            rng = np.random.default_rng([self.seed, _PICK, *key])
            body["max_tokens"] = int(draw_tokens(max_tokens, rng, 1)[0])
        if request.fixed_output and "max_tokens" in body:
            body.update(min_tokens=body["max_tokens"], ignore_eos=True)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        return body
