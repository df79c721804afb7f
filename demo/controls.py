"""The decoding options panel shared by the Decompose and Profile tabs, and panel values -> DecodeOptions.

The panel holds a preset picker and one control per DecodeOptions field a user may set (PANEL_FIELDS); the
handlers receive them by name (`inputs_kwargs`), so no argument order is assumed anywhere.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import gradio as gr

import engine

CUSTOM = engine.CUSTOM
SPEED_FIELDS = ("cache", "beam_cache", "attention")  # what a preset sets in the panel
HIDDEN_FIELDS = ("grad_mode", "rebuild_masks", "one_at_a_time", "linear", "step")  # what a preset sets beyond the panel
VIEW_FIELDS = ("alternatives",)  # what a tab sets for its own views (the beam tree's hover), never a user
# Options that may change outputs are offered where their agreement with float32 is measured: the Compare tab.
COMPARE_FIELDS = ("precision", "compile")  # and the kernels (linear, step), which presets also set
PANEL_FIELDS: tuple[str, ...] = tuple(f for f in engine.OPTION_FIELDS
                                      if f not in HIDDEN_FIELDS + VIEW_FIELDS + COMPARE_FIELDS)
PANEL: tuple[str, ...] = ("preset", *PANEL_FIELDS)  # the handlers' keyword parameters
_TYPES = {f.name: {"int": int, "float": float, "str": str, "bool": bool}[str(f.type)]
          for f in fields(engine.DecodeOptions)}
MAX_NEW = 120  # the slider's end; the model's block size may allow more, the server's limits do not
# Every panel value is checked here as the page or an API client sent it (the events skip Gradio's own
# preprocessing): the page's choices, and ranges that a slider cannot leave but a client can.
CHOICES = {"decoder": engine.DECODERS, "cache": engine.CACHES, "beam_cache": engine.BEAM_CACHES,
           "attention": engine.ATTENTIONS}
RANGES = {"width": (1, engine.MAX_WIDTH), "samples": (1, engine.MAX_SAMPLES), "max_new": (1, MAX_NEW),
          "top_k": (0, 1 << 20), "seed": (0, engine.MAX_SEED), "temperature": (1e-3, 100.0), "top_p": (1e-6, 1.0),
          "length_penalty": (-10.0, 10.0)}
LABELS = {"max_new": "max new tokens", "top_k": "top-k", "top_p": "top-p", "cache": "KV cache",
          "beam_cache": "beam cache handling", "length_penalty": "length penalty",
          "stop_on_verified": "stop at the first verified answer", "cascade": "cascade stages"}


def whole(value, name: str, least: int, most: int) -> int:
    """A whole number from the page or an API client (10, 10.0, "10") in [least, most]. Anything else (NaN,
    2.5, "ten", True, 2**70) is a ValueError that names the field and the range."""
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        number = value if isinstance(value, int) else float(str(value).strip())
        if not isinstance(number, int):
            if not math.isfinite(number) or number != int(number):
                raise ValueError
            number = int(number)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number from {least} to {most}, got {value!r}") from None
    if not least <= number <= most:
        raise ValueError(f"{name} must be from {least} to {most}, got {number}")
    return number


def real(value, name: str, least: float, most: float) -> float:
    """A finite number in [least, most] from the page or an API client; a ValueError naming the field."""
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be a number from {least:g} to {most:g}, got {value!r}") from None
    if not least <= number <= most:  # False for NaN too
        raise ValueError(f"{name} must be from {least:g} to {most:g}, got {value!r}")
    return number


def choice(value, name: str, choices) -> str:
    """One of `choices` (the page's dropdowns and radios), else a ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")
    return value


def preset_names() -> list[str]:
    return [CUSTOM, *engine.DECODE_PRESETS]


def panel_value(name: str, value):
    """One panel value, checked and converted to its field's type (sliders send floats, clients anything)."""
    if value is None:
        return None
    label = LABELS.get(name, name)
    if name in CHOICES:
        return choice(value, label, CHOICES[name])
    if _TYPES[name] is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{label} must be true or false, got {value!r}")
        return value
    if _TYPES[name] is str:  # free text (the cascade's stages): its own parser names what is wrong
        if not isinstance(value, str):
            raise ValueError(f"{label} must be text, got {value!r}")
        return value
    least, most = RANGES[name]
    return whole(value, label, least, most) if _TYPES[name] is int else real(value, label, least, most)


def panel_options(preset: str = "fastest", **values) -> engine.DecodeOptions:
    """The preset (the defaults for "custom") with every panel value applied, each checked and converted by
    panel_value. Raises ValueError naming the field for unknown presets, fields and bad values."""
    unknown = sorted(set(values) - set(PANEL_FIELDS))
    if unknown:
        raise ValueError(f"the options panel has no field {unknown[0]!r}")
    preset = choice(preset, "preset", preset_names())
    return engine.options(preset, **{k: panel_value(k, v) for k, v in values.items()})


def preset_note(preset: str) -> str:
    if preset == CUSTOM or preset not in engine.DECODE_PRESETS:
        return "Custom: every option as set below (no-grad mode off, masks allocated once)."
    opts = asdict(engine.DECODE_PRESETS[preset])
    hidden = ", ".join(f"{k}={opts[k]}" for k in HIDDEN_FIELDS)
    return f"{preset} sets {', '.join(f'{k}={opts[k]}' for k in SPEED_FIELDS)} and {hidden}."


@dataclass(frozen=True)
class OptionControls:
    by_name: dict[str, gr.components.Component]  # PANEL name -> its control: a handler's inputs_kwargs
    note: gr.Markdown


def preset_label(preset: str, cache: str, beam_cache: str, attention: str) -> str:
    """The preset's note, saying "V1, modified" (and what differs) once a speed option no longer matches it."""
    opts = engine.DECODE_PRESETS.get(preset)
    if preset == CUSTOM or opts is None:
        return preset_note(preset)
    now = {"cache": cache, "beam_cache": beam_cache, "attention": attention}
    changed = [f"{k}={v} (preset: {getattr(opts, k)})" for k, v in now.items() if v != getattr(opts, k)]
    if not changed:
        return preset_note(preset)
    return f"**{preset}, modified:** {', '.join(changed)}; the rest as {preset} sets it."


def _on_preset(preset: str):
    note = preset_note(preset)
    if preset == CUSTOM or preset not in engine.DECODE_PRESETS:
        return note, gr.skip(), gr.skip(), gr.skip()
    opts = engine.DECODE_PRESETS[preset]
    return note, opts.cache, opts.beam_cache, opts.attention


def _on_cache(cache: str):
    """Beam cache handling moves cache rows between beams: with no cache there is nothing to move."""
    return gr.update(interactive=cache != "none",
                     info="no effect without a KV cache" if cache == "none" else "how beams' cache rows follow them")


CASCADES = (engine.DEFAULT_CASCADE, "greedy > beam 4 > beam 16 > beam 64", "greedy > sample 16 > beam 64")


def _on_decoder(decoder: str):
    beam, sample, cascade = decoder == "beam", decoder == "sample", decoder == "cascade"
    return (gr.update(visible=beam), gr.update(visible=beam or cascade), gr.update(visible=beam or cascade),
            gr.update(visible=sample or cascade, open=sample), gr.update(visible=beam or sample or cascade),
            gr.update(visible=cascade))


def option_controls(prefix: str, preset: str = "fastest", decoder: str = "beam", width: int = 10) -> OptionControls:
    """Build the panel in the current Blocks context; `prefix` keeps element ids unique per tab."""
    start = engine.DECODE_PRESETS.get(preset, engine.DecodeOptions())
    c: dict[str, gr.components.Component] = {}
    with gr.Group():
        c["preset"] = gr.Dropdown(preset_names(), value=preset, label="Preset", elem_id=f"{prefix}-preset",
                                  info="V1, V2: the seed's versions; V3: the seed's V3 with our fused step; fastest")
        note = gr.Markdown(preset_note(preset))
        c["decoder"] = gr.Radio(list(engine.DECODERS), value=decoder, label="Decoder", elem_id=f"{prefix}-decoder")
        c["width"] = gr.Slider(1, engine.MAX_WIDTH, value=width, step=1, label="Beam width",
                               elem_id=f"{prefix}-width", visible=decoder == "beam")
        c["cascade"] = gr.Dropdown(list(CASCADES), value=start.cascade, allow_custom_value=True,
                                   label="Cascade stages", elem_id=f"{prefix}-cascade", visible=decoder == "cascade",
                                   info="each stage decodes only the problems no earlier stage verified")
        c["stop_on_verified"] = gr.Checkbox(start.stop_on_verified, label="Stop at the first verified answer",
                                            elem_id=f"{prefix}-stop-verified", visible=decoder != "greedy")
        c["cache"] = gr.Dropdown(list(engine.CACHES), value=start.cache, label="KV cache", elem_id=f"{prefix}-cache")
        c["beam_cache"] = gr.Dropdown(list(engine.BEAM_CACHES), value=start.beam_cache, label="Beam cache handling",
                                      elem_id=f"{prefix}-beam-cache", visible=decoder == "beam",
                                      interactive=start.cache != "none")
        c["attention"] = gr.Dropdown(list(engine.ATTENTIONS), value=start.attention, label="Attention backend",
                                     elem_id=f"{prefix}-attention")
        c["max_new"] = gr.Slider(1, MAX_NEW, value=start.max_new, step=1, label="Max new tokens",
                                 elem_id=f"{prefix}-max-new")
        c["length_penalty"] = gr.Slider(0.0, 2.0, value=start.length_penalty, step=0.1,
                                        label="Length penalty (beam ranking)", visible=decoder == "beam")
    with gr.Accordion("Sampling", open=decoder == "sample", visible=decoder == "sample") as sampling:
        c["temperature"] = gr.Slider(0.05, 3.0, value=start.temperature, step=0.05, label="Temperature")
        c["top_k"] = gr.Slider(0, len(engine.VOCAB), value=start.top_k, step=1, label="Top-k (0 = off)")
        c["top_p"] = gr.Slider(0.05, 1.0, value=start.top_p, step=0.05, label="Top-p (1 = off)")
        c["samples"] = gr.Slider(1, engine.MAX_SAMPLES, value=start.samples, step=1,
                                 label="Samples per problem (best verified of N)", elem_id=f"{prefix}-samples")
        c["seed"] = gr.Number(start.seed, precision=0, label="Seed")
    c["preset"].change(_on_preset, c["preset"], [note, c["cache"], c["beam_cache"], c["attention"]], queue=False,
                       api_visibility="private")
    speed = [c["preset"], c["cache"], c["beam_cache"], c["attention"]]
    for name in SPEED_FIELDS:
        c[name].change(preset_label, speed, note, queue=False, show_progress="hidden", api_visibility="private")
    c["cache"].change(_on_cache, c["cache"], c["beam_cache"], queue=False, show_progress="hidden",
                      api_visibility="private")
    c["decoder"].change(_on_decoder, c["decoder"], [c["width"], c["beam_cache"], c["length_penalty"], sampling,
                                                    c["stop_on_verified"], c["cascade"]],
                        queue=False, api_visibility="private")
    return OptionControls({name: c[name] for name in PANEL}, note)
