"""The trainer: answer-only loss masks, a short run, resume and export."""
import csv
import os

import torch

from engine.checkpoint import load_checkpoint
from engine.data import random_problem
from engine.train import main, make_batch, problem_ids
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
    assert model.config.n_embd == 32
    with open(os.path.join(run, "val.csv")) as fh:
        assert any(r[2] == "2_2" for r in csv.reader(fh))
