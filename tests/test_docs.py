"""Every decomposition example in README.md, docs/ and the Decompose tab's own text is one the shipped model
solves: the commands run (in process), their best answer verifies, and where an example shows its answer,
the model gives that answer. (The docs once printed answers[0] for a polynomial with no verified answer.)"""
import glob
import json
import os
import re
import shlex

import pytest

from app_server import ROOT

import engine
from demo import decompose_tab
from demo.lab import LabConfig

DOCS = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
CLI = re.compile(r"^\s*python -m engine\.(decompose|profile) (.+)$", re.M)  # command lines, not prose
PREDICT = re.compile(r'client\.predict\("([^"]+)",(.*?)api_name="/decompose"\)(?:\[-1\])?\n(.*?\n)', re.S)
SHOWN_Q = re.compile(r'#.*?"q": "([^"]+)"')
TYPED = re.compile(r"`([^`]+)`")


def read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def cli_examples() -> list[tuple[str, str, list[str]]]:
    """(file, command, argv) of every `python -m engine.decompose|profile ...` line."""
    out = []
    for path in DOCS:
        for m in CLI.finditer(read(path)):
            argv = shlex.split(m.group(2).split("  #")[0])
            out.append((os.path.basename(path), m.group(1), argv))
    return out


def api_examples() -> list[tuple[str, str, dict, str | None]]:
    """(file, polynomial, keyword arguments, the Q the snippet shows or None) of every /decompose call."""
    out = []
    for path in DOCS:
        for m in PREDICT.finditer(read(path)):
            kwargs = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
            shown = SHOWN_Q.search(m.group(3))
            out.append((os.path.basename(path), m.group(1), kwargs, shown.group(1) if shown else None))
    return out


def typed_examples() -> list[str]:
    """Polynomials the Decompose tab and its documentation invite a user to type (degree 4 and up)."""
    texts = [decompose_tab.INTRO, decompose_tab.PLACEHOLDER]
    section = read(os.path.join(ROOT, "docs", "app.md")).split("## Decompose", 1)[1].split("\n## ", 1)[0]
    found = []
    for text in [*texts, section]:
        for span in TYPED.findall(text) or [text.removeprefix("e.g. ")]:
            try:
                f = engine.parse_polynomial(span)
            except ValueError:
                continue
            if engine.degree(f) >= 4 and span not in found:
                found.append(span)
    return found


@pytest.fixture(scope="module")
def lab() -> LabConfig:
    return LabConfig()  # the shipped weights, as the docs use them


def test_the_docs_have_examples_to_check():
    assert len(cli_examples()) >= 3 and api_examples() and len(typed_examples()) >= 2


@pytest.mark.parametrize("source,tool,argv", cli_examples(), ids=lambda v: v if isinstance(v, str) else None)
def test_command_line_example_is_solved(tmp_path, capsys, source, tool, argv):
    from engine import decompose, profile
    if tool == "decompose":
        assert decompose.main([*argv, "--json"] if "--json" not in argv else argv) == 0
        best = json.loads(capsys.readouterr().out)["best"]
    else:
        assert profile.main([*argv, "--json", "--out", str(tmp_path)]) == 0
        best = json.loads(capsys.readouterr().out)["answer"]
    assert best["verified"], f"{source}: {' '.join(argv)} gives no verified answer"


@pytest.mark.parametrize("source,text,kwargs,shown", api_examples())
def test_api_example_is_solved_with_the_answer_it_shows(lab, source, text, kwargs, shown):
    result = list(decompose_tab.decompose(lab, text, **kwargs))[-1][-2]
    assert result["best"]["verified"], f"{source}: {text} gives no verified answer"
    if shown is not None:
        assert result["best"]["q"] == shown


@pytest.mark.parametrize("text", typed_examples())
def test_typed_example_is_solved(lab, text):
    result = list(decompose_tab.decompose(lab, text))[-1][-2]
    assert result["best"]["verified"], f"{text} gives no verified answer with the page's defaults"
