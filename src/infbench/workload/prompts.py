"""Synthetic prompts (``request.prompts.synthetic``): rows of random words, seeded.

A prompt is ``n`` words drawn uniformly from a fixed vocabulary of common English words, each
of which is one token (with its leading space) in the usual BPE and SentencePiece
tokenizers; so ``n`` words are about ``n`` tokens. The server's own count comes back in the
usage chunk (run.json's ``input_tokens``), which is the figure to trust.

With ``shared_prefix``, prompt ``i`` belongs to group ``i mod groups`` and opens with that
group's ``prefix_tokens`` words; its own ``input_tokens`` words follow. A server with a prefix
cache computes each group's prefix once.

Every draw comes from generators seeded by (seed, stream, part): lengths, prefixes and words
are separate streams, so the same scenario sends the same prompts, and changing ``count``
keeps the group prefixes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from infbench.scenario.request import SyntheticPrompts, TokenCount

__all__ = ["VOCABULARY", "draw_tokens", "random_words", "synthetic_rows"]

# The first few hundred of the most frequent English words (the Fry list): single tokens.
_FRY_WORDS = """
    the of and to in is was for on that with as by at from his her they this are have not
    but had be one all were we when your can said there use an each which she do how their
    if will up other about out many then them these so some would make like him into time has
    look two more write go see number no way could people my than first water been call who
    oil its now find long down day did get come made may part over new sound take only little
    work know place year live me back give most very after thing our just name good sentence
    man think say great where help through much before line right too mean old any same tell
    boy follow came want show also around form three small set put end does another well large
    must big even such because turn here why ask went men read need land different home us
    move try kind hand picture again change off play spell air away animal house point page
    letter mother answer found study still learn should world high every near add food between
    own below country plant last school father keep tree never start city earth eye light
    thought head under story saw left few while along might close something seem next hard
    open example begin life always those both paper together got group often run important
    until children side feet car mile night walk white sea began grow took river four carry
    state once book hear stop without second later miss idea enough eat face watch far real
    almost let above girl sometimes mountain cut young talk soon list song being leave family
"""
VOCABULARY = tuple(_FRY_WORDS.split())
_WORDS = np.array(VOCABULARY, dtype=object)
_STREAM = 0x50_7047  # mixed into the seed so prompts never share a stream with arrivals
_LENGTHS, _PREFIXES, _OWN = 0, 1, 2


def draw_tokens(setting: TokenCount, rng: np.random.Generator, size: int) -> npt.NDArray[np.int64]:
    """``size`` counts from a normal distribution, rounded, clipped to [min, max]."""
    if setting.sd:
        drawn = np.rint(rng.normal(setting.mean, setting.sd, size))
    else:
        drawn = np.full(size, round(setting.mean), dtype=np.float64)
    upper = max(setting.max, setting.min) if setting.max is not None else np.inf
    return np.clip(drawn, setting.min, upper).astype(np.int64)


def random_words(rng: np.random.Generator, n: int) -> str:
    """``n`` words of the vocabulary, space-separated (about ``n`` tokens)."""
    return " ".join(_WORDS[rng.integers(0, len(_WORDS), size=n)].tolist())


def synthetic_rows(spec: SyntheticPrompts, seed: int) -> list[dict[str, Any]]:
    """``count`` rows, each with ``prompt`` and ``text`` (the same words, for either template
    style), ``input_tokens`` (the words it holds) and, with a shared prefix, its ``group``."""
    rngs = [np.random.default_rng([seed, _STREAM, part]) for part in (_LENGTHS, _PREFIXES, _OWN)]
    if isinstance(spec.input_tokens, int):
        lengths = [spec.input_tokens] * spec.count
    else:
        lengths = draw_tokens(spec.input_tokens, rngs[_LENGTHS], spec.count).tolist()
    shared = spec.shared_prefix
    prefix_tokens = shared.prefix_tokens if shared is not None else 0
    prefixes = [""]  # one group, no prefix
    if shared is not None:
        prefixes = [
            random_words(rngs[_PREFIXES], prefix_tokens) + " " for _ in range(shared.groups)
        ]
    rows: list[dict[str, Any]] = []
    for index, length in enumerate(lengths):
        group = index % len(prefixes)
        text = prefixes[group] + random_words(rngs[_OWN], length)
        row: dict[str, Any] = {"prompt": text, "text": text, "input_tokens": prefix_tokens + length}
        if shared is not None:
            row["group"] = group
        rows.append(row)
    return rows
