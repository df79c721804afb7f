"""The decoding options panel shared by the Decompose and Profile tabs, and UI values -> DecodeOptions."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import gradio as gr

import engine

CUSTOM = "custom"
SPEED_FIELDS = ("cache", "beam_cache", "attention")  # what a preset sets in the panel
HIDDEN_FIELDS = ("grad_mode", "rebuild_masks", "one_at_a_time")  # what a preset sets beyond the panel


def preset_names() -> list[str]:
    return [CUSTOM, *engine.DECODE_PRESETS]


def make_options(preset: str, decoder: str, width: float, cache: str, beam_cache: str, attention: str,
                 max_new: float, temperature: float = 1.0, top_k: float = 0, top_p: float = 1.0, seed: float = 0,
                 length_penalty: float = 0.0) -> engine.DecodeOptions:
    """The preset (or the defaults for "custom") with every panel value applied. Raises ValueError."""
    if preset != CUSTOM and preset not in engine.DECODE_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(preset_names())}")
    base = engine.DecodeOptions() if preset == CUSTOM else engine.DECODE_PRESETS[preset]
    return replace(base, decoder=decoder, width=int(width) if decoder == "beam" else 1, cache=cache,
                   beam_cache=beam_cache, attention=attention, max_new=int(max_new), temperature=float(temperature),
                   top_k=int(top_k), top_p=float(top_p), seed=int(seed), length_penalty=float(length_penalty))


def preset_note(preset: str) -> str:
    if preset == CUSTOM or preset not in engine.DECODE_PRESETS:
        return "Custom: every option as set below (no-grad mode off, masks allocated once)."
    opts = asdict(engine.DECODE_PRESETS[preset])
    hidden = ", ".join(f"{k}={opts[k]}" for k in HIDDEN_FIELDS)
    return f"{preset} sets {', '.join(f'{k}={opts[k]}' for k in SPEED_FIELDS)} and {hidden}."


@dataclass
class OptionControls:
    preset: gr.Dropdown
    note: gr.Markdown
    decoder: gr.Radio
    width: gr.Slider
    cache: gr.Dropdown
    beam_cache: gr.Dropdown
    attention: gr.Dropdown
    max_new: gr.Slider
    temperature: gr.Slider
    top_k: gr.Slider
    top_p: gr.Slider
    seed: gr.Number
    length_penalty: gr.Slider

    @property
    def inputs(self) -> list[gr.components.Component]:
        """In make_options' argument order."""
        return [self.preset, self.decoder, self.width, self.cache, self.beam_cache, self.attention, self.max_new,
                self.temperature, self.top_k, self.top_p, self.seed, self.length_penalty]


def _on_preset(preset: str):
    note = preset_note(preset)
    if preset == CUSTOM or preset not in engine.DECODE_PRESETS:
        return note, gr.skip(), gr.skip(), gr.skip()
    opts = engine.DECODE_PRESETS[preset]
    return note, opts.cache, opts.beam_cache, opts.attention


def _on_decoder(decoder: str):
    beam, sample = decoder == "beam", decoder == "sample"
    return (gr.update(visible=beam), gr.update(visible=beam), gr.update(visible=beam), gr.update(visible=sample))


def option_controls(prefix: str, preset: str = "fastest", decoder: str = "beam", width: int = 10) -> OptionControls:
    """Build the panel in the current Blocks context; `prefix` keeps element ids unique per tab."""
    start = engine.DECODE_PRESETS.get(preset, engine.DecodeOptions())
    with gr.Group():
        p = gr.Dropdown(preset_names(), value=preset, label="Preset", elem_id=f"{prefix}-preset",
                        info="the seed's versions V1, V2, V3, or the fastest combination")
        note = gr.Markdown(preset_note(preset))
        dec = gr.Radio(list(engine.DECODERS), value=decoder, label="Decoder", elem_id=f"{prefix}-decoder")
        w = gr.Slider(1, engine.MAX_WIDTH, value=width, step=1, label="Beam width", elem_id=f"{prefix}-width",
                      visible=decoder == "beam")
        cache = gr.Dropdown(list(engine.CACHES), value=start.cache, label="KV cache", elem_id=f"{prefix}-cache")
        beam_cache = gr.Dropdown(list(engine.BEAM_CACHES), value=start.beam_cache, label="Beam cache handling",
                                 elem_id=f"{prefix}-beam-cache", visible=decoder == "beam")
        attention = gr.Dropdown(list(engine.ATTENTIONS), value=start.attention, label="Attention backend",
                                elem_id=f"{prefix}-attention")
        max_new = gr.Slider(1, 120, value=start.max_new, step=1, label="Max new tokens", elem_id=f"{prefix}-max-new")
        length_penalty = gr.Slider(0.0, 2.0, value=0.0, step=0.1, label="Length penalty (beam ranking)",
                                   visible=decoder == "beam")
    with gr.Accordion("Sampling", open=decoder == "sample", visible=decoder == "sample") as sampling:
        temperature = gr.Slider(0.05, 3.0, value=1.0, step=0.05, label="Temperature")
        top_k = gr.Slider(0, len(engine.VOCAB), value=0, step=1, label="Top-k (0 = off)")
        top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p (1 = off)")
        seed = gr.Number(0, precision=0, label="Seed")
    p.change(_on_preset, p, [note, cache, beam_cache, attention], queue=False, api_visibility="private")
    dec.change(_on_decoder, dec, [w, beam_cache, length_penalty, sampling], queue=False, api_visibility="private")
    return OptionControls(p, note, dec, w, cache, beam_cache, attention, max_new, temperature, top_k, top_p, seed,
                          length_penalty)
