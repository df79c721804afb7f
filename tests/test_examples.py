"""engine.examples: one example per degree pair, marked verified only when beam search really verifies it."""
import json

import torch

from engine.checkpoint import save_checkpoint
from engine.examples import examples_path, main
from engine.model import GPT, PRESETS
from engine.poly.core import verify


def test_examples_file_for_a_checkpoint(tmp_path, capsys):
    torch.manual_seed(0)
    ck = save_checkpoint(GPT(PRESETS["tiny"]), str(tmp_path / "tiny"))
    assert main(["--checkpoint", ck, "--width", "2", "--candidates", "2"]) == 0
    data = json.loads(open(examples_path(ck), encoding="utf-8").read())
    assert [e["pair"] for e in data["examples"]] == [f"{i}_{j}" for i in (2, 3, 4) for j in (2, 3, 4)]
    for e in data["examples"]:
        f = tuple(e["f"])
        assert e["verified"] == (e["q"] is not None)
        if e["verified"]:  # an untrained model may still hit one by chance; then it must really verify
            assert verify(f, tuple(e["q"])).ok
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["path"] == examples_path(ck)


def test_shipped_examples_verify():
    """The page's examples come from this file: every one marked verified must verify."""
    data = json.loads(open(examples_path("weights/default"), encoding="utf-8").read())
    assert len(data["examples"]) == 9
    for e in data["examples"]:
        if e["verified"]:
            assert verify(tuple(e["f"]), tuple(e["q"])).ok


def test_page_examples_are_only_the_verified_ones_from_the_file(tmp_path):
    """Guards against example buttons the model fails on: only verified examples are offered, in pair order,
    each labelled with its pair."""
    import engine
    from demo.lab import example_problems, unsolved_pairs
    chosen = [e for e in engine.read_examples(engine.DEFAULT_CHECKPOINT) if e["verified"]]
    shown = example_problems(engine.DEFAULT_CHECKPOINT)
    assert len(shown) == len(chosen) >= 1
    for e, (label, text) in zip(chosen, shown):
        assert engine.parse_polynomial(text) == e["f"]
        assert label.startswith(f"deg P = {e['pair'][0]}, deg Q = {e['pair'][-1]}")
    assert len(unsolved_pairs(engine.DEFAULT_CHECKPOINT)) == 9 - len(chosen)
    # a tampered file cannot claim a verified example: q is re-checked
    stem = str(tmp_path / "m")
    data = json.loads(open(examples_path(engine.DEFAULT_CHECKPOINT), encoding="utf-8").read())
    data["examples"][0]["q"] = [0, 1]
    with open(examples_path(stem), "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    assert engine.read_examples(stem)[0]["verified"] is False
    with open(examples_path(stem), "w", encoding="utf-8") as fh:
        fh.write("{not json")
    assert engine.read_examples(stem) is None
