"""The 31-token vocabulary of the polynomial problems, defined once."""
from __future__ import annotations

from typing import Iterable

# Order fixes the ids (0..30); it matches the seed system's files and checkpoints.
VOCAB: tuple[str, ...] = (
    "□", "a", "b", "c", "d", "e", "x", "y", "z", "⁇", "?", "a0", "a1", "b0", "b1",
    "N", "P", "&", "+", "*", "^", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
)
STOI: dict[str, int] = {tok: i for i, tok in enumerate(VOCAB)}
PAD_ID = 0  # "□"
SEP_ID = STOI["⁇"]  # separates prompt and answer, and ends the answer
VOCAB_SIZE = len(VOCAB)


class TokenizerError(ValueError):
    """An unknown token or id."""


def encode(tokens: Iterable[str] | str) -> list[int]:
    """Token strings (or one space-separated string) -> ids. Unknown tokens raise."""
    if isinstance(tokens, str):
        tokens = tokens.split()
    ids = []
    for i, tok in enumerate(tokens):
        if tok not in STOI:
            raise TokenizerError(f"unknown token {tok!r} at position {i}")
        ids.append(STOI[tok])
    return ids


def decode(ids: Iterable[int]) -> list[str]:
    """Ids -> token strings. Out-of-range ids raise."""
    out = []
    for i, idx in enumerate(ids):
        idx = int(idx)
        if not 0 <= idx < VOCAB_SIZE:
            raise TokenizerError(f"unknown token id {idx} at position {i}")
        out.append(VOCAB[idx])
    return out


def decode_text(ids: Iterable[int]) -> str:
    return " ".join(decode(ids))
