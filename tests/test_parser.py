"""The safe polynomial parser: what people type, seed prefix text, limits and errors, fuzzing."""
from datetime import timedelta

import pytest
import sympy
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.poly import parse
from engine.poly import PolynomialError, compose, parse_polynomial, to_prefix

FUZZ = settings(max_examples=150, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("text, expected", [
    ("3a^2", (0, 0, 3)),
    ("2(a+1)^2", (2, 4, 2)),
    ("(a+1)(a-1)", (-1, 0, 1)),
    ("a(a+1)", (0, 1, 1)),
    ("a²", (0, 0, 1)),
    ("(a+1)³", (1, 3, 3, 1)),
    ("a¹⁰", (0,) * 10 + (1,)),
    ("a**3 - 2a", (0, -2, 0, 1)),
    ("x^2 + x", (0, 1, 1)),
    ("−a² − 1", (-1, 0, -1)),
    ("2·a×a⋅3", (0, 0, 6)),
    ("-a^2", (0, 0, -1)),  # unary minus binds looser than ^
    ("(-a)^2", (0, 0, 1)),
    ("--a", (0, 1)),
    ("a - -1", (1, 1)),
    ("2*-a", (0, -2)),
    ("3a^2(a+1)", (0, 0, 3, 3)),
    ("2^3a", (0, 8)),
    ("3²", (9,)),
    ("a^(2)", (0, 0, 1)),
    ("((a))", (0, 1)),
    ("(((a+1)^2 - 1)^2)", (0, 0, 4, 4, 1)),
    ("  3  a ^ 2 +\t1 ", (1, 0, 3)),
    ("Z - 1", (-1, 1)),
    ("a^0 + 0", (1,)),
    ("7", (7,)),  # a constant parses; verification rejects it later
    ("a + 1", (1, 1)),
    ("999999999999999a", (0, 999999999999999)),
    ("1^999999999999999", (1,)),  # huge exponent of a constant ±1 or 0 is fine
])
def test_parses(text, expected):
    assert parse_polynomial(text) == expected


@pytest.mark.parametrize("text, needle, column", [
    ("a+1)", "unexpected ')'", 4),
    ("(a+1", "'(' is never closed", 1),
    ("a + * 2", "unexpected '*'", 5),
    ("()", "unexpected ')'", 2),
    ("a + ", "ends early", 5),
    ("a^", "expected an exponent", 3),
    ("a^b", "exponent must be a whole number", 3),
    ("a^(1+1)", "exponent must be a whole number", 3),
    ("a^-2", "negative exponents", 3),
    ("a⁻²", "negative exponents", 2),
    ("a^2^3", "chained exponents", 4),
    ("a²^3", "chained exponents", 3),
    ("2a + 3b", "two variables 'a' and 'b'", 7),
    ("x*a", "two variables", 3),
    ("sin a", "two variables", 2),
    ("3.5a", "whole numbers", 2),
    ("a/2", "division", 2),
    ("a $ 1", "unexpected character '$'", 3),
    ("2 3", "missing operator before '3'", 3),
    ("(a+1)2", "missing operator", 6),
    ("a²3", "missing operator", 3),
    ("²", "unexpected '²'", 1),
    ("a = 1", "unexpected character '='", 3),
])
def test_errors_carry_message_and_column(text, needle, column):
    with pytest.raises(PolynomialError) as err:
        parse_polynomial(text)
    assert needle in err.value.message
    assert err.value.column == column
    assert str(err.value) == f"{err.value.message} at column {column}"


@pytest.mark.parametrize("text, needle", [
    ("", "empty"),
    ("   ", "empty"),
    ("a - a", "zero"),
    ("0", "zero"),
    ("(a+1)^2 - (a^2 + 2a + 1)", "zero"),
])
def test_empty_and_zero_are_errors(text, needle):
    with pytest.raises(PolynomialError, match=needle):
        parse_polynomial(text)


@pytest.mark.parametrize("text, needle", [
    ("(a+1)^999999", "degree could reach 999999, above the limit of 32"),
    ("((a+1)^30)^30", "degree could reach 900"),
    ("((((a+1)^9)^9)^9)^9", "degree could reach 81"),
    ("a^33", "degree could reach 33"),
    ("(a+1)^20 (a-1)^20", "degree could reach 40"),
    ("9999999999999999999a", "beyond the limit of 10^15"),
    ("1000000000000001", "beyond the limit of 10^15"),
    ("2^60", "coefficients could grow beyond the limit of 10^15"),
    ("(999999a+999999)^3", "coefficients could grow"),
    ("((2^9)^9)^9", "coefficients could grow"),
    ("(" * 33 + "a" + ")" * 33, "nested deeper than the limit of 32"),
    ("a+" * 200 + "a", "characters long, above the limit of 400"),
    ("a" * 1300, "characters long"),
])
def test_explosive_inputs_are_refused_before_expanding(text, needle, monkeypatch):
    """The refusal must come from the bounds, not after building a huge polynomial."""
    def no_work(*args):
        raise AssertionError("expansion started before the limits were checked")
    for name in ("add", "mul", "scale"):
        monkeypatch.setattr(parse, name, no_work)
    with pytest.raises(PolynomialError) as err:
        parse_polynomial(text)
    assert needle in err.value.message


def test_result_limit_is_checked_after_expansion():
    """Bounds let this through (they can only estimate); the exact result is still refused."""
    with pytest.raises(PolynomialError, match="coefficient of a\\^1 is 1999999999999998, beyond the limit"):
        parse_polynomial("999999999999999a + 999999999999999a")


def test_bounds_are_not_too_strict():
    """(2a+1)^32 has a coefficient bound of 3^32 > 10^15 but every coefficient is below it."""
    p = parse_polynomial("(2a+1)^32")
    assert p == tuple(sympy.binomial(32, k) * 2 ** k for k in range(33))
    assert max(p) < 10**15


def test_max_degree_argument():
    assert parse_polynomial("a^40", max_degree=40) == (0,) * 40 + (1,)
    with pytest.raises(PolynomialError, match="limit of 8"):
        parse_polynomial("(a^2+1)^5", max_degree=8)
    with pytest.raises(PolynomialError, match="degree is 9, above the limit of 8"):
        parse_polynomial("* P 1 ^ a P 9", max_degree=8)


def test_seed_prefix_text_is_read_as_prefix():
    assert parse_polynomial("+ P 1 2 + * N 5 a * N 1 6 ^ a P 2") == (12, -5, -16)
    f = "+ N 2 4 0 + * P 2 1 5 a + * P 6 3 8 ^ a P 2 + * N 3 2 0 ^ a P 3 * N 5 1 2 ^ a P 4"
    assert parse_polynomial(f) == (-240, 215, 638, -320, -512)
    assert parse_polynomial("+ 3") == (3,)  # no sign token P/N: infix unary plus
    assert parse_polynomial("P") == (0, 1)  # a single letter is a variable
    with pytest.raises(PolynomialError, match="trailing tokens"):
        parse_polynomial("N 7 a")


def test_long_prefix_prompts_are_accepted():
    """A 4_4 prompt is about 500 characters of prefix tokens: above the infix limit, still accepted."""
    q = (-17, -16, -6, -3, -15)
    f = compose((14, -11, 7, 17, 14), q)
    text = to_prefix(f)
    assert len(text) > 400
    assert parse_polynomial(text) == f


def test_prefix_errors_point_at_the_token_column():
    with pytest.raises(PolynomialError) as err:
        parse_polynomial("+ P 1 2 + * N 5 b * N 1 6 ^ a P 2")
    assert "two variables" in err.value.message and err.value.column == 29
    with pytest.raises(PolynomialError) as err:
        parse_polynomial("+ P 1 2 +")
    assert "unexpected end" in err.value.message and err.value.column == 10


# ---------------------------------------------------------------- fuzzing

def check_total(text):
    """Either a valid Poly within the limits or PolynomialError; nothing else may escape."""
    try:
        p = parse_polynomial(text)
    except PolynomialError as e:
        assert e.message
        assert e.column is None or 1 <= e.column <= len(text) + 1
        return
    assert isinstance(p, tuple) and p and p[-1] != 0
    assert all(type(c) is int and abs(c) <= 10**15 for c in p)
    assert len(p) - 1 <= 32


@FUZZ
@given(st.text(max_size=120))
def test_any_text_parses_or_raises(text):
    check_total(text)


FRAGMENTS = ["a", "x", "b", "A", "2", "13", "0", "999999999", "9999999999999999", "+", "-", "−", "*", "**", "^",
             "(", ")", "²", "³", "¹⁰", "⁻", " ", "·", "×", "3a", "(a+1)", "a^2", "^99", ".", "/", "P", "N", "⁇",
             "٣", "\t", "((", "))"]


@FUZZ
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
def test_near_valid_text_parses_or_raises(text):
    check_total(text)


@FUZZ
@given(st.lists(st.sampled_from(["+", "*", "^", "P", "N", "a", "b", "0", "1", "2", "9"]), min_size=1, max_size=40)
       .map(" ".join))
def test_prefix_shaped_text_parses_or_raises(text):
    check_total(text)


# Expression trees rendered as text in many surface forms, and built as sympy objects from the same
# tree: the parser's expansion must equal sympy's.
LEAF = st.one_of(st.integers(0, 12).map(lambda n: ("num", n)), st.just(("var",)))
TREE = st.recursive(LEAF, lambda kids: st.one_of(
    st.tuples(st.sampled_from(["add", "sub", "mul"]), kids, kids),
    st.tuples(st.just("neg"), kids),
    st.tuples(st.just("pow"), kids, st.integers(0, 3)),
), max_leaves=7)
PREC = {"add": 1, "sub": 1, "neg": 2, "mul": 3, "pow": 4, "num": 5, "var": 5}
SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def to_sympy(node, a):
    op = node[0]
    if op == "num":
        return sympy.Integer(node[1])
    if op == "var":
        return a
    if op == "neg":
        return -to_sympy(node[1], a)
    if op == "pow":
        return to_sympy(node[1], a) ** node[2]
    x, y = to_sympy(node[1], a), to_sympy(node[2], a)
    return {"add": x + y, "sub": x - y, "mul": x * y}[op]


def render(node, draw, var):
    """Text for the tree with as few parentheses as precedence allows and randomly chosen spellings."""
    def sub(child, least):
        text = render(child, draw, var)
        return text if PREC[child[0]] >= least else f"({text})"

    def space():
        return draw(st.sampled_from(["", " ", "  "]))

    op = node[0]
    if op == "num":
        return str(node[1])
    if op == "var":
        return var
    if op == "neg":
        return draw(st.sampled_from(["-", "−"])) + space() + sub(node[1], 2)  # "--a" is a
    if op == "pow":
        base = sub(node[1], 5)
        style = draw(st.sampled_from(["^", "**", "sup"]))
        return base + (str(node[2]).translate(SUPERSCRIPT) if style == "sup" else style + space() + str(node[2]))
    if op in ("add", "sub"):
        sign = "+" if op == "add" else draw(st.sampled_from(["-", "−"]))
        right = sub(node[2], 2)  # "a - -b" is a + b
        return sub(node[1], 1) + space() + sign + space() + right
    left, right = sub(node[1], 2), sub(node[2], 2)  # mul; "a*-b" is -(ab)
    times = draw(st.sampled_from(["*", "·", "×", "implicit"]))
    if times == "implicit" and (right[0] == "(" or right[0].isalpha()) and node[2][0] != "neg":
        return left + space() + right
    return left + space() + ("*" if times == "implicit" else times) + space() + right


@FUZZ
@given(TREE, st.sampled_from(["a", "x", "t"]), st.data())
def test_expansion_matches_sympy_built_from_the_same_tree(tree, var, data):
    text = render(tree, data.draw, var)
    a = sympy.Symbol("a")
    expected = sympy.Poly(sympy.expand(to_sympy(tree, a)), a)
    coeffs = tuple(int(c) for c in reversed(expected.all_coeffs()))
    try:
        got = parse_polynomial(text)
    except PolynomialError as e:
        event(e.message.split(",")[0])
        if "could" in e.message:  # refused on a bound estimate, before expanding
            return
        if expected.is_zero:
            assert "zero" in e.message
        else:  # the only other refusal of a valid tree is a true excess
            assert "limit" in e.message and (expected.degree() > 32 or max(map(abs, coeffs)) > 10**15), (text, e)
        return
    event("parsed")
    assert got == coeffs, text
