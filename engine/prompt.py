"""The model's prompt for f, in the model's prompt format: the one place every caller builds it.

A model reads f in the format its config names (`GPTConfig.prompt_format`) and always writes Q in the seed's
prefix tokens, so answers, verification and the beam view do not depend on the format.

- `seed`: f in the seed's prefix notation, ascending degree (`+ N 2 4 0 + * P 2 1 5 a ...`).
- `e0`: no new tokens: the degree's digits, then every coefficient from the top degree down as a sign and
  its decimal digits (zeros included): 4a^4 + 12a^3 + 9a^2 - 1 -> `4 P 4 P 1 2 P 9 P 0 N 1`.
- `e1`: `D<deg> W<w>`, then for every coefficient from the top degree down a sign and exactly w zero-padded
  base-1000 digits, w the fewest that hold the largest coefficient: -> `D4 W1 P [004] P [012] P [009] P [000]
  N [001]`. Fixed offsets: each digit's place value is known from its position.

Each prompt ends with the separator ⁇; the model answers after it. The answer is Q in seed prefix tokens with
its terms in the model's `answer_order` (`answer_ids`): ascending degree as the seed writes it, or descending,
the top coefficient first, which is the order the coefficients of Q follow from those of f. Both orders parse
back to the same Q, so verification and the beam view do not depend on it.
"""
from __future__ import annotations

from .poly.core import Poly, PolynomialError, degree, from_prefix_tokens, normalize, to_prefix_tokens
from .tokenizer import ANSWER_ORDERS, E1_MAX_DEGREE, E1_MAX_WIDTH, PROMPT_FORMATS, SEP_ID, encode, vocab_for

__all__ = ["ANSWER_ORDERS", "PROMPT_FORMATS", "answer_ids", "answer_tokens", "parse_prompt", "prompt_ids",
           "prompt_length", "prompt_tokens"]


def _sign(c: int) -> str:
    return "P" if c >= 0 else "N"


def _e0_tokens(f: Poly) -> list[str]:
    out = list(str(degree(f)))
    for c in reversed(f):
        out += [_sign(c), *str(abs(c))]
    return out


def _base1000(n: int, width: int) -> list[str]:
    digits = []
    for _ in range(width):
        n, r = divmod(n, 1000)
        digits.append(f"[{r:03d}]")
    return digits[::-1]


def _e1_tokens(f: Poly) -> list[str]:
    d, big = degree(f), max(abs(c) for c in f)
    if d > E1_MAX_DEGREE:
        raise PolynomialError(f"degree {d} is beyond the e1 prompt format's {E1_MAX_DEGREE}")
    width = max(1, (len(str(big)) + 2) // 3)
    if width > E1_MAX_WIDTH:
        raise PolynomialError(f"a coefficient of {len(str(big))} digits is beyond the e1 prompt format's "
                              f"{3 * E1_MAX_WIDTH}")
    out = [f"D{d}", f"W{width}"]
    for c in reversed(f):
        out += [_sign(c), *_base1000(abs(c), width)]
    return out


_TOKENS = {"seed": to_prefix_tokens, "e0": _e0_tokens, "e1": _e1_tokens}


def prompt_tokens(f: Poly, prompt_format: str = "seed") -> list[str]:
    """f as the prompt tokens of this format (without the separator)."""
    vocab_for(prompt_format)  # a clear error for an unknown format
    if not f:
        raise PolynomialError("the zero polynomial has no decomposition")
    return _TOKENS[prompt_format](f)


def prompt_ids(f: Poly, prompt_format: str = "seed") -> list[int]:
    """The model's prompt for f: the format's tokens, then the separator ⁇ (ids)."""
    return encode(prompt_tokens(f, prompt_format), len(vocab_for(prompt_format))) + [SEP_ID]


def prompt_length(f: Poly, prompt_format: str = "seed") -> int:
    return len(prompt_tokens(f, prompt_format)) + 1


def answer_tokens(q: Poly, answer_order: str = "ascending") -> list[str]:
    """Q as the answer tokens a model with this answer order writes (seed prefix tokens, no separator)."""
    if answer_order not in ANSWER_ORDERS:
        raise ValueError(f"unknown answer order {answer_order!r}; choose from {ANSWER_ORDERS}")
    return to_prefix_tokens(q, descending=answer_order == "descending")


def answer_ids(q: Poly, answer_order: str = "ascending") -> list[int]:
    """The training target for Q: its answer tokens, then the END separator ⁇ (ids)."""
    return encode(answer_tokens(q, answer_order)) + [SEP_ID]


def parse_prompt(tokens: list[str], prompt_format: str = "seed") -> Poly:
    """The f a prompt encodes (without the separator): the inverse of prompt_tokens."""
    if prompt_format == "seed":
        return from_prefix_tokens(tokens)
    k, coeffs = 0, []
    if prompt_format == "e0":
        while k < len(tokens) and tokens[k].isdigit():
            k += 1
        d = int("".join(tokens[:k]) or "-1")
        while k < len(tokens):
            sign, k = (-1 if tokens[k] == "N" else 1), k + 1
            start = k
            while k < len(tokens) and tokens[k].isdigit():
                k += 1
            coeffs.append(sign * int("".join(tokens[start:k])))
    elif prompt_format == "e1":
        d, width, k = int(tokens[0][1:]), int(tokens[1][1:]), 2
        while k < len(tokens):
            sign, value = (-1 if tokens[k] == "N" else 1), 0
            for t in tokens[k + 1: k + 1 + width]:
                value = 1000 * value + int(t[1:-1])
            coeffs.append(sign * value)
            k += 1 + width
    else:
        vocab_for(prompt_format)
    if len(coeffs) != d + 1:
        raise PolynomialError(f"a {prompt_format} prompt of degree {d} holds {len(coeffs)} coefficients")
    return normalize(reversed(coeffs))
