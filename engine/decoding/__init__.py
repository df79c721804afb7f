"""Decoding: options and step events, KV-cache strategies, the per-request session, greedy/sample, beam search,
answers (verification of hypotheses) and the Hugging Face generate() bridge.

Inside: options, events <- cache <- session <- greedy, beam <- decode <- answers; hf uses options, events, session.
"""
from .answers import Answer, best_answer, rank_answers, solve
from .cache import CACHE_STRATEGIES, make_cache
from .decode import check_prompts, decode, run_to_completion
from .events import Beam, Decoded, Hypothesis, Step
from .hf import hf_decode
from .options import (ATTENTIONS, BEAM_CACHES, CACHES, CUSTOM, DECODE_PRESETS, DECODERS, MAX_WIDTH, OPTION_FIELDS,
                      DecodeOptions, options, preset)
from .session import left_pad
