"""Decoding: options and step events, KV-cache strategies, the per-request session, greedy/sample, beam search,
cascades, answers (verification of hypotheses, the acceptance check) and the Hugging Face generate() bridge.

Inside: options, events <- cache <- session <- greedy, beam <- cascade <- decode <- answers; hf uses options,
events, session.
"""
from .answers import Answer, best_answer, check_answer, decode_polynomials, rank_answers, solve, verifier
from .cache import CACHE_STRATEGIES, make_cache
from .decode import check_prompts, decode, run_to_completion
from .events import STOP_REASONS, Accept, Beam, Decoded, Hypothesis, Step
from .hf import hf_decode
from .options import (ATTENTIONS, BEAM_CACHES, CACHES, CUSTOM, DECODE_PRESETS, DECODERS, DEFAULT_CASCADE, MAX_SAMPLES,
                      MAX_SEED, MAX_WIDTH, OPTION_FIELDS, DecodeOptions, options, parse_stages, preset)
from .session import left_pad
