"""The web app's figure builders, formatting and handlers as plain functions (no server, tiny model)."""
import copy
import json
import os
import time
from dataclasses import replace

import gradio as gr
import plotly.graph_objects as go
import pytest
import torch

import engine
from demo import bench_tab, compare_tab, decompose_tab, figures, formatting, jobs, profile_tab
from demo.controls import CUSTOM, PANEL, PANEL_FIELDS, panel_options
from demo.lab import LabConfig, example_problems

B = engine.Beam
SMALL = dict(preset="fastest", decoder="beam", width=4.0, cache="static", beam_cache="shared-prefix",
             attention="sdpa", max_new=6.0)  # sliders send floats


def panel(**changes) -> dict:
    """Panel values by name, as the options panel sends them (the rest keep the preset's values)."""
    return {**SMALL, **changes}


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> LabConfig:
    torch.manual_seed(0)
    model = engine.GPT(engine.PRESETS["tiny"]).eval()
    root = tmp_path_factory.mktemp("lab")
    stem = engine.save_checkpoint(model, str(root / "tiny"))
    return LabConfig(checkpoint=stem, profile_dir=str(root / "profiles"))


def final(gen):
    """The last update a streaming handler yields (what an API client's predict() returns)."""
    return list(gen)[-1]


def scripted_steps() -> tuple:
    """A width-2 search: step 0 opens two roots; at step 1 root 1 dies and root 0 splits into a finished
    beam (ids 16, 9 = END) and a live one; step 2 finishes that one."""
    return (engine.Step(0, (B(0, (16,), -0.1, -1, False), B(0, (15,), -1.0, -1, False)), 2.0, 64),
            engine.Step(1, (B(0, (16, 22), -0.2, 0, False), B(0, (16, 9), -0.5, 0, True),
                            B(0, (16, 23), -0.9, 0, False)), 1.0, 128),
            engine.Step(2, (B(0, (16, 22, 9), -0.3, 0, True), B(0, (16, 23, 24), -2.0, 2, False)), 1.5, 192))


def traces(fig: go.Figure) -> dict:
    """The figure's traces by name; beam-tree nodes by their kind (live, pruned, finished, ...)."""
    kinds = {v: k for k, v in figures.NODE_NAMES.items()}
    return {kinds.get(t.name, t.name): t for t in fig.data if t.name}


# ---------------------------------------------------------------- figures

def test_beam_tree_draws_every_beam_once_and_fades_dead_branches():
    """Guards against lost nodes (parent indices misread) and pruned branches drawn as alive."""
    fig = figures.beam_tree(scripted_steps(), best=(16, 22), verified=[(16, 22)], failed=[(16,)])
    t = traces(fig)
    nodes = sum(len(t[k].x) for k in t if k != "prompt" and t[k].mode != "lines")
    assert nodes == 2 + 3 + 2
    assert list(t["pruned"].x) == [0]  # root 1 (token N) had no child
    assert list(t["verified"].x) == [2] and list(t["failed"].x) == [1]
    assert "score -0.3000" in t["verified"].hovertext[0]
    best_edges = [d for d in fig.data if d.mode == "lines" and d.line.width == 3][0]
    assert [x for x in best_edges.x if x is not None] == [-1, 0, 0, 1, 1, 2]


def alt_steps() -> tuple:
    """scripted_steps() with the top 3 alternatives a decoder keeps when asked (token, log-prob)."""
    alts = {0: ((16, -0.1), (15, -1.0), (17, -3.0)), 1: ((22, -0.1), (9, -0.4), (23, -0.8))}
    return tuple(engine.Step(s.step, tuple(replace(b, alternatives=alts.get(s.step, ((9, -0.1), (24, -1.1),
                                                                                     (25, -4.0))))
                                           for b in s.beams), s.elapsed_ms, s.cache_bytes) for s in scripted_steps())


def test_beam_tree_reads_top_down_by_score_with_end_and_losing_alternatives():
    """Guards against the best beam drawn at the bottom, the END token shown as ??, a best path without a
    legend entry, and a hover without the token's probability or the tokens that lost."""
    fig = figures.beam_tree(alt_steps(), best=(16, 22), verified=[(16, 22)], failed=[(16,)])
    t = traces(fig)
    assert fig.layout.yaxis.autorange == "reversed"  # leaf 0 is drawn at the top
    verified_y, failed_y = t["verified"].y[0], t["failed"].y[0]
    pruned_y = t["pruned"].y[0]
    assert verified_y < pruned_y and failed_y < pruned_y  # living and finished branches above the dead one
    assert list(t["verified"].text) == ["END"] and list(t["failed"].text) == ["END"]
    assert "best answer's path" in t and t["best answer's path"].showlegend is not False
    hover = t["verified"].hovertext[0]
    assert "token <b>END</b>: p = 90.5%" in hover  # exp(-0.3 - -0.2)
    assert "top alternatives that lost: 3 33.3%, 4 1.8%" in hover  # ids 24, 25; END was taken: not lost
    root_hover = t["live"].hovertext[list(t["live"].x).index(0)]
    assert "lost: & 5.0%" in root_hover and "N 36.8%" not in root_hover  # N (id 15) became beam 1: not lost


def test_beam_tree_compact_mode_collapses_pruned_subtrees():
    """Guards against a width-64 hairball: in compact mode a pruned subtree is its first node plus a +n tag."""
    steps = list(scripted_steps())
    # the pruned root (token N) gets a child that dies too: a pruned subtree of two nodes
    steps[1] = replace(steps[1], beams=steps[1].beams + (B(0, (15, 20), -1.5, 1, False),))
    full = traces(figures.beam_tree(steps, compact=False))
    small = traces(figures.beam_tree(steps, compact=True))
    assert sorted(full["pruned"].x) == [0, 1] and "collapsed pruned nodes (+n)" not in full
    assert list(small["pruned"].x) == [0]  # only the subtree's first node is drawn
    tags = small["collapsed pruned nodes (+n)"]
    assert list(tags.text) == ["+1"] and "1 pruned node collapsed" in tags.hovertext[0]
    assert list(small["live"].x) == list(full["live"].x)  # branches that live on are all still drawn
    assert "compact" in figures.beam_tree(steps, compact=True).layout.title.text


def test_beam_tree_replay_cuts_at_a_step():
    """Replay must hide later steps, and a beam alive at the cut is live, not pruned."""
    t = traces(figures.beam_tree(scripted_steps(), upto=1))
    assert max(max(x for x in tr.x if x is not None) for k, tr in t.items() if k != "prompt") == 1
    assert sorted(t["live"].x) == [0, 1, 1]  # root 0 and its two live children
    assert list(t["finished"].x) == [1]


def test_beam_tree_marks_where_a_verified_answer_stopped_the_search():
    """The accepted beam is drawn as its own kind (a star) and a dashed line with a label marks its step;
    replaying to an earlier step shows no mark yet."""
    steps = list(scripted_steps())
    stopped = engine.Step(2, (B(0, (16, 22, 9), -0.3, 0, True, True), B(0, (16, 23, 24), -2.0, 2, False)), 1.5, 192,
                          stops=((0, "verified"),))
    fig = figures.beam_tree(steps[:2] + [stopped], best=(16, 22), verified=[(16, 22)])
    t = traces(fig)
    assert list(t["accepted"].x) == [2] and t["accepted"].marker.symbol == "star"
    assert [a.text for a in fig.layout.annotations] == ["stopped at step 2: verified answer"]
    assert [s.x0 for s in fig.layout.shapes] == [2]
    assert figures.stop_step(steps[:2] + [stopped]) == 2 and figures.stop_step(steps) is None
    early = figures.beam_tree(steps[:2] + [stopped], upto=1)
    assert not early.layout.annotations and not early.layout.shapes


def test_search_report_counts_the_savings_against_the_full_search():
    opts = engine.options(decoder="beam", width=2, stop_on_verified=True)
    stopped = engine.Step(1, scripted_steps()[1].beams, 1.0, 128, stops=((0, "verified"),))
    decoded = engine.Decoded(((),), (scripted_steps()[0], stopped), 2.0, 3.0)
    full = engine.Decoded(((),), scripted_steps(), 2.0, 4.5)
    assert decompose_tab.full_search(opts) == engine.options(decoder="beam", width=2)
    report = decompose_tab.search_report(opts, decoded, (), full)
    assert (report["stopped_at_step"], report["reason"], report["saved_steps"], report["saved_ms"]) == (1, "verified",
                                                                                                    1, 1.5)
    text = decompose_tab.report_markdown(report)
    assert "Stopped at step 1" in text and "saved **1 steps and 1.5 ms**" in text
    assert decompose_tab.full_search(engine.options(decoder="beam")) is None
    cascade = engine.options(decoder="cascade", cascade="greedy > beam 4 > beam 16", stop_on_verified=True)
    widest = decompose_tab.full_search(cascade)
    assert (widest.decoder, widest.width, widest.stop_on_verified) == ("beam", 16, False)


def test_decompose_runs_a_cascade_and_compares_it_with_its_widest_stage(lab):
    """The tiny random model verifies nothing, so every stage runs; the report lists them and the full search
    is the last stage alone."""
    outs = list(decompose_tab.decompose(lab, "a^4 + 2a^2 + 7", **panel(decoder="cascade", cascade="greedy > beam 2 > "
                                                                                          "beam 3", max_new=4.0)))
    *_, result, state = outs[-1]
    streamed = [o[1].removeprefix(f"{jobs.RUNNING} ") for o in outs[2:-1] if "Step" in o[1]]
    assert streamed[0].startswith("greedy: Step") and streamed[-1].startswith("beam 3: Step")
    assert "elapsed" in streamed[0] and any("the full search" in o[1] for o in outs)  # both parts show progress
    search = result["search"]
    assert [s["stage"] for s in search["per_stage"]] == ["greedy", "beam 2", "beam 3"]
    assert search["stage"] == "beam 3" and search["full_search"] == "beam 3" and search["full_steps"] == 4
    assert all(len(step.beams) <= 3 for step in state["steps"])  # the tree shows the stage that answered
    assert "Cascade: greedy (4 steps" in outs[-1][1]
    with pytest.raises(gr.Error, match="cascade stage"):
        list(decompose_tab.decompose(lab, "a^4 + 1", **panel(decoder="cascade", cascade="greedy > wide")))


def test_beam_tree_of_nothing_is_a_placeholder():
    fig = figures.beam_tree(())
    assert not fig.data and fig.layout.annotations


def test_step_latency_and_comparison_charts():
    steps = scripted_steps()
    bar = figures.step_latency(steps, prefill_ms=1.5).data[0]
    assert list(bar.y) == [2.0, 1.0, 1.5]
    rows = [{"label": "a", "mean_ms": 10.0, "min_ms": 8.0, "max_ms": 13.0, "speedup": 1.0},
            {"label": "b", "mean_ms": 5.0, "min_ms": 4.0, "max_ms": 5.5, "speedup": 2.0}]
    lat = figures.latency_bars(rows).data[0]
    assert list(lat.error_y.array) == [3.0, 0.5] and list(lat.error_y.arrayminus) == [2.0, 1.0]
    assert list(lat.text) == ["1.00x", "2.00x"]
    stack = figures.phase_stack({"a": {"prefill": 1.0, "decode_step": 3.0}, "b": {"prefill": 2.0, "other": 1.0}})
    assert stack.layout.barmode == "stack"
    assert [t.name for t in stack.data] == ["prefill", "decode_step", "other"]


def test_profile_figures_read_a_summary():
    summary = {"total_ms": 10.0, "phases": {"prefill": {"ms": 4.0, "calls": 1, "share": 0.4},
                                            "decode_step": {"ms": 6.0, "calls": 5, "share": 0.6},
                                            "verify": {"ms": 0.0, "calls": 0, "share": 0.0}},
               "steps": [{"step": 0, "ms": 4.0, "cache_bytes": 10, "beams": 2}, {"step": 1, "ms": 1.2, "beams": 1}],
               "top_ops": [{"op": "aten::addmm", "calls": 12, "self_ms": 3.0, "total_ms": 4.0}]}
    assert list(figures.profile_phases(summary).data[0].y) == ["prefill", "decode_step"]  # zero phases dropped
    assert list(figures.step_timeline(summary).data[1].y) == [2, 1]
    assert list(figures.top_operators(summary).data[0].y) == ["aten::addmm"]


@pytest.mark.parametrize("suite,rows,traces_expected", [
    ("generation", [{"case": "c", "preset": "V1", "avg_ms": 2.0, "min_ms": 1.0, "max_ms": 3.0},
                    {"case": "c", "preset": "V3", "avg_ms": 1.0, "min_ms": 1.0, "max_ms": 1.0}], 2),
    ("beam", [{"width": 5, "decoder": "no cache", "seconds": 1.0}, {"width": 10, "decoder": "no cache",
                                                                    "seconds": 2.0}], 2),
    ("hf", [{"mode": "greedy", "batch": 1, "ours_ms_per_problem": 1.0, "hf_ms_per_problem": 3.0}], 2),
    ("sweep", [{"model": "tiny", "prompt_tokens": L, "width": w, "x_concat+clone": 1.0, "x_static+gather": 2.0}
               for L in (16, 48) for w in (1, 4)], 2),
    ("frontier", [{"pair": "2_2", "mode": "batched", "strategy": "greedy", "accuracy": 0.5, "ms_per_problem": 1.0,
                   "pareto": True}], 2),
])
def test_bench_figure_has_a_chart_per_suite(suite, rows, traces_expected):
    fig = figures.bench_figure({"suite": suite, "rows": rows})
    assert len(fig.data) == traces_expected


def test_sweep_heatmap_puts_each_speedup_in_its_cell():
    """Guards against a transposed or shuffled heatmap: rows are prompt lengths, columns are widths, one
    panel per (model size, strategy), drawn from the rows the engine's sweep writes as JSON."""
    lengths, widths, strategies = (16, 64), (1, 8, 32), ("concat+clone", "static+gather", "static+shared-prefix")
    rows = [{"model": size, "prompt_tokens": L, "width": w, "none_ms": 1.0,
             **{f"x_{s}": m * 10000 + L * 100 + w + k / 10 for k, s in enumerate(strategies)}, "best": strategies[0]}
            for m, size in enumerate(("tiny", "paper")) for L in lengths for w in widths]
    fig = figures.bench_figure({"suite": "sweep", "rows": rows})
    assert len(fig.data) == 2 * len(strategies)
    second = fig.data[1]  # tiny, static+gather
    assert list(second.y) == ["16", "64"] and list(second.x) == ["1", "8", "32"]
    assert second.z[1][2] == pytest.approx(64 * 100 + 32 + 0.1)
    last = fig.data[-1]  # paper, static+shared-prefix
    assert last.z[0][1] == pytest.approx(10000 + 16 * 100 + 8 + 0.2)


def test_frontier_chart_puts_each_strategy_at_its_accuracy_and_time():
    """Guards against a chart that mixes pairs, modes or families: one panel per pair, one trace per
    (family, mode) holding exactly its rows, and the dashed front through the Pareto rows in time order."""
    rows = [{"pair": pair, "mode": mode, "strategy": s, "accuracy": acc, "ms_per_problem": ms, "pareto": front}
            for pair in ("2_2", "3_2") for mode in ("batched", "one at a time")
            for s, acc, ms, front in (("greedy", 0.7, 2.0, True), ("beam 10", 0.9, 20.0, False),
                                      ("beam 10 stop", 0.9, 15.0, False), ("cascade greedy>10>64", 0.95, 9.0, True),
                                      ("best of 8 stop", 0.8, 30.0, False))]
    fig = figures.bench_figure({"suite": "frontier", "rows": rows})
    points = [t for t in fig.data if t.mode == "markers"]
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(points) == 2 * 2 * 5 and len(lines) == 2 * 2
    cascade = [t for t in points if t.name == "cascade · batched"]
    assert len(cascade) == 2 and list(cascade[0].x) == [9.0] and list(cascade[0].y) == [0.95]
    assert list(lines[0].x) == [2.0, 9.0]
    assert {t.xaxis for t in points} == {"x", "x2"}
    assert figures.strategy_family("beam 64 stop") == "beam stop" and figures.strategy_family("best of 8") == "best of"


# ---------------------------------------------------------------- formatting and options

def test_examples_parse_back_to_polynomials_of_their_pair():
    """The clickable examples are ASCII text the parser reads back to polynomials of their pair's degree."""
    examples = example_problems()
    assert examples
    for label, text in examples:
        i, j = (int(x) for x in label.split(" · ")[0].replace("deg P = ", "").replace("deg Q = ", "").split(", "))
        assert engine.degree(engine.parse_polynomial(text)) == i * j, label


def test_ascii_poly_round_trips_through_the_parser():
    for prob in engine.generate(3, 4, 50, seed=3):
        assert engine.parse_polynomial(formatting.ascii_poly(prob.f)) == prob.f


def test_answers_markdown_marks_verified_and_shows_p():
    f = (0, 0, 1, 2, 1)  # (a^2 + a)^2
    good = engine.Answer((16,), "", -0.1, (0, 1, 1), True, (0, 0, 1), "")
    bad = engine.Answer((15,), "x", -2.0, None, False, None, "does not parse")
    text = formatting.answers_markdown(f, [good, bad])
    assert "✓ Verified" in text and "f = Q^{2}" in text and "✗ `x`" in text


def test_panel_options_keep_the_presets_hidden_fields():
    """A preset's grad mode and mask handling survive the panel; greedy is forced to width 1."""
    v1 = panel_options(**panel(preset="V1", cache="none", decoder="greedy"))
    assert (v1.grad_mode, v1.rebuild_masks, v1.width, v1.cache) == ("no_grad", True, 1, "none")
    assert panel_options(**panel(preset=CUSTOM)).grad_mode == engine.DecodeOptions().grad_mode
    assert (panel_options(**panel()).width, type(panel_options(**panel()).max_new)) == (4, int)  # typed fields
    with pytest.raises(ValueError):
        panel_options(**panel(cache="bogus"))
    with pytest.raises(ValueError, match="no field"):
        panel_options(grad_mode="no_grad")  # beyond the panel: only presets set it


def test_the_option_panel_is_the_decode_options_and_wired_by_name():
    """Guards against the panel, the DecodeOptions fields and the handlers' parameters drifting apart: every
    user-settable field has a control, and the Decompose and Profile endpoints take exactly the panel's
    names after their own inputs (the values arrive by name, never by position)."""
    hidden = {"grad_mode", "rebuild_masks", "one_at_a_time", "alternatives", "precision", "compile", "linear", "step"}
    assert set(PANEL_FIELDS) == set(engine.OPTION_FIELDS) - hidden and PANEL == ("preset", *PANEL_FIELDS)
    import app
    endpoints = app.demo.get_api_info()["named_endpoints"]
    for endpoint, own in (("/decompose", ["text"]), ("/profile", ["text", "name"])):
        names = [p["parameter_name"] for p in endpoints[endpoint]["parameters"]]
        assert names == own + list(PANEL), endpoint
    defaults = {p["parameter_name"]: p["parameter_default"] for p in endpoints["/decompose"]["parameters"]}
    opts = panel_options(**{k: defaults[k] for k in PANEL})
    assert opts == engine.DECODE_PRESETS["fastest"]  # the panel starts at the fastest preset, beam 10


# ---------------------------------------------------------------- handlers

def test_decompose_streams_steps_then_a_result_without_tensors(lab):
    outs = list(decompose_tab.decompose(lab, "4a^4 + 12a^3 + 5a^2 - 6a - 2", **panel()))
    warning, status, live, answers, classical, tree, replay, latency, result, state = outs[-1]
    assert len(outs) == 3 + len(state["steps"])  # clearing, a first update, one per step, the result
    assert outs[0][3] == "" and outs[0][8] is None  # the previous answers go before anything else
    assert all(len(o[2]) > 0 for o in outs[2:-1])  # every streamed step shows its beams
    assert "f = P(Q)" in outs[1][4] and "Q = " in outs[1][4]  # the classical answer comes first
    verdict = answers.splitlines()[0]  # the combined verdict: f has a decomposition (Q = 2a² + 3a)
    assert verdict.startswith("### ✓ Model verified Q(a) = " if result["best"]["verified"] else
                              "### ✗ Model missed a decomposition the classical algorithm found: Q(a) = 2a² + 3a")
    assert result["f"] == "4a^4 + 12a^3 + 5a^2 - 6a - 2" and len(result["answers"]) == 4
    first_verified = next((a for a in result["answers"] if a["verified"]), result["answers"][0])
    assert result["best"] == first_verified  # verified first, not the model's top score
    assert isinstance(tree, go.Figure) and isinstance(latency, go.Figure)
    flat = json.dumps(result)  # plain data only
    assert "tensor" not in flat.lower()
    clone = copy.deepcopy(state)  # gr.State must deep-copy cheaply
    assert not any(isinstance(v, torch.Tensor) for v in clone.values())
    fig, rows, text = decompose_tab.replay(0, state)
    assert text.startswith("Step **0**") and len(rows.data) == len(state["steps"][0].beams)
    scores = list(live.data["score"])
    assert scores == sorted(scores, reverse=True)  # the table is best score first


def test_the_table_is_sorted_by_score_and_marks_the_best_answers_path():
    """Guards against a table in beam-index order and, after the search, a last step that hides the best
    answer: every step's row on the best answer's path is marked and highlighted."""
    steps = scripted_steps()
    assert formatting.best_path(steps, (16,)) == {0: 0, 1: 1}  # (16, END) finished at step 1
    assert formatting.best_path(steps, (16, 22)) == {0: 0, 1: 0, 2: 0}
    assert formatting.best_path(steps, (99,)) == {} and formatting.best_path(steps, None) == {}
    rows = formatting.beam_rows(steps[1], on_path=1)
    assert [r[3] for r in rows] == [-0.2, -0.5, -0.9] and [r[0] for r in rows] == [0, 1, 2]
    assert rows[1][5] == "★ best answer" and rows[1][1] == "P END"
    rows = formatting.beam_rows(steps[2], on_path=1)
    assert [r[0] for r in rows] == [0, 1] and rows[1][5] == "★ on the best answer's path"
    state = {"steps": steps, "best": (16,), "verified": [(16,)], "failed": []}
    style = decompose_tab.step_table(state, 1).to_html().split("</style>")[0]
    assert "background-color: #ffe8c2" in style  # the marked row (row 1: the best answer) and no other
    assert all(f"row1_col{c}" in style for c in range(6)) and "row0_col" not in style and "row2_col" not in style


def test_decompose_warns_outside_the_training_distribution(lab):
    first = list(decompose_tab.decompose(lab, "a^5 + 1", **panel(max_new=2)))[1]
    assert first[0].startswith("⚠ **Outside the training distribution")


def test_decompose_says_which_letter_it_read_as_a(lab):
    """Guards against `x` read as `a` silently."""
    first = list(decompose_tab.decompose(lab, "x^4 + 2x^2 + 7", **panel(max_new=2)))[1]
    assert "Read `x` as `a`" in first[0]
    assert "Read" not in list(decompose_tab.decompose(lab, "a^4 + 2a^2 + 7", **panel(max_new=2)))[1][0]


def test_bad_input_clears_the_previous_answers_before_the_error(lab):
    """Guards against a previous input's answers and warnings left under an error toast."""
    gen = decompose_tab.decompose(lab, "a^2 +* 3", **panel())
    cleared = next(gen)
    assert cleared[0] == "" and cleared[3] == "" and cleared[4] == "" and cleared[8] is None and cleared[9] is None
    said = next(gen)
    assert said[1].startswith("**Not searched:**") and "column" in said[1]
    with pytest.raises(gr.Error):
        next(gen)


def test_a_length_cut_is_not_shown_as_finished(lab):
    """Guards against beams stopped by max new tokens labelled "finished"."""
    outs = list(decompose_tab.decompose(lab, "4a^4 + 12a^3 + 5a^2 - 6a - 2", **panel(max_new=3)))
    last_step = outs[-2]
    assert "cut at max new tokens" in last_step[1]
    rows = last_step[2]
    assert any(row[5] == formatting.CUT for row in rows)
    assert all(row[5] == ("finished" if row[1].endswith(formatting.END_LABEL) else formatting.CUT) for row in rows)


@pytest.mark.parametrize("text", ["", "a^2 +* 3", "(a+1)^999999", "2 ^ a P"])
def test_bad_input_becomes_a_gr_error(lab, text):
    with pytest.raises(gr.Error):
        list(decompose_tab.decompose(lab, text, **panel()))


@pytest.mark.parametrize("changes,message", [
    (dict(width=0), "width must be from 1 to 64"), (dict(width=float("nan")), "width must be a whole number"),
    (dict(width="ten"), "width must be a whole number"), (dict(max_new=121), "max new tokens must be from 1 to 120"),
    (dict(cache=["static"]), "unknown KV cache"), (dict(preset=None), "unknown preset"),
])
def test_bad_option_becomes_a_gr_error_naming_the_field(lab, changes, message):
    with pytest.raises(gr.Error, match=message):
        list(decompose_tab.decompose(lab, "a^4 + 1", **panel(**changes)))


def test_sampling_seed_and_knobs_are_checked():
    """A 2**70 seed reached torch as an overflow; NaN knobs reached the decoder."""
    with pytest.raises(ValueError, match="seed must be from 0 to"):
        panel_options(**panel(decoder="sample", seed=2 ** 70))
    with pytest.raises(ValueError, match="temperature must be from"):
        panel_options(**panel(decoder="sample", temperature=float("nan")))
    assert panel_options(**panel(decoder="sample", temperature="0.5", top_k="3", seed="7")).seed == 7


def test_decode_work_is_capped(lab):
    """width x max_new x polynomials beyond the server's limit is refused with the knobs to turn."""
    limits = lab.limits
    limits.check_decode(engine.DecodeOptions(width=64, max_new=120))  # the page's widest search fits
    with pytest.raises(ValueError, match="lower the width or max new tokens"):
        limits.check_decode(engine.DecodeOptions(width=64, max_new=120), problems=2)


def test_compare_reports_identical_outputs_for_equivalent_configs(lab):
    rows = [["V3", "beam", 3, "", "", "", 5], ["fastest", "beam", 3, "", "", "", 5],
            ["custom", "greedy", "", "concat", "", "math", 5]]
    verdict, latency, phases, table, raw, progress = final(compare_tab.compare(lab, compare_tab.POLYNOMIAL, "a^4 + 2a^2 + 7",
                                                                     rows, 2, profiled=False))
    assert "Outputs differ" in verdict  # greedy returns one answer, beam three
    assert table[0][5] == "1.00x" and len(raw["stats"]) == 3
    assert [t.name for t in phases.data][:2] == ["prefill", "decode_step"]  # the decoder's own split
    verdict, latency, phases, *_ = final(compare_tab.compare(lab, compare_tab.POLYNOMIAL, "a^4 + 2a^2 + 7", rows[:2],
                                                             1))
    assert "Outputs identical" in verdict
    assert "beam_select" in {t.name for t in phases.data}  # the profiled split names the beam phases


def test_compare_runs_a_seed_batch_case(lab):
    rows = [["V1", "greedy", "", "", "", "", 3], ["V3", "greedy", "", "", "", "", 3]]
    verdict, *_, raw, progress = final(compare_tab.compare(lab, "batch_3_mixed", "", rows, 1, profiled=False))
    assert "Outputs identical" in verdict and "3 polynomials" in verdict
    assert progress.startswith(jobs.DONE) and "Comparing" in progress


@pytest.mark.parametrize("rows,message", [
    ([["V1", "beam", 3, "", "", "", 5]], "at least two"),
    ([["V9", "", "", "", "", "", ""]] * 2, "unknown preset"),
    ([["V1", "beam", "wide", "", "", "", ""]] * 2, "width must be a whole number"),
    ([["V1", "beam", 3, "", "", "", 5]] * 200, "at most 6 configurations"),  # 200 rows were accepted once
    ([["V1", "beam", 64, "", "", "", 120]] * 2, "beam tokens"),  # 64 x 120 x 3 polynomials of batch_3_mixed
    ({"headers": compare_tab.COLUMNS, "data": "V1"}, "a list of rows"),
])
def test_compare_rejects_bad_configurations(lab, rows, message):
    """Bad rows, too many rows and decodes beyond the server's limits are refused before any work starts."""
    with pytest.raises(gr.Error, match=message):
        list(compare_tab.compare(lab, "batch_3_mixed", "", rows, 1, profiled=False))


@pytest.mark.parametrize("runs", [0, 21, "1500", float("nan"), "x"])
def test_compare_caps_the_run_count(lab, runs):
    rows = [["V3", "greedy", "", "", "", "", 3]] * 2
    with pytest.raises(gr.Error, match="timed runs must be"):
        list(compare_tab.compare(lab, compare_tab.POLYNOMIAL, "a^4 + 1", rows, runs, profiled=False))


def test_compare_reads_the_api_dataframe_payload(lab):
    """API clients send the table as {"headers", "data", "metadata"} (the event skips Gradio's preprocessing)."""
    table = {"headers": compare_tab.COLUMNS, "data": [["V3", "greedy", "", "", "", "", 3]] * 2, "metadata": None}
    verdict, *_ = final(compare_tab.compare(lab, compare_tab.POLYNOMIAL, "a^4 + 1", table, 1, False))
    assert "Outputs identical" in verdict


def test_profile_records_a_run_and_lists_it(lab):
    traces = profile_tab.Traces()
    updates = list(profile_tab.record(lab, traces, "a^4 + 2a^2 + 7", "unit", **panel()))
    assert updates[0][-1].startswith(jobs.RUNNING) and updates[-1][-1].startswith(jobs.DONE)  # the progress line
    out = updates[-1]
    summary_md, trace_view, rows = out[0], out[5], out[6]
    assert "unit" in summary_md and "trace" in summary_md
    assert rows and rows[0][0].endswith("unit") and rows[0][5] == rows[0][0] + ".pt.trace.json"
    lanes = [t.name for t in trace_view.data]  # the in-app trace view of the recording
    assert lanes[:3] == ["step", "prefill", "decode_step"] and "beam_select" in lanes and "operators" in lanes
    assert len(trace_view.data[0].x) == 6  # max_new=6 decode steps, one span each
    assert out[2] and out[2][0][0] in engine.PHASES  # the phase table
    picked = profile_tab.select_run(lab.profile_dir, traces, rows[0][0])
    assert picked[-1]["value"].endswith(".pt.trace.json")
    assert "process peak" in summary_md


def test_tensorboard_binds_the_apps_host_and_links_the_browsers_host():
    """Guards against a dead link on a remote machine: TensorBoard bound 127.0.0.1 even with --host 0.0.0.0.
    It binds what the app binds; the link names the host the browser reached the app at."""
    from demo.tensorboard import TensorBoard, link_host
    assert link_host("127.0.0.1", "lab.example:7860") == "127.0.0.1"
    assert link_host("0.0.0.0", "lab.example:7860") == "lab.example"
    assert link_host("0.0.0.0", "[::1]:7860") == "[::1]" and link_host("::", "10.0.0.2") == "10.0.0.2"
    assert link_host("0.0.0.0", None) == "127.0.0.1" and link_host("fe80::1", "x") == "[fe80::1]"
    assert TensorBoard("profiles", LabConfig(host="0.0.0.0").host).host == "0.0.0.0"


def test_traces_are_served_from_the_profile_folder_one_file_at_a_time(lab, tmp_path):
    """Gradio kept a copy of every trace it served, also after the run was pruned; a static file is served
    in place instead. Only the trace itself becomes static, never its folder."""
    from gradio.utils import is_static_file
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    trace, other = run_dir / "host_1.1.pt.trace.json", run_dir / "notes.txt"
    trace.write_text("{}")
    other.write_text("x")
    traces = profile_tab.Traces()
    assert traces.serve(str(trace)) == str(trace) and traces.serve(None) is None
    assert is_static_file(str(trace)) and not is_static_file(str(other))


def test_benchmark_smoke_suite_returns_table_rows_and_chart(lab):
    updates = list(bench_tab.run_bench(lab, "generation", True, bench_tab.MODELS[1], "1", 0))
    assert updates[0][0] == "" and updates[0][-1].startswith(jobs.RUNNING)  # old result cleared, progress shown
    table, rows, chart, result, progress = updates[-1]
    assert progress.startswith(jobs.DONE)
    assert "generation benchmark" in table
    assert len(rows["value"]) == len(result["rows"]) > 0
    assert isinstance(chart, go.Figure) and chart.data


@pytest.mark.parametrize("runs,warmup,message", [("many", bench_tab.DEFAULT, "timed runs must be a whole number"),
                                                 ("1500", 0, "timed runs must be from 1 to 20"),
                                                 (1, 6, "warm-up runs must be from 0 to 5"),
                                                 (float("nan"), 0, "timed runs must be a whole number")])
def test_benchmark_caps_run_counts(lab, runs, warmup, message):
    """A run count of 1500 once held the shared queue for hours: counts are capped before any work starts."""
    with pytest.raises(gr.Error, match=message):
        list(bench_tab.run_bench(lab, "generation", True, bench_tab.MODELS[1], runs, warmup))


@pytest.mark.parametrize("decoder", ["greedy", "sample"])
def test_decompose_with_one_beam_decoders(lab, decoder):
    """Greedy and sampling stream one beam per step; the tree is a single chain."""
    *_, state = list(decompose_tab.decompose(lab, "a^4 + 2a^2 + 7", **panel(decoder=decoder)))[-1]
    assert all(len(step.beams) == 1 for step in state["steps"])
    tree = decompose_tab.tree_figure(state)
    nodes = sum(len(t.x) for t in tree.data if t.name and t.name != "prompt" and t.mode != "lines")
    assert nodes == len(state["steps"])


def test_compare_runs_transformers_generate_beside_ours(lab):
    """The hf row goes through the exported GPT2LMHeadModel; greedy must match ours token for token."""
    rows = [["fastest", "greedy", "", "", "", "", 6], ["hf", "greedy", "", "", "", "", 6]]
    verdict, latency, phases, table, raw, progress = final(compare_tab.compare(lab, compare_tab.POLYNOMIAL, "a^4 + 2a^2 + 7",
                                                                     rows, 1))
    assert "Outputs identical" in verdict
    assert raw["configurations"][1]["hf"] and table[1][1].startswith("transformers generate()")


def test_compare_runs_ctranslate2_beside_ours(lab):
    """The ctranslate2 row decodes with CTranslate2 on the converted export; greedy must match ours token for token."""
    pytest.importorskip("ctranslate2")
    rows = [["fastest", "greedy", "", "", "", "", 6], ["ctranslate2", "greedy", "", "", "", "", 6]]
    verdict, latency, phases, table, raw, progress = final(compare_tab.compare(lab, compare_tab.POLYNOMIAL, "a^4 + 2a^2 + 7",
                                                                     rows, 1))
    assert "Outputs identical" in verdict
    assert raw["configurations"][1]["ctranslate2"] and not raw["configurations"][1]["hf"]
    assert table[1][1].startswith("CTranslate2 Generator, greedy")
    with pytest.raises(ValueError, match="greedy or beam"):
        compare_tab.parse_configs([["fastest", "greedy"], ["ctranslate2", "sample"]])


def test_compare_reports_the_measured_agreement_of_a_lower_precision(lab):
    """A bf16 row may change outputs: the verdict states its agreement with the float32 row, measured, not claimed."""
    rows = [["fastest", "greedy", "", "", "", "", 6, ""], ["fastest", "greedy", "", "", "", "", 6, "bf16"]]
    verdict, latency, phases, table, raw, progress = final(compare_tab.compare(lab, compare_tab.POLYNOMIAL, "a^4 + 2a^2 + 7",
                                                                     rows, 1))
    assert "Measured agreement with float32" in verdict and "2. fastest (bf16, may change outputs)" in verdict
    assert "best answer identical to 1. fastest on" in verdict and raw["configurations"][1]["precision"] == "bf16"
    with pytest.raises(ValueError, match="precision column applies to our decoder"):
        compare_tab.parse_configs([["fastest", "greedy"], ["hf", "greedy", "", "", "", "", 6, "bf16"]])
    with pytest.raises(ValueError, match="precision"):
        compare_tab.parse_configs([["fastest", "greedy"], ["fastest", "greedy", "", "", "", "", 6, "fp8"]])


def test_compare_runs_a_compiled_row_with_identical_outputs(lab):
    """The compile column: a row with compile=inductor (V3: static cache, gather) gives the uncompiled row's
    answers, and the verdict says so; combinations compile cannot run are clear errors naming the row."""
    rows = [["V3", "beam", 3, "", "", "", 6, "", ""], ["V3", "beam", 3, "", "", "", 6, "", "inductor"]]
    verdict, latency, phases, table, raw, progress = final(compare_tab.compare(lab, compare_tab.POLYNOMIAL,
                                                                     "a^4 + 2a^2 + 7", rows, 1))
    assert "Outputs identical" in verdict and raw["configurations"][1]["compile"] == "inductor"
    assert table[1][1].endswith("compiled")
    with pytest.raises(ValueError, match="row 2: compile=inductor follows beams with gather or clone"):
        compare_tab.parse_configs([["V3", "greedy"], ["fastest", "beam", 4, "", "", "", 6, "", "inductor"]])
    with pytest.raises(ValueError, match="compile column applies to our decoder"):
        compare_tab.parse_configs([["fastest", "greedy"], ["hf", "greedy", "", "static", "", "", 6, "", "inductor"]])


def test_compare_runs_the_linear_kernels_with_identical_outputs(lab):
    """The linear column: fastest (tiled linears) against fastest with F.linear gives the same answers, and the
    labels say which is which; the column applies to our decoder only."""
    rows = [["fastest", "beam", 3, "", "", "", 6, "", "", ""], ["fastest", "beam", 3, "", "", "", 6, "", "", "aten"]]
    verdict, latency, phases, table, raw, progress = final(compare_tab.compare(lab, compare_tab.POLYNOMIAL,
                                                                     "a^4 + 2a^2 + 7", rows, 1))
    assert "Outputs identical" in verdict
    assert [c["linear"] for c in raw["configurations"]] == ["tiled", "aten"]
    assert "tiled linears" in table[0][1] and "linears" not in table[1][1]
    with pytest.raises(ValueError, match="linear column applies to our decoder"):
        compare_tab.parse_configs([["fastest", "greedy"], ["hf", "greedy", "", "", "", "", 6, "", "", "packed"]])
    with pytest.raises(ValueError, match="row 2: unknown linear"):
        compare_tab.parse_configs([["fastest", "greedy"], ["fastest", "greedy", "", "", "", "", 6, "", "", "mkl"]])


def test_compare_runs_the_fused_step_with_identical_outputs(lab):
    """The step column: fastest (the C++ step with its own attention) against fastest through the nn.Modules gives
    the same answers,
    labelled; the column applies to our decoder only, and a cache the fused step cannot run is a clear error."""
    rows = [["fastest", "beam", 3, "", "", "", 6], ["fastest", "beam", 3, "", "", "", 6, "", "", "", "modules"]]
    verdict, latency, phases, table, raw, progress = final(compare_tab.compare(lab, compare_tab.POLYNOMIAL,
                                                                     "a^4 + 2a^2 + 7", rows, 1))
    assert "Outputs identical" in verdict
    assert [c["step"] for c in raw["configurations"]] == ["native", "modules"]
    assert "fused C++ step" in table[0][1] and "fused C++ step" not in table[1][1]
    with pytest.raises(ValueError, match="step column applies to our decoder"):
        compare_tab.parse_configs([["fastest", "greedy"], ["hf", "greedy", "", "", "", "", 6, "", "", "", "fused"]])
    with pytest.raises(ValueError, match="row 2: step=fused runs on the static KV cache"):
        compare_tab.parse_configs([["fastest", "greedy"], ["fastest", "greedy", "", "concat", "", "", 6, "", "", "",
                                                          "fused"]])


def test_app_listens_on_localhost_with_the_shipped_model_by_default():
    import app
    args = app.parse_args([])
    assert (args.host, args.port, args.checkpoint) == ("127.0.0.1", 7860, engine.DEFAULT_CHECKPOINT)
    assert app.parse_args(["--host", "0.0.0.0", "--checkpoint", "x"]).checkpoint == "x"
    assert args.threads is None  # torch's choice unless asked


def test_app_threads_flag_sets_torch_threads_and_rejects_zero(capsys):
    import app
    before = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit) as exc:
            app.main(["--threads", "0"])
        assert exc.value.code == 2 and "--threads must be >= 1" in capsys.readouterr().err
        assert torch.get_num_threads() == before
        assert app.parse_args(["--threads", "3"]).threads == 3 and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def endless_work(ticks: list):
    """A job that never ends on its own: it reports "busy" and ticks until a check raises."""
    def work(check, report):
        while True:
            check()
            report(0.5, "busy")
            ticks.append(time.monotonic())
            time.sleep(0.01)
    return work


def assert_worker_gone(ticks: list) -> None:
    """The stopped worker has released the model and does no more work."""
    assert jobs.MODEL_LOCK.acquire(timeout=5), "the cancelled worker still holds the model"
    try:
        stopped = len(ticks)
        time.sleep(0.2)
        assert len(ticks) == stopped  # no work after the lock came free
    finally:
        jobs.MODEL_LOCK.release()


def test_a_closed_job_stops_its_worker_and_frees_the_model():
    """Gradio closes a generator handler when its client cancels: the worker must stop at its next check
    and release the model lock (a cancelled benchmark once kept a core busy for nine more minutes)."""
    ticks = []
    work = endless_work(ticks)
    gen = jobs.run("endless", work, idle="waiting")
    assert next(gen) == "waiting"
    gen.close()
    assert_worker_gone(ticks)


def test_a_job_shows_a_progress_line_with_the_time_left_and_a_failure_line():
    """The line a tab shows while a job runs: at once on start, then the latest report with the elapsed time
    and an estimate from the share done; a failed job's last line says it failed before the error is raised."""
    def work(check, report):
        report(0.25, "a quarter")
        time.sleep(2 * jobs.POLL_S + 0.2)
        return "ok"

    lines = []
    gen = jobs.run("Testing", work, status=lambda line: ("x", line))
    with pytest.raises(StopIteration) as stop:
        while True:
            lines.append(next(gen)[1])
    assert stop.value.value == "ok"
    assert lines[0].startswith(jobs.RUNNING) and "starting" in lines[0]
    assert any("a quarter" in line and "25%" in line and "s left" in line for line in lines[1:])
    assert jobs.running_line("X", (0.5, "half"), 10.0).count("about 10 s left") == 1
    failing = []
    gen = jobs.run("Failing", lambda check, report: 1 / 0, status=lambda line: line)
    with pytest.raises(ZeroDivisionError):
        while True:
            failing.append(next(gen))
    assert failing[-1].startswith(jobs.FAILED) and "Failing" in failing[-1]


class Session:
    """What Gradio passes a handler as its gr.Request: only the session matters to Stop."""
    session_hash = "session-1"


def test_stop_ends_a_job_at_its_next_check_and_says_so():
    """The Stop button sets the running job's flag (this session, this tab): the worker stops at its next check,
    frees the model, and the job's last line says it was stopped; a Stop with nothing running does nothing."""
    ticks = []
    work = endless_work(ticks)
    gen = jobs.run("Comparing", work, status=lambda line: line, stop_key=jobs.session_key(Session(), "compare"))
    assert next(gen).startswith(jobs.RUNNING)
    assert not jobs.press_stop("profile", Session()) and not jobs.press_stop("compare", None)  # other tab, no page
    assert jobs.press_stop("compare", Session())
    lines = []
    with pytest.raises(jobs.Stopped):
        for line in gen:
            lines.append(line)
    assert lines[-1].startswith(jobs.STOPPED) and "busy" in lines[-1]
    assert_worker_gone(ticks)
    assert not jobs.press_stop("compare", Session())  # nothing runs any more


def test_stop_ends_a_decompose_search_between_steps(lab):
    gen = decompose_tab.decompose(lab, "a^4 + 2a^2 + 7", Session(), **panel(decoder="beam", width=3.0, max_new=6.0))
    outs = [next(gen) for _ in range(4)]  # cleared, started, two steps
    assert "Step" in outs[-1][1]
    assert jobs.press_stop(decompose_tab.TAB, Session())
    rest = list(gen)
    assert len(rest) == 1 and rest[0][1].startswith(jobs.STOPPED)  # no answers: the search never finished
    assert not jobs.press_stop(decompose_tab.TAB, Session())


def test_a_stopped_recording_leaves_no_run_folder(lab, tmp_path):
    """Stop on the Profile tab: the check raises between decode steps and the half-written run is deleted."""
    calls = []

    def check():
        calls.append(1)
        if len(calls) > 8:  # past the warm-up decode, inside the recorded one
            raise jobs.Cancelled("profile")

    out = str(tmp_path / "profiles")
    with pytest.raises(jobs.Cancelled):
        engine.profile_run(lab.model(), engine.parse_polynomial("a^4 + 2a^2 + 7"),
                           engine.DecodeOptions(decoder="beam", width=3, max_new=6), out_dir=out, check=check)
    assert not os.path.isdir(out) or os.listdir(out) == []


def test_a_job_hands_back_its_result_or_its_error():
    gen = jobs.run("quick", lambda check, report: 42)
    with pytest.raises(StopIteration) as stop:
        while True:
            next(gen)
    assert stop.value.value == 42
    with pytest.raises(ValueError, match="bad"):
        list(jobs.run("failing", lambda check, report: (_ for _ in ()).throw(ValueError("bad"))))


def test_the_model_is_loaded_once(lab):
    assert lab.model() is lab.model()
