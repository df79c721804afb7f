"""The vocabulary of the polynomial problems, defined once.

Ids 0..30 are the seed system's 31 tokens: every file, every answer and every seed-format prompt uses only
them. A model whose config says `prompt_format="e1"` also reads the E1 prompt tokens (ids 31 and up: degree,
digit width and base-1000 digits); it never has to write them. See engine/prompt.py.
"""
from __future__ import annotations

from typing import Iterable

# Order fixes the ids (0..30); it matches the seed system's files and checkpoints.
VOCAB: tuple[str, ...] = (
    "□", "a", "b", "c", "d", "e", "x", "y", "z", "⁇", "?", "a0", "a1", "b0", "b1",
    "N", "P", "&", "+", "*", "^", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
)
PAD_ID = 0  # "□"
SEP_ID = VOCAB.index("⁇")  # separates prompt and answer, and ends the answer
VOCAB_SIZE = len(VOCAB)

# The compact E1 prompt: "D<deg>", "W<width>", then per coefficient a sign (P/N) and `width` base-1000 digits.
E1_MAX_DEGREE = 64
E1_MAX_WIDTH = 8  # |coefficient| < 1000**8
E1_TOKENS: tuple[str, ...] = (tuple(f"D{d}" for d in range(E1_MAX_DEGREE + 1))
                              + tuple(f"W{w}" for w in range(1, E1_MAX_WIDTH + 1))
                              + tuple(f"[{k:03d}]" for k in range(1000)))

PROMPT_FORMATS: tuple[str, ...] = ("seed", "e0", "e1")
ANSWER_ORDERS = ("ascending", "descending")  # Q's terms in the answer: the seed's order, or top degree first
_VOCABS: dict[str, tuple[str, ...]] = {"seed": VOCAB, "e0": VOCAB, "e1": VOCAB + E1_TOKENS}
FULL_VOCAB: tuple[str, ...] = _VOCABS["e1"]  # every token any format uses; a format's vocabulary is a prefix
STOI: dict[str, int] = {tok: i for i, tok in enumerate(FULL_VOCAB)}


class TokenizerError(ValueError):
    """An unknown token or id."""


def vocab_for(prompt_format: str) -> tuple[str, ...]:
    """The tokens a model with this prompt format reads (ids 0..len-1)."""
    if prompt_format not in _VOCABS:
        raise ValueError(f"unknown prompt format {prompt_format!r}; choose from {PROMPT_FORMATS}")
    return _VOCABS[prompt_format]


def encode(tokens: Iterable[str] | str, vocab_size: int = VOCAB_SIZE) -> list[int]:
    """Token strings (or one space-separated string) -> ids. Unknown tokens (or ids >= vocab_size) raise."""
    if isinstance(tokens, str):
        tokens = tokens.split()
    ids = []
    for i, tok in enumerate(tokens):
        idx = STOI.get(tok)
        if idx is None or idx >= vocab_size:
            raise TokenizerError(f"unknown token {tok!r} at position {i}")
        ids.append(idx)
    return ids


def decode(ids: Iterable[int]) -> list[str]:
    """Ids -> token strings (any format's tokens). Out-of-range ids raise."""
    out = []
    for i, idx in enumerate(ids):
        idx = int(idx)
        if not 0 <= idx < len(FULL_VOCAB):
            raise TokenizerError(f"unknown token id {idx} at position {i}")
        out.append(FULL_VOCAB[idx])
    return out


def decode_text(ids: Iterable[int]) -> str:
    return " ".join(decode(ids))
