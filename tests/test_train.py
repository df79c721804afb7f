"""The trainer: answer-only loss masks, a short run, resume and export."""
import csv
import os

import pytest
import torch

from engine.checkpoint import load_checkpoint
from engine.data import random_problem
from engine.train import lr_at, main, make_batch, parse_args, problem_ids, progress
from engine.tokenizer import SEP_ID
import random


def test_loss_mask_covers_exactly_the_answer():
    """Guards against training on prompt tokens (wasted capacity) or dropping the END token."""
    probs = [random_problem(random.Random(k), 2, 2, canonical=True) for k in range(3)]
    x, y = make_batch(probs)
    for r, p in enumerate(probs):
        prompt, answer = problem_ids(p)
        targets = [t for t in y[r].tolist() if t != -1]
        assert targets == answer and answer[-1] == SEP_ID
        # the first supervised position is the prompt's ⁇, which must predict the answer's first token
        first = next(k for k, t in enumerate(y[r].tolist()) if t != -1)
        assert first == len(prompt) - 1 and x[r, first].item() == SEP_ID


def test_short_run_resume_and_export(tmp_path):
    """Guards against a cut run losing its progress: resume continues from the saved step."""
    run, out = str(tmp_path / "run"), str(tmp_path / "w")
    common = ["--preset", "tiny", "--run-dir", run, "--mix", "2_2", "--batch-tokens", "256",
              "--eval-every", "3", "--eval-n", "2", "--warmup", "1"]
    main(common + ["--max-steps", "3", "--out", out])
    assert torch.load(os.path.join(run, "state.pt"), weights_only=True)["step"] == 3
    main(common + ["--max-steps", "5", "--resume", "--out", out])
    assert torch.load(os.path.join(run, "state.pt"), weights_only=True)["step"] == 5
    with open(os.path.join(run, "log.csv")) as fh:
        steps = [int(r[0]) for r in csv.reader(fh)]
    assert steps == [1, 2, 3, 4, 5]
    model, meta = load_checkpoint(out)
    assert meta["steps"] == 5 and meta["finished"] and meta["trained"]
    # the recipe of each invocation is kept: resumes may change the mix or the budget
    assert [(h["from_step"], h["to_step"], h["max_steps"]) for h in meta["history"]] == [(0, 3, 3), (3, 5, 5)]
    assert meta["history"][0]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert model.config.n_embd == 32
    with open(os.path.join(run, "val.csv")) as fh:
        assert any(r[2] == "2_2" for r in csv.reader(fh))


def test_a_time_budget_alone_is_not_cut_by_a_default_step_budget():
    """Guards against a --minutes run stopping (and its learning rate collapsing) at a hidden step cap."""
    args = parse_args(["--minutes", "100"])
    assert args.max_steps == 0
    assert progress(50_000, 30 * 60, args) == pytest.approx(0.3)
    assert lr_at(50_000, 50 * 60, args) == pytest.approx(args.lr * (0.1 + 0.9 * 0.5))  # half way: mid cosine
    assert parse_args([]).max_steps == 4000
    both = parse_args(["--minutes", "100", "--max-steps", "1000"])
    assert progress(500, 60 * 60, both) == pytest.approx(0.6)  # whichever budget is further along
    with pytest.raises(SystemExit):
        parse_args(["--max-steps", "0"])


def test_device_flag():
    assert parse_args(["--device", "cpu"]).device == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):  # a clear argparse error, not a traceback
            parse_args(["--device", "cuda"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_short_run_on_cuda_exports_cpu_loadable_weights(tmp_path):
    out = str(tmp_path / "w")
    main(["--preset", "tiny", "--run-dir", str(tmp_path / "run"), "--mix", "2_2", "--batch-tokens", "256",
          "--eval-every", "2", "--eval-n", "2", "--warmup", "1", "--max-steps", "2", "--device", "cuda", "--out", out])
    model, meta = load_checkpoint(out)
    assert meta["steps"] == 2 and meta["machine"].startswith("GPU")


def test_init_continues_shipped_style_weights_with_a_fresh_optimizer(tmp_path):
    """--init: a run continues from exported weights alone (no resume state), warming up again."""
    first, second = str(tmp_path / "w1"), str(tmp_path / "w2")
    common = ["--preset", "tiny", "--mix", "2_2", "--batch-tokens", "256", "--eval-every", "100", "--eval-n", "2",
              "--warmup", "4"]
    main(common + ["--run-dir", str(tmp_path / "r1"), "--max-steps", "3", "--out", first])
    main(common + ["--run-dir", str(tmp_path / "r2"), "--max-steps", "6", "--init", first, "--out", second])
    start, _ = load_checkpoint(first)
    model, meta = load_checkpoint(second)
    assert meta["steps"] == 6 and [h["from_step"] for h in meta["history"]] == [0, 3]
    assert meta["history"][1]["init"] == first
    assert not torch.equal(start.head.weight, model.head.weight)  # it trained from there
    with open(os.path.join(tmp_path / "r2", "log.csv")) as fh:
        lrs = [float(r[6]) for r in csv.reader(fh)]
    assert len(lrs) == 3 and lrs[0] < lrs[1] and lrs[0] <= 1e-3 / 4  # warm-up again: the moments start at zero
    args = parse_args(["--minutes", "10", "--warmup", "4", "--init", first])
    args.warm_from = 100
    assert lr_at(100, 0.0, args) == pytest.approx(lr_at(100, 0.0, parse_args(["--minutes", "10", "--warmup", "4"])) / 4)
