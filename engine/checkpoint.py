"""Checkpoints: safetensors weights + a JSON config beside them.

`<path>.safetensors` holds the weights, `<path>.json` holds asdict(config), the vocabulary and
free-form metadata (training recipe, time taken). The model is rebuilt from these two files alone.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, fields

import torch
from safetensors.torch import load_file, save_file

from .model import GPT, GPTConfig
from .tokenizer import VOCAB

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
    info = {"config": asdict(model.config), "vocab": list(VOCAB), "meta": meta or {}}
    with open(stem + ".json.tmp", "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2, ensure_ascii=False)
    os.replace(stem + ".safetensors.tmp", stem + ".safetensors")
    os.replace(stem + ".json.tmp", stem + ".json")
    return stem


def read_info(path: str) -> dict:
    stem = _stem(path)
    try:
        with open(stem + ".json", encoding="utf-8") as fh:
            info = json.load(fh)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint config at {stem}.json") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{stem}.json is not valid JSON: {e}") from None
    if info.get("vocab", list(VOCAB)) != list(VOCAB):
        raise CheckpointError(f"{stem}.json was made with a different vocabulary")
    return info


def config_from_dict(d: dict) -> GPTConfig:
    names = {f.name for f in fields(GPTConfig)}
    unknown = set(d) - names
    if unknown:
        raise CheckpointError(f"unknown config fields {sorted(unknown)}")
    return GPTConfig(**d)


def load_checkpoint(path: str = DEFAULT_CHECKPOINT, device: str | torch.device = "cpu") -> tuple[GPT, dict]:
    """Rebuild the model from `<stem>.json` + `<stem>.safetensors`. Returns (model in eval mode, meta)."""
    stem = _stem(path)
    info = read_info(stem)
    model = GPT(config_from_dict(info["config"]))
    try:
        state = load_file(stem + ".safetensors")
    except FileNotFoundError:
        raise CheckpointError(f"no weights at {stem}.safetensors") from None
    except Exception as e:  # safetensors raises its own error type for corrupt headers
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
