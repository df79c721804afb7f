"""Checkpoints: safetensors weights + a JSON config beside them; the one "checkpoint or random weights" loader.

`<path>.safetensors` holds the weights, `<path>.json` holds asdict(config), the vocabulary and
free-form metadata (training recipe, time taken). The model is rebuilt from these two files alone.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field, fields

import torch
from safetensors.torch import load_file, save_file

from .device import pick_device
from .model import GPT, PRESETS, GPTConfig, state_shapes
from .tokenizer import PAD_ID, SEP_ID, VOCAB, vocab_for

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights", "default")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded, with the reason."""


def _stem(path: str) -> str:
    for ext in (".safetensors", ".json"):
        if path.endswith(ext):
            return path[: -len(ext)]
    return path


def save_checkpoint(model: GPT, path: str, meta: dict | None = None) -> str:
    """Write `<stem>.safetensors` and `<stem>.json` atomically; returns the stem."""
    stem = _stem(path)
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, stem + ".safetensors.tmp")
    info = {"config": asdict(model.config), "vocab": list(vocab_for(model.config.prompt_format)), "meta": meta or {}}
    with open(stem + ".json.tmp", "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2, ensure_ascii=False)
    os.replace(stem + ".safetensors.tmp", stem + ".safetensors")
    os.replace(stem + ".json.tmp", stem + ".json")
    return stem


def read_info(path: str) -> dict:
    """`<stem>.json` as a dict, its shape checked (a JSON object with a "config" object); nothing is built."""
    stem = _stem(path)
    try:
        with open(stem + ".json", encoding="utf-8") as fh:
            info = json.load(fh)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint config at {stem}.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{stem}.json is not valid JSON: {e}") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{stem}.json must hold a JSON object, got {type(info).__name__}")
    if not isinstance(info.get("config"), dict):
        raise CheckpointError(f"{stem}.json has no \"config\" object")
    if not isinstance(info.get("meta", {}), dict):
        raise CheckpointError(f"{stem}.json: \"meta\" must be an object")
    vocab = info.get("vocab", list(VOCAB))
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise CheckpointError(f"{stem}.json: \"vocab\" must be a list of strings")
    return info


def _check_vocab(info: dict, cfg: GPTConfig, stem: str) -> None:
    if info.get("vocab", list(VOCAB)) != list(vocab_for(cfg.prompt_format)):
        raise CheckpointError(f"{stem}.json was made with a different vocabulary")


MAX_CONFIG_VALUE = 1 << 31  # no config integer is anywhere near this; it keeps arithmetic on them sane


def config_from_dict(d: dict) -> GPTConfig:
    """A GPTConfig from its JSON object: every field of the right type (ints are ints, not strings or
    booleans) and in range. Sizes are checked against the weights by check_shapes, before any tensor exists."""
    types = {f.name: type(f.default) for f in fields(GPTConfig)}
    unknown = set(d) - set(types)
    if unknown:
        raise CheckpointError(f"unknown config fields {sorted(unknown)}")
    for name, value in d.items():
        want = types[name]
        if type(value) is not want:  # bool is an int subclass: exact type only
            raise CheckpointError(f"config field {name!r} must be {want.__name__}, got {json.dumps(value)[:40]}")
        if want is int and not 0 <= value < MAX_CONFIG_VALUE:
            raise CheckpointError(f"config field {name!r} must be a whole number from 0 to 2**31 - 1, got {value}")
    try:
        return GPTConfig(**d)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"invalid config: {e}") from None


# ---------------------------------------------------------------- the safetensors header, read before any weight

MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def read_header(path: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors file's header, checked against the file: every tensor's
    bytes must lie inside it and match its shape and dtype. Reads the header only (no tensor data)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or n > min(MAX_HEADER_BYTES, size - 8):
                raise CheckpointError(f"{path} is not a safetensors file (bad header length)")
            header = json.loads(fh.read(n))
    except FileNotFoundError:
        raise CheckpointError(f"no weights at {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is not a safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a safetensors file (header is not an object)")
    data_bytes = size - 8 - n
    shapes = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            shape, (lo, hi), itemsize = entry["shape"], entry["data_offsets"], DTYPE_BYTES[entry["dtype"]]
            if not all(type(x) is int and x >= 0 for x in (*shape, lo, hi)):
                raise TypeError
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: malformed header entry for {name!r}") from None
        if not lo <= hi <= data_bytes or hi - lo != math.prod(shape) * itemsize:
            raise CheckpointError(f"{path}: tensor {name!r} {tuple(shape)} does not fit the file's {data_bytes} "
                                  f"data bytes")
        shapes[name] = tuple(shape)
    return shapes


def check_shapes(cfg: GPTConfig, shapes: dict[str, tuple[int, ...]], source: str) -> None:
    """The config against the weights' shapes, before anything is allocated: a config that promises a bigger
    (or different) model than the file holds is refused here, not by a failed multi-gigabyte allocation."""
    layers = {k.split(".")[1] for k in shapes if k.startswith("blocks.")}
    quick = {"tok_emb.weight": (cfg.vocab_size, cfg.n_embd), "pos_emb": (1, cfg.block_size, cfg.n_embd)}
    for key, want in quick.items():
        if shapes.get(key) != want:
            raise CheckpointError(f"{source}: the config needs {key!r} of shape {want}, the weights hold "
                                  f"{shapes.get(key, 'none')}")
    if len(layers) != cfg.n_layer:
        raise CheckpointError(f"{source}: the config has n_layer={cfg.n_layer}, the weights {len(layers)} layers")
    expected = state_shapes(cfg)
    for key, want in expected.items():
        if shapes.get(key) != want:
            raise CheckpointError(f"{source}: key {key!r} has shape {shapes.get(key, 'none')}, the config needs {want}")
    extra = sorted(set(shapes) - set(expected))
    if extra:
        raise CheckpointError(f"{source}: unexpected key {extra[0]!r} ({len(extra)} unexpected)")


def load_checkpoint(path: str = DEFAULT_CHECKPOINT, device: str | torch.device = "cpu") -> tuple[GPT, dict]:
    """Rebuild the model from `<stem>.json` + `<stem>.safetensors`. Returns (model in eval mode, meta).

    The JSON and the weights' header are validated (types, ranges, shapes) before any model is built."""
    stem = _stem(path)
    info = read_info(stem)
    cfg = config_from_dict(info["config"])
    _check_vocab(info, cfg, stem)
    check_shapes(cfg, read_header(stem + ".safetensors"), stem + ".safetensors")
    model = GPT(cfg)
    try:
        state = load_file(stem + ".safetensors")
    except Exception as e:  # safetensors raises its own error type for corrupt files
        raise CheckpointError(f"cannot read {stem}.safetensors: {e}") from None
    load_state(model, state, source=stem + ".safetensors")
    return model.to(device).eval(), info.get("meta", {})


def load_state(model: GPT, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Strict load that names the first missing, unexpected or misshapen key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise CheckpointError(f"{source}: missing key {missing[0]!r} ({len(missing)} missing)")
    if unexpected:
        raise CheckpointError(f"{source}: unexpected key {unexpected[0]!r} ({len(unexpected)} unexpected)")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{source}: key {k!r} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
    model.load_state_dict(state, strict=True)


def load_model(path: str | None = None, device: str | torch.device | None = None) -> tuple[GPT, dict]:
    """The model at `path` (default weights/default) on `device` (default: CUDA if present), and its meta.

    meta["trained"] is True only for weights that came out of training; anything else is untrained.
    """
    return load_checkpoint(path or DEFAULT_CHECKPOINT, pick_device(device if device is None else str(device)))


# ---------------------------------------------------------------- checkpoint or random weights

@dataclass(frozen=True)
class Weights:
    model: GPT                     # in eval mode, on the device asked for
    source: str                    # for people: the checkpoint path, or which random weights
    checkpoint: str | None         # the checkpoint stem; None for random weights
    meta: dict = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        """True only for weights that came out of training (the checkpoint's meta says so)."""
        return bool(self.meta.get("trained"))


def ban_end(model: GPT) -> GPT:
    """Make END (and PAD) unreachable on a random-weight model, so every decoder runs to max_new and does
    equal work.

    With untrained LayerNorm weights (gain 1) each normalised feature lies in [-sqrt(C), sqrt(C)], so a
    final-LayerNorm bias of sqrt(C) + 1 on feature 0 keeps it >= 1; the head rows for END and PAD then read
    only that feature with weight -1000, putting their logits below -1000 at every position. The change is
    in the weights, so the exported transformers model behaves the same way."""
    C = model.config.n_embd
    with torch.no_grad():
        if not torch.allclose(model.ln_f.weight, torch.ones_like(model.ln_f.weight)):
            raise ValueError("ban_end needs an untrained final LayerNorm (gain 1)")
        model.ln_f.bias[0] = math.sqrt(C) + 1.0
        for banned in (SEP_ID, PAD_ID):
            model.head.weight[banned].zero_()
            model.head.weight[banned, 0] = -1000.0
    return model


def random_model(preset_name: str, seed: int = 0, end_unreachable: bool = True) -> GPT:
    """Seeded random weights of a model preset in eval mode; END made unreachable (ban_end) unless asked not to."""
    if preset_name not in PRESETS:
        raise ValueError(f"unknown model preset {preset_name!r}; choose from {sorted(PRESETS)}")
    torch.manual_seed(seed)
    model = GPT(PRESETS[preset_name])
    return (ban_end(model) if end_unreachable else model).eval()


def weights_digest(checkpoint: str) -> str:
    """sha256 of the checkpoint's safetensors file (hex)."""
    path = checkpoint.removesuffix(".safetensors").removesuffix(".json") + ".safetensors"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_weights(checkpoint: str | None = None, preset: str | None = None, device: str | torch.device | None = None,
                 end_unreachable: bool = False) -> Weights:
    """A checkpoint (`checkpoint`), or seeded random weights of a model preset (`preset`), or with neither the
    shipped checkpoint, falling back to random weights of the default preset when it is missing (logged, and
    said in `source`). end_unreachable applies to random weights only (see ban_end)."""
    if checkpoint and preset:
        raise ValueError("give a checkpoint or a model preset, not both")
    device = pick_device(None if device is None else str(device))
    if preset:
        return Weights(random_model(preset, end_unreachable=end_unreachable).to(device),
                       f"random weights, preset {preset}", None)
    stem = _stem(checkpoint or DEFAULT_CHECKPOINT)
    if checkpoint is None and not os.path.exists(stem + ".safetensors"):
        log.warning("no checkpoint at %s; using random weights of the default preset", stem)
        return Weights(random_model("default", end_unreachable=end_unreachable).to(device),
                       "random weights, preset default (no checkpoint found)", None)
    model, meta = load_checkpoint(stem, device)
    return Weights(model, os.path.relpath(stem), stem, meta)


# ---------------------------------------------------------------- the seed's minGPT checkpoints

SEED_N_HEAD = 8  # not recoverable from the seed's shapes


def seed_key_map(n_layer: int) -> dict[str, tuple[str, ...]]:
    """Our parameter name -> the seed (minGPT) names it is built from (three for the fused qkv)."""
    keys = {"tok_emb.weight": ("tok_emb.weight",), "pos_emb": ("pos_emb",), "ln_f.weight": ("ln_f.weight",),
            "ln_f.bias": ("ln_f.bias",), "head.weight": ("head.weight",)}
    for i in range(n_layer):
        b = f"blocks.{i}."
        for part in ("weight", "bias"):
            for ours in ("ln1", "ln2", "attn.proj", "mlp.0", "mlp.2"):
                keys[f"{b}{ours}.{part}"] = (f"{b}{ours}.{part}",)
            keys[f"{b}attn.qkv.{part}"] = tuple(f"{b}attn.{n}.{part}" for n in ("query", "key", "value"))
    return keys


def import_seed_checkpoint(path: str, n_head: int = SEED_N_HEAD) -> GPT:
    """A seed checkpoint (a plain minGPT state_dict saved with torch.save) as our GPT, in eval mode.

    Loaded with weights_only=True. The attn.mask buffers are ignored; any other key we do not use,
    any missing key and any misshapen tensor is a CheckpointError naming it.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no seed checkpoint at {path}") from None
    except Exception as e:  # pickle errors, or objects weights_only refuses
        raise CheckpointError(f"cannot read seed checkpoint {path}: {e}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
    return model_from_seed_state(state, n_head=n_head, source=path)


def model_from_seed_state(state: dict[str, torch.Tensor], n_head: int = SEED_N_HEAD,
                          source: str = "seed state dict") -> GPT:
    for key in ("tok_emb.weight", "pos_emb"):
        if key not in state:
            raise CheckpointError(f"{source}: missing key {key!r}")
    vocab, n_embd = state["tok_emb.weight"].shape
    if vocab != len(VOCAB):
        raise CheckpointError(f"{source}: key 'tok_emb.weight' has {vocab} rows, the vocabulary has {len(VOCAB)}")
    n_layer = sum(1 for k in state if k.startswith("blocks.") and k.endswith(".ln1.weight"))
    cfg = GPTConfig(n_layer=n_layer, n_head=n_head, n_embd=int(n_embd), block_size=int(state["pos_emb"].shape[1]))
    model = GPT(cfg)
    expected = model.state_dict()
    key_map = seed_key_map(n_layer)
    used = {s for sources in key_map.values() for s in sources}
    extra = [k for k in state if k not in used and not k.endswith(".attn.mask")]
    if extra:
        raise CheckpointError(f"{source}: unexpected key {extra[0]!r} ({len(extra)} unexpected)")
    ours = {}
    for name, sources in key_map.items():
        for s in sources:
            if s not in state:
                raise CheckpointError(f"{source}: missing key {s!r}")
        ours[name] = torch.cat([state[s] for s in sources]) if len(sources) > 1 else state[sources[0]]
        if tuple(ours[name].shape) != tuple(expected[name].shape):
            shapes = ", ".join(f"{s} {tuple(state[s].shape)}" for s in sources)
            raise CheckpointError(f"{source}: key {shapes} does not fit {name} {tuple(expected[name].shape)}")
    load_state(model, {k: v.float() for k, v in ours.items()}, source=source)
    return model.eval()


# ---------------------------------------------------------------- Hugging Face export

def export_hf(model: GPT):
    """The same weights as a transformers GPT2LMHeadModel (exact GELU, untied head, eval mode)."""
    from transformers import GPT2Config, GPT2LMHeadModel  # slow to import: only when asked

    c = model.config
    hf_cfg = GPT2Config(vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer,
                        n_head=c.n_head, activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, layer_norm_epsilon=1e-5, tie_word_embeddings=False,
                        bos_token_id=SEP_ID, eos_token_id=SEP_ID, pad_token_id=PAD_ID,
                        prompt_format=c.prompt_format,  # kept in config.json: prompts must be built the same way
                        answer_order=c.answer_order)
    hf = GPT2LMHeadModel(hf_cfg)
    src = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    dst = {"transformer.wte.weight": src["tok_emb.weight"], "transformer.wpe.weight": src["pos_emb"][0],
           "transformer.ln_f.weight": src["ln_f.weight"], "transformer.ln_f.bias": src["ln_f.bias"],
           "lm_head.weight": src["head.weight"]}
    for i in range(c.n_layer):
        b, h = f"blocks.{i}.", f"transformer.h.{i}."
        for part in ("weight", "bias"):
            dst[f"{h}ln_1.{part}"] = src[f"{b}ln1.{part}"]
            dst[f"{h}ln_2.{part}"] = src[f"{b}ln2.{part}"]
        # Conv1D keeps (in, out) weights: the transpose of nn.Linear's (out, in).
        for ours, theirs in (("attn.qkv", "attn.c_attn"), ("attn.proj", "attn.c_proj"), ("mlp.0", "mlp.c_fc"),
                             ("mlp.2", "mlp.c_proj")):
            dst[f"{h}{theirs}.weight"] = src[f"{b}{ours}.weight"].t().contiguous()
            dst[f"{h}{theirs}.bias"] = src[f"{b}{ours}.bias"]
    missing, unexpected = hf.load_state_dict(dst, strict=False)
    missing = [k for k in missing if not k.endswith((".attn.bias", ".attn.masked_bias"))]
    if missing or unexpected:
        raise CheckpointError(f"export to GPT2LMHeadModel: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return hf.to(next(model.parameters()).device).eval()
