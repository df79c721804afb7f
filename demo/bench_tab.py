"""Benchmark: run the generation, beam, hf, sweep and frontier suites with a progress bar; tables and charts."""
from __future__ import annotations

import os
import re
import time

import gradio as gr

import engine

from . import figures, jobs
from .controls import choice, whole
from .lab import LabConfig, MODEL_QUEUE, bind, user_errors

MODELS = ("this app's checkpoint", "tiny random weights")
DEFAULT = "suite default"
ACTION = "Benchmark"
TAB = "benchmark"
IDLE = ("Ready: press **Run benchmark**. Progress, the time so far and an estimate of the time left show here; "
        "**Stop** ends a run.")
SMOKE_WARNING = ("> ⚠ **Small settings:** few problems, one timed run and little or no warm-up, so these figures "
                 "are noisy and may contradict each other (or the README). Untick *Small settings* for the full "
                 "tables.")
SUITE_NOTES = {
    "generation": "The seed's generation table: five cases × presets V1, V2, V3, fastest, greedy decoding.",
    "beam": "The seed's beam table: (2,2) problems at widths 5 and 10, no cache vs the seed's way vs ours.",
    "hf": "Ours against transformers generate() on the same weights.",
    "sweep": "When does a KV cache pay? Speedup over no cache across prompt lengths, widths and model sizes "
             "(random weights).",
    "frontier": "Verified accuracy against ms per problem for greedy, beam widths with and without stopping at "
                "the first verified answer, cascades and best-of-N sampling, per degree pair (Pareto chart).",
}


def markdown_text(text: str) -> str:
    """Escape < and > outside code spans: the page's HTML sanitizer would eat `x_<cache>` as a tag."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(p if p.startswith("`") else p.replace("<", "&lt;").replace(">", "&gt;") for p in parts)


def suite_rows(result: dict) -> tuple[list[str], list[list]]:
    cols = list(result.get("columns", []))
    return cols, [[r.get(c, "") for c in cols] for r in result.get("rows", [])]


def count(value, name: str, least: int, most: int) -> int | None:
    """A run count from the page: "suite default" -> None, else a whole number in [least, most]."""
    if value is None or str(value).strip() in ("", DEFAULT):
        return None
    try:
        return whole(value, name, least, most)
    except ValueError as e:
        raise ValueError(f"{e} (or {DEFAULT!r})") from None


def run_bench(lab: LabConfig, suite: str, smoke: bool, model: str, runs=DEFAULT, warmup=DEFAULT,
              request: gr.Request = None):
    """One suite through engine.run_suite in a cancellable job; the engine reports (fraction, message).
    Yields (table, rows, chart, JSON, progress line): the previous result is cleared at once, then the
    progress line shows the suite's progress, the time so far and the time left."""
    skip = gr.skip()
    t0 = time.monotonic()
    yield "", gr.update(value=None), figures.bench_figure({}), None, jobs.running_line(ACTION, None, 0.0)
    with user_errors("Benchmark"):
        try:
            suite = choice(suite, "suite", engine.SUITES)
            model = choice(model, "model", MODELS)
            if not isinstance(smoke, bool):
                raise ValueError(f"small settings must be true or false, got {smoke!r}")
            limits = lab.limits
            n_runs = count(runs, "timed runs", 1, limits.max_runs)
            n_warmup = count(warmup, "warm-up runs", 0, limits.max_warmup)
        except ValueError as e:
            yield (skip,) * 4 + (jobs.rejected_line(ACTION, e),)
            raise
        trained = model == MODELS[0]

        def work(check, report):
            return engine.run_suite(suite, smoke=smoke, runs=n_runs, warmup=n_warmup,
                                    checkpoint=lab.checkpoint if trained else None, preset=None if trained else "tiny",
                                    progress=report, check=check, out_dir=os.path.join(lab.profile_dir, "bench"))

        try:
            result = yield from jobs.run(f"{ACTION} {suite}", work, status=lambda line: (skip,) * 4 + (line,),
                                         stop_key=jobs.session_key(request, TAB))
        except jobs.Stopped:
            return
    cols, rows = suite_rows(result)
    table = markdown_text(engine.format_table(result))
    if smoke:
        table = SMOKE_WARNING + "\n\n" + table
    yield (table, gr.update(value=rows, headers=cols), figures.bench_figure(result), result,
           jobs.done_line(f"{ACTION} {suite}", time.monotonic() - t0))


def build(lab: LabConfig | None = None) -> gr.Blocks:
    lab = lab or LabConfig()
    suites = list(engine.SUITES)
    with gr.Blocks(title="Benchmark") as tab:
        gr.Markdown("Run a benchmark suite. *Small settings* (the default) finish in seconds to a minute; "
                    "untick it for the full tables (minutes). Runs are queued one at a time, so concurrent "
                    "users never disturb each other's timings; **Stop** ends a run within a second or two.")
        with gr.Row():
            suite = gr.Radio(suites, value="generation", label="Suite", elem_id="bench-suite")
            smoke = gr.Checkbox(True, label="Small settings", elem_id="bench-smoke")
            model = gr.Radio(list(MODELS), value=MODELS[0], label="Model (sweep always uses random weights)")
        with gr.Row():
            limits = lab.limits
            runs = gr.Dropdown([DEFAULT, *(n for n in (1, 2, 3, 5, 10, 20) if n <= limits.max_runs)], value=DEFAULT,
                               allow_custom_value=True, label=f"Timed runs (at most {limits.max_runs})")
            warmup = gr.Dropdown([DEFAULT, *(n for n in (0, 1, 2, 5) if n <= limits.max_warmup)], value=DEFAULT,
                                 allow_custom_value=True, label=f"Warm-up runs (at most {limits.max_warmup})")
        note = gr.Markdown(SUITE_NOTES.get("generation", ""))
        with gr.Row():
            run = gr.Button("Run benchmark", variant="primary", elem_id="bench-run", scale=3)
            stop = gr.Button("Stop", variant="stop", elem_id="bench-stop", scale=1)
        status = gr.Markdown(IDLE, elem_id="bench-progress")
        table = gr.Markdown(elem_id="bench-table")
        chart = gr.Plot(figures.bench_figure({}), label="Chart", elem_id="bench-chart")
        with gr.Accordion("Rows as a sortable table", open=False):
            rows = gr.Dataframe(interactive=False, elem_id="bench-rows")
        with gr.Accordion("Result as JSON", open=False):
            raw = gr.JSON()
        suite.change(lambda s: SUITE_NOTES.get(s, ""), suite, note, queue=False, api_visibility="private")
        # preprocess=False: run_bench checks every value itself, so bad API input gets a clear message.
        run.click(bind(run_bench, lab), [suite, smoke, model, runs, warmup],
                  [table, rows, chart, raw, status], api_name="benchmark", concurrency_id=MODEL_QUEUE,
                  concurrency_limit=1, show_progress="minimal", show_progress_on=[status], preprocess=False)
        jobs.stop_button(stop, TAB)
    return tab


if __name__ == "__main__":
    build().queue().launch()
