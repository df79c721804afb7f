"""The same weights through Hugging Face transformers `generate()`, for side-by-side comparison.

The model is exported to GPT2LMHeadModel by engine.checkpoint.export_hf (identical logits); this module
only drives `generate()` with settings that match our decoders and turns its output into our `Decoded`:
greedy is `do_sample=False`; beam is `num_beams=K` with `length_penalty`, `early_stopping=False` and all
K sequences returned. Prompts are left-padded with an attention mask, so positions start at 0 for each
prompt as in our batches. transformers is imported only when a function here is called.
"""
from __future__ import annotations

import time
from typing import Sequence

import torch

from ..device import synchronize
from ..tokenizer import PAD_ID, SEP_ID
from .events import Decoded, Hypothesis
from .options import DecodeOptions
from .session import left_pad


def _split_answer(ids: list[int]) -> tuple[tuple[int, ...], bool]:
    """Generated ids -> (ids before END, finished). Anything after END is padding."""
    if SEP_ID in ids:
        return tuple(ids[: ids.index(SEP_ID)]), True
    return tuple(ids), False


def generate_kwargs(opts: DecodeOptions, block_size: int, prompt_len: int) -> dict:
    """The generate() arguments that reproduce our decoder for these options."""
    if opts.decoder not in ("greedy", "beam"):
        raise ValueError(f"the transformers comparison covers greedy and beam, not {opts.decoder!r}")
    max_new = min(opts.max_new, block_size - prompt_len)
    if max_new < 1:
        raise ValueError(f"a prompt of {prompt_len} tokens leaves no room in the block size {block_size}")
    kw = dict(max_new_tokens=max_new, do_sample=False, eos_token_id=SEP_ID, pad_token_id=PAD_ID,
              return_dict_in_generate=True, output_scores=True, use_cache=True)
    if opts.beams > 1:  # generate() treats num_beams=1 as greedy search
        kw.update(num_beams=opts.width, num_return_sequences=opts.width, length_penalty=opts.length_penalty,
                  early_stopping=False)
    else:
        kw.update(num_beams=1)
    return kw


@torch.inference_mode()
def hf_decode(hf_model, prompts: Sequence[Sequence[int]], opts: DecodeOptions) -> Decoded:
    """Decode `prompts` (ids ending with SEP) with transformers generate(); same result type as ours.

    Greedy (and width-1 beam, which generate() runs as greedy) scores are the summed log-probs of the
    chosen tokens (END included when emitted); beam scores are generate()'s sequence scores (summed
    log-probs / length ** length_penalty). `steps` is empty (generate() yields no step events) and
    prefill_ms is 0: only the total is measured."""
    device = next(hf_model.parameters()).device
    ids, mask = left_pad(prompts, device)
    kw = generate_kwargs(opts, hf_model.config.n_positions, ids.shape[1])
    synchronize(device)
    t0 = time.perf_counter()
    out = hf_model.generate(input_ids=ids, attention_mask=mask, **kw)
    synchronize(device)
    total_ms = (time.perf_counter() - t0) * 1e3
    new = out.sequences[:, ids.shape[1]:].tolist()
    if kw["num_beams"] > 1:
        scores, per = out.sequences_scores.tolist(), opts.width
    else:
        logprobs = torch.stack(out.scores, dim=1).float().log_softmax(-1)  # (B, N, V)
        chosen = out.sequences[:, ids.shape[1]:].unsqueeze(-1)
        token_lp = logprobs.gather(-1, chosen).squeeze(-1)  # (B, N)
        scores, per = [], 1
        for r, row in enumerate(new):
            n = len(_split_answer(row)[0]) + (SEP_ID in row)  # tokens that count: answer plus END
            penalty = n ** opts.length_penalty if opts.decoder == "beam" else 1.0
            scores.append(float(token_lp[r, :n].sum()) / penalty)
    hyps = []
    for b in range(len(prompts)):
        group = []
        for k in range(per):
            answer, finished = _split_answer(new[b * per + k])
            group.append(Hypothesis(ids=answer, score=float(scores[b * per + k]), finished=finished))
        hyps.append(tuple(group))
    return Decoded(hypotheses=tuple(hyps), steps=(), prefill_ms=0.0, total_ms=total_ms)
