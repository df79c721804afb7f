"""Flags the command lines share: the runtime (--threads, --device, --checkpoint) and the decode options.

Decode options start from a named preset, then every flag that was given replaces its field (options()
ignores the ones left out); DecodeOptions validates the result.
"""
from __future__ import annotations

import argparse
import os

import torch

from .checkpoint import DEFAULT_CHECKPOINT
from .decoding import (ATTENTIONS, BEAM_CACHES, CACHES, DECODE_PRESETS, DECODERS, LINEARS, PRECISIONS, STEPS,
                       DecodeOptions, options)
from .device import pick_device, set_threads

OPTION_FLAGS = ("decoder", "width", "samples", "stop_on_verified", "cascade", "cache", "beam_cache", "attention",
                "max_new", "length_penalty", "temperature", "top_k", "top_p", "seed", "precision", "linear", "step")


def add_runtime_args(ap: argparse.ArgumentParser, *, checkpoint: bool = True, random_weights: str | None = None,
                     device: bool = True) -> None:
    """--threads, --device and --checkpoint. With random_weights (a flag such as "--preset"), that flag names a
    model preset whose random weights are used instead, and it excludes --checkpoint."""
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    if device:
        ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    if not checkpoint:
        return
    group = ap.add_mutually_exclusive_group() if random_weights else ap
    group.add_argument("--checkpoint", default=None,
                       help=f"weights stem: .safetensors + .json (default: {os.path.relpath(DEFAULT_CHECKPOINT)})")
    if random_weights:
        group.add_argument(random_weights, default=None, help="random weights of a model preset: tiny, default, paper")


def apply_runtime_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> torch.device:
    """Set torch's CPU threads and resolve the device; a bad value is an argparse error (exit code 2)."""
    try:
        set_threads(args.threads)
        return pick_device(getattr(args, "device", None))
    except ValueError as e:
        ap.error(str(e))


def add_decode_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--preset", default="fastest", choices=sorted(DECODE_PRESETS), help="starting options")
    ap.add_argument("--decoder", choices=DECODERS)
    ap.add_argument("--width", type=int, help="beams (beam search only)")
    ap.add_argument("--samples", type=int, help="samples per problem, best verified wins (sample only)")
    ap.add_argument("--stop-on-verified", action="store_true", default=None,
                    help="beam, sample: stop a problem at its first verified answer")
    ap.add_argument("--cascade", help="stages of the cascade decoder, e.g. 'greedy > beam 10 > beam 64'")
    ap.add_argument("--cache", choices=CACHES)
    ap.add_argument("--beam-cache", choices=BEAM_CACHES)
    ap.add_argument("--attention", choices=ATTENTIONS)
    ap.add_argument("--max-new", type=int, help="most answer tokens, END included")
    ap.add_argument("--length-penalty", type=float)
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--top-k", type=int)
    ap.add_argument("--top-p", type=float)
    ap.add_argument("--seed", type=int, help="sampling seed")
    ap.add_argument("--precision", choices=PRECISIONS,
                    help="fp32 (default) | bf16 | int8-dynamic: the last two may change outputs")
    ap.add_argument("--linear", choices=LINEARS,
                    help="aten: F.linear | packed: weights transposed / oneDNN-packed for the CPU | tiled: packed with an "
                         "AVX2 kernel on weight tiles below 64 rows (fastest's); all exact")
    ap.add_argument("--step", choices=STEPS,
                    help="modules: a decode step through the nn.Modules | fused: every layer in one C++ call "
                         "(fastest's; static cache; exact; built with the C++ compiler on first use)")


def options_from_args(args: argparse.Namespace) -> DecodeOptions:
    """The preset with every flag that was given applied (ValueError on bad values)."""
    return options(args.preset, **{k: getattr(args, k) for k in OPTION_FLAGS})
