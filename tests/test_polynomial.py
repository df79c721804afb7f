"""Integer polynomials: seed prefix format, arithmetic, pretty printing, verification, the classical answer."""
import random
from fractions import Fraction

import pytest

from engine.data import ALL_PAIRS, random_problem
from engine.poly.classical import classical_decomposition, describe_decomposition
from engine.poly import (PolynomialError, add, canonical_inner, compose, content,
                               degree, from_prefix, from_prefix_tokens, mul, normalize,
                               q_adic_expansion, scale, to_latex, to_prefix, to_prefix_tokens, to_unicode, verify)

DESIGN_F = "+ N 2 4 0 + * P 2 1 5 a + * P 6 3 8 ^ a P 2 + * N 3 2 0 ^ a P 3 * N 5 1 2 ^ a P 4"
DESIGN_Q = "+ P 1 2 + * N 5 a * N 1 6 ^ a P 2"
DESIGN_LINE = f"{DESIGN_F} ⁇ {DESIGN_Q}"


def evaluate(p, x):
    return sum(c * x ** k for k, c in enumerate(p))


def problems(per_pair, seed=0):
    rng = random.Random(seed)
    return [random_problem(rng, i, j) for i, j in ALL_PAIRS for _ in range(per_pair)]


def test_design_example_is_byte_identical():
    """The seed line format exactly: a stray space or a dropped coefficient 1 breaks old files."""
    f = (-240, 215, 638, -320, -512)
    q = (12, -5, -16)
    assert to_prefix(f) == DESIGN_F
    assert to_prefix(q) == DESIGN_Q
    assert f"{to_prefix(f)} ⁇ {to_prefix(q)}" == DESIGN_LINE
    assert from_prefix(DESIGN_F) == f and from_prefix(DESIGN_Q) == q


def test_prefix_round_trip_on_thousands_of_problems():
    """Poly -> tokens -> Poly is the identity for f and Q of all nine degree pairs."""
    probs = problems(per_pair=300)
    assert len(probs) == 2700
    for prob in probs:
        for p in (prob.f, prob.q, prob.outer):
            assert from_prefix_tokens(to_prefix_tokens(p)) == p


def test_prefix_writes_every_coefficient_and_sign():
    assert to_prefix(()) == "P 0"
    assert to_prefix((0, 1)) == "* P 1 a"
    assert to_prefix((0, 0, 0, -1)) == "* N 1 ^ a P 3"
    assert to_prefix((5, 0, 1)) == "+ P 5 * P 1 ^ a P 2"
    assert to_prefix((0, 0, 2), var="x") == "* P 2 ^ x P 2"


@pytest.mark.parametrize("text, needle", [
    ("", "empty"),
    ("+ P 1", "unexpected end"),
    ("P 1 2 P 3", "trailing"),
    ("* 5 a", "sign token"),
    ("+ * P 1 a * P 1 b", "two variables"),
    ("* P 1 ^ a P 9 9", "exponent 99 out of range"),
])
def test_prefix_errors(text, needle):
    with pytest.raises(PolynomialError, match=needle):
        from_prefix(text)


def test_prefix_errors_point_at_a_column_when_columns_are_given():
    with pytest.raises(PolynomialError) as err:
        from_prefix_tokens(["+", "P", "1"], columns=[1, 3, 5, 6])
    assert err.value.column == 6
    assert str(err.value).endswith("at column 6")


def test_arithmetic_agrees_with_evaluation():
    rng = random.Random(1)
    for _ in range(200):
        p = normalize(rng.randint(-9, 9) for _ in range(rng.randint(0, 5)))
        q = normalize(rng.randint(-9, 9) for _ in range(rng.randint(0, 4)))
        for x in (-3, -1, 0, 2, 5):
            assert evaluate(add(p, q), x) == evaluate(p, x) + evaluate(q, x)
            assert evaluate(mul(p, q), x) == evaluate(p, x) * evaluate(q, x)
            assert evaluate(scale(p, -7), x) == -7 * evaluate(p, x)
            assert evaluate(compose(p, q), x) == evaluate(p, evaluate(q, x))
    assert normalize([1, 2, 0, 0]) == (1, 2)
    assert degree(()) == -1 and degree((4,)) == 0
    assert content((6, -9, 12)) == 3


def test_canonical_inner():
    assert canonical_inner((7, -6, -9)) == (0, 2, 3)
    assert canonical_inner((5,)) == ()
    for prob in problems(per_pair=20):
        c = canonical_inner(prob.q)
        assert c[0] == 0 and c[-1] > 0 and content(c) == 1 and degree(c) == degree(prob.q)


def test_pretty_printing():
    p = (1, -2, 0, 3)
    assert to_unicode(p) == "3a³ - 2a + 1"
    assert to_latex(p) == "3a^{3} - 2a + 1"
    assert to_unicode((0, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1)) == "-a¹² - a"
    assert to_unicode(()) == "0"
    assert to_unicode((-4,), var="x") == "-4"


def test_verify_accepts_every_valid_inner_and_recovers_p():
    """Q is never unique: Q + c, -Q and the canonical Q pass too, each with its own integer P."""
    rng = random.Random(2)
    for prob in problems(per_pair=25, seed=3):
        f, q = prob.f, prob.q
        shifted = add(q, (rng.randint(-30, 30),))
        for candidate in (q, shifted, scale(q, -1), canonical_inner(q)):
            verdict = verify(f, candidate)
            assert verdict.ok, (f, candidate, verdict.reason)
            assert verdict.reason == ""
            assert compose(verdict.outer, candidate) == f
        assert verify(f, q).outer == prob.outer


def test_verify_rejects_trivial_wrong_and_constant_inners():
    """The seed's checker accepted Q = a and Q = f; ours must not."""
    for prob in problems(per_pair=10, seed=4):
        f, q = prob.f, prob.q
        assert not verify(f, (0, 1)).ok  # Q = a: f = f(a)
        assert not verify(f, f).ok  # Q = f: f = a(f)
        assert not verify(f, (7,)).ok
        assert not verify(f, ()).ok
        wrong = add(q, (0, 1))  # Q + a is not an inner polynomial of f
        verdict = verify(f, wrong)
        assert not verdict.ok and verdict.outer is None and verdict.reason
    assert "trivial" in verify((1, 2, 3, 4, 5), (0, 1)).reason


def test_q_adic_expansion():
    q = (1, 0, 2)
    f = compose((3, -1, 4), q)
    assert q_adic_expansion(f, q) == (3, -1, 4)
    assert q_adic_expansion(add(f, (0, 1)), q) is None  # a non-constant remainder
    assert q_adic_expansion((1, 0, 1), (0, 0, 2)) is None  # a² + 1 = Q/2 + 1: not integral


def _q_adic_rational(f, q):
    """The expansion by division over the rationals (what q_adic_expansion's integer division must equal)."""
    digits, r = [], [Fraction(c) for c in f]
    while len(r) - 1 >= degree(q):
        quot = [Fraction(0)] * (len(r) - degree(q))
        for k in range(len(r) - 1, degree(q) - 1, -1):
            t = quot[k - degree(q)] = r[k] / q[-1]
            for j, b in enumerate(q):
                r[k - degree(q) + j] -= t * b
        if any(c.denominator != 1 for c in r[:degree(q)] + quot):
            return None
        rem = normalize(int(c) for c in r[:degree(q)])
        if len(rem) > 1:
            return None
        digits.append(rem[0] if rem else 0)
        r = [Fraction(x) for x in normalize(int(x) for x in quot)]
    return None if len(r) > 1 else normalize(digits + [int(r[0]) if r else 0])


def test_q_adic_expansion_matches_rational_division():
    """Integer long division (rejecting at the first quotient coefficient the leading coefficient does not
    divide) gives the rational division's answer on valid inners, their shifts, multiples and near misses."""
    rng = random.Random(11)
    cases = 0
    for prob in problems(per_pair=12, seed=12):
        f, q = prob.f, prob.q
        near = [add(q, (0,) * i + (d,)) for i in range(len(q)) for d in (-1, 1)]
        for cand in [q, scale(q, -3), scale(q, 2), add(q, (rng.randint(-9, 9),)), canonical_inner(q), *near]:
            if degree(cand) >= 1:
                assert q_adic_expansion(f, cand) == _q_adic_rational(f, cand), (f, cand)
                cases += 1
        g = add(f, (0,) * rng.randint(1, len(f) - 1) + (rng.choice((-1, 1)),))  # off by one in a non-constant term
        assert q_adic_expansion(g, q) == _q_adic_rational(g, q) is None
    assert cases > 1000


def test_classical_decomposition_composes_back_to_f():
    """sympy's parts, made integral, compose exactly to f, and the innermost one verifies."""
    for prob in problems(per_pair=6, seed=5):
        parts = classical_decomposition(prob.f)
        assert len(parts) >= 2
        g = parts[-1]
        for outer in reversed(parts[:-1]):
            g = compose(outer, g)
        assert g == prob.f
        assert verify(prob.f, parts[-1]).ok


def test_classical_decomposition_finds_non_monic_inners():
    """Over the integers sympy misses inner polynomials with leading coefficient other than ±1."""
    f = compose((1, 2, 3), (0, 1, 3))
    assert classical_decomposition(f) == [(1, 2, 3), (0, 1, 3)]
    assert describe_decomposition(f) == "f = P(Q), Q = 3a² + a, P = 3a² + 2a + 1"


def test_classical_decomposition_of_a_chain_and_of_indecomposables():
    inner = (0, 3, 1)  # a² + 3a
    f = compose((7, 1, 0, 0, 3), compose((0, 0, 1), inner))
    parts = classical_decomposition(f)
    assert len(parts) == 3 and parts[-1] == inner
    assert describe_decomposition(f).startswith("f = P(R(Q)), Q = a² + 3a, R = ")
    assert classical_decomposition((1, 1, 0, 0, 0, 1)) == [(1, 1, 0, 0, 0, 1)]  # degree 5 is prime
    assert classical_decomposition((1, 1, 0, 0, 0, 0, 1)) == [(1, 1, 0, 0, 0, 0, 1)]  # a⁶ + a + 1
    assert classical_decomposition((5,)) == [(5,)]
    assert "no decomposition" in describe_decomposition((1, 1, 0, 0, 0, 1))


def test_classical_decomposition_is_complete_where_sympy_stops_early():
    """f = P(R(Q)) with deg Q = 3 is also a polynomial in a²; sympy's decompose alone returns a
    two-part chain with a decomposable degree-9 outer part."""
    f = compose((7, 1, 0, 3), compose((0, 0, 1), (0, 3, 0, 2)))
    parts = classical_decomposition(f)
    assert [degree(p) for p in parts] == [3, 3, 2]
    assert parts[-1] == (0, 0, 1)


def test_classical_decomposition_guards_degree():
    with pytest.raises(PolynomialError, match="limit of 64"):
        classical_decomposition((1,) * 66)
