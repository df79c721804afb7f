"""Decoding: options and step events, KV-cache strategies, the per-request session, greedy/sample, beam search,
cascades, answers (verification of hypotheses, the acceptance check) and the Hugging Face generate() and
CTranslate2 bridges.

Inside: options, events <- cache, precision <- fused, session <- greedy, beam <- cascade <- decode <- answers; hf and
ct2 use options and events (hf also session).
"""
from .answers import Answer, best_answer, check_answer, decode_polynomials, rank_answers, solve, verifier
from .cache import CACHE_STRATEGIES, make_cache
from .decode import check_prompts, decode, run_to_completion
from .events import STOP_REASONS, Accept, Beam, Decoded, Hypothesis, Step
from .ct2 import ct2_decode
from .hf import hf_decode
from .options import (ATTENTIONS, BEAM_CACHES, CACHES, CUSTOM, DECODE_PRESETS, DECODERS, DEFAULT_CASCADE, LINEARS,
                      MAX_SAMPLES, MAX_SEED, MAX_WIDTH, OPTION_FIELDS, PRECISIONS, STEPS, DecodeOptions, options, parse_stages,
                      preset)
from . import fused
from .precision import model_at
from .session import left_pad
