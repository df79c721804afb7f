"""Export a checkpoint in the formats the rest of the ecosystem loads.

    python -m engine.export --format hf --out exports/default-hf [--checkpoint weights/default]
    python -m engine.export --format ct2 --out exports/default-ct2

`hf` writes a transformers directory: config.json (GPT2LMHeadModel, with the model's `prompt_format`),
model.safetensors, generation_config.json (greedy, END = ⁇ ends the answer, □ pads) and a fast WordLevel
tokenizer over the model's whole vocabulary (tokens separated by spaces, as in the seed's files).
`AutoModelForCausalLM.from_pretrained(DIR)` and `AutoTokenizer.from_pretrained(DIR)` load it without this
project's code, so `generate()`, CTranslate2's converter and vLLM take it as it is. The prompt is f in the
model's prompt format followed by ⁇ (for "seed" models: the prompt half of a line of a seed-format file).
`ct2` runs CTranslate2's converter on that directory (`pip install ctranslate2`).

The bench's hf and engines suites and the web app's Compare tab run `exported_hf`: this export, read back with
the Auto classes, and `exported_ct2`: its CTranslate2 conversion, loaded as a Generator. transformers and
ctranslate2 are imported only when a function here is called.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from .checkpoint import DEFAULT_CHECKPOINT, CheckpointError, export_hf, load_checkpoint
from .model import GPT
from .tokenizer import PAD_ID, SEP_ID, VOCAB, vocab_for

FORMATS = ("hf", "ct2")
MAX_NEW_TOKENS = 40  # the longest answer (36 tokens for the 4_4 pair) plus END, with room to spare


def hf_tokenizer(prompt_format: str, block_size: int):
    """A fast WordLevel tokenizer over the prompt format's vocabulary: one id per space-separated token, □ the
    padding and ⁇ the end token; no token is added to the text. An unknown token is an error, not an <unk>."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab_for(prompt_format))}))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens([AddedToken(VOCAB[PAD_ID], special=True), AddedToken(VOCAB[SEP_ID], special=True)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=VOCAB[PAD_ID], eos_token=VOCAB[SEP_ID],
                                   bos_token=VOCAB[SEP_ID], model_max_length=block_size, padding_side="left")


def _edit_json(path: str, **changes) -> None:
    with open(path, encoding="utf-8") as fh:
        cfg = json.load(fh)
    cfg.update(changes)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(cfg, fh, indent=2, ensure_ascii=False)


def save_hf(model: GPT, out: str) -> str:
    """Write the transformers directory for `model` to `out`; returns `out`."""
    from transformers import GenerationConfig

    hf = export_hf(model).cpu()
    hf.generation_config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=MAX_NEW_TOKENS,
                                            bos_token_id=SEP_ID, eos_token_id=SEP_ID, pad_token_id=PAD_ID)
    os.makedirs(out, exist_ok=True)
    hf.save_pretrained(out, safe_serialization=True)
    hf_tokenizer(model.config.prompt_format, model.config.block_size).save_pretrained(out)
    # The class name every transformers release resolves (newer ones write their own alias here).
    _edit_json(os.path.join(out, "tokenizer_config.json"), tokenizer_class="PreTrainedTokenizerFast")
    return out


def load_hf(path: str):
    """(model, tokenizer) from an exported directory, with the transformers Auto classes alone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def exported_hf(model: GPT):
    """`model` as the ecosystem sees it: written by save_hf, read back with AutoModelForCausalLM, on the
    model's device. The bench and the Compare tab run this, so they measure what an export gives."""
    with tempfile.TemporaryDirectory(prefix="polydecode-hf-") as tmp:
        hf, _ = load_hf(save_hf(model, tmp))
    return hf.to(next(model.parameters()).device)


def save_ct2(model: GPT, out: str) -> str:
    """Convert `model` to a CTranslate2 directory (through the hf export); returns `out`."""
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError:
        raise RuntimeError("the ct2 format needs CTranslate2: pip install ctranslate2") from None
    with tempfile.TemporaryDirectory(prefix="polydecode-hf-") as tmp:
        TransformersConverter(save_hf(model, tmp)).convert(out, force=True)
    # CTranslate2 needs the name of an unknown token and the vocabulary has none: strings outside it read as
    # padding there (this tokenizer raises on them instead).
    _edit_json(os.path.join(out, "config.json"), unk_token=VOCAB[PAD_ID])
    return out


def exported_ct2(model: GPT, threads: int | None = None):
    """`model` as CTranslate2 runs it: converted from the hf export (save_ct2) and loaded as a
    ctranslate2.Generator on the CPU in float32 with `threads` intra-op threads (default: torch's count), one
    batch at a time. Raises RuntimeError when ctranslate2 is not installed."""
    try:
        import ctranslate2
    except ImportError:
        raise RuntimeError("the CTranslate2 comparison needs CTranslate2: pip install ctranslate2") from None
    import torch

    with tempfile.TemporaryDirectory(prefix="polydecode-ct2-") as tmp:
        save_ct2(model, tmp)  # the Generator reads everything it needs while it loads
        return ctranslate2.Generator(tmp, device="cpu", compute_type="float32", inter_threads=1,
                                     intra_threads=threads or torch.get_num_threads())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Export a checkpoint for transformers or CTranslate2.")
    ap.add_argument("--format", required=True, choices=FORMATS)
    ap.add_argument("--out", required=True, help="the directory to write")
    ap.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    args = ap.parse_args(argv)
    try:
        model, _ = load_checkpoint(args.checkpoint)
        (save_hf if args.format == "hf" else save_ct2)(model, args.out)
    except (OSError, RuntimeError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({args.format}, prompt format {model.config.prompt_format}, "
          f"{model.config.vocab_size} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
