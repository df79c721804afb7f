"""Decode-option flags shared by the command lines (engine.decompose, engine.profile).

A named preset first, then every flag that was given replaces its field; DecodeOptions validates the result.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from .decoding.decode import ATTENTIONS, BEAM_CACHES, CACHES, DECODE_PRESETS, DECODERS, DecodeOptions, preset

OPTION_FLAGS = ("decoder", "width", "cache", "beam_cache", "attention", "max_new", "length_penalty",
                "temperature", "top_k", "top_p", "seed")


def add_decode_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--preset", default="fastest", choices=sorted(DECODE_PRESETS), help="starting options")
    ap.add_argument("--decoder", choices=DECODERS)
    ap.add_argument("--width", type=int, help="beams (beam search only)")
    ap.add_argument("--cache", choices=CACHES)
    ap.add_argument("--beam-cache", choices=BEAM_CACHES)
    ap.add_argument("--attention", choices=ATTENTIONS)
    ap.add_argument("--max-new", type=int, help="most answer tokens, END included")
    ap.add_argument("--length-penalty", type=float)
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--top-k", type=int)
    ap.add_argument("--top-p", type=float)
    ap.add_argument("--seed", type=int, help="sampling seed")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")


def options_from_args(args: argparse.Namespace) -> DecodeOptions:
    """The preset with every flag that was given applied (ValueError on bad values)."""
    opts = preset(args.preset, **{k: getattr(args, k) for k in OPTION_FLAGS if getattr(args, k) is not None})
    if opts.decoder != "beam" and args.width is None:  # one hypothesis unless asked otherwise
        opts = replace(opts, width=1)
    return opts
