"""Benchmark: run the generation, beam, hf, sweep and frontier suites with a progress bar; tables and charts."""
from __future__ import annotations

import functools
import os

import gradio as gr

import engine

from . import figures
from .lab import MODEL_QUEUE, LabConfig, user_errors

MODELS = ("this app's checkpoint", "tiny random weights")
DEFAULT = "suite default"
SUITE_NOTES = {
    "generation": "The seed's generation table: five cases × presets V1, V2, V3, fastest, greedy decoding.",
    "beam": "The seed's beam table: (2,2) problems at widths 5 and 10, no cache vs the seed's way vs ours.",
    "hf": "Ours against transformers generate() on the same weights.",
    "sweep": "When does a KV cache pay? Speedup over no cache across prompt lengths, widths and model sizes "
             "(random weights).",
    "frontier": "Verified accuracy against ms per problem for greedy, beam widths with and without stopping at "
                "the first verified answer, cascades and best-of-N sampling, per degree pair (Pareto chart).",
}


def suite_rows(result: dict) -> tuple[list[str], list[list]]:
    cols = list(result.get("columns", []))
    return cols, [[r.get(c, "") for c in cols] for r in result.get("rows", [])]


def count(value, name: str) -> int | None:
    """A run count from the page: "suite default" -> None, else a whole number."""
    if value is None or str(value).strip() in ("", DEFAULT):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be a whole number or {DEFAULT!r}, got {value!r}") from None


def run_bench(lab: LabConfig, suite: str, smoke: bool, model: str, runs=DEFAULT, warmup=DEFAULT,
              progress=gr.Progress()):
    """One suite through engine.run_suite; the engine reports progress as (fraction, message)."""
    with user_errors("Benchmark"):
        report = lambda fraction, message: progress(fraction, desc=message)  # noqa: E731
        result = engine.run_suite(
            suite, smoke=bool(smoke), runs=count(runs, "timed runs"), warmup=count(warmup, "warm-up runs"),
            checkpoint=lab.checkpoint if model == MODELS[0] else None, preset=None if model == MODELS[0] else "tiny",
            progress=report, out_dir=os.path.join(lab.profile_dir, "bench"))
    cols, rows = suite_rows(result)
    return engine.format_table(result), gr.update(value=rows, headers=cols), figures.bench_figure(result), result


def build(lab: LabConfig | None = None) -> gr.Blocks:
    lab = lab or LabConfig()
    suites = list(engine.SUITES)
    with gr.Blocks(title="Benchmark") as tab:
        gr.Markdown("Run a benchmark suite. *Small settings* (the default) finish in seconds to a minute; "
                    "untick it for the full tables (minutes). Runs are queued one at a time, so concurrent "
                    "users never disturb each other's timings.")
        with gr.Row():
            suite = gr.Radio(suites, value="generation", label="Suite", elem_id="bench-suite")
            smoke = gr.Checkbox(True, label="Small settings", elem_id="bench-smoke")
            model = gr.Radio(list(MODELS), value=MODELS[0], label="Model (sweep always uses random weights)")
        with gr.Row():
            runs = gr.Dropdown([DEFAULT, 1, 2, 3, 5, 10, 20], value=DEFAULT, allow_custom_value=True,
                               label="Timed runs")
            warmup = gr.Dropdown([DEFAULT, 0, 1, 2, 5], value=DEFAULT, allow_custom_value=True, label="Warm-up runs")
        note = gr.Markdown(SUITE_NOTES.get("generation", ""))
        run = gr.Button("Run benchmark", variant="primary", elem_id="bench-run")
        table = gr.Markdown(elem_id="bench-table")
        chart = gr.Plot(figures.bench_figure({}), label="Chart", elem_id="bench-chart")
        with gr.Accordion("Rows as a sortable table", open=False):
            rows = gr.Dataframe(interactive=False, elem_id="bench-rows")
        with gr.Accordion("Result as JSON", open=False):
            raw = gr.JSON()
        suite.change(lambda s: SUITE_NOTES.get(s, ""), suite, note, queue=False, api_visibility="private")
        run.click(functools.partial(run_bench, lab), [suite, smoke, model, runs, warmup],
                  [table, rows, chart, raw], api_name="benchmark", concurrency_id=MODEL_QUEUE,
                  concurrency_limit=1, show_progress_on=[table])
    return tab


if __name__ == "__main__":
    build().queue().launch()
