"""PolyDecode Lab engine: torch only. demo/ uses only the names exported here."""
import warnings

# `python -m engine.data` (and other CLIs this package imports) would otherwise warn that the module was
# imported before it ran; that is expected here and harmless.
warnings.filterwarnings("ignore", message=r".*found in sys.modules after import of package 'engine'",
                        category=RuntimeWarning)
from .decoding.cache import CACHE_STRATEGIES, make_cache
from .checkpoint import (DEFAULT_CHECKPOINT, CheckpointError, export_hf, import_seed_checkpoint, load_checkpoint,
                         load_model, save_checkpoint)
from .device import pick_device, set_threads, synchronize
from .data import ALL_PAIRS, Problem, generate, read_dataset
from .decoding.decode import (ATTENTIONS, BEAM_CACHES, CACHES, DECODE_PRESETS, DECODERS, MAX_WIDTH, Answer, Beam,
                     DecodeOptions, Decoded, Hypothesis, Step, best_answer, decode, preset, rank_answers,
                     run_to_completion, solve)
from .model import GPT, PRESETS, GPTConfig
from .prompt import PROMPT_FORMATS, prompt_ids
from .poly.core import (Poly, PolynomialError, Verdict, canonical_inner, degree, from_prefix, to_latex, to_prefix,
                         to_unicode, verify)
from .tokenizer import PAD_ID, SEP_ID, VOCAB, decode_text, encode
from .data import DatasetError, out_of_domain
from .poly.classical import classical_decomposition, describe_decomposition
from .poly.parse import parse_polynomial
from .bench.runner import SUITES, format_table, run_suite
from .bench.suites import GEN_CASES, case_problems
from .decoding.hf import hf_decode
from .profiler import PHASES, list_runs, profile_run
