"""Checkpoints: safetensors round trip, the seed's minGPT state dicts, the Hugging Face export."""
import json
import math
import os
import re

import pytest
import torch
import torch.nn.functional as F

from engine.checkpoint import (CheckpointError, export_hf, import_seed_checkpoint, load_checkpoint, load_model,
                               save_checkpoint)
from engine.decoding import DecodeOptions, decode, run_to_completion
from engine.model import GPT, PRESETS
from engine.tokenizer import PAD_ID, SEP_ID

N_LAYER, N_HEAD, C, BLOCK = 2, 8, 32, 40



def mingpt_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict in the seed's minGPT layout (separate query/key/value, saved tril masks)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.3  # noqa: E731
    s = {"tok_emb.weight": r(31, C), "pos_emb": r(1, BLOCK, C), "ln_f.weight": 1 + r(C), "ln_f.bias": r(C),
         "head.weight": r(31, C)}
    for i in range(N_LAYER):
        b = f"blocks.{i}."
        for ln in ("ln1", "ln2"):
            s[f"{b}{ln}.weight"], s[f"{b}{ln}.bias"] = 1 + r(C), r(C)
        for name in ("query", "key", "value", "proj"):
            s[f"{b}attn.{name}.weight"], s[f"{b}attn.{name}.bias"] = r(C, C), r(C)
        s[f"{b}attn.mask"] = torch.ones(BLOCK, BLOCK).tril().view(1, 1, BLOCK, BLOCK)
        s[f"{b}mlp.0.weight"], s[f"{b}mlp.0.bias"] = r(4 * C, C), r(4 * C)
        s[f"{b}mlp.2.weight"], s[f"{b}mlp.2.bias"] = r(C, 4 * C), r(C)
    return s


def mingpt_logits(s: dict, idx: torch.Tensor) -> torch.Tensor:
    """minGPT's forward written out on the raw state dict: the reference the import must reproduce."""
    B, T = idx.shape
    x = s["tok_emb.weight"][idx] + s["pos_emb"][:, :T]
    for i in range(N_LAYER):
        b = f"blocks.{i}."
        h = F.layer_norm(x, (C,), s[f"{b}ln1.weight"], s[f"{b}ln1.bias"])
        q, k, v = (F.linear(h, s[f"{b}attn.{n}.weight"], s[f"{b}attn.{n}.bias"]).view(B, T, N_HEAD, -1).transpose(1, 2)
                   for n in ("query", "key", "value"))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        att = att.masked_fill(s[f"{b}attn.mask"][:, :, :T, :T] == 0, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, s[f"{b}attn.proj.weight"], s[f"{b}attn.proj.bias"])
        h = F.layer_norm(x, (C,), s[f"{b}ln2.weight"], s[f"{b}ln2.bias"])
        x = x + F.linear(F.gelu(F.linear(h, s[f"{b}mlp.0.weight"], s[f"{b}mlp.0.bias"])),
                         s[f"{b}mlp.2.weight"], s[f"{b}mlp.2.bias"])
    return F.linear(F.layer_norm(x, (C,), s["ln_f.weight"], s["ln_f.bias"]), s["head.weight"])


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = GPT(PRESETS["tiny"]).eval()
    stem = save_checkpoint(model, str(tmp_path / "m"), {"trained": True, "steps": 3})
    loaded, meta = load_checkpoint(stem)
    assert meta == {"trained": True, "steps": 3} and loaded.config == model.config
    x = torch.randint(0, 31, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    again, meta2 = load_model(stem + ".safetensors", device="cpu")
    assert meta2["trained"] and again.config == model.config


def crafted(tmp_path, change) -> str:
    """A tiny checkpoint whose JSON was edited by `change(info) -> info` (a hostile or broken file)."""
    torch.manual_seed(0)
    stem = save_checkpoint(GPT(PRESETS["tiny"]), str(tmp_path / "crafted"))
    with open(stem + ".json", encoding="utf-8") as fh:
        info = json.load(fh)
    with open(stem + ".json", "w", encoding="utf-8") as fh:
        json.dump(change(info), fh)
    return stem


def set_config(**changes):
    return lambda info: {**info, "config": {**info["config"], **changes}}


CRAFTED = {
    # the three: a huge width (would allocate tens of GB), a number as a string, a list for the object
    "n_embd 65536": (set_config(n_embd=65536), "tok_emb.weight"),
    "n_embd as a string": (set_config(n_embd="256"), "'n_embd' must be int"),
    "a JSON list": (lambda info: [info], "must hold a JSON object, got list"),
    "n_layer as a bool": (set_config(n_layer=True), "'n_layer' must be int"),
    "negative n_head": (set_config(n_head=-8), "must be a whole number from 0"),
    "more layers than the weights": (set_config(n_layer=3), "n_layer=3"),
    "longer block than the weights": (set_config(block_size=100_000), "pos_emb"),
    "unknown field": (set_config(rotary=True), "unknown config fields"),
    "config missing": (lambda info: {"vocab": info["vocab"]}, "no \"config\" object"),
    "meta not an object": (lambda info: {**info, "meta": "x"}, "\"meta\" must be an object"),
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_configs_are_refused_before_any_model_is_built(tmp_path, monkeypatch, name):
    """A hostile config JSON (n_embd=65536 asked for 51.5 GB before any shape check; "256" gave a TypeError;
    a list an AttributeError) is a CheckpointError naming the problem, and no GPT is ever constructed."""
    change, message = CRAFTED[name]
    stem = crafted(tmp_path, change)
    built = []
    monkeypatch.setattr(GPT, "__init__", lambda self, cfg: built.append(cfg) or pytest.fail("model built"))
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(stem)
    assert built == []


@pytest.mark.parametrize("name", ["n_embd 65536", "n_embd as a string", "a JSON list"])
def test_cli_reports_a_crafted_checkpoint_in_one_line(tmp_path, capsys, name):
    """The CLI's answer to a bad file is one `error:` line and exit code 2, never a traceback."""
    from engine import decompose
    stem = crafted(tmp_path, CRAFTED[name][0])
    assert decompose.main(["a^4 + 2a^2 + 1", "--checkpoint", stem, "--max-new", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err


def test_weights_that_do_not_fit_their_header_are_refused(tmp_path):
    """A safetensors header that claims more bytes than the file holds is refused before loading."""
    torch.manual_seed(0)
    stem = save_checkpoint(GPT(PRESETS["tiny"]), str(tmp_path / "cut"))
    with open(stem + ".safetensors", "r+b") as fh:
        fh.truncate(os.path.getsize(stem + ".safetensors") - 4)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(stem)
    with open(stem + ".safetensors", "wb") as fh:
        fh.write((1 << 40).to_bytes(8, "little"))
    with pytest.raises(CheckpointError, match="bad header length"):
        load_checkpoint(stem)


def test_seed_checkpoint_loads_and_reproduces_logits(tmp_path):
    """Guards against a wrong key map (q/k/v order, transposes) or a config guessed wrongly from shapes."""
    state = mingpt_state()
    path = tmp_path / "seed.pt"
    torch.save(state, path)
    model = import_seed_checkpoint(str(path))
    cfg = model.config
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size) == (N_LAYER, N_HEAD, C, BLOCK)
    idx = torch.randint(0, 31, (3, 17))
    with torch.no_grad():
        torch.testing.assert_close(model(idx), mingpt_logits(state, idx), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("change,message", [
    (lambda s: s.pop("blocks.1.attn.value.bias"), "blocks.1.attn.value.bias"),
    (lambda s: s.__setitem__("blocks.0.mlp.0.weight", torch.zeros(3, C)), "blocks.0.mlp.0.weight"),
    (lambda s: s.__setitem__("blocks.0.attn.rotary", torch.zeros(3)), "blocks.0.attn.rotary"),
    (lambda s: s.pop("head.weight"), "head.weight"),
    (lambda s: s.__setitem__("tok_emb.weight", torch.zeros(50, C)), "tok_emb.weight"),
])
def test_bad_seed_checkpoints_name_the_key(tmp_path, change, message):
    """A missing, misshapen or unknown key is an error that names it, never a silent strict=False."""
    state = mingpt_state()
    change(state)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=message.replace(".", r"\.")):
        import_seed_checkpoint(str(tmp_path / "bad.pt"))


def test_seed_import_refuses_pickled_objects(tmp_path):
    """weights_only=True: a checkpoint carrying arbitrary Python objects is refused."""
    torch.save({"pos_emb": torch.zeros(1), "hook": print}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="cannot read"):
        import_seed_checkpoint(str(tmp_path / "evil.pt"))
    with pytest.raises(CheckpointError, match="no seed checkpoint"):
        import_seed_checkpoint(str(tmp_path / "missing.pt"))


@pytest.fixture(scope="module")
def pair():
    pytest.importorskip("transformers")
    torch.manual_seed(1)
    model = GPT(PRESETS["tiny"]).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" not in name:
                p.normal_(0, 0.25)
    return model, export_hf(model)


def test_export_hf_gives_the_same_logits(pair):
    model, hf = pair
    assert type(hf).__name__ == "GPT2LMHeadModel"
    idx = torch.randint(0, 31, (2, 25))
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, model(idx), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("width", [1, 3, 10])
def test_decode_equals_hf_generate(pair, width):
    """Greedy and beam search (length_penalty 0) give HF generate()'s sequences and scores."""
    model, hf = pair
    prompt = [16, 22, 23, 9, 16, 5, 9]
    ours = run_to_completion(decode(model, [prompt], DecodeOptions(decoder="greedy" if width == 1 else "beam",
                                                                   width=width, max_new=20)))
    out = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                      num_beams=width, num_return_sequences=width, do_sample=False, length_penalty=0.0,
                      early_stopping=False, eos_token_id=SEP_ID, pad_token_id=PAD_ID, max_new_tokens=20,
                      return_dict_in_generate=True, output_scores=True)
    theirs = []
    for row in out.sequences[:, len(prompt):].tolist():
        ids = tuple(row[:row.index(SEP_ID)] if SEP_ID in row else row)
        theirs.append(ids)
    assert [h.ids for h in ours.hypotheses[0]] == theirs
    if width > 1:
        assert [h.score for h in ours.hypotheses[0]] == pytest.approx(out.sequences_scores.tolist(), abs=1e-4)
