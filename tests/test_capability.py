"""What the model can solve, on the page: accuracy per pair read from eval JSON tied to the exact weights, the
input note, the combined verdict, and intro and example inputs the shipped model really solves."""
import json
import re

import pytest
import torch

import engine
from demo import capability as view
from demo import controls, decompose_tab
from demo.lab import example_problems
from engine.checkpoint import save_checkpoint
from engine.data import write_dataset
from engine.evaluate import main as evaluate_main
from engine.model import GPT, PRESETS


@pytest.fixture()
def tiny(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(GPT(PRESETS["tiny"]), str(tmp_path / "tiny"))


def write_eval(path, digest, rows, **extra):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"results": rows, "checkpoint": "x", **({"weights_sha256": digest} if digest else {}), **extra}, fh)


def row(pair, acc, n=500):
    return {"file": f"/data/test_dataset_{pair}.txt", "problems": n, "verified": round(acc * n), "accuracy": acc}


def test_only_evaluations_of_these_exact_weights_count(tiny, tmp_path):
    """Guards against figures measured on other weights shown as this model's."""
    docs = tmp_path / "docs"
    docs.mkdir()
    digest = engine.weights_digest(tiny)
    write_eval(docs / "eval_standard_greedy.json", digest, [row("2_2", 0.75), row("3_2", 0.125)])
    write_eval(docs / "eval_standard_beam10.json", digest, [row("2_2", 0.99)])
    write_eval(docs / "eval_small_greedy.json", "0" * 64, [row("2_2", 0.5)])  # other weights
    write_eval(docs / "eval_small_beam10.json", None, [row("2_2", 0.5)])  # no digest: cannot be tied to weights
    (docs / "eval_standard_sample8.json").write_text("{not json")
    write_eval(docs / "notes.json", digest, [row("2_2", 0.1)])  # not an eval file name
    cap = engine.read_capability(tiny, str(docs))
    assert cap.get((2, 2)) == 0.75 and cap.get((2, 2), "beam10") == 0.99 and cap.get((3, 2)) == 0.125
    assert cap.get((2, 2), "greedy", "small") is None and cap.get((4, 4)) is None
    assert cap.decoders() == ["greedy", "beam10"] and cap.best((2, 2)) == ("beam10", 0.99)
    assert cap.sources == ("eval_standard_beam10.json", "eval_standard_greedy.json")
    assert cap.problems[("standard", "greedy", (2, 2))] == 500
    assert not engine.read_capability(str(tmp_path / "missing"), str(docs))


def test_evaluate_json_carries_the_weights_digest(tiny, tmp_path, capsys):
    data = tmp_path / "test_dataset_2_2.txt"
    write_dataset(str(data), engine.generate(2, 2, 3, seed=5))
    assert evaluate_main(["--data", str(data), "--checkpoint", tiny, "--max-new", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["weights_sha256"] == engine.weights_digest(tiny) and len(out["weights_sha256"]) == 64
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "eval_standard_greedy.json").write_text(json.dumps(out), encoding="utf-8")
    assert engine.read_capability(tiny, str(docs)).get((2, 2)) == out["results"][0]["accuracy"]


def fake_capability():
    acc = {("standard", "greedy", p): 0.0 for p in engine.ALL_PAIRS}
    acc.update({("standard", "greedy", (2, 2)): 0.754, ("standard", "beam10", (2, 2)): 0.992,
                ("standard", "greedy", (3, 2)): 0.126, ("standard", "beam10", (3, 2)): 0.602,
                ("small", "greedy", (2, 2)): 0.604})
    return engine.Capability(acc, {k: 500 for k in acc}, ("eval_standard_greedy.json",))


def test_the_page_text_says_what_the_model_solves():
    cap = fake_capability()
    table = view.capability_table(cap)
    assert "| 2, 2 | 75% | 99% | 60% |" in table and "| 4, 4 | 0% |  |  |" in table
    assert "500 fresh problems" in table and "`eval_standard_greedy.json`" in table
    line = view.capability_line(cap)
    assert "(2, 2): greedy 75%, beam 10 99%" in line and "(3, 2): greedy 13%, beam 10 60%" in line
    assert "under 5% on (2, 3)" in line
    assert view.input_note(cap, engine.parse_polynomial("a^4 + 1")).startswith(
        "deg f = 4, so (deg P, deg Q) = (2, 2): greedy 75%, beam 10 99%")
    assert "(2, 3): greedy 0%; (3, 2): greedy 13%" in view.input_note(cap, engine.parse_polynomial("a^6 + a"))
    assert "rarely solves" in view.input_note(cap, engine.parse_polynomial("a^9 + 1"))
    assert "no trained degree pair" in view.input_note(cap, engine.parse_polynomial("a^5 + 1"))
    empty = engine.Capability()
    assert "no evaluation of these weights is recorded" in view.capability_table(empty)


def test_one_combined_verdict_per_input():
    """Guards against the model's answer never being reconciled with the classical algorithm's."""
    f = engine.parse_polynomial("4a^4 + 12a^3 + 5a^2 - 6a - 2")
    parts = engine.classical_decomposition(f)
    good = engine.rank_answers(f, [engine.Hypothesis(tuple(engine.encode(engine.to_prefix((0, 3, 2)))), -0.1, True)])
    bad = engine.rank_answers(f, [engine.Hypothesis(tuple(engine.encode(engine.to_prefix((0, 1, 1)))), -0.1, True)])
    assert view.combined_verdict(good, parts) == "### ✓ Model verified Q(a) = 2a² + 3a"
    assert view.combined_verdict(bad, parts).startswith(
        "### ✗ Model missed a decomposition the classical algorithm found: Q(a) = ")
    lone = engine.parse_polynomial("a^4 + a + 1")
    assert view.combined_verdict(bad, engine.classical_decomposition(lone)).startswith("### ○ No decomposition exists")


def test_preset_label_says_modified_once_an_option_differs():
    """Guards against the label staying "V1" after an option is changed."""
    assert controls.preset_label("V1", "none", "clone", "math").startswith("V1 sets")
    assert controls.preset_label("V1", "static", "clone", "math").startswith("**V1, modified:** cache=static")
    assert controls.preset_label(engine.CUSTOM, "static", "clone", "math").startswith("Custom")


def intro_inputs() -> list[str]:
    """The typed polynomials the Decompose tab's intro and placeholder offer (not the prefix-token example)."""
    texts = re.findall(r"`([^`]+)`", decompose_tab.INTRO) + [decompose_tab.PLACEHOLDER.removeprefix("e.g. ")]
    return [t for t in dict.fromkeys(texts) if not engine.poly.parse.looks_like_prefix(t)]


def test_intro_and_example_inputs_are_solved_by_the_shipped_model():
    """Guards against an intro example that never verifies and example buttons the model fails on: each one,
    decoded with the page's default options (beam 10), gives a verified answer."""
    model, _ = engine.load_model(engine.DEFAULT_CHECKPOINT)
    opts = controls.panel_options()
    texts = intro_inputs() + [text for _, text in example_problems(engine.DEFAULT_CHECKPOINT)]
    assert len(intro_inputs()) >= 2
    fs = [engine.parse_polynomial(t) for t in texts]
    ranked = engine.solve(model, fs, opts)
    missed = [t for t, r in zip(texts, ranked) if not (engine.best_answer(r) and engine.best_answer(r).verified)]
    assert not missed
