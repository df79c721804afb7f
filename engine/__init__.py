"""PolyDecode Lab engine: torch only. demo/ uses only the names exported here.

Layers, each importing only those below it: tokenizer, device, distributed, poly/ -> model, data, prompt,
batches -> decoding/ -> checkpoint, export, profiler, validation -> bench/ -> the command lines (cli, train,
evaluate, decompose, profile, export's main, scaling, bench/__main__).
"""
import warnings

# `python -m engine.data` (and other CLIs this package imports) would otherwise warn that the module was
# imported before it ran; that is expected here and harmless.
warnings.filterwarnings("ignore", message=r".*found in sys.modules after import of package 'engine'",
                        category=RuntimeWarning)
from .tokenizer import PAD_ID, SEP_ID, VOCAB, decode_text, encode, vocab_for
from .device import (machine_info, peak_rss_bytes, pick_device, release_memory, reset_peak_rss, rss_bytes, set_threads,
                     synchronize)
from .poly import (Poly, PolynomialError, Verdict, canonical_inner, classical_decomposition, degree,
                   describe_decomposition, from_prefix, parse_polynomial, variable_name, to_latex, to_prefix, to_unicode, verify)
from .model import GPT, PRESETS, GPTConfig
from .data import ALL_PAIRS, DatasetError, Problem, generate, out_of_domain, read_dataset
from .prompt import ANSWER_ORDERS, PROMPT_FORMATS, answer_ids, prompt_ids
from .decoding import (ATTENTIONS, BEAM_CACHES, CACHE_STRATEGIES, CACHES, CUSTOM, DECODE_PRESETS, DECODERS,
                       DEFAULT_CASCADE, MAX_SAMPLES, MAX_SEED, MAX_WIDTH, OPTION_FIELDS, PRECISIONS, STOP_REASONS,
                       Accept, Answer, Beam, DecodeOptions, Decoded, Hypothesis, Step, best_answer, check_answer,
                       ct2_decode, decode, decode_polynomials, hf_decode, make_cache, options, parse_stages, preset,
                       rank_answers, run_to_completion, solve, verifier)
from .checkpoint import (DEFAULT_CHECKPOINT, CheckpointError, Weights, export_hf, import_seed_checkpoint,
                         load_checkpoint, load_model, load_weights, save_checkpoint, weights_digest)
from .profiler import PHASES, TRACE_SUFFIXES, list_runs, profile_run, read_timeline
from .export import exported_ct2, exported_hf
from .bench import GEN_CASES, SUITES, case_problems, format_table, run_suite
from .cli import add_runtime_args, apply_runtime_args
from .examples import read_examples
from .capability import SETS as CAPABILITY_SETS
from .capability import Capability, capability, decoder_label, pairs_for_degree, read_capability
