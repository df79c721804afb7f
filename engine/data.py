"""Problem generation and dataset files in the seed line format: `<f prefix> ⁇ <Q prefix>`.

    python -m engine.data --pairs 2_2,3_4 --n 3000 --seed 0 --out DIR [--canonical]
"""
from __future__ import annotations

import argparse
import logging
import os
import random
from dataclasses import dataclass
from typing import Iterator

from tqdm import tqdm

from .poly.core import Poly, PolynomialError, canonical_inner, compose, degree, from_prefix, to_prefix

log = logging.getLogger(__name__)

COEFF_RANGE = 20  # coefficients of P and Q are uniform in [-20, 20]
DEGREES = (2, 3, 4)
ALL_PAIRS: tuple[tuple[int, int], ...] = tuple((i, j) for i in DEGREES for j in DEGREES)
SEPARATORS = ("⁇", "?")
TRAINED_DEGREES = tuple(sorted({i * j for i, j in ALL_PAIRS}))  # deg f = deg P * deg Q: 4 6 8 9 12 16


class DatasetError(ValueError):
    """A malformed dataset line; the message names the file (when known) and the line number."""


@dataclass(frozen=True)
class Problem:
    f: Poly  # the expanded polynomial given to the model
    q: Poly  # one valid inner polynomial (the target)
    outer: Poly | None = None  # P when known (generated problems)

    @property
    def prompt(self) -> str:
        return to_prefix(self.f)

    @property
    def answer(self) -> str:
        return to_prefix(self.q)

    def line(self) -> str:
        return f"{self.prompt} ⁇ {self.answer}"


def random_poly(rng: random.Random, deg: int, coeff_range: int = COEFF_RANGE) -> Poly:
    """Uniform coefficients in [-r, r] with a nonzero leading one."""
    coeffs = [rng.randint(-coeff_range, coeff_range) for _ in range(deg)]
    lead = 0
    while lead == 0:
        lead = rng.randint(-coeff_range, coeff_range)
    return tuple(coeffs) + (lead,)


def random_problem(rng: random.Random, outer_deg: int, inner_deg: int, canonical: bool = False,
                   coeff_range: int = COEFF_RANGE) -> Problem:
    p = random_poly(rng, outer_deg, coeff_range)
    q = random_poly(rng, inner_deg, coeff_range)
    f = compose(p, q)
    return Problem(f, canonical_inner(q) if canonical else q, p)


def parse_pair(text: str) -> tuple[int, int]:
    """Parse "3_4" into (outer degree, inner degree) = (3, 4)."""
    try:
        i, j = (int(x) for x in text.strip().split("_"))
    except ValueError:
        raise ValueError(f"bad degree pair {text!r}: expected OUTER_INNER, e.g. 2_3") from None
    if i < 2 or j < 2 or i > 9 or j > 9:
        raise ValueError(f"bad degree pair {text!r}: degrees must be in 2..9")
    return i, j


def generate(outer_deg: int, inner_deg: int, n: int, seed: int, canonical: bool = False,
             progress: bool = False, coeff_range: int = COEFF_RANGE) -> list[Problem]:
    """n distinct problems (distinct f), deterministic for a seed; P and Q coefficients in [-coeff_range,
    coeff_range]."""
    rng = random.Random(f"{seed}:{outer_deg}_{inner_deg}")
    seen: set[Poly] = set()
    out: list[Problem] = []
    bar = tqdm(total=n, desc=f"{outer_deg}_{inner_deg}", disable=not progress, leave=False)
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 20 * n + 1000:
            raise RuntimeError(f"could not find {n} distinct problems for {outer_deg}_{inner_deg}")
        prob = random_problem(rng, outer_deg, inner_deg, canonical, coeff_range)
        if prob.f in seen:
            continue
        seen.add(prob.f)
        out.append(prob)
        bar.update(1)
    bar.close()
    return out


def dataset_path(out_dir: str, outer_deg: int, inner_deg: int) -> str:
    return os.path.join(out_dir, f"test_dataset_{outer_deg}_{inner_deg}.txt")


def write_dataset(path: str, problems: list[Problem]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:  # the same bytes on every platform
        for p in problems:
            fh.write(p.line() + "\n")
    os.replace(tmp, path)  # never leave a half-written file behind


def parse_line(line: str, lineno: int = 0, path: str = "") -> Problem:
    """`<f> ⁇ <Q>` (or `?`); the answer may end with one more separator or be empty (prompt only)."""
    toks = line.split()
    seps = [k for k, t in enumerate(toks) if t in SEPARATORS]
    where = ", ".join(x for x in (path, f"line {lineno}" if lineno else "") if x)
    where = f"{where}: " if where else ""
    if not seps:
        raise DatasetError(f"{where}no separator (⁇ or ?) between prompt and answer")
    k = seps[0]
    ans = toks[k + 1:]
    if ans and ans[-1] in SEPARATORS:
        ans = ans[:-1]
    if any(t in SEPARATORS for t in ans):
        raise DatasetError(f"{where}more than one separator between prompt and answer")
    try:
        f = from_prefix(" ".join(toks[:k]))
        q = from_prefix(" ".join(ans)) if ans else ()
    except PolynomialError as e:
        raise DatasetError(f"{where}{e}") from None
    return Problem(f, q)


def read_dataset(path: str) -> Iterator[Problem]:
    """Problems from a seed-format file; blank lines skipped, `?` accepted as separator.
    A malformed line raises DatasetError naming the file and the line number."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                yield parse_line(line, lineno, path)


# ---------------------------------------------------------------- training domain

def _lead_possible(lead: int, outer_deg: int) -> bool:
    """lead = p * q^outer_deg for some |p|, |q| in 1..COEFF_RANGE (the leading coefficient of P(Q))."""
    return any(lead % q ** outer_deg == 0 and abs(lead // q ** outer_deg) <= COEFF_RANGE
               for q in range(1, COEFF_RANGE + 1))


def _coefficient_bound(outer_deg: int, inner_deg: int) -> int:
    """Every |coefficient| of P(Q) is at most sum_k |p_k| * |Q|_1^k <= r * sum_k (r * (inner_deg + 1))^k."""
    r = COEFF_RANGE
    return r * sum((r * (inner_deg + 1)) ** k for k in range(outer_deg + 1))


def out_of_domain(f: Poly) -> str | None:
    """A warning when f is unlike every training problem (P and Q of degree 2..4 with coefficients in
    [-20, 20]), naming the rules that tripped; None when f could have come from training."""
    d = degree(f)
    pairs = [(i, j) for i, j in ALL_PAIRS if i * j == d]
    if not pairs:
        return (f"degree {max(d, 0)} is outside training: the model saw f = P(Q) with deg P and deg Q in "
                f"{{2, 3, 4}}, so deg f in {{{', '.join(map(str, TRAINED_DEGREES))}}}")
    reasons = []
    outer_degs = sorted({i for i, _ in pairs})
    if not any(_lead_possible(f[-1], i) for i in outer_degs):
        forms = " or ".join(f"p·q^{i}" for i in outer_degs)
        reasons.append(f"leading coefficient {f[-1]} is not {forms} with |p|, |q| <= {COEFF_RANGE}, "
                       f"as it is for every trained problem of degree {d}")
    bound = max(_coefficient_bound(i, j) for i, j in pairs)
    big = max(abs(c) for c in f)
    if big > bound:
        reasons.append(f"a coefficient of size {big} exceeds {bound}, the most a trained problem of "
                       f"degree {d} can have")
    return "; ".join(reasons) or None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write seed-format problem files.")
    ap.add_argument("--pairs", default=",".join(f"{i}_{j}" for i, j in ALL_PAIRS),
                    help="comma-separated OUTER_INNER degree pairs (default: all nine)")
    ap.add_argument("--n", type=int, default=3000, help="problems per pair")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--coeff-range", type=int, default=COEFF_RANGE,
                    help=f"coefficients of P and Q in [-R, R] (default {COEFF_RANGE}; 5 for small, typed-by-hand ones)")
    ap.add_argument("--canonical", action="store_true",
                    help="write canonical targets (Q(0)=0, content 1, positive leading coefficient)")
    args = ap.parse_args(argv)
    try:
        pairs = [parse_pair(p) for p in args.pairs.split(",") if p.strip()]
    except ValueError as e:
        ap.error(str(e))
    if not pairs:
        ap.error("--pairs names no degree pair")
    if args.n < 1:
        ap.error("--n must be >= 1")
    if not 1 <= args.coeff_range <= 10_000:
        ap.error("--coeff-range must be in 1..10000")
    os.makedirs(args.out, exist_ok=True)
    for i, j in pairs:
        problems = generate(i, j, args.n, args.seed, args.canonical, progress=args.n >= 1000,
                            coeff_range=args.coeff_range)
        path = dataset_path(args.out, i, j)
        write_dataset(path, problems)
        print(f"wrote {len(problems)} problems to {path}")


if __name__ == "__main__":
    main()
