"""engine.evaluate: the JSON line, the predictions file, and that "verified" means verified."""
import json

import pytest
import torch

from engine.checkpoint import save_checkpoint
from engine.data import generate, write_dataset
from engine.evaluate import main
from engine.model import GPT, PRESETS
from engine.poly import PolynomialError, from_prefix, verify


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(GPT(PRESETS["tiny"]), str(tmp_path_factory.mktemp("ck") / "tiny"))


def test_json_line_and_predictions(tmp_path, tiny_ckpt, capsys):
    """Guards against counting string matches, or predictions that drift from the problems' order."""
    data = tmp_path / "test_dataset_2_2.txt"
    problems = generate(2, 2, 12, seed=5)
    # Seed-format files may use '?' and contain blank lines.
    data.write_text("\n".join(p.line().replace("⁇", "?") for p in problems) + "\n\n", encoding="utf-8")
    preds = tmp_path / "preds.txt"
    rc = main(["--data", str(data), "--decoder", "beam", "--width", "3", "--limit", "10",
               "--checkpoint", tiny_ckpt, "--predictions", str(preds), "--batch-size", "4"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (row,) = out["results"]
    assert (row["decoder"], row["width"], row["problems"]) == ("beam", 3, 10)
    lines = preds.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 10
    recount = 0
    for line, prob in zip(lines, problems):
        prompt, _, answer = line.partition(" ⁇")
        assert from_prefix(prompt) == prob.f
        try:
            recount += verify(prob.f, from_prefix(answer.strip())).ok
        except PolynomialError:  # an untrained model writes token soup; it counts as not verified
            pass
    assert recount == row["verified"]
    assert row["accuracy"] == pytest.approx(row["verified"] / 10)


def test_reference_answers_are_not_needed_and_bad_files_are_reported(tmp_path, tiny_ckpt, capsys):
    bad = tmp_path / "bad.txt"
    good_line = generate(2, 2, 1, seed=1)[0].line()
    bad.write_text(good_line + "\n+ P 1 * ⁇ P 1\n", encoding="utf-8")
    assert main(["--data", str(bad), "--checkpoint", tiny_ckpt]) == 2
    assert "line 2" in capsys.readouterr().err


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    data = tmp_path / "d.txt"
    write_dataset(str(data), generate(2, 2, 2, seed=0))
    assert main(["--data", str(data), "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_best_of_n_samples_counts_a_problem_when_any_sample_verifies(tmp_path, capsys):
    """--decoder sample --samples N: N rows per problem in one batch; the answer is the best verified sample."""
    from engine.data import Problem
    from engine.decoding import preset, solve
    torch.manual_seed(0)
    model = GPT(PRESETS["tiny"])
    fs = [p.f for p in generate(2, 2, 3, seed=9)]
    opts = preset("fastest", decoder="sample", width=1, max_new=5, seed=3, samples=4)
    ranked = solve(model, fs, opts)
    assert [len(r) for r in ranked] == [4, 4, 4]
    assert all(list(r) == sorted(r, key=lambda a: -a.score) for r in ranked)
    with pytest.raises(ValueError, match="sample decoder"):
        preset("fastest", decoder="greedy", width=1, samples=2)
    ck = save_checkpoint(model, str(tmp_path / "m"))
    data = tmp_path / "d.txt"
    write_dataset(str(data), [Problem(f, ()) for f in fs])
    assert main(["--data", str(data), "--checkpoint", ck, "--decoder", "sample", "--samples", "4",
                 "--max-new", "5", "--seed", "3", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]
    assert (row["decoder"], row["width"], row["problems"]) == ("sample", 4, 3)
    assert row["verified"] == sum(any(a.verified for a in r) for r in ranked)
    with pytest.raises(SystemExit):
        main(["--data", str(data), "--checkpoint", ck, "--decoder", "sample", "--samples", "0"])


def test_cascade_decoder_counts_what_any_stage_verified(tmp_path, capsys):
    """--decoder cascade: each stage decodes the problems the earlier ones did not verify; the count is the
    number of problems some stage verified, which is never below the first stage's."""
    from engine.data import Problem
    torch.manual_seed(0)
    model = GPT(PRESETS["tiny"])
    fs = [p.f for p in generate(2, 2, 3, seed=9)]
    ck = save_checkpoint(model, str(tmp_path / "m"))
    data = tmp_path / "d.txt"
    write_dataset(str(data), [Problem(f, ()) for f in fs])
    assert main(["--data", str(data), "--checkpoint", ck, "--decoder", "cascade", "--cascade", "greedy > beam 2",
                 "--stop-on-verified", "--max-new", "5", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]
    assert (row["decoder"], row["problems"]) == ("cascade", 3)
    assert main(["--data", str(data), "--checkpoint", ck, "--decoder", "cascade", "--cascade", "beam two"]) == 2
    assert "cascade stage" in capsys.readouterr().err
