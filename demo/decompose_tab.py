"""Decompose: type f, pick a decoder, watch the beams grow, then replay the beam tree and read the answers."""
from __future__ import annotations

import functools
import time
from dataclasses import replace
from typing import Iterator

import gradio as gr

import engine

from . import figures, jobs
from .capability import capability_line, capability_table, combined_verdict, input_note
from .controls import option_controls, panel_options
from .formatting import (BEAM_HEADERS, BEST_MARK, LATEX, answers_markdown, ascii_poly, beam_rows, best_path,
                         options_summary, step_status)
from .lab import LabConfig, MODEL_QUEUE, bind, example_problems, unsolved_pairs, user_errors

TREE_ALTERNATIVES = 3  # losing tokens per node the tree's hover lists (the decoder keeps them: cheap, no change)
STATE_TTL_S = 3600  # a session's replay state (up to ~1 MB at width 64) is dropped an hour after it was set
TAB = "decompose"
PLACEHOLDER = "e.g. 4a^4 + 12a^3 + 5a^2 - 6a - 2"
INTRO = """Type an integer polynomial f(a) (e.g. `4a^4 + 12a^3 + 5a^2 - 6a - 2`, `3(a^2+2a)^2 - 5`, or the seed's
prefix tokens). The model writes an inner Q(a) with f = P(Q(a)); every answer is checked by exact division. Since
answers can be checked, the search can stop at the first verified one, or run as a cascade (greedy first,
wider beams only when it fails)."""


def search_state(steps: tuple[engine.Step, ...], answers: tuple[engine.Answer, ...], prefill_ms: float) -> dict:
    """What the replay slider needs, kept per session: frozen step events (tuples of ints and floats, no
    tensors) and the ids of the answers that passed or failed verification."""
    best = engine.best_answer(answers)
    return {"steps": steps, "prefill_ms": prefill_ms, "best": None if best is None else tuple(best.ids),
            "verified": [tuple(a.ids) for a in answers if a.verified],
            "failed": [tuple(a.ids) for a in answers if not a.verified]}


def answer_json(a: engine.Answer) -> dict:
    return {"q": None if a.q is None else ascii_poly(a.q), "prefix": a.prefix, "verified": a.verified,
            "p": None if a.outer is None else ascii_poly(a.outer, "Q"), "score": round(a.score, 5), "reason": a.reason}


def result_json(f: engine.Poly, opts: engine.DecodeOptions, answers, steps, total_ms: float) -> dict:
    """The plain result (also what API clients read): f, options, `best` (the first verified answer, else the
    top-scored one; None without answers), the answers in the model's score order, step count."""
    keys = ("decoder", "width", "samples", "stop_on_verified", "cascade", "cache", "beam_cache", "attention",
            "max_new")
    best = engine.best_answer(answers)
    return {"f": ascii_poly(f), "options": {k: getattr(opts, k) for k in keys},
            "best": None if best is None else answer_json(best), "answers": [answer_json(a) for a in answers],
            "steps": len(steps), "total_ms": round(total_ms, 3)}


def tree_figure(state: dict | None, upto: int | None = None, compact: bool = False):
    """The beam tree of a finished search; compact: collapse pruned branches (else only for wide trees)."""
    if not state:
        return figures.beam_tree(())
    return figures.beam_tree(state["steps"], upto=upto, best=state["best"], verified=state["verified"],
                             failed=state["failed"], compact=True if compact else None)


def beam_table(rows: list[list]):
    """The live table's value: rows on the best answer's path get a highlighted background."""
    import pandas as pd  # gradio's own dependency

    frame = pd.DataFrame(rows, columns=BEAM_HEADERS)
    marked = ["background-color: #ffe8c2; font-weight: 600"] * len(BEAM_HEADERS)
    return frame.style.apply(lambda row: marked if str(row["state"]).startswith(BEST_MARK) else
                             [""] * len(BEAM_HEADERS), axis=1)


def step_table(state: dict, k: int):
    """The beams of step k, best score first, the best answer's path marked."""
    return beam_table(beam_rows(state["steps"][k], on_path=best_path(state["steps"], state["best"]).get(k)))


def replay(upto: float, state: dict | None, compact: bool = False):
    """Slider moved (or the compact switch): the tree and the beam table as they were after step `upto`."""
    if not state or not state["steps"]:
        return figures.beam_tree(()), [], "Run a search first."
    k = max(0, min(int(upto), len(state["steps"]) - 1))
    step = state["steps"][k]
    return tree_figure(state, k, compact), step_table(state, k), step_status(step, len(state["steps"]))


def full_search(opts: engine.DecodeOptions) -> engine.DecodeOptions | None:
    """What a search that may stop early is compared with: the same beam search or sampling without the stop,
    or a cascade's widest (last) stage alone. None for a search that never stops early."""
    if opts.decoder == "cascade":
        return replace(opts.stages()[-1], stop_on_verified=False)
    return replace(opts, stop_on_verified=False) if opts.stop_on_verified and opts.decoder != "greedy" else None


def stage_label(opts: engine.DecodeOptions) -> str:
    return {"greedy": "greedy", "beam": f"beam {opts.width}", "sample": f"best of {opts.samples}",
            "cascade": f"cascade {opts.cascade}"}[opts.decoder]


def search_report(opts: engine.DecodeOptions, decoded: engine.Decoded, answers, full: engine.Decoded | None) -> dict:
    """How the search ended: the stage that answered (cascades), where it stopped and why, and the steps and
    milliseconds it saved against the full search (measured by running that search too)."""
    stages = opts.stages()
    answered = decoded.stage_of[0] if decoded.stage_of else 0
    mine = [s for s in decoded.steps if s.stage == answered]
    stop = next(((s.step, why) for s in mine for p, why in s.stops if p == 0), None)
    report = {"stage": stage_label(stages[answered]), "stages_run": answered + 1,
              "stopped_at_step": None if stop is None else stop[0], "reason": None if stop is None else stop[1],
              "steps": len(decoded.steps), "ms": round(decoded.total_ms, 3),
              "verified": any(a.verified for a in answers)}
    if opts.decoder == "cascade":
        report["per_stage"] = [{"stage": stage_label(stages[k]), "steps": sum(s.stage == k for s in decoded.steps),
                                "ms": round(sum(s.elapsed_ms for s in decoded.steps if s.stage == k), 3)}
                               for k in range(answered + 1)]
    if full is not None:
        report.update(full_search=stage_label(full_search(opts)), full_steps=len(full.steps),
                      full_ms=round(full.total_ms, 3), saved_steps=len(full.steps) - len(decoded.steps),
                      saved_ms=round(full.total_ms - decoded.total_ms, 3))
    return report


def report_markdown(report: dict) -> str:
    """The search report as one paragraph for the status line."""
    parts = []
    if "per_stage" in report:
        chain = " → ".join(f"{s['stage']} ({s['steps']} steps, {s['ms']:.1f} ms)" for s in report["per_stage"])
        parts.append(f"Cascade: {chain}; answered by **{report['stage']}**.")
    if report["reason"] == "verified":
        parts.append(f"**Stopped at step {report['stopped_at_step']}: a verified answer was accepted.**")
    if "full_steps" in report:
        parts.append(f"The full search ({report['full_search']}) took {report['full_steps']} steps and "
                     f"{report['full_ms']:.1f} ms: saved **{report['saved_steps']} steps and "
                     f"{report['saved_ms']:.1f} ms**.")
    return " ".join(parts)


def describe_input(lab: LabConfig, text: str) -> str:
    """As the user types: the degree pairs the input may belong to and how often the model solves them
    (nothing while the text does not parse: the search reports that)."""
    cap = engine.capability(lab.checkpoint)
    if not isinstance(text, str) or not text.strip():
        return capability_line(cap)
    try:
        f = engine.parse_polynomial(text)
    except ValueError:
        return ""
    return input_note(cap, f)


def decompose(lab: LabConfig, text: str, request: gr.Request = None, **panel) -> Iterator[tuple]:
    """Stream one search: the live beams at every step, then answers, tree, latency and the result JSON.

    `panel` holds the options panel's values by name (controls.PANEL; missing ones keep the preset's), checked
    here as sent (the event skips Gradio's preprocessing). A search that may stop early (stop at the first
    verified answer, a cascade) is then compared with the full search, run after it on the same input. Each
    step runs under the model lock, and freed memory goes back to the system when the search ends or is
    cancelled.
    Yields tuples for (warning, status, live, answers, classical, tree, replay, latency, result, state)."""
    skip = gr.skip()
    # the previous input's answers, tree and warnings go at once, so an error below never sits over them
    t0 = time.monotonic()
    yield ("", f"{jobs.RUNNING} Checking the input…", [], "", "", figures.beam_tree(()),
           gr.update(value=0, interactive=False), figures.step_latency(()), None, None)
    with user_errors("Decompose"):
        text = text if isinstance(text, str) else ""
        try:
            f = engine.parse_polynomial(text)
            opts = panel_options(**panel)
            lab.limits.check_decode(opts)
        except ValueError as e:
            yield (skip, f"**Not searched:** {e}", skip, skip, skip, skip, skip, skip, skip, skip)
            raise
        model = lab.model()
        reference = full_search(opts)
        notes = []
        if (var := engine.variable_name(text)) not in (None, "a"):
            notes.append(f"Read `{var}` as `a`: the model writes every polynomial in a.")
        if warning := engine.out_of_domain(f):
            notes.append(f"⚠ **Outside the training distribution:** {warning}")
        warning_md = "\n\n".join(notes)
        parts = engine.classical_decomposition(f)
        classical = "**Classical decomposition (sympy), for reference:**\n\n" + engine.describe_decomposition(f)
        # the decoder keeps each beam's top alternatives for the tree's hover (outputs unchanged)
        gen = engine.decode_polynomials(model, [f], replace(opts, alternatives=TREE_ALTERNATIVES))
        stages = opts.stages()
        steps: list[engine.Step] = []
        yield (warning_md, f"{jobs.RUNNING} Starting…", [], "Searching…", classical, figures.beam_tree(()),
               gr.update(value=0, interactive=False), figures.step_latency(()), None, None)
        key = jobs.session_key(request, TAB)
        try:
            with jobs.stoppable(key) as pressed:
                while not pressed.is_set():
                    try:
                        with jobs.MODEL_LOCK:
                            step = next(gen)
                    except StopIteration as stop:
                        decoded: engine.Decoded = stop.value
                        break
                    steps.append(step)
                    where = f"{stage_label(stages[step.stage])}: " if opts.decoder == "cascade" else ""
                    yield (skip, f"{jobs.RUNNING} {where}{step_status(step, opts.max_new)} · "
                           f"{time.monotonic() - t0:.1f} s elapsed · **Stop** ends the search", beam_rows(step),
                           skip, skip, skip, skip, skip, skip, skip)
                else:  # Stop was pressed: the steps so far stay on the page
                    yield (skip, jobs.stopped_line("Decompose", (0.0, f"step {len(steps)}"),
                                                   time.monotonic() - t0)) + (skip,) * 8
                    return
        except Exception:
            yield (skip, jobs.failed_line("Decompose", time.monotonic() - t0)) + (skip,) * 8
            raise
        finally:
            gen.close()  # a cancelled search drops its session (cache, masks) here, not at garbage collection
            del gen
            engine.release_memory()
        answers = engine.rank_answers(f, decoded.hypotheses[0])
        verdict = combined_verdict(answers, parts)
        full = None
        if reference is not None:  # cancellable like the search itself
            try:
                full = yield from jobs.run(
                    "Decompose: the full search, to count what stopping early saved",
                    lambda check, report: engine.run_to_completion(
                        engine.decode_polynomials(model, [f], reference), check),
                    status=lambda line: (skip, line) + (skip,) * 8, stop_key=key)
            except jobs.Stopped:
                return
        report = search_report(opts, decoded, answers, full)
        # the tree and the replay show the stage that answered (the whole search for other decoders)
        shown = tuple(s for s in steps if s.stage == (decoded.stage_of[0] if decoded.stage_of else 0))
        state = search_state(shown, answers, decoded.prefill_ms)
        last = len(shown) - 1
        path = best_path(shown, state["best"])
        table_step = max(path) if path else last  # the step where the best answer finished
        status = (f"Done: f = `{ascii_poly(f)}` in {len(steps)} steps, {decoded.total_ms:.1f} ms "
                  f"(prefill {decoded.prefill_ms:.1f} ms), {options_summary(opts)}. " + report_markdown(report))
        if path:
            status += f" The table shows step {table_step}, where the best answer finished ({BEST_MARK})."
        yield (skip, status.strip(), step_table(state, table_step) if shown else [],
               verdict + "\n\n" + answers_markdown(f, answers), skip,
               tree_figure(state), gr.update(minimum=0, maximum=max(last, 1), value=max(last, 0), interactive=True),
               figures.step_latency(steps, decoded.prefill_ms),
               {**result_json(f, opts, answers, steps, decoded.total_ms), "search": report}, state)


def build(lab: LabConfig | None = None) -> gr.Blocks:
    lab = lab or LabConfig()
    with gr.Blocks(title="Decompose") as tab:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=3):
                poly = gr.Textbox(label="f(a)", placeholder=PLACEHOLDER, lines=2,
                                  elem_id="decompose-input")
                note = gr.Markdown(describe_input(lab, ""), elem_id="decompose-input-note")
                examples = example_problems(lab.checkpoint)
                unsolved = unsolved_pairs(lab.checkpoint)
                gr.Examples([[text] for _, text in examples], inputs=[poly],
                            label="Examples this model verifies (beam 10)" + (
                                f"; none for the pairs it does not solve yet, {', '.join(unsolved)}" if unsolved else ""),
                            example_labels=[f"{label}: {text}" for label, text in examples], examples_per_page=9)
                with gr.Accordion("What this model solves", open=False):
                    gr.Markdown(capability_table(engine.capability(lab.checkpoint)), elem_id="decompose-capability")
                with gr.Row():
                    run = gr.Button("Decompose", variant="primary", elem_id="decompose-run", scale=3)
                    stop = gr.Button("Stop", variant="stop", elem_id="decompose-stop", scale=1)
                warning = gr.Markdown(elem_id="decompose-warning")
                status = gr.Markdown(elem_id="decompose-status")
            with gr.Column(scale=2):
                controls = option_controls("decompose")
        live = gr.Dataframe(headers=BEAM_HEADERS, label="Beams at this step, best score first (parent = beam index "
                            "one step earlier; ★ = the best answer's path)", interactive=False, max_height=360,
                            elem_id="decompose-beams")
        with gr.Row():
            answers = gr.Markdown("Answers appear here.", latex_delimiters=LATEX, elem_id="decompose-answers")
            classical = gr.Markdown(latex_delimiters=LATEX, elem_id="decompose-classical")
        tree = gr.Plot(figures.beam_tree(()), label="Beam tree", elem_id="beam-tree")
        with gr.Row():
            step = gr.Slider(0, 1, value=0, step=1, label="Replay: show the search up to step", interactive=False,
                             elem_id="decompose-replay", scale=4)
            compact = gr.Checkbox(False, label="Compact tree: collapse pruned branches (automatic for wide trees)",
                                  elem_id="decompose-compact", scale=1)
        latency = gr.Plot(figures.step_latency(()), label="Per-step latency", elem_id="step-latency")
        with gr.Accordion("Result as JSON", open=False):
            result = gr.JSON(elem_id="decompose-json")
        state = gr.State(None, time_to_live=STATE_TTL_S)
        outputs = [warning, status, live, answers, classical, tree, step, latency, result, state]
        # preprocess=False: decompose() checks every value itself, so bad API input gets a clear message.
        # always_last: a click while the previous search is still finishing (its answers may already show)
        # runs once that search ends, rather than being dropped.
        run_event = dict(fn=bind(decompose, lab), inputs=[poly], inputs_kwargs=controls.by_name,
                         outputs=outputs, concurrency_id=MODEL_QUEUE, concurrency_limit=1, show_progress_on=[status],
                         preprocess=False, trigger_mode="always_last")
        run.click(api_name="decompose", **run_event)
        poly.submit(api_visibility="private", **run_event)
        jobs.stop_button(stop, TAB)
        poly.change(functools.partial(describe_input, lab), poly, note, queue=False, show_progress="hidden",
                    trigger_mode="always_last", api_visibility="private")
        step.input(replay, [step, state, compact], [tree, live, status], trigger_mode="always_last",
                   api_visibility="private")
        compact.input(replay, [step, state, compact], [tree, live, status], trigger_mode="always_last",
                      api_visibility="private")
    return tab


if __name__ == "__main__":
    build().queue().launch()
