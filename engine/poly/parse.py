"""A safe parser for polynomials as people type them: `3a² - 2(a+1)^2`, `(a+1)(a−1)`, `a**3 + 5`.

Hand-written lexer (engine/poly/lexer.py) and recursive descent; nothing is ever evaluated as Python. Parsing builds a
small tree whose degree and coefficient size are bounded symbolically at every node, so
`(a+1)^999999` or `((a+1)^30)^30` is refused before a single multiplication. Text in the seed
prefix format (`+ P 1 2 + * N 5 a * N 1 6 ^ a P 2`) is recognised and read with from_prefix_tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

from .lexer import MAX_COEFF, Tok, lex
from .core import Poly, PolynomialError, add, degree, from_prefix_tokens, mul, normalize, scale

MAX_CHARS = 400  # typed (infix) input
MAX_PREFIX_CHARS = 1200  # a 4_4 prompt in prefix tokens is about 500 characters
MAX_DEPTH = 32  # parentheses nesting
_SATURATE = 10**40  # bound arithmetic stops growing here; far above every limit

_PREFIX_VOCAB = frozenset(["+", "*", "^", "P", "N", *"0123456789", "a", "b", "c", "d", "e", "x", "y", "z"])


@dataclass(frozen=True)
class _Node:
    op: str  # num | var | neg | add | mul | pow
    col: int
    deg: int  # upper bound on the degree
    norm: int  # upper bound on the sum of |coefficients| (saturating); it bounds every coefficient
    args: tuple[_Node, ...] = ()
    value: int = 0  # the literal of num, the exponent of pow


def _cap(x: int) -> int:
    return min(x, _SATURATE)


def _pow_bound(norm: int, e: int) -> int:
    if e == 0:
        return 1
    if norm <= 1:
        return norm
    out = 1
    for _ in range(e):  # norm >= 2, so this saturates within ~130 rounds
        out *= norm
        if out >= _SATURATE:
            return _SATURATE
    return out


class _Parser:
    """Recursive descent over the tokens; every node's bounds are checked as it is built.

    sum     := signed (('+' | '-') signed)*
    signed  := ('+' | '-')* product               -a^2 is -(a^2)
    product := power ('*' ('+' | '-')* power | power-starting-with-letter-or-'(')*
    power   := primary ('^' exponent | superscripts)?
    primary := integer | letter | '(' sum ')'
    """

    def __init__(self, toks: list[Tok], max_degree: int):
        self.toks, self.i, self.max_degree = toks, 0, max_degree
        self.depth = 0
        self.var: Tok | None = None

    def peek(self) -> Tok:
        return self.toks[self.i]

    def take(self) -> Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def check(self, col: int, deg: int, norm: int) -> None:
        if deg > self.max_degree:
            raise PolynomialError(f"the degree could reach {deg}, above the limit of {self.max_degree}", col)
        # A polynomial within the limits has norm <= (deg + 1) * 10^15; refusing a larger bound keeps
        # expansion cheap (only exact cancellation can make such input come out small).
        if norm > (deg + 1) * MAX_COEFF:
            raise PolynomialError("the coefficients could grow beyond the limit of 10^15", col)

    def node(self, op: str, col: int, deg: int, norm: int, args: tuple = (), value: int = 0) -> _Node:
        self.check(col, deg, norm)
        return _Node(op, col, deg, norm, args, value)

    def unexpected(self, tok: Tok) -> PolynomialError:
        if tok.kind == "end":
            return PolynomialError("the input ends early: expected a number, a variable or '('", tok.col)
        return PolynomialError(f"unexpected {tok.text!r}", tok.col)

    def parse(self) -> _Node:
        root = self.sum()
        tok = self.peek()
        if tok.kind == ")":
            raise PolynomialError("unexpected ')' without a matching '('", tok.col)
        if tok.kind != "end":
            raise self.unexpected(tok)
        return root

    def sum(self) -> _Node:
        terms = [self.signed()]
        deg, norm = terms[0].deg, terms[0].norm
        while self.peek().kind in ("+", "-"):
            op = self.take()
            term = self.signed()
            if op.kind == "-":
                term = _Node("neg", op.col, term.deg, term.norm, (term,))
            deg, norm = max(deg, term.deg), _cap(norm + term.norm)
            terms.append(term)
        if len(terms) == 1:
            return terms[0]
        return self.node("add", terms[0].col, deg, norm, tuple(terms))

    def signs(self) -> Tok | None:
        """Consume leading signs; the first minus token if their product is negative."""
        negative, first = False, None
        while self.peek().kind in ("+", "-"):
            tok = self.take()
            if tok.kind == "-":
                negative = not negative
                first = first or tok
        return first if negative else None

    def signed(self) -> _Node:
        minus = self.signs()
        body = self.product()
        return _Node("neg", minus.col, body.deg, body.norm, (body,)) if minus else body

    def product(self) -> _Node:
        factors = [self.power()]
        deg, norm = factors[0].deg, factors[0].norm
        while True:
            tok = self.peek()
            if tok.kind == "*":
                self.take()
                minus = self.signs()
                factor = self.power()
                if minus:
                    factor = _Node("neg", minus.col, factor.deg, factor.norm, (factor,))
            elif tok.kind in ("var", "("):  # implicit product: 3a, 2(a+1), (a+1)(a-1), a(a+1)
                factor = self.power()
            elif tok.kind in ("num", "sup"):
                raise PolynomialError(f"missing operator before {tok.text!r}", tok.col)
            else:
                break
            deg, norm = deg + factor.deg, _cap(norm * factor.norm)
            self.check(factor.col, deg, norm)  # refuse as soon as the product outgrows a limit
            factors.append(factor)
        if len(factors) == 1:
            return factors[0]
        return self.node("mul", factors[0].col, deg, norm, tuple(factors))

    def power(self) -> _Node:
        base = self.primary()
        tok = self.peek()
        if tok.kind == "sup":
            self.take()
            e = tok.value
        elif tok.kind == "^":
            self.take()
            e = self.exponent()
        else:
            return base
        after = self.peek()
        if after.kind in ("^", "sup"):
            raise PolynomialError("chained exponents are ambiguous: add parentheses, e.g. (a^2)^3", after.col)
        return self.node("pow", tok.col, base.deg * e, _pow_bound(base.norm, e), (base,), e)

    def exponent(self) -> int:
        tok = self.take()
        if tok.kind == "num":
            return tok.value
        if tok.kind == "(" and self.peek().kind == "num" and self.toks[self.i + 1].kind == ")":
            value = self.take().value
            self.take()
            return value
        if tok.kind == "-":
            raise PolynomialError("negative exponents do not give a polynomial", tok.col)
        if tok.kind == "end":
            raise PolynomialError("the input ends early: expected an exponent", tok.col)
        raise PolynomialError("an exponent must be a whole number", tok.col)

    def primary(self) -> _Node:
        tok = self.take()
        if tok.kind == "num":
            return self.node("num", tok.col, 0, tok.value, value=tok.value)
        if tok.kind == "var":
            if self.var is None:
                self.var = tok
            elif tok.text != self.var.text:
                raise PolynomialError(f"two variables {self.var.text!r} and {tok.text!r} (only one is allowed)",
                                      tok.col)
            return self.node("var", tok.col, 1, 1)
        if tok.kind == "(":
            if self.depth >= MAX_DEPTH:
                raise PolynomialError(f"parentheses nested deeper than the limit of {MAX_DEPTH}", tok.col)
            self.depth += 1
            inner = self.sum()
            self.depth -= 1
            close = self.take()
            if close.kind == "end":
                raise PolynomialError("'(' is never closed", tok.col)
            if close.kind != ")":
                raise self.unexpected(close)
            return inner
        raise self.unexpected(tok)


def _power(p: Poly, e: int) -> Poly:
    out: Poly = (1,)
    while e:
        if e & 1:
            out = mul(out, p)
        e >>= 1
        if e:
            p = mul(p, p)
    return out


def _expand(node: _Node) -> Poly:
    if node.op == "num":
        return normalize((node.value,))
    if node.op == "var":
        return (0, 1)
    if node.op == "neg":
        return scale(_expand(node.args[0]), -1)
    if node.op == "pow":
        return _power(_expand(node.args[0]), node.value)
    if node.op == "add":
        out: Poly = ()
        for arg in node.args:
            out = add(out, _expand(arg))
        return out
    out = (1,)
    for arg in node.args:  # mul
        out = mul(out, _expand(arg))
    return out


def looks_like_prefix(text: str) -> bool:
    """True for seed-format token text: every token in the prefix vocabulary, starting with + * P or N,
    and at least one sign token (every seed number has one)."""
    toks = text.split()
    return (len(toks) >= 2 and toks[0] in ("+", "*", "P", "N") and any(t in ("P", "N") for t in toks)
            and all(t in _PREFIX_VOCAB for t in toks))


def _read_prefix(text: str) -> Poly:
    tokens, columns, i = [], [], 0
    for tok in text.split():
        i = text.index(tok, i)
        tokens.append(tok)
        columns.append(i + 1)
        i += len(tok)
    return from_prefix_tokens(tokens, columns=columns + [len(text) + 1])


def _check_result(p: Poly, max_degree: int) -> Poly:
    if not p:
        raise PolynomialError("the polynomial is zero")
    if degree(p) > max_degree:
        raise PolynomialError(f"the degree is {degree(p)}, above the limit of {max_degree}")
    for k, c in enumerate(p):
        if abs(c) > MAX_COEFF:
            raise PolynomialError(f"the coefficient of a^{k} is {c}, beyond the limit of 10^15")
    return p


def parse_polynomial(text: str, max_degree: int = 32) -> Poly:
    """Expand what a person typed (or a seed prefix token string) into a Poly.

    One variable (any letter, shown as a), integers, + - * ^ ** · ×, unicode minus and superscripts,
    parentheses and implicit products. Raises PolynomialError (message, 1-based column where it helps)
    for bad syntax and for every limit: length, one variable, degree <= max_degree, |integers| <= 10^15,
    nesting depth, and the zero polynomial. Limits are checked on bounds before anything is expanded.
    """
    if not text or not text.strip():
        raise PolynomialError("empty input: type a polynomial such as 3a² - 2a + 1")
    if len(text) > MAX_PREFIX_CHARS:
        raise PolynomialError(f"the input is {len(text)} characters long, above the limit of {MAX_CHARS} "
                              f"({MAX_PREFIX_CHARS} for prefix tokens)")
    if looks_like_prefix(text):
        return _check_result(_read_prefix(text), max_degree)
    if len(text) > MAX_CHARS:
        raise PolynomialError(f"the input is {len(text)} characters long, above the limit of {MAX_CHARS}")
    tree = _Parser(lex(text), max_degree).parse()
    return _check_result(_expand(tree), max_degree)


def variable_name(text: str) -> str | None:
    """The letter a typed polynomial uses as its variable (the page shows every variable as a), or None for
    a constant or seed prefix tokens. Call it on text parse_polynomial accepted."""
    if looks_like_prefix(text):
        return None
    return next((tok.text for tok in lex(text) if tok.kind == "var"), None)
