"""The same weights through CTranslate2 (a C++ engine with its own beam search), for side-by-side comparison.

The model is converted from the Hugging Face export (engine.export.exported_ct2); this module only drives
`Generator.generate_batch()` with settings that match our decoders and turns its output into our `Decoded`:
greedy is beam_size=1; beam is beam_size=K with all K hypotheses returned, length_penalty as ours and
patience 1. The prompt (ending with END) is forwarded at once (include_prompt_in_result=False) and decoding
stops at END. CTranslate2 takes tokens as strings: the model's vocabulary maps ids to them.

CTranslate2's beam search is its own (it stops a problem once K hypotheses have finished), so the bench
compares best answers, not every beam. ctranslate2 is imported only by the caller that loads a model.
"""
from __future__ import annotations

import time
from typing import Sequence

from ..tokenizer import SEP_ID, VOCAB
from .events import Decoded, Hypothesis
from .options import DecodeOptions


def ct2_kwargs(opts: DecodeOptions) -> dict:
    """The generate_batch() arguments that reproduce our decoder for these options."""
    if opts.decoder not in ("greedy", "beam"):
        raise ValueError(f"the CTranslate2 comparison covers greedy and beam, not {opts.decoder!r}")
    k = opts.width if opts.decoder == "beam" else 1
    return dict(beam_size=k, num_hypotheses=k, length_penalty=opts.length_penalty, patience=1.0,
                max_length=opts.max_new, end_token=VOCAB[SEP_ID], include_prompt_in_result=False,
                return_scores=True, return_end_token=True)


def ct2_decode(generator, vocab: Sequence[str], prompts: Sequence[Sequence[int]], opts: DecodeOptions) -> Decoded:
    """Decode `prompts` (ids ending with SEP) with a ctranslate2.Generator; same result type as ours.

    vocab: the model's token strings (tokenizer.vocab_for(prompt_format)). Scores are CTranslate2's (summed
    log-probs / length ** length_penalty). `steps` is empty and prefill_ms 0: only the total is measured."""
    index = {t: i for i, t in enumerate(vocab)}
    start = [[vocab[int(t)] for t in p] for p in prompts]
    t0 = time.perf_counter()
    results = generator.generate_batch(start, **ct2_kwargs(opts))
    total_ms = (time.perf_counter() - t0) * 1e3
    hyps = []
    for r in results:
        group = []
        for seq, score in zip(r.sequences, r.scores):
            ids = [index[t] for t in seq]
            finished = bool(ids) and ids[-1] == SEP_ID
            group.append(Hypothesis(ids=tuple(ids[:-1] if finished else ids), score=float(score), finished=finished))
        hyps.append(tuple(group))
    return Decoded(hypotheses=tuple(hyps), steps=(), prefill_ms=0.0, total_ms=total_ms)
