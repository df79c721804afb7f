"""What every tab shares: the app's settings, the model (loaded once, read-only), engine errors turned
into gr.Error, and the example problems."""
from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
import typing
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import gradio as gr

import engine

from .capability import pair_summary
from .formatting import ascii_poly

log = logging.getLogger(__name__)

# Every handler that runs the model shares this queue, one event at a time: decode timings, profiler
# traces and benchmarks never overlap, so one user's run cannot distort another's numbers.
MODEL_QUEUE = "model"
EXAMPLE_SEED = 2024  # fixes the clickable example problems


@dataclass(frozen=True)
class Limits:
    """What one request may ask of a shared server; README's "Running it for others" lists them."""
    max_runs: int = 20  # timed runs of a benchmark, and per configuration in Compare
    max_warmup: int = 5  # benchmark warm-up runs
    max_configs: int = 6  # configurations (rows) in one Compare
    max_beam_tokens: int = 64 * 120  # width x max_new x polynomials of one decode: the page's widest search
    max_recordings: int = 20  # profiler runs kept in the profile folder (the oldest are deleted)

    def check_decode(self, opts: engine.DecodeOptions, problems: int = 1) -> None:
        """Refuse a decode bigger than max_beam_tokens, saying which knobs to turn. The rows per problem are
        the beams (or samples) of the widest stage: a cascade's stages run one after another."""
        rows = max(stage.beams for stage in opts.stages())
        work = rows * opts.max_new * problems
        if work > self.max_beam_tokens:
            what = f"width {rows} x max new tokens {opts.max_new}"
            what += f" x {problems} polynomials" if problems > 1 else ""
            raise ValueError(f"{what} = {work:,} beam tokens, more than this server's limit of "
                             f"{self.max_beam_tokens:,}: lower the width or max new tokens")


@dataclass(frozen=True)
class LabConfig:
    checkpoint: str = engine.DEFAULT_CHECKPOINT  # checkpoint stem (weights + json)
    profile_dir: str = "profiles"  # where recordings go; TensorBoard reads it
    host: str = "127.0.0.1"  # the address the app binds; a TensorBoard started from the page binds the same
    limits: Limits = Limits()

    def model(self) -> engine.GPT:
        return load_model(self.checkpoint)


_LOAD_LOCK = threading.RLock()  # two first requests must not load the weights twice


@functools.cache
def _load(path: str) -> tuple[engine.GPT, dict]:
    model, meta = engine.load_model(path)
    log.info("loaded %s (%s parameters)", path, f"{model.num_params():,}")
    return model, meta


def load_model(path: str) -> engine.GPT:
    """The model at `path`, loaded on first use and then shared read-only by every session."""
    with _LOAD_LOCK:
        return _load(path)[0]


def display_path(path: str) -> str:
    """A checkpoint path relative to the working directory when it lies inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def model_info(path: str) -> str:
    """One line about the served model: where it came from, its size and how it was trained."""
    model = load_model(path)
    meta = _load(path)[1]
    c = model.config
    line = (f"Model: `{display_path(path)}` · {model.num_params():,} parameters · {c.n_layer} layers, "
            f"{c.n_head} heads, {c.n_embd} wide")
    if meta.get("trained"):
        line += f" · trained {meta.get('steps', '?')} steps ({meta.get('train_minutes', '?')} min)"
        if not meta.get("finished", True):
            line += ", training still in progress when saved"
    else:
        line += " · untrained weights"
    return line


@functools.cache
def _hf(path: str):
    model = load_model(path)
    return engine.exported_hf(model)


def hf_model(path: str):
    """The same weights as the transformers model `python -m engine.export --format hf` writes (loaded back with
    AutoModelForCausalLM), exported on first use and then shared."""
    with _LOAD_LOCK:
        return _hf(path)


@functools.cache
def _ct2(path: str):
    model = load_model(path)
    return engine.exported_ct2(model), engine.vocab_for(model.config.prompt_format)


def ct2_model(path: str):
    """(ctranslate2.Generator, the model's token strings): the same weights converted as `python -m engine.export
    --format ct2` converts them, on first use, then shared."""
    with _LOAD_LOCK:
        return _ct2(path)


@contextmanager
def user_errors(action: str) -> Iterator[None]:
    """Engine ValueErrors (bad polynomial, bad option, checkpoint problems) become a gr.Error the page
    shows; anything else is logged with its traceback and still shown as a message, never a trace."""
    try:
        yield
    except gr.Error:
        raise
    except ValueError as e:
        raise gr.Error(str(e), title=f"{action}: invalid input", print_exception=False) from None
    except Exception as e:
        log.exception("%s failed", action)
        raise gr.Error(f"{type(e).__name__}: {e}", title=f"{action} failed", print_exception=False) from None


def bind(fn: Callable, *bound) -> Callable:
    """functools.partial(fn, *bound) that Gradio can still read: it finds its gr.Request parameter by the
    function's type hints, which it cannot get from a partial (the request silently stayed None), and streams
    only from generator functions. The result has fn's signature and resolved hints, minus the bound
    parameters, and is a generator function when fn is one."""
    if inspect.isgeneratorfunction(fn):
        def call(*args, **kwargs):
            return (yield from fn(*bound, *args, **kwargs))
    else:
        def call(*args, **kwargs):
            return fn(*bound, *args, **kwargs)
    functools.update_wrapper(call, fn)
    del call.__wrapped__
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[len(bound):]
    call.__signature__ = sig.replace(parameters=params)
    names = {p.name for p in params} | {"return"}
    call.__annotations__ = {k: v for k, v in typing.get_type_hints(fn).items() if k in names}
    return call


@functools.cache
def example_problems(checkpoint: str = engine.DEFAULT_CHECKPOINT) -> tuple[tuple[str, str], ...]:
    """(label, polynomial text) per degree pair the model solves: the examples `python -m engine.examples` chose
    for this checkpoint and verified with beam search (re-verified on reading), labelled with the pair's measured
    accuracy. Pairs without a verified example get none: the page never offers an example that fails. With no
    verified example at all (no examples file, untrained weights): three (2,2) problems with small
    coefficients."""
    cap = engine.capability(checkpoint)
    out = []
    for e in engine.read_examples(checkpoint) or []:
        if not e["verified"]:
            continue
        i, j = (int(x) for x in e["pair"].split("_"))
        measured = pair_summary(cap, (i, j))
        out.append((f"deg P = {i}, deg Q = {j}" + (f" · solves {measured}" if measured else ""), ascii_poly(e["f"])))
    if not out:  # no examples file, or nothing verified: (2,2) problems, the easiest pair
        out = [(f"deg P = 2, deg Q = 2 (#{k + 1})", ascii_poly(p.f))
               for k, p in enumerate(engine.generate(2, 2, 3, seed=EXAMPLE_SEED, coeff_range=5))]
    return tuple(out)


def unsolved_pairs(checkpoint: str = engine.DEFAULT_CHECKPOINT) -> list[str]:
    """The degree pairs with no verified example for this checkpoint, as "(3, 3)"."""
    return [f"({e['pair'][0]}, {e['pair'][-1]})" for e in engine.read_examples(checkpoint) or [] if not e["verified"]]
