"""The lexer of the polynomial parser: typed text -> tokens with 1-based columns for error messages.

Digits and superscript digits (`a²`), `**` as `^`, the multiplication signs people paste (`·`, `×`, `⋅`) and
the minus signs (`−`, `–`); everything that cannot be part of a polynomial is refused here with its column.
"""
from __future__ import annotations

from dataclasses import dataclass

from .core import PolynomialError

MAX_COEFF = 10**15  # largest |integer| accepted, as a literal and in the expanded result

_DIGITS = "0123456789"
_SUPERSCRIPTS = {ch: d for d, ch in enumerate("⁰¹²³⁴⁵⁶⁷⁸⁹")}
_MINUS = "-−–"  # ASCII hyphen, unicode minus, en dash (pasted text)
_TIMES = "*·×⋅"


@dataclass(frozen=True)
class Tok:
    kind: str  # num | var | sup | + | - | * | ^ | ( | ) | end
    col: int  # 1-based column of the first character
    text: str
    value: int = 0  # the integer of num and sup


def _short(digits: str) -> str:
    return digits if len(digits) <= 24 else digits[:20] + "…"


def lex(text: str) -> list[Tok]:
    toks: list[Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch, col = text[i], i + 1
        if ch.isspace():
            i += 1
            continue
        if ch in _DIGITS or ch in _SUPERSCRIPTS:
            table = _DIGITS if ch in _DIGITS else _SUPERSCRIPTS
            j = i
            while j < n and text[j] in table:
                j += 1
            run = text[i:j]
            digits = run if table is _DIGITS else "".join(str(_SUPERSCRIPTS[c]) for c in run)
            if int(digits) > MAX_COEFF:
                raise PolynomialError(f"the number {_short(digits)} is beyond the limit of 10^15", col)
            toks.append(Tok("num" if table is _DIGITS else "sup", col, run, int(digits)))
            i = j
            continue
        if ch == "*" and text[i + 1:i + 2] == "*":
            toks.append(Tok("^", col, "**"))
            i += 2
            continue
        if ch in _TIMES:
            toks.append(Tok("*", col, ch))
        elif ch in _MINUS:
            toks.append(Tok("-", col, ch))
        elif ch in "+^()":
            toks.append(Tok(ch, col, ch))
        elif ch.isalpha():
            toks.append(Tok("var", col, ch))
        elif ch == "⁻":
            raise PolynomialError("negative exponents do not give a polynomial", col)
        elif ch in ".,":
            raise PolynomialError(f"only whole numbers are supported, found {ch!r}", col)
        elif ch in "/÷:":
            raise PolynomialError("division is not supported", col)
        else:
            raise PolynomialError(f"unexpected character {ch!r}", col)
        i += 1
    toks.append(Tok("end", n + 1, ""))
    return toks
