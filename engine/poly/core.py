"""Integer polynomials in one variable: arithmetic, seed prefix tokens, pretty printing, verification.

A polynomial is a tuple of Python ints in ascending degree with no trailing zeros
(the zero polynomial is the empty tuple). Everything here is pure and exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from typing import Iterable

Poly = tuple[int, ...]


class PolynomialError(ValueError):
    """Bad polynomial input. `column` (1-based) points into the text when known."""

    def __init__(self, message: str, column: int | None = None):
        self.message = message
        self.column = column
        super().__init__(message if column is None else f"{message} at column {column}")


# ---------------------------------------------------------------- arithmetic

def normalize(coeffs: Iterable[int]) -> Poly:
    c = [int(x) for x in coeffs]
    while c and c[-1] == 0:
        c.pop()
    return tuple(c)


def degree(p: Poly) -> int:
    """Degree; -1 for the zero polynomial."""
    return len(p) - 1


def add(p: Poly, q: Poly) -> Poly:
    n = max(len(p), len(q))
    return normalize((p[i] if i < len(p) else 0) + (q[i] if i < len(q) else 0) for i in range(n))


def scale(p: Poly, k: int) -> Poly:
    return normalize(k * c for c in p)


def mul(p: Poly, q: Poly) -> Poly:
    if not p or not q:
        return ()
    out = [0] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        if a:
            for j, b in enumerate(q):
                out[i + j] += a * b
    return normalize(out)


def compose(outer: Poly, inner: Poly) -> Poly:
    """outer(inner(a)) by Horner's rule."""
    out: Poly = ()
    for c in reversed(outer):
        out = add(mul(out, inner), (c,))
    return out


def content(p: Poly) -> int:
    g = 0
    for c in p:
        g = gcd(g, c)
    return g


def canonical_inner(q: Poly) -> Poly:
    """The canonical representative of Q: Q(0) = 0, content 1, positive leading coefficient.

    If f = P(Q) then f = P'(canonical(Q)) for an integer P' too, so the target becomes a
    function of f (and the inner degree) instead of carrying an arbitrary constant and scale.
    """
    q = normalize((0,) + tuple(q[1:]))
    if not q:
        return q
    g = content(q)
    if q[-1] < 0:
        g = -g
    return tuple(c // g for c in q)


# ---------------------------------------------------------------- seed prefix format

def _number_tokens(n: int) -> list[str]:
    return ["P" if n >= 0 else "N", *str(abs(n))]


def to_prefix_tokens(p: Poly, var: str = "a", descending: bool = False) -> list[str]:
    """Seed format: ascending terms (or, with `descending`, the top degree first), coefficient always written,
    sums right-nested. Either order parses back to the same polynomial."""
    terms = []
    for k, c in enumerate(p):
        if c == 0:
            continue
        if k == 0:
            terms.append(_number_tokens(c))
        elif k == 1:
            terms.append(["*", *_number_tokens(c), var])
        else:
            terms.append(["*", *_number_tokens(c), "^", var, *_number_tokens(k)])
    if not terms:
        return ["P", "0"]
    if descending:
        terms.reverse()
    out: list[str] = []
    for t in terms[:-1]:
        out += ["+", *t]
    return out + terms[-1]


def to_prefix(p: Poly, var: str = "a") -> str:
    """The seed prefix tokens joined by single spaces."""
    return " ".join(to_prefix_tokens(p, var))


_VARIABLES = ("a", "b", "c", "d", "e", "x", "y", "z")


class _PrefixReader:
    def __init__(self, tokens: list[str], columns: list[int] | None = None):
        self.toks = tokens
        self.columns = columns  # text column of each token, plus one for the end
        self.i = 0
        self.var: str | None = None

    def fail(self, msg: str):
        if self.columns:  # the error then reads "... at column N"
            raise PolynomialError(f"bad prefix expression: {msg}", self.columns[min(self.i, len(self.columns) - 1)])
        raise PolynomialError(f"bad prefix expression: {msg} at token {self.i + 1}")

    def next(self) -> str:
        if self.i >= len(self.toks):
            self.fail("unexpected end")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def number(self) -> int:
        sign = self.next()
        if sign not in ("P", "N"):
            self.i -= 1
            self.fail(f"expected a sign token P or N, got {sign!r}")
        digits = []
        while self.i < len(self.toks) and self.toks[self.i].isdigit() and len(self.toks[self.i]) == 1:
            digits.append(self.toks[self.i])
            self.i += 1
        if not digits:
            self.fail("a number needs at least one digit")
        if len(digits) > 18:
            self.fail("number too long")
        n = int("".join(digits))
        return -n if sign == "N" else n

    def variable(self) -> None:
        tok = self.next()
        if tok not in _VARIABLES:
            self.i -= 1
            self.fail(f"expected a variable, got {tok!r}")
        if self.var is None:
            self.var = tok
        elif tok != self.var:
            self.i -= 1
            self.fail(f"two variables ({self.var!r} and {tok!r})")

    def expr(self, depth: int = 0) -> Poly:
        if depth > 400:
            self.fail("expression nested too deeply")
        tok = self.toks[self.i] if self.i < len(self.toks) else None
        if tok == "+":
            self.i += 1
            return add(self.expr(depth + 1), self.expr(depth + 1))
        if tok == "*":
            self.i += 1
            c = self.number()
            if self.i < len(self.toks) and self.toks[self.i] == "^":
                self.i += 1
                self.variable()
                k = self.number()
                if k < 0 or k > 64:
                    self.fail(f"exponent {k} out of range")
                return normalize([0] * k + [c])
            self.variable()
            return normalize([0, c])
        if tok in _VARIABLES:
            self.variable()
            return (0, 1)
        return normalize([self.number()])


def from_prefix_tokens(tokens: list[str], columns: list[int] | None = None) -> Poly:
    """Parse a seed-format prefix expression (the inverse of to_prefix_tokens). `columns`, when given,
    holds each token's 1-based text column (and one past the end) so errors can point into the text."""
    r = _PrefixReader(list(tokens), columns)
    if not r.toks:
        raise PolynomialError("empty prefix expression")
    p = r.expr()
    if r.i != len(r.toks):
        r.fail("trailing tokens")
    return p


def from_prefix(text: str) -> Poly:
    """Parse space-separated seed prefix tokens."""
    return from_prefix_tokens(text.split())


# ---------------------------------------------------------------- pretty printing

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _format(p: Poly, var: str, power) -> str:
    if not p:
        return "0"
    parts = []
    for k in range(len(p) - 1, -1, -1):
        c = p[k]
        if c == 0:
            continue
        sign = "-" if c < 0 else "+"
        mag = abs(c)
        if k == 0:
            body = str(mag)
        else:
            coef = "" if mag == 1 else str(mag)
            body = coef + var + (power(k) if k > 1 else "")
        parts.append((sign, body))
    first_sign, first = parts[0]
    out = ("-" if first_sign == "-" else "") + first
    for sign, body in parts[1:]:
        out += f" {sign} {body}"
    return out


def to_unicode(p: Poly, var: str = "a") -> str:
    """Descending degree with superscripts: 3a² - 2a + 1."""
    return _format(p, var, lambda k: str(k).translate(_SUPERSCRIPT))


def to_latex(p: Poly, var: str = "a") -> str:
    """LaTeX, descending degree: 3a^{2} - 2a + 1."""
    return _format(p, var, lambda k: "^{%d}" % k)


# ---------------------------------------------------------------- verification

@dataclass(frozen=True)
class Verdict:
    ok: bool
    outer: Poly | None  # the recovered P with f = P(Q), when ok
    reason: str  # why it failed, or "" when ok


def q_adic_expansion(f: Poly, q: Poly) -> Poly | None:
    """Integer c_i with f = sum c_i q^i, or None if the repeated division leaves a non-constant
    or non-integer remainder. Requires deg q >= 1.

    Each division is long division in integers: a quotient coefficient that q's leading coefficient does not
    divide makes the quotient non-integral, and the answer None, at once (the rational division would carry
    the fraction to the end and reject it there), so no fractions are needed."""
    dq = degree(q)
    lead = q[-1]
    digits: list[int] = []
    r = list(f)  # the dividend, reduced in place to the remainder: a fresh list every round
    while len(r) - 1 >= dq:
        quot = [0] * (len(r) - dq)
        for k in range(len(r) - 1, dq - 1, -1):
            if r[k]:
                t, left = divmod(r[k], lead)
                if left:
                    return None
                quot[k - dq] = t
                for j, b in enumerate(q):
                    r[k - dq + j] -= t * b
        rem = normalize(r[:dq])
        if len(rem) > 1:
            return None
        digits.append(rem[0] if rem else 0)
        r = list(normalize(quot))
    if len(r) > 1:
        return None
    digits.append(r[0] if r else 0)
    return normalize(digits)


def verify(f: Poly, q: Poly) -> Verdict:
    """DESIGN.md's rule: f = sum c_i Q^i with integer c_i, and 2 <= deg Q < deg f."""
    dq, df = degree(q), degree(f)
    if dq < 2:
        return Verdict(False, None, f"deg Q = {max(dq, 0)} < 2: trivial decomposition")
    if dq >= df:
        return Verdict(False, None, f"deg Q = {dq} >= deg f = {df}: trivial decomposition")
    outer = q_adic_expansion(f, q)
    if outer is None:
        return Verdict(False, None, "f is not an integer polynomial in Q")
    return Verdict(True, outer, "")

