"""Problem generation, dataset files in the seed line format, the reader, and the training-domain warning."""
import os
import random
import re
import subprocess
import sys

import pytest

from engine.data import (ALL_PAIRS, COEFF_RANGE, DatasetError, Problem, dataset_path, generate, main, out_of_domain,
                         parse_line, parse_pair, random_problem, read_dataset)
from engine.poly import canonical_inner, compose, degree, from_prefix, parse_polynomial, verify

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMBER = r"[PN]( \d)+"
TERM = rf"({NUMBER}|\* {NUMBER} a|\* {NUMBER} \^ a {NUMBER})"
LINE = re.compile(rf"^(\+ {TERM} )*{TERM} ⁇ (\+ {TERM} )*{TERM}$")


def read_lines(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read().split("\n")


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory):
    """The real entry point, run once: python -m engine.data --pairs 2_2,3_4 --n 50 --seed 0."""
    out = tmp_path_factory.mktemp("cli")
    proc = subprocess.run([sys.executable, "-m", "engine.data", "--pairs", "2_2,3_4", "--n", "50", "--seed", "0",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 50 problems" in proc.stdout
    return out


def test_cli_writes_seed_format_lines_that_all_verify(cli_dir):
    assert sorted(os.listdir(cli_dir)) == ["test_dataset_2_2.txt", "test_dataset_3_4.txt"]
    for i, j in ((2, 2), (3, 4)):
        lines = read_lines(dataset_path(str(cli_dir), i, j))
        assert lines[-1] == ""  # every line ends with "\n", nothing after the last one
        lines = lines[:-1]
        assert len(lines) == 50
        fs = set()
        for line in lines:
            assert LINE.match(line), line
            prob = parse_line(line)
            assert degree(prob.f) == i * j and degree(prob.q) == j
            assert all(abs(c) <= COEFF_RANGE for c in prob.q) and prob.q[-1] != 0
            verdict = verify(prob.f, prob.q)
            assert verdict.ok and degree(verdict.outer) == i
            assert all(abs(c) <= COEFF_RANGE for c in verdict.outer)
            fs.add(prob.f)
        assert len(fs) == 50, "duplicate problems"


def test_cli_is_deterministic_per_seed(cli_dir, tmp_path):
    """Same seed, same bytes (also in-process vs the subprocess); another seed, other problems."""
    main(["--pairs", "2_2,3_4", "--n", "50", "--seed", "0", "--out", str(tmp_path / "same")])
    main(["--pairs", "2_2", "--n", "50", "--seed", "1", "--out", str(tmp_path / "other")])
    for name in ("test_dataset_2_2.txt", "test_dataset_3_4.txt"):
        assert (tmp_path / "same" / name).read_bytes() == (cli_dir / name).read_bytes()
    assert (tmp_path / "other" / "test_dataset_2_2.txt").read_bytes() != (cli_dir / "test_dataset_2_2.txt").read_bytes()


def test_cli_canonical_targets(cli_dir, tmp_path):
    """--canonical changes only the targets: same f, Q canonical, still verifying."""
    main(["--pairs", "2_2,3_4", "--n", "50", "--seed", "0", "--out", str(tmp_path), "--canonical"])
    for name in ("test_dataset_2_2.txt", "test_dataset_3_4.txt"):
        canon = list(read_dataset(str(tmp_path / name)))
        plain = list(read_dataset(str(cli_dir / name)))
        assert [p.f for p in canon] == [p.f for p in plain]
        for c, p in zip(canon, plain):
            assert c.q == canonical_inner(c.q) == canonical_inner(p.q)
            assert c.q[0] == 0 and c.q[-1] > 0
            assert verify(c.f, c.q).ok


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    for argv in (["--pairs", "2-2"], ["--pairs", "1_3"], ["--pairs", ","], ["--n", "0"]):
        with pytest.raises(SystemExit):
            main(argv + ["--out", str(tmp_path)])
    assert "bad degree pair" in capsys.readouterr().err


def test_progress_bar_for_large_n(capsys):
    generate(2, 2, 1000, seed=3, progress=True)
    assert "2_2" in capsys.readouterr().err
    generate(2, 2, 10, seed=3)
    assert capsys.readouterr().err == ""


def test_generated_problems_follow_the_distribution():
    for i, j in ALL_PAIRS:
        probs = generate(i, j, 60, seed=7)
        assert len({p.f for p in probs}) == 60
        for p in probs:
            assert degree(p.outer) == i and degree(p.q) == j
            assert all(-COEFF_RANGE <= c <= COEFF_RANGE for c in p.outer + p.q)
            assert p.outer[-1] != 0 and p.q[-1] != 0
            assert compose(p.outer, p.q) == p.f
    assert [p.f for p in generate(3, 3, 20, seed=7)] == [p.f for p in generate(3, 3, 20, seed=7)]


def test_reader_accepts_question_mark_and_skips_blank_lines(tmp_path):
    good = Problem((-240, 215, 638, -320, -512), (12, -5, -16))
    path = tmp_path / "mixed.txt"
    path.write_text(f"\n{good.line()}\n   \n{good.prompt} ? {good.answer}\n{good.prompt} ⁇ {good.answer} ⁇\n\n",
                    encoding="utf-8")
    probs = list(read_dataset(str(path)))
    assert [(p.f, p.q) for p in probs] == [(good.f, good.q)] * 3


def test_reader_reports_malformed_line_with_file_and_line_number(tmp_path):
    good = random_problem(random.Random(0), 2, 2).line()
    path = tmp_path / "broken.txt"
    path.write_text(f"{good}\n\n{good}\n+ P 1 2 * P 3 ⁇ * P 1 a\n{good}\n", encoding="utf-8")
    reader = read_dataset(str(path))
    assert len([next(reader), next(reader)]) == 2  # lines before the bad one are served
    with pytest.raises(DatasetError) as err:
        next(reader)
    assert str(path) in str(err.value) and "line 4" in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("line, needle", [
    ("+ P 1 2 * P 3 a", "no separator"),
    ("+ P 1 2 * P 3 a ⁇ * P 1 a ⁇ P 1", "more than one separator"),
    ("+ P 1 2 * P 3 x ⁇ * P 1 q", "expected a variable"),
    ("⁇ * P 1 a", "empty prefix"),
])
def test_parse_line_errors(line, needle):
    with pytest.raises(DatasetError, match=needle):
        parse_line(line, 12, "data.txt")
    with pytest.raises(DatasetError, match="data.txt, line 12: "):
        parse_line(line, 12, "data.txt")


def test_parse_pair():
    assert parse_pair("3_4") == (3, 4)
    for bad in ("3", "a_b", "1_2", "2_10", "2_2_2"):
        with pytest.raises(ValueError, match="bad degree pair"):
            parse_pair(bad)


# ---------------------------------------------------------------- out_of_domain

def test_in_distribution_problems_never_warn():
    """The bounds are derived, not guessed: no generated problem of any pair may trip them."""
    rng = random.Random(11)
    for i, j in ALL_PAIRS:
        for _ in range(150):
            prob = random_problem(rng, i, j)
            assert out_of_domain(prob.f) is None, prob
        extreme = compose((20,) * (i + 1), (20,) * (j + 1))  # the largest coefficients training can give
        assert out_of_domain(extreme) is None
        assert out_of_domain(compose((-20,) + (0,) * (i - 1) + (-20,), (-20,) + (0,) * (j - 1) + (20,))) is None


@pytest.mark.parametrize("text, rule", [
    ("a^5 + a + 1", "degree 5 is outside training"),
    ("a^2 + 1", "degree 2 is outside training"),
    ("7", "degree 0 is outside training"),
    ("a^32 + 1", "degree 32"),
    ("23a^4 + 1", "leading coefficient 23 is not p·q^2"),
    ("-23a^12 + a", "leading coefficient -23 is not p·q^3 or p·q^4"),
    ("a^4 + 100000", "exceeds 73220"),
    ("(a^2 + a)^2 + 10^12", "exceeds"),
])
def test_out_of_domain_names_the_rule(text, rule):
    warning = out_of_domain(parse_polynomial(text))
    assert warning is not None and rule in warning


def test_out_of_domain_reports_every_rule_that_trips():
    warning = out_of_domain(parse_polynomial("401a^4 + 10^9"))
    assert "leading coefficient" in warning and "exceeds" in warning


def test_design_example_is_in_domain():
    assert out_of_domain(from_prefix("+ N 2 4 0 + * P 2 1 5 a + * P 6 3 8 ^ a P 2 + * N 3 2 0 ^ a P 3 "
                                     "* N 5 1 2 ^ a P 4")) is None


def test_cli_coeff_range_writes_small_problems(tmp_path):
    """--coeff-range 5: P and Q as people type them; every line still verifies, and the default is unchanged."""
    main(["--pairs", "2_3", "--n", "200", "--seed", "4", "--out", str(tmp_path / "small"), "--coeff-range", "5"])
    small = list(read_dataset(str(tmp_path / "small" / "test_dataset_2_3.txt")))
    assert len({p.f for p in small}) == 200
    for p in small:
        assert max(abs(c) for c in p.q) <= 5 and verify(p.f, p.q).ok
    assert max(max(abs(c) for c in p.q) for p in small) == 5
    main(["--pairs", "2_3", "--n", "20", "--seed", "4", "--out", str(tmp_path / "default")])
    main(["--pairs", "2_3", "--n", "20", "--seed", "4", "--out", str(tmp_path / "twenty"), "--coeff-range", "20"])
    assert (tmp_path / "default" / "test_dataset_2_3.txt").read_bytes() == \
        (tmp_path / "twenty" / "test_dataset_2_3.txt").read_bytes()
    with pytest.raises(SystemExit):
        main(["--pairs", "2_2", "--out", str(tmp_path / "x"), "--coeff-range", "0"])
