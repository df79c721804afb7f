"""Prompt formats: lossless, compact, and every caller builds a model's prompt in that model's format.

A prompt in the wrong format is not an error anywhere downstream: the model just answers badly (~0%).
So these tests feed a tiny e1 model through every entry point and check the ids it actually receives."""
import json
import random

import pytest
import torch

import engine
from demo import compare_tab, decompose_tab
from demo.lab import LabConfig
from engine import decompose, evaluate
from engine.bench import util as bench_util
from engine.checkpoint import export_hf, save_checkpoint
from engine.data import ALL_PAIRS, generate, random_problem, write_dataset
from engine.decoding import preset
from engine.decoding.session import BatchSession
from engine.model import GPT, PRESETS, GPTConfig
from engine.poly import PolynomialError
from engine.profiler import profile_run
from engine.prompt import PROMPT_FORMATS, answer_ids, answer_tokens, parse_prompt, prompt_ids, prompt_tokens
from engine.tokenizer import SEP_ID, decode, vocab_for
from engine.train import make_batch

F = (-1, 0, 9, 12, 4)  # 4a^4 + 12a^3 + 9a^2 - 1


def test_formats_write_f_as_documented():
    assert prompt_tokens(F, "e0") == "4 P 4 P 1 2 P 9 P 0 N 1".split()
    assert prompt_tokens(F, "e1") == "D4 W1 P [004] P [012] P [009] P [000] N [001]".split()
    assert prompt_tokens((0, 0, 1234567), "e1") == "D2 W3 P [001] [234] [567] P [000] [000] [000] P [000] [000] [000]".split()
    assert prompt_ids(F, "seed")[-1] == SEP_ID == prompt_ids(F, "e1")[-1]


@pytest.mark.parametrize("fmt", PROMPT_FORMATS)
def test_every_format_is_lossless_on_thousands_of_problems(fmt):
    rng = random.Random(1)
    for i, j in ALL_PAIRS:
        for _ in range(200):
            f = random_problem(rng, i, j).f
            ids = prompt_ids(f, fmt)
            assert max(ids) < len(vocab_for(fmt))
            assert parse_prompt(decode(ids[:-1]), fmt) == f


def test_compact_formats_are_shorter_than_the_seed_format():
    rng = random.Random(2)
    fs = [random_problem(rng, i, j).f for i, j in ALL_PAIRS for _ in range(30)]
    mean = {fmt: sum(len(prompt_ids(f, fmt)) for f in fs) / len(fs) for fmt in PROMPT_FORMATS}
    assert mean["e1"] < mean["e0"] < 0.7 * mean["seed"]


@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_both_answer_orders_parse_back_to_q(order):
    rng = random.Random(5)
    for _ in range(500):
        q = random_problem(rng, 2, rng.choice([2, 3, 4]), canonical=True).q
        tokens = answer_tokens(q, order)
        assert engine.from_prefix(" ".join(tokens)) == q
        assert answer_ids(q, order) == engine.encode(tokens) + [SEP_ID]
    q = (0, 4, 0, -1)  # -a^3 + 4a: a zero term is left out in either order
    assert answer_tokens(q, "descending") == "+ * N 1 ^ a P 3 * P 4 a".split()
    assert answer_tokens(q, "ascending") == "+ * P 4 a * N 1 ^ a P 3".split()
    with pytest.raises(ValueError, match="answer order"):
        answer_tokens(q, "sideways")
    with pytest.raises(ValueError, match="answer_order"):
        GPTConfig(answer_order="sideways")


def test_unrepresentable_input_is_a_clear_error():
    with pytest.raises(PolynomialError, match="e1"):
        prompt_ids((1,) + (0,) * 70 + (1,), "e1")
    with pytest.raises(PolynomialError, match="e1"):
        prompt_ids((10 ** 30, 0, 1), "e1")
    with pytest.raises(ValueError, match="prompt format"):
        prompt_ids(F, "e9")
    with pytest.raises(ValueError, match="prompt_format"):
        GPTConfig(prompt_format="e9")


@pytest.fixture(scope="module")
def e1_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, prompt_format="e1"))
    return save_checkpoint(model, str(tmp_path_factory.mktemp("ck") / "e1"))


@pytest.fixture
def fed(monkeypatch):
    """The prompt of every decode: the ids of each model call that starts a sequence (no cache yet), through the
    modules or the fused step."""
    seen: list[list[int]] = []
    original = GPT.forward

    def spy(self, idx, *args, **kwargs):
        cache = kwargs.get("cache")
        if cache is None or cache.pos == 0:
            seen.extend(row.tolist() for row in idx)
        return original(self, idx, *args, **kwargs)

    monkeypatch.setattr(GPT, "forward", spy)
    fused_prefill = BatchSession._fused_prefill  # the fused step's prefill runs in C++, not through forward()

    def spy_fused(self):
        seen.extend(row.tolist() for row in self.idx)
        return fused_prefill(self)

    monkeypatch.setattr(BatchSession, "_fused_prefill", spy_fused)
    return seen


def test_every_caller_feeds_the_models_own_format(e1_checkpoint, fed, tmp_path, capsys):
    model, _ = engine.load_checkpoint(e1_checkpoint)
    want = prompt_ids(F, "e1")
    assert want != prompt_ids(F, "seed")
    opts = preset("V3", decoder="greedy", width=1, max_new=3)

    engine.solve(model, [F], opts)  # evaluate and the training validation go through solve
    assert fed[0] == want
    fed.clear()
    assert decompose.main(["4a^4 + 12a^3 + 9a^2 - 1", "--checkpoint", e1_checkpoint, "--decoder", "greedy",
                           "--max-new", "3", "--json", "--device", "cpu"]) == 0
    assert fed[0] == want
    fed.clear()
    profile_run(model, F, opts, out_dir=str(tmp_path / "prof"), warmup=False)
    assert fed[0] == want
    fed.clear()
    data = tmp_path / "test_dataset_2_2.txt"
    problem = generate(2, 2, 1, seed=3)[0]
    write_dataset(str(data), [problem])
    assert evaluate.main(["--data", str(data), "--checkpoint", e1_checkpoint, "--max-new", "3", "--json"]) == 0
    assert fed[0] == prompt_ids(problem.f, "e1")

    assert bench_util.problem_prompts(model, [problem]) == [prompt_ids(problem.f, "e1")]
    lab = LabConfig(checkpoint=e1_checkpoint, profile_dir=str(tmp_path / "lab"))
    fed.clear()
    list(decompose_tab.decompose(lab, "4a^4 + 12a^3 + 9a^2 - 1", decoder="greedy", max_new=3))
    assert fed[0] == want
    fed.clear()
    list(compare_tab.compare(lab, compare_tab.POLYNOMIAL, "4a^4 + 12a^3 + 9a^2 - 1",
                             [["V3", "greedy", "", "", "", "", 3], ["fastest", "greedy", "", "", "", "", 3]], 1,
                             profiled=False))
    assert fed and all(row == want for row in fed)
    x, _ = make_batch([problem], "e1")
    assert x[0, : len(prompt_ids(problem.f, "e1"))].tolist() == prompt_ids(problem.f, "e1")
    assert export_hf(model).config.prompt_format == "e1"
    capsys.readouterr()
