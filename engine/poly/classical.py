"""The classical (non-learned) answer: a functional decomposition f = g1(g2(...(gn))) of an integer polynomial.

Shown beside the model's answer for comparison. The inputs are Poly tuples; no text is ever parsed here.
"""
from __future__ import annotations

from fractions import Fraction
from math import lcm

from .core import Poly, PolynomialError, canonical_inner, compose, degree, normalize, q_adic_expansion, to_unicode

MAX_DECOMPOSE_DEGREE = 64


def _integer_inner(coeffs: list[Fraction]) -> Poly:
    """A rational inner polynomial (descending coefficients) as its canonical integer multiple."""
    m = lcm(*(c.denominator for c in coeffs))
    return canonical_inner(normalize(int(c * m) for c in reversed(coeffs)))


def _chain(f: Poly, inners: list[Poly]) -> list[Poly]:
    """Components outermost first from nested inner polynomials (largest degree first); an inner
    that f's current component is not an integer polynomial in is skipped (its split merged)."""
    out, current = [], f
    for inner in inners:
        outer = q_adic_expansion(current, inner)
        if outer is not None:
            out.append(outer)
            current = inner
    return out + [current]


def _sympy_inners(f: Poly) -> list[Poly]:
    import sympy  # heavy to import; only the classical answer needs it

    a = sympy.Symbol("a")
    parts = sympy.Poly(list(reversed(f)), a, domain=sympy.QQ).monic().decompose()
    inners, h = [], None
    for g in reversed(parts[1:]):  # g_n, then g_{n-1}(g_n), ...
        h = g if h is None else g.compose(h)
        inners.insert(0, _integer_inner([Fraction(int(c.p), int(c.q)) for c in h.all_coeffs()]))
    return inners


def _right_component(f: Poly, s: int) -> Poly:
    """The one inner polynomial of degree s that f can be a polynomial in (up to Q -> kQ + c):
    the polynomial part of (f / lc f)^(1/r), r = deg f / s (Kozen & Landau 1989), from f's top
    s coefficients by the power-series recurrence b_k = 1/k sum_j ((1/r + 1) j - k) a_j b_(k-j)."""
    n = degree(f)
    r = n // s
    a = [Fraction(f[n - k], f[n]) for k in range(s)]  # f / lc f = x^n (1 + a_1/x + a_2/x^2 + ...)
    b = [Fraction(1)]
    for k in range(1, s):
        b.append(sum(((Fraction(1, r) + 1) * j - k) * a[j] * b[k - j] for j in range(1, k + 1)) / k)
    return _integer_inner(b + [Fraction(0)])


def _exact_inners(f: Poly) -> list[Poly]:
    """Peel off the smallest right component until none is left; nested inners, largest degree first."""
    inners: list[Poly] = []
    g, inner = f, (0, 1)
    while True:
        n = degree(g)
        for s in (s for s in range(2, n) if n % s == 0):
            h = _right_component(g, s)
            outer = q_adic_expansion(g, h)
            if outer is not None:
                inner = compose(h, inner)
                inners.insert(0, canonical_inner(inner))
                g = outer
                break
        else:
            return inners


def classical_decomposition(f: Poly) -> list[Poly]:
    """The classical (non-learned) answer: f = g1(g2(...(gn))), components outermost first, or [f].

    sympy's decompose runs on a sympy Poly built from the coefficients (never from text), made
    monic over the rationals. sympy 1.14 computes right components of degree >= 3 with a wrong
    power-series coefficient, so it reports most of this lab's problems as indecomposable or stops
    early; the same Kozen-Landau step is therefore also done exactly here and the finer of the two
    chains is kept. Every inner part is put in canonical integer form (canonical_inner) and every
    outer part recovered with q_adic_expansion, so all components are integer polynomials whose
    composition is exactly f.
    """
    f = normalize(f)
    if degree(f) > MAX_DECOMPOSE_DEGREE:
        raise PolynomialError(f"degree {degree(f)} is above the limit of {MAX_DECOMPOSE_DEGREE} "
                              "for the classical decomposition")
    if degree(f) < 4:  # degree 0..3: nothing composes to it non-trivially
        return [f]
    return max(_chain(f, _sympy_inners(f)), _chain(f, _exact_inners(f)), key=len)


def describe_decomposition(f: Poly) -> str:
    """The classical answer in words, e.g. "f = P(Q), Q = a² + 3a, P = 2a² - 1"."""
    parts = classical_decomposition(f)
    if len(parts) == 1:
        return (f"no decomposition: f = {to_unicode(normalize(f))} is not P(Q) with integer P, Q "
                f"and 2 ≤ deg Q < deg f = {max(degree(f), 0)}")
    names = ["P", *"RSTU"[:len(parts) - 2], "Q"]  # at most 6 parts for degree <= 64
    nested = names[-1]
    for name in reversed(names[:-1]):
        nested = f"{name}({nested})"
    return ", ".join([f"f = {nested}"] + [f"{n} = {to_unicode(p)}" for n, p in reversed(list(zip(names, parts)))])
