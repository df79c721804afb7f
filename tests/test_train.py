"""The trainer: answer-only loss masks, a short run, resume and export."""
import csv
import importlib.util
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from engine.checkpoint import load_checkpoint
from engine.data import Problem, random_problem
from engine.schedule import TARGETS, StepClock, adapt_mix, lr_at, progress
from engine.batches import make_batch, problem_ids
from engine.train import main, parse_args
from engine.tokenizer import SEP_ID, decode
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
    assert lr_at(50_000, 50 * 60, args) == pytest.approx(args.lr)  # half way: the stable phase
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
    assert meta["steps"] == 2 and meta["machine"]["device"] == torch.cuda.get_device_name(0)


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
    assert lr_at(100, 0.0, args, warm_from=100) == pytest.approx(lr_at(100, 0.0, args) / 4)
    assert not hasattr(args, "warm_from")  # run state lives in train.Start, not on the argparse namespace


def test_wsd_schedule_warms_up_holds_then_cools_down():
    """Guards against a schedule tied to one budget: the rate is constant until the last 10% of any budget."""
    args = parse_args(["--minutes", "100", "--warmup", "10", "--min-lr-frac", "0.0"])
    assert lr_at(0, 0.0, args) == pytest.approx(args.lr / 10)
    assert lr_at(20, 60.0, args) == pytest.approx(args.lr)
    assert lr_at(5000, 89 * 60, args) == pytest.approx(args.lr)
    assert lr_at(5000, 95 * 60, args) == pytest.approx(args.lr * 0.5)  # half way through the cool-down
    longer = parse_args(["--minutes", "200", "--warmup", "10"])
    assert lr_at(5000, 95 * 60, longer) == pytest.approx(args.lr)  # a bigger budget: still stable there


def test_adaptive_mix_moves_toward_pairs_below_target_and_keeps_a_floor():
    mix = {p: 1 / 9 for p in TARGETS}
    acc = {p: TARGETS[p] for p in TARGETS}
    acc[(4, 4)] = 0.0  # far below its target
    acc[(2, 2)] = 0.99  # above
    new = adapt_mix(mix, acc, floor=0.04)
    assert sum(new.values()) == pytest.approx(1.0)
    assert new[(4, 4)] > mix[(4, 4)] > new[(2, 2)] >= 0.04
    for _ in range(50):  # repeated rounds converge, and never go under the floor
        new = adapt_mix(new, acc, floor=0.04)
    assert min(new.values()) >= 0.04 - 1e-9 and max(new, key=new.get) == (4, 4)


def test_resume_with_a_bigger_budget_continues_from_before_the_cool_down(tmp_path):
    """WSD release: the first budget ends with a cool-down; a bigger budget continues from stable.pt, and the
    learning curves docs/render.py draws keep the continuation's validation rounds, not the set-aside ones."""
    run = str(tmp_path / "run")
    common = ["--preset", "tiny", "--run-dir", run, "--mix", "2_2", "--batch-tokens", "256", "--eval-every", "1",
              "--eval-n", "1", "--warmup", "1", "--cooldown", "0.5"]
    main(common + ["--max-steps", "4"])
    stable = torch.load(os.path.join(run, "stable.pt"), weights_only=True)
    state = torch.load(os.path.join(run, "state.pt"), weights_only=True)
    assert stable["step"] == 2 and state["step"] == 4 and state["cooling"]
    main(common + ["--max-steps", "10", "--resume"])
    state = torch.load(os.path.join(run, "state.pt"), weights_only=True)
    assert state["step"] == 10 and "stable.pt at step 2" in state["history"][-1]["resumed_from"]
    assert [(h["from_step"], h["to_step"]) for h in state["history"]] == [(0, 4), (2, 10)]
    with open(os.path.join(run, "val.csv"), newline="") as fh:
        logged = [int(r[0]) for r in csv.reader(fh)]
    assert logged == [1, 2, 3, 4, 3, 4, 5, 6, 7, 8, 9, 10]  # steps 3-4 twice: the cool-down, then the continuation
    spec = importlib.util.spec_from_file_location("render", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "render.py"))
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    rows = render.read_val(run)
    assert [r["step"] for r in rows] == list(range(1, 11))
    with open(os.path.join(run, "val.csv"), newline="") as fh:
        last = list(csv.reader(fh))[-8:-6]  # the continuation's rounds at steps 3 and 4
    assert [r["loss"] for r in rows[2:4]] == [float(r[5]) for r in last]


def test_a_bare_resume_trains_with_the_runs_own_recipe_and_exports_a_finished_budget(tmp_path):
    """Guards against `--resume` alone silently training with the defaults (another mix, lr, batch size) and
    against a run resumed at the end of its budget leaving no exported model."""
    run, out = str(tmp_path / "run"), str(tmp_path / "w")
    main(["--preset", "tiny", "--run-dir", run, "--mix", "3_2:1", "--batch-tokens", "256", "--lr", "3e-4",
          "--eval-every", "100", "--eval-n", "2", "--warmup", "1", "--max-steps", "3", "--small-share", "0.5"])
    assert not os.path.exists(out + ".safetensors")
    main(["--run-dir", run, "--resume", "--out", out])  # nothing left of the budget: export what is there
    model, meta = load_checkpoint(out)
    recipe = meta["recipe"]
    assert (recipe["mix"], recipe["lr"], recipe["batch_tokens"], recipe["small_share"], recipe["max_steps"]) == \
        ("3_2:1", 3e-4, 256, 0.5, 3)
    assert meta["steps"] == 3 and meta["finished"]
    assert [(h["from_step"], h["to_step"]) for h in meta["history"]] == [(0, 3)]  # no empty segment recorded
    main(["--run-dir", run, "--resume", "--max-steps", "5", "--lr", "1e-4"])  # the command line still wins
    state = torch.load(os.path.join(run, "state.pt"), weights_only=True)
    assert state["step"] == 5 and state["args"]["lr"] == 1e-4 and state["args"]["mix"] == "3_2:1"
    assert state["history"][-1]["mix"] == "3_2:1" and state["history"][-1]["batch_tokens"] == 256


def test_prompt_format_is_fixed_by_the_run_and_used_for_training(tmp_path):
    run = str(tmp_path / "run")
    common = ["--preset", "tiny", "--run-dir", run, "--mix", "2_2", "--batch-tokens", "256", "--eval-every", "100",
              "--eval-n", "2", "--warmup", "1"]
    main(common + ["--max-steps", "2", "--prompt-format", "e1", "--out", str(tmp_path / "w")])
    model, meta = load_checkpoint(str(tmp_path / "w"))
    assert model.config.prompt_format == "e1" and meta["history"][0]["prompt_format"] == "e1"
    main(common + ["--max-steps", "3", "--resume"])  # the state's format, not the preset's
    assert torch.load(os.path.join(run, "state.pt"), weights_only=True)["config"]["prompt_format"] == "e1"
    with pytest.raises(SystemExit):
        main(common + ["--max-steps", "4", "--resume", "--prompt-format", "seed"])


def test_answer_order_is_set_by_a_new_run_or_init_and_kept_by_resume(tmp_path):
    """--answer-order: a descending run trains on top-degree-first answers; --init may switch the order of
    exported weights, a --resume may not; the model's JSON and the history say which order it writes."""
    run, first, second = str(tmp_path / "run"), str(tmp_path / "w1"), str(tmp_path / "w2")
    common = ["--preset", "tiny", "--mix", "2_3", "--batch-tokens", "256", "--eval-every", "100", "--eval-n", "2",
              "--warmup", "1"]
    main(common + ["--run-dir", run, "--max-steps", "2", "--out", first])
    assert load_checkpoint(first)[0].config.answer_order == "ascending"
    main(common + ["--run-dir", str(tmp_path / "r2"), "--max-steps", "4", "--init", first,
                   "--answer-order", "descending", "--out", second])
    model, meta = load_checkpoint(second)
    assert model.config.answer_order == "descending"
    assert [h.get("answer_order") for h in meta["history"]] == ["ascending", "descending"]
    with pytest.raises(SystemExit, match="answer"):
        main(common + ["--run-dir", run, "--max-steps", "3", "--resume", "--answer-order", "descending"])

    q = (0, -3, 2, 5)  # 5a^3 + 2a^2 - 3a
    p = Problem(f=(1, 0, 0, 0, 0, 0, 25), q=q)
    _, down = make_batch([p], "seed", "descending")
    _, up = make_batch([p], "seed", "ascending")
    targets = lambda y: decode([t for t in y[0].tolist() if t != -1][:-1])
    assert targets(down) == "+ * P 5 ^ a P 3 + * P 2 ^ a P 2 * N 3 a".split()
    assert targets(up) == "+ * N 3 a + * P 2 ^ a P 2 * P 5 ^ a P 3".split()


def test_step_clock_leaves_out_a_pause():
    """Guards against a benchmark's SIGSTOP pause being counted as training time (budget, schedule, log)."""
    clock = StepClock()
    assert [clock.seconds(t) for t in (1.0, 1.2, 0.8)] == [1.0, 1.2, 0.8]
    clock.continued()
    assert clock.seconds(300.0) == 1.0  # the step that held the pause counts as a typical step
    assert clock.seconds(1.1) == 1.1


def test_a_stopped_and_continued_run_does_not_count_the_pause(tmp_path):
    """The real signals on a real run: a 4 s SIGSTOP does not show up in the logged training time."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "engine.train", "--preset", "tiny", "--run-dir", str(run), "--mix", "2_2",
           "--batch-tokens", "4096", "--max-steps", "200", "--eval-every", "1000", "--eval-n", "2", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = run / "log.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 5):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be paused"
    proc.send_signal(signal.SIGSTOP)
    time.sleep(4)
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=300) == 0
    elapsed = [float(r[1]) for r in csv.reader(log.open())]
    assert len(elapsed) == 200
    assert max(b - a for a, b in zip(elapsed, elapsed[1:])) < 3.0


def test_heap_trimmer_calls_malloc_trim_on_glibc():
    """The trainer hands freed heap pages back after every step (glibc), else its memory grows by GBs."""
    from engine.device import heap_trimmer

    result = heap_trimmer()()
    if sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
        assert result in (0, 1)  # malloc_trim's own return value: it really ran
    else:
        assert result is None
