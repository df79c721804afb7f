"""Decode options: one frozen dataclass, the named presets, and the one way to build options from a preset
plus overrides (used by every command line, tab and tool).

    options("fastest", decoder="greedy")          # width 1: only beam search keeps several hypotheses
    options("V1", decoder="beam", width=5, seed=None)   # None means "not given": the preset's value stays
    options("custom", cache="concat")             # "custom" starts from the DecodeOptions defaults
    options(decoder="beam", stop_on_verified=True)  # stop a problem at its first accepted answer
    options("fastest", linear="packed")           # fastest with MKL's GEMM instead of its AVX2 tiles
    options(decoder="cascade", cascade="greedy > beam 10 > beam 64")
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace

DECODERS = ("greedy", "sample", "beam", "cascade")
CACHES = ("none", "concat", "static")
BEAM_CACHES = ("clone", "gather", "shared-prefix")
ATTENTIONS = ("math", "sdpa")
GRAD_MODES = ("no_grad", "inference")
PRECISIONS = ("fp32", "bf16", "int8-dynamic")  # decoding/precision.py; only fp32 is checked for identical outputs
COMPILES = ("off", "inductor")  # decoding/compiled.py: the decode step through torch.compile
LINEARS = ("aten", "packed", "tiled")  # decoding/precision.py: F.linear, or weights prepared for the CPU's kernels
STEPS = ("modules", "fused", "native")  # decoding/fused.py: through the nn.Modules, in one C++ call, + C++ attention
MAX_WIDTH = 64
MAX_SAMPLES = 64
MAX_STAGES = 6
MAX_ALTERNATIVES = 8  # the beam tree shows a few losing tokens per step; more is noise
DEFAULT_CASCADE = "greedy > beam 10 > beam 64"
_STAGE = re.compile(r"(greedy)|(beam|sample)\s*(\d+)")
MAX_SEED = 2 ** 63 - 1  # torch.Generator seeds are 64-bit
CUSTOM = "custom"  # the preset name that starts from the DecodeOptions defaults


@dataclass(frozen=True)
class DecodeOptions:
    decoder: str = "beam"          # greedy | sample | beam | cascade
    width: int = 10                # beams per problem (beam only; greedy/sample use 1)
    samples: int = 1               # sample only: rows per problem in one batch (best of N)
    stop_on_verified: bool = False  # a problem stops at its first accepted finished answer (greedy: only marked)
    cascade: str = DEFAULT_CASCADE  # cascade only: stages run in turn, each on the problems not yet accepted
    cache: str = "static"          # none | concat | static
    beam_cache: str = "gather"     # clone | gather | shared-prefix
    attention: str = "sdpa"        # math | sdpa
    max_new: int = 40              # most tokens generated per problem, END included
    temperature: float = 1.0       # sample only
    top_k: int = 0                 # sample only; 0 = off
    top_p: float = 1.0             # sample only; 1.0 = off
    seed: int = 0                  # sample only; drives an explicit torch.Generator
    length_penalty: float = 0.0    # beam ranking: score / len(ids) ** length_penalty
    grad_mode: str = "inference"   # "no_grad" (V1, V2) or "inference" (V3, fastest)
    rebuild_masks: bool = False    # True (V1, V2): masks rebuilt every step; False: allocated once
    one_at_a_time: bool = False    # True: the seed's beam loop, one forward per beam (bench baseline)
    alternatives: int = 0          # top tokens of the distribution each Beam was drawn from, kept in it (0: none)
    precision: str = "fp32"        # fp32 | bf16 | int8-dynamic: the last two MAY CHANGE OUTPUTS (agreement measured)
    compile: str = "off"           # off | inductor: the decode step compiled (static cache, gather or clone only)
    linear: str = "aten"           # aten | packed | tiled: weights transposed / oneDNN-packed / AVX2 tiles (exact)
    step: str = "modules"          # modules | fused | native: a decode step in one C++ call (native: its attention too)

    def __post_init__(self):
        for name, choices in (("decoder", DECODERS), ("cache", CACHES), ("beam_cache", BEAM_CACHES),
                              ("attention", ATTENTIONS), ("grad_mode", GRAD_MODES), ("precision", PRECISIONS),
                              ("compile", COMPILES), ("linear", LINEARS), ("step", STEPS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose from {', '.join(choices)}")
        if not 1 <= self.width <= MAX_WIDTH:
            raise ValueError(f"width must be between 1 and {MAX_WIDTH}, got {self.width}")
        if not 1 <= self.samples <= MAX_SAMPLES:
            raise ValueError(f"samples must be between 1 and {MAX_SAMPLES}, got {self.samples}")
        if self.samples > 1 and self.decoder != "sample":
            raise ValueError(f"samples={self.samples}: more than one sample per problem needs the sample decoder")
        parse_stages(self.cascade)
        if self.max_new < 1:
            raise ValueError(f"max_new must be >= 1, got {self.max_new}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be between 0 and 2**63 - 1, got {self.seed}")
        if not 0 <= self.alternatives <= MAX_ALTERNATIVES:
            raise ValueError(f"alternatives must be between 0 and {MAX_ALTERNATIVES}, got {self.alternatives}")
        if not math.isfinite(self.length_penalty):
            raise ValueError(f"length_penalty must be a finite number, got {self.length_penalty}")
        if self.compile != "off":
            self._check_compile()
        if self.step != "modules":
            self._check_fused()

    def _check_fused(self) -> None:
        """step=fused (and native) runs one C++ function per decode step on the static cache's buffers
        (decoding/fused.py)."""
        if self.cache != "static":
            raise ValueError(f"step={self.step} runs on the static KV cache, not cache={self.cache}")
        if self.compile != "off":
            raise ValueError(f"step={self.step} is its own compiled step: set compile=off, not {self.compile}")
        if self.one_at_a_time:
            raise ValueError(f"step={self.step} runs the batched loop (one_at_a_time off)")
        if self.precision == "int8-dynamic":
            raise ValueError(f"step={self.step} runs float weights (fp32 or bf16), not int8-dynamic's quantized layers")

    def _check_compile(self) -> None:
        """compile runs one fixed-shape step (GPT.decode_step) on the static cache's buffers."""
        if self.cache != "static":
            raise ValueError(f"compile={self.compile} runs on the static KV cache, not cache={self.cache}")
        if self.beam_cache == "shared-prefix" and self.decoder in ("beam", "cascade"):
            raise ValueError(f"compile={self.compile} follows beams with gather or clone, not shared-prefix")
        if self.one_at_a_time or self.rebuild_masks:
            raise ValueError(f"compile={self.compile} needs the batched loop with masks built once "
                             f"(one_at_a_time and rebuild_masks off)")
        if self.precision != "fp32":
            raise ValueError(f"compile={self.compile} runs in fp32, not precision={self.precision}")
        if self.linear != "aten":
            raise ValueError(f"compile={self.compile} picks its own kernels for the model's linears: set linear=aten, "
                             f"not {self.linear}")

    @property
    def beams(self) -> int:
        """Rows per problem: the width for beam search, the samples for sampling, 1 for greedy (and a cascade,
        whose stages set their own)."""
        return self.width if self.decoder == "beam" else self.samples if self.decoder == "sample" else 1

    @property
    def exact(self) -> bool:
        """True when the outputs are those of every other exact option (float32); bf16 and int8-dynamic may
        change them."""
        return self.precision == "fp32"

    @property
    def needs_accept(self) -> bool:
        """True when decoding consults the acceptance check: stop_on_verified or a cascade."""
        return self.decoder == "cascade" or self.stop_on_verified

    def stages(self) -> tuple["DecodeOptions", ...]:
        """A cascade's stages as options (every other field as here); any other decoder is its own one stage."""
        if self.decoder != "cascade":
            return (self,)
        return tuple(replace(self, decoder=d, width=n if d == "beam" else 1, samples=n if d == "sample" else 1)
                     for d, n in parse_stages(self.cascade))


def parse_stages(text: str) -> tuple[tuple[str, int], ...]:
    """"greedy > beam 10 > beam 64" -> (("greedy", 1), ("beam", 10), ("beam", 64)). Stages are separated by
    ">" (or ","); each is greedy, beam K or sample N. Raises ValueError naming the bad stage."""
    parts = [p.strip() for p in re.split(r"->|>|,", text or "")]
    if not any(parts):
        raise ValueError("a cascade needs at least one stage, e.g. 'greedy > beam 10 > beam 64'")
    if len(parts) > MAX_STAGES:
        raise ValueError(f"a cascade has at most {MAX_STAGES} stages, got {len(parts)}")
    out = []
    for p in parts:
        m = _STAGE.fullmatch(p.lower())
        if not m:
            raise ValueError(f"cascade stage {p!r}: write greedy, beam K or sample N (stages separated by '>')")
        if m[1]:
            out.append(("greedy", 1))
            continue
        n, most = int(m[3]), MAX_WIDTH if m[2] == "beam" else MAX_SAMPLES
        if not 1 <= n <= most:
            raise ValueError(f"cascade stage {p!r}: {m[2]} takes 1 to {most}, got {n}")
        out.append((m[2], n))
    return tuple(out)


OPTION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(DecodeOptions))

DECODE_PRESETS: dict[str, DecodeOptions] = {
    # The seed's versions: V1 recomputes everything, V2 adds a growing cache, V3 preallocates. The seed's V3 was
    # V2 with the per-step overhead cut (masks built once, inference_mode, nothing rebuilt per step); ours cuts the
    # rest of it too: its linears run on weights laid out for the CPU's kernels ("tiled": "packed" or F.linear
    # where the CPU or device has no use for it) and a step's ATen operations, the same ones in the same order as
    # the nn.Modules, run in one C++ call (step "fused", the module path where the extension cannot be built).
    # Both are exact; "fastest" adds what changes the algorithm: the shared prompt and the native attention.
    "V1": DecodeOptions(cache="none", beam_cache="clone", attention="math", grad_mode="no_grad", rebuild_masks=True),
    "V2": DecodeOptions(cache="concat", beam_cache="clone", attention="math", grad_mode="no_grad",
                        rebuild_masks=True),
    "V3": DecodeOptions(cache="static", beam_cache="gather", attention="sdpa", grad_mode="inference", linear="tiled",
                        step="fused"),
    "fastest": DecodeOptions(cache="static", beam_cache="shared-prefix", attention="sdpa", grad_mode="inference",
                             linear="tiled", step="native"),
}


def _fit_step(base: DecodeOptions, given: dict) -> dict:
    """`given` with step="modules" added where the fused step cannot run (a cache other than static, compile, the
    seed's loop, int8-dynamic) and step is not given itself."""
    merged = {name: given.get(name, getattr(base, name)) for name in ("cache", "compile", "one_at_a_time", "precision")}
    if (merged["cache"] != "static" or merged["compile"] != "off" or merged["one_at_a_time"]
            or merged["precision"] == "int8-dynamic"):
        given = {"step": "modules", **given}
    return given


def preset(name: str, **overrides) -> DecodeOptions:
    """A named preset with some fields replaced as given (no width rule, None is a value; the fused step gives
    way as in options()): for tools that set every field they mean. Command lines and tabs use options()."""
    if name not in DECODE_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(DECODE_PRESETS)}")
    base = DECODE_PRESETS[name]
    return replace(base, **_fit_step(base, overrides))


def options(preset_name: str = "fastest", /, **overrides) -> DecodeOptions:
    """The preset (the DecodeOptions defaults for "custom") with every override that is not None applied.

    Only beam search keeps several beams and only sampling draws several samples: the width is 1 unless
    the decoder is beam, the samples 1 unless it is sample, whatever was asked. A compiled step picks its own
    kernels: compile="inductor" sets linear="aten" unless linear is given too. The fused step runs only where it
    can: a cache other than static, compile, the seed's loop or int8-dynamic set step="modules" unless step is
    given too. Unknown presets, unknown fields and bad values raise ValueError."""
    if preset_name != CUSTOM and preset_name not in DECODE_PRESETS:
        raise ValueError(f"unknown preset {preset_name!r}; choose from {', '.join([CUSTOM, *DECODE_PRESETS])}")
    unknown = sorted(set(overrides) - set(OPTION_FIELDS))
    if unknown:
        raise ValueError(f"unknown decode option {unknown[0]!r}; the options are {', '.join(OPTION_FIELDS)}")
    base = DecodeOptions() if preset_name == CUSTOM else DECODE_PRESETS[preset_name]
    given = {k: v for k, v in overrides.items() if v is not None}
    decoder = given.get("decoder", base.decoder)
    if decoder != "beam":
        given["width"] = 1
    if decoder != "sample":
        given["samples"] = 1
    if given.get("compile", "off") != "off":
        given.setdefault("linear", "aten")
    return replace(base, **_fit_step(base, given))
