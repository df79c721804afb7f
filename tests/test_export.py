"""engine.export: a transformers directory the Auto classes load alone, and the CTranslate2 conversion."""
import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from engine.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from engine.data import generate
from engine.decoding import decode, preset, run_to_completion
from engine.export import MAX_NEW_TOKENS, exported_hf, load_hf, main, save_hf
from engine.model import GPT, PRESETS
from engine.poly import PolynomialError, from_prefix, verify
from engine.prompt import prompt_ids, prompt_tokens
from engine.tokenizer import PAD_ID, SEP_ID, decode_text, vocab_for

# Runs in a fresh interpreter outside the repository: transformers and the exported directory, nothing else.
LOAD_AND_GENERATE = r"""
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
path, prompts = sys.argv[1], json.loads(sys.stdin.read())
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path).eval()
batch = tok(prompts, return_tensors="pt", padding=True)
new = model.generate(**batch)[:, batch["input_ids"].shape[1]:]  # greedy, END and length from generation_config
print(json.dumps({"ids": [tok(p)["input_ids"] for p in prompts],
                  "answers": [tok.decode(row, skip_special_tokens=True) for row in new],
                  "project_code": sorted(m for m in sys.modules if m == "engine" or m.startswith("engine."))}))
"""


@pytest.fixture(scope="module")
def shipped():
    model, _ = load_checkpoint(DEFAULT_CHECKPOINT)
    problems = generate(2, 2, 3, seed=77) + generate(3, 2, 2, seed=77)  # prompts of different lengths
    return model, problems


def _our_greedy(model, fs) -> list[str]:
    prompts = [prompt_ids(f, model.config.prompt_format) for f in fs]
    opts = preset("fastest", decoder="greedy", width=1, max_new=MAX_NEW_TOKENS)
    return [decode_text(h[0].ids) for h in run_to_completion(decode(model, prompts, opts)).hypotheses]


def _verified(f, answer: str) -> bool:
    try:
        return verify(f, from_prefix(answer)).ok
    except PolynomialError:
        return False


def test_hf_directory_loads_with_the_auto_classes_alone(tmp_path, shipped):
    """Guards against an export that needs this project to load, a tokenizer that splits a seed-format prompt
    differently, or generation defaults (END, padding, length) that change the answer."""
    model, problems = shipped
    out = str(tmp_path / "hf")
    assert main(["--format", "hf", "--out", out, "--checkpoint", DEFAULT_CHECKPOINT]) == 0
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= set(os.listdir(out))
    fmt = model.config.prompt_format
    prompts = [" ".join(prompt_tokens(p.f, fmt)) + " ⁇" for p in problems]
    if fmt == "seed":  # then a prompt is exactly the first half of a seed-format line
        assert prompts == [p.line().split(" ⁇ ")[0] + " ⁇" for p in problems]
    r = subprocess.run([sys.executable, "-c", LOAD_AND_GENERATE, os.path.abspath(out)], input=json.dumps(prompts),
                       capture_output=True, text=True, cwd=str(tmp_path), timeout=600,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.returncode == 0, r.stderr[-4000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["project_code"] == []
    assert got["ids"] == [prompt_ids(p.f, fmt) for p in problems]
    ours = _our_greedy(model, [p.f for p in problems])
    assert got["answers"] == ours
    assert any(_verified(p.f, a) for p, a in zip(problems, ours))  # real answers, not token soup


def test_tokenizer_covers_an_e1_models_whole_vocabulary(tmp_path):
    """Guards against a tokenizer built from the 31 seed tokens for a model that reads E1 prompt tokens."""
    torch.manual_seed(0)
    model = GPT(replace(PRESETS["tiny"], prompt_format="e1", vocab_size=0)).eval()
    hf, tok = load_hf(save_hf(model, str(tmp_path / "e1")))
    assert hf.config.prompt_format == "e1"
    assert tok.convert_ids_to_tokens(list(range(len(tok)))) == list(vocab_for("e1"))
    assert len(tok) == model.config.vocab_size > 1000
    assert (tok.pad_token_id, tok.eos_token_id) == (PAD_ID, SEP_ID)
    f = generate(4, 4, 1, seed=3)[0].f
    ids = tok(" ".join(prompt_tokens(f, "e1")) + " ⁇")["input_ids"]
    assert ids == prompt_ids(f, "e1")
    with torch.no_grad():
        x = torch.tensor([ids])
        torch.testing.assert_close(hf(x).logits, model(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(Exception, match="WordLevel"):  # unknown tokens are an error, never a silent id
        tok("+ Q 1 ⁇")


def test_bench_and_compare_run_the_written_export(shipped):
    """exported_hf (the bench's hf suite and the Compare tab) is the directory the CLI writes, read back."""
    model, problems = shipped
    hf = exported_hf(model)
    assert hf.generation_config.eos_token_id == SEP_ID and hf.generation_config.max_new_tokens == MAX_NEW_TOKENS
    x = torch.tensor([prompt_ids(problems[0].f, model.config.prompt_format)])
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, model(x), atol=1e-5, rtol=1e-5)


def test_ct2_export_generates_our_greedy_answers(tmp_path, shipped):
    ctranslate2 = pytest.importorskip("ctranslate2")
    model, problems = shipped
    out = str(tmp_path / "ct2")
    assert main(["--format", "ct2", "--out", out, "--checkpoint", DEFAULT_CHECKPOINT]) == 0
    gen = ctranslate2.Generator(out, device="cpu", intra_threads=1)
    prompts = [prompt_tokens(p.f, model.config.prompt_format) + ["⁇"] for p in problems]
    results = gen.generate_batch(prompts, max_length=MAX_NEW_TOKENS, sampling_topk=1, end_token="⁇",
                                 include_prompt_in_result=False)
    assert [" ".join(r.sequences[0]) for r in results] == _our_greedy(model, [p.f for p in problems])


def test_ct2_without_ctranslate2_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # import ctranslate2 now fails as if not installed
    monkeypatch.setitem(sys.modules, "ctranslate2.converters", None)
    assert main(["--format", "ct2", "--out", str(tmp_path / "ct2"), "--checkpoint", DEFAULT_CHECKPOINT]) == 2
    assert "pip install ctranslate2" in capsys.readouterr().err
