"""A tiny GPT-style decoder written out in torch, with seeded random weights and a KV cache.

Nothing is downloaded: the weights come from ``torch.manual_seed``, the vocabulary from code
(``vocabulary``). The network is GPT-2's block (pre-LayerNorm, causal multi-head attention,
4x GELU MLP, learned positions, output projection tied to the token embedding) at a small size,
so a decode step costs real matrix work that grows with the context, as in a served LLM.

The KV cache holds, per layer, the keys and values of every position seen so far; a decode
step feeds one token and attends over the cache, so its cost is one token's worth of compute
rather than the whole sequence's (the point of a KV cache, and what makes TTFT, the prefill
of the prompt, differ from the time per output token).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

BOS = 0  # also the end of text; never sampled, so a stream always runs to max_tokens
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def vocabulary(size: int) -> list[str]:
    """``size`` distinct pronounceable pseudo-words (two syllables each), id 0 being BOS."""
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    words = [a + b for a in syllables for b in syllables]
    if size - 1 > len(words):
        raise ValueError(f"vocabulary size {size}: at most {len(words) + 1}")
    return ["<|endoftext|>", *words[: size - 1]]


class WordTokenizer:
    """One token per whitespace-separated word, so prompt tokens = ``len(text.split())``.

    A vocabulary word maps to its own id; any other word to a stable bucket (crc32, since
    Python's str hash differs between processes). Decoding gives vocabulary words only.
    """

    def __init__(self, words: list[str]) -> None:
        self.words = words
        self.ids = {word: i for i, word in enumerate(words)}

    def encode(self, text: str) -> list[int]:
        buckets = len(self.words) - 1
        return [
            self.ids.get(word) or zlib.crc32(word.encode()) % buckets + 1 for word in text.split()
        ]

    def decode(self, token: int) -> str:
        return self.words[token]


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    heads: int
    vocab: int
    context: int


Cache = list[tuple[Tensor, Tensor]]  # per layer: keys and values, (1, heads, positions, dim)


class Block(nn.Module):
    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.heads = shape.heads
        self.ln1 = nn.LayerNorm(shape.hidden)
        self.qkv = nn.Linear(shape.hidden, 3 * shape.hidden)
        self.proj = nn.Linear(shape.hidden, shape.hidden)
        self.ln2 = nn.LayerNorm(shape.hidden)
        self.mlp = nn.Sequential(
            nn.Linear(shape.hidden, 4 * shape.hidden),
            nn.GELU(approximate="tanh"),
            nn.Linear(4 * shape.hidden, shape.hidden),
        )

    def forward(
        self, x: Tensor, past: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(hidden, dim=2)
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        # Prefill needs the causal mask; a single new token may see every cached position.
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=past is None and length > 1)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, length, hidden))
        return x + self.mlp(self.ln2(x)), k, v


class TinyGpt(nn.Module):
    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = shape
        self.tokens = nn.Embedding(shape.vocab, shape.hidden)
        self.positions = nn.Embedding(shape.context, shape.hidden)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.layers))
        self.ln = nn.LayerNorm(shape.hidden)
        for name, param in self.named_parameters():
            if name.endswith("weight") and param.dim() == 2:  # GPT-2's init: N(0, 0.02)
                nn.init.normal_(param, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(param)

    def forward(self, ids: Tensor, cache: Cache | None) -> tuple[Tensor, Cache]:
        """Logits of the last position, and the cache extended by ``ids``."""
        start = 0 if cache is None else cache[0][0].shape[2]
        positions = torch.arange(start, start + ids.shape[1])
        x = self.tokens(ids) + self.positions(positions)
        extended: Cache = []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, None if cache is None else cache[i])
            extended.append((k, v))
        last = self.ln(x[:, -1])
        return last @ self.tokens.weight.T, extended


def build(shape: Shape, seed: int) -> TinyGpt:
    torch.manual_seed(seed)  # the same weights in every worker and every run
    return TinyGpt(shape).eval()


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
