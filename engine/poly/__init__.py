"""Integer polynomials, no torch: the core (arithmetic, prefix tokens, printing, verification), the lexer and
safe parser of typed input, and the classical decomposition."""
from .classical import classical_decomposition, describe_decomposition
from .core import (Poly, PolynomialError, Verdict, add, canonical_inner, compose, content, degree, from_prefix,
                   from_prefix_tokens, mul, normalize, q_adic_expansion, scale, to_latex, to_prefix, to_prefix_tokens,
                   to_unicode, verify)
from .parse import parse_polynomial, variable_name
